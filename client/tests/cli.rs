//! End-to-end tests of the `runnel` CLI and `runnel-bench` against a real standalone node
//! (see `harness` for how the node binary is found and built).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod harness;

use std::time::Duration;

use harness::Node;
use harness::describe;

#[test]
fn stream_lifecycle_put_get_tail_delete() {
    let node = Node::start();

    // create, list, describe
    let created = node.cli_ok(&["stream", "create", "orders", "--shards", "2"], None);
    assert!(created.contains("created stream 'orders'"), "{created}");
    node.cli_ok(
        &[
            "stream",
            "create",
            "other",
            "--on-demand",
            "--retention-hours",
            "48",
        ],
        None,
    );
    let listed = node.cli_ok(&["stream", "list"], None);
    assert_eq!(listed.lines().collect::<Vec<_>>(), vec!["orders", "other"]);
    let listed: serde_json::Value =
        serde_json::from_str(&node.cli_ok(&["--json", "stream", "list"], None)).unwrap();
    assert_eq!(listed["stream_names"], serde_json::json!(["orders", "other"]));
    let described = node.cli_ok(&["stream", "describe", "orders"], None);
    assert!(
        described.contains("shardId-000000000000") && described.contains("shardId-000000000001"),
        "{described}"
    );
    let described: serde_json::Value =
        serde_json::from_str(&node.cli_ok(&["stream", "describe", "orders", "--json"], None)).unwrap();
    assert_eq!(described["stream_name"], "orders");
    assert_eq!(described["shards"].as_array().map(Vec::len), Some(2));

    // put from stdin: random keys, then a fixed key, then a key field
    let lines: String = (0..100).map(|i| format!("record-{i}\n")).collect();
    let summary = node.cli_ok(&["put", "orders"], Some(lines.as_bytes()));
    assert!(
        summary.contains("put 100 record(s)") && summary.contains("0 failed"),
        "{summary}"
    );
    let json_lines = "{\"user\":\"ann\",\"n\":1}\n{\"user\":\"bob\",\"n\":2}\n{\"user\":\"ann\",\"n\":3}\n";
    let summary = node.cli_ok(
        &["--json", "put", "orders", "--key-field", "user"],
        Some(json_lines.as_bytes()),
    );
    let summary: serde_json::Value = serde_json::from_str(&summary).unwrap();
    assert_eq!(summary["records_put"], 3);
    assert_eq!(summary["records_failed"], 0);

    // get from the trim horizon: every record, in order within each shard
    let got = node.cli_ok(&["get", "orders", "--from", "trim-horizon"], None);
    let records: Vec<&str> = got.lines().collect();
    assert_eq!(records.len(), 103, "{got}");
    for i in 0..100 {
        assert!(
            records
                .iter()
                .any(|line| line.ends_with(&format!("  record-{i}"))),
            "record-{i} missing"
        );
    }
    let got = node.cli_ok(&["get", "orders", "--json"], None);
    let records: Vec<serde_json::Value> = got.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let ann: Vec<i64> = records
        .iter()
        .filter(|r| r["partition_key"] == "ann")
        .map(|r| {
            serde_json::from_str::<serde_json::Value>(r["text"].as_str().unwrap()).unwrap()["n"]
                .as_i64()
                .unwrap()
        })
        .collect();
    assert_eq!(ann, vec![1, 3], "per-key order");
    let limited = node.cli_ok(&["get", "orders", "--limit", "5"], None);
    assert_eq!(limited.lines().count(), 5);
    let first_seq = records[0]["sequence_number"].as_str().unwrap().to_string();
    let first_shard = records[0]["shard_id"].as_str().unwrap().to_string();
    let after = node.cli_ok(
        &[
            "get",
            "orders",
            "--shard",
            &first_shard,
            "--from",
            &format!("after-seq:{first_seq}"),
        ],
        None,
    );
    assert!(
        !after.contains(&first_seq),
        "after-seq excludes the record itself"
    );

    // tail --follow sees a record put after it started
    let mut tail = node.cli_spawn(&["tail", "orders", "--follow"]);
    std::thread::sleep(Duration::from_millis(1500));
    node.cli_ok(
        &["put", "orders", "--partition-key", "k"],
        Some(b"fresh-record\n"),
    );
    let seen = harness::read_until(&mut tail, "fresh-record", Duration::from_secs(15));
    let _ = tail.kill();
    let _ = tail.wait();
    assert!(seen.contains("fresh-record"), "tail printed: {seen}");
    assert!(
        !seen.contains("record-0"),
        "tail from latest must not print old records: {seen}"
    );

    // errors are clear
    let missing = node.cli(&["stream", "describe", "nope"], None);
    assert!(!missing.status.success());
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("stream 'nope' not found"),
        "{}",
        describe(&missing)
    );
    let bad = node.cli(&["get", "orders", "--from", "yesterday"], None);
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("invalid position"),
        "{}",
        describe(&bad)
    );

    // delete
    let deleted = node.cli_ok(&["stream", "delete", "orders"], None);
    assert!(deleted.contains("deleted stream 'orders'"), "{deleted}");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while node
        .cli_ok(&["stream", "list"], None)
        .lines()
        .any(|l| l == "orders")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "orders still listed after delete"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn put_from_files_and_whole_files() {
    let node = Node::start();
    node.cli_ok(&["stream", "create", "files", "--shards", "2"], None);
    let dir = tempfile::tempdir().unwrap();
    let lines = dir.path().join("lines.txt");
    std::fs::write(&lines, "a\nb\nc\n").unwrap();
    let blob = dir.path().join("blob.bin");
    std::fs::write(&blob, [0u8, 159, 146, 150, 10, 1]).unwrap();
    let lines = lines.to_str().unwrap();
    let blob = blob.to_str().unwrap();
    let summary = node.cli_ok(&["put", "files", lines, "--partition-key", "p"], None);
    assert!(summary.contains("put 3 record(s)"), "{summary}");
    let summary = node.cli_ok(
        &[
            "put",
            "files",
            "--whole-file",
            blob,
            lines,
            "--partition-key",
            "p",
        ],
        None,
    );
    assert!(summary.contains("put 2 record(s)"), "{summary}");
    let got = node.cli_ok(&["get", "files"], None);
    let data: Vec<&str> = got.lines().map(|l| l.rsplit("  ").next().unwrap()).collect();
    assert_eq!(data, vec!["a", "b", "c", "base64:AJ+SlgoB", "base64:YQpiCmMK"]);
}

#[test]
fn bench_produce_runs_and_stops() {
    let node = Node::start();
    let output = node.bench(&[
        "produce",
        "--duration",
        "2",
        "--stream",
        "bench",
        "--shards",
        "2",
        "--batch-size",
        "100",
        "--concurrency",
        "2",
        "--json",
    ]);
    assert!(output.status.success(), "{}", describe(&output));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["mode"], "produce");
    assert!(report["records_put"].as_u64().unwrap() > 0, "{report}");
    assert_eq!(report["records_failed"], 0, "{report}");
    assert!(
        report["put_call_latency_ms"]["p99"].as_f64().unwrap() > 0.0,
        "{report}"
    );
}

/// `runnel-bench fan-out` registers consumers over the admin API (in waves: at most 5 may be
/// CREATING), subscribes as each of them, and every consumer receives records.
#[test]
fn bench_fan_out_delivers_to_every_consumer() {
    let node = Node::start();
    let output = node.bench(&[
        "fan-out",
        "--consumers",
        "6",
        "--duration",
        "2",
        "--stream",
        "fan",
        "--shards",
        "2",
        "--rate",
        "500",
        "--batch-size",
        "50",
        "--concurrency",
        "1",
        "--json",
    ]);
    assert!(output.status.success(), "{}", describe(&output));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let put = report["records_put"].as_u64().unwrap();
    assert!(put > 0, "{report}");
    // Every consumer receives; how much within the run's short grace period depends on the
    // machine (complete delivery is asserted by node/tests/fan_out.rs without time limits).
    assert!(report["fewest_received"].as_u64() > Some(0), "{report}");
    assert!(report["records_received"].as_u64() <= Some(6 * put), "{report}");
}

#[test]
fn get_waits_out_read_throttling() {
    // 1,000 bytes/s of reads per shard: reading ~3 KB puts the shard ~2 s into read debt, so
    // the reader's next call is refused (ProvisionedThroughputExceeded) and made again after a
    // pause instead of failing the command.
    let node = Node::start_with(&["--shard-read-bytes-per-sec", "1000"]);
    node.cli_ok(&["stream", "create", "slow", "--shards", "1"], None);
    let lines: String = (0..3).map(|i| format!("{i}{}\n", "x".repeat(1000))).collect();
    node.cli_ok(&["put", "slow", "--partition-key", "k"], Some(lines.as_bytes()));
    let got = node.cli_ok(&["get", "slow", "--from", "trim-horizon"], None);
    assert_eq!(got.lines().count(), 3, "{got}");
}

/// `runnel tail --follow` reads parents before children: while the stream is rescaled, split
/// and merged between puts, every record comes out exactly once and each key's records in the
/// order they were put.
#[test]
fn tail_keeps_per_key_order_across_resharding() {
    let node = Node::start();
    node.cli_ok(&["stream", "create", "rs", "--shards", "2"], None);
    let mut tail = node.cli_spawn(&["--json", "tail", "rs", "--from", "trim-horizon", "--follow"]);
    const KEYS: u64 = 8;
    const ROUNDS: u64 = 25;
    let mut n = 0;
    let mut put_rounds = |node: &Node| {
        let lines: String = (n..n + ROUNDS)
            .flat_map(|i| (0..KEYS).map(move |k| format!("{{\"k\":\"key-{k}\",\"n\":{i}}}\n")))
            .collect();
        n += ROUNDS;
        let summary = node.cli_ok(&["put", "rs", "--key-field", "k"], Some(lines.as_bytes()));
        assert!(summary.contains("0 failed"), "{summary}");
    };
    put_rounds(&node);
    let scaled = node.cli_ok(&["stream", "scale", "rs", "--shards", "4"], None);
    assert!(scaled.contains("ACTIVE with 4 open shard(s)"), "{scaled}");
    put_rounds(&node);
    let split = node.cli_ok(&["stream", "split", "rs", "shardId-000000000002"], None);
    assert!(split.contains("ACTIVE with 5 open shard(s)"), "{split}");
    put_rounds(&node);
    let merged = node.cli_ok(
        &[
            "stream",
            "merge",
            "rs",
            "shardId-000000000006",
            "shardId-000000000007",
        ],
        None,
    );
    assert!(merged.contains("ACTIVE with 4 open shard(s)"), "{merged}");
    put_rounds(&node);

    let total = (4 * ROUNDS * KEYS) as usize;
    let seen = harness::read_lines(&mut tail, total, Duration::from_secs(60));
    let _ = tail.kill();
    let _ = tail.wait();
    let per_key = numbers_by_key(&seen);
    assert_eq!(per_key.len(), KEYS as usize, "{seen}");
    for (key, ns) in per_key {
        assert_eq!(ns, (0..4 * ROUNDS).collect::<Vec<_>>(), "{key}");
    }
    let described: serde_json::Value =
        serde_json::from_str(&node.cli_ok(&["stream", "describe", "rs", "--json"], None)).unwrap();
    assert_eq!(described["shards"].as_array().map(Vec::len), Some(9));
}

/// `runnel put` retries records refused for throughput: against a shard limited to 100
/// records/s, 1,000 records (10 s of budget) all go in, each key's in the order given; with
/// `--attempts 1` the refused ones are reported instead.
#[test]
fn put_retries_throttled_records_in_order() {
    let node = Node::start_with(&["--shard-write-records-per-sec", "100"]);
    node.cli_ok(&["stream", "create", "slow", "--shards", "1"], None);
    let lines: String = (0..1000)
        .map(|i| format!("{{\"k\":\"key-{}\",\"n\":{i}}}\n", i % 7))
        .collect();
    let summary: serde_json::Value = serde_json::from_str(&node.cli_ok(
        &["--json", "put", "slow", "--key-field", "k"],
        Some(lines.as_bytes()),
    ))
    .unwrap();
    assert_eq!(
        (
            summary["records_put"].as_u64(),
            summary["records_failed"].as_u64()
        ),
        (Some(1000), Some(0))
    );
    let got = node.cli_ok(&["--json", "get", "slow"], None);
    let per_key = numbers_by_key(&got);
    assert_eq!(per_key.values().map(Vec::len).sum::<usize>(), 1000);
    for (key, ns) in per_key {
        let mut sorted = ns.clone();
        sorted.sort_unstable();
        assert_eq!(ns, sorted, "{key} out of order");
    }
    // Without retries, a second 1,000 records right away cannot all fit the budget.
    let once = node.cli(
        &["--json", "put", "slow", "--key-field", "k", "--attempts", "1"],
        Some(lines.as_bytes()),
    );
    assert!(!once.status.success(), "{}", describe(&once));
    let summary: serde_json::Value = serde_json::from_slice(&once.stdout).unwrap();
    assert!(summary["records_failed"].as_u64() > Some(0), "{summary}");
    assert_eq!(
        summary["failures_by_code"]["ProvisionedThroughputExceededException"],
        summary["records_failed"]
    );
}

/// `n` of every `--json` record line whose text is `{"k": KEY, "n": N}`, by key, in output order.
fn numbers_by_key(output: &str) -> std::collections::BTreeMap<String, Vec<u64>> {
    let mut per_key: std::collections::BTreeMap<String, Vec<u64>> = Default::default();
    for line in output.lines() {
        let record: serde_json::Value = serde_json::from_str(line).unwrap();
        let body: serde_json::Value = serde_json::from_str(record["text"].as_str().unwrap()).unwrap();
        per_key
            .entry(body["k"].as_str().unwrap().to_string())
            .or_default()
            .push(body["n"].as_u64().unwrap());
    }
    per_key
}

/// Sends SIGINT (Ctrl-C) to a child and waits for it.
fn interrupt(child: &mut std::process::Child) -> std::process::ExitStatus {
    let status = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    child.wait().unwrap()
}

#[test]
fn tail_as_an_application_resumes_after_its_checkpoints() {
    let node = Node::start();
    node.cli_ok(&["stream", "create", "jobs", "--shards", "2"], None);
    let first: String = (0..6).map(|i| format!("job-{i}\n")).collect();
    node.cli_ok(&["put", "jobs"], Some(first.as_bytes()));

    let app = [
        "tail",
        "jobs",
        "--app",
        "billing",
        "--from",
        "trim-horizon",
        "--failover-secs",
        "2",
    ];
    let mut tail = node.cli_spawn(&app);
    let seen = harness::read_lines(&mut tail, 6, Duration::from_secs(60));
    assert!(interrupt(&mut tail).success(), "Ctrl-C ends tail --app cleanly");
    for i in 0..6 {
        assert!(seen.contains(&format!("job-{i}")), "job-{i} missing: {seen}");
    }

    // Checkpointed and released: a second run prints only what came after.
    node.cli_ok(&["put", "jobs"], Some(b"job-6\njob-7\n"));
    let mut tail = node.cli_spawn(&app);
    let seen = harness::read_lines(&mut tail, 2, Duration::from_secs(60));
    std::thread::sleep(Duration::from_millis(500));
    interrupt(&mut tail);
    let rest = {
        let mut rest = String::new();
        if let Some(mut out) = tail.stdout.take() {
            use std::io::Read;
            let _ = out.read_to_string(&mut rest);
        }
        rest
    };
    let all = format!("{seen}{rest}");
    assert!(all.contains("job-6") && all.contains("job-7"), "{all}");
    assert!(
        !all.contains("job-0") && !all.contains("job-5"),
        "old records again: {all}"
    );

    // The leases and checkpoints live in the cluster: another application starts over.
    let mut other = node.cli_spawn(&["tail", "jobs", "--app", "audit", "--from", "trim-horizon"]);
    let seen = harness::read_lines(&mut other, 8, Duration::from_secs(60));
    interrupt(&mut other);
    assert_eq!(seen.lines().count(), 8, "{seen}");
}

#[test]
fn cluster_describe_and_refused_changes() {
    let nodes = Node::start_cluster(3);
    let described: serde_json::Value =
        serde_json::from_str(&nodes[1].cli_ok(&["--json", "cluster", "describe"], None)).unwrap();
    let ids: Vec<u64> = described["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["node_id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, vec![1, 2, 3]);
    assert!((1..=3).contains(&described["catalog_leader"].as_u64().unwrap()));
    let table = nodes[0].cli_ok(&["cluster", "describe"], None);
    assert_eq!(
        table.lines().filter(|l| l.contains("127.0.0.1:")).count(),
        3,
        "{table}"
    );

    // Three nodes and three replicas per shard: nowhere to drain a node to.
    nodes[0].cli_ok(&["stream", "create", "s", "--shards", "1"], None);
    let refused = nodes[2].cli(&["cluster", "drain", "3"], None);
    assert!(!refused.status.success());
    assert!(
        describe(&refused).contains("Cannot drain node 3"),
        "{}",
        describe(&refused)
    );

    // A standalone node has no membership to change.
    let single = Node::start();
    let refused = single.cli(&["cluster", "drain", "1"], None);
    assert!(
        describe(&refused).contains("standalone"),
        "{}",
        describe(&refused)
    );
}

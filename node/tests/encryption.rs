//! Server-side encryption at rest through the official Rust SDK against real nodes:
//! StartStreamEncryption / StopStreamEncryption, `EncryptionType` on puts, reads and
//! descriptions, no plaintext of an encrypted record anywhere in a node's data directory (on
//! every replica of a 3-node cluster), the AWS errors (unknown key, wrong type, not ACTIVE, the
//! 24-hour limit), and a keyring that lost the key: writes and reads fail with KMS errors and
//! nothing is lost once the key is back.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::Path;

use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::EncryptionType;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;
use aws_sdk_kinesis::types::Record;
use runnel_proto::v1 as pb;
use support::Node;
use support::cluster::Cluster;
use support::sdk::client;
use support::sdk::client_for_port;
use support::sdk::code;
use support::sdk::create_active;
use support::sdk::trim_horizon;
use support::sdk::wait_active;

const KEY_A: &str = "key-a";
const KEY_B: &str = "1234abcd-12ab-34cd-56ef-1234567890ab";

/// A keyring with two keys; `alias/aws/kinesis` names the first.
fn keyring_text(material_a: &str) -> String {
    format!(
        "key {KEY_A} {material_a}\nkey {KEY_B} HxwdHh8AAQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRo=\nalias alias/aws/kinesis {KEY_A}\nalias alias/orders {KEY_B}\n"
    )
}
const MATERIAL_A: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const OTHER_MATERIAL: &str = "ZGlmZmVyZW50LWtleS1tYXRlcmlhbC0zMi1ieXRlcyE=";

/// Whether any file under `dir` contains `needle`.
fn found_in(dir: &Path, needle: &[u8]) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    entries.flatten().any(|e| {
        let path = e.path();
        if path.is_dir() {
            found_in(&path, needle)
        } else {
            std::fs::read(&path).is_ok_and(|bytes| bytes.windows(needle.len()).any(|w| w == needle))
        }
    })
}

async fn summary(c: &Client, stream: &str) -> (Option<EncryptionType>, Option<String>) {
    let s = c
        .describe_stream_summary()
        .stream_name(stream)
        .send()
        .await
        .unwrap();
    let s = s.stream_description_summary().unwrap();
    (s.encryption_type().cloned(), s.key_id().map(str::to_string))
}

/// StartStreamEncryption.
async fn start(c: &Client, stream: &str, kind: EncryptionType, key: &str) -> Result<(), (String, String)> {
    c.start_stream_encryption()
        .stream_name(stream)
        .encryption_type(kind)
        .key_id(key)
        .send()
        .await
        .map(|_| ())
        .map_err(|e| code::<_, ()>(Err(e)))
}

async fn put(c: &Client, stream: &str, data: &str) -> Result<Option<EncryptionType>, (String, String)> {
    c.put_record()
        .stream_name(stream)
        .partition_key(data)
        .data(Blob::new(data.as_bytes()))
        .send()
        .await
        .map(|r| r.encryption_type().cloned())
        .map_err(|e| code::<_, ()>(Err(e)))
}

/// Every record of a stream's shards, in shard order.
async fn read_all(c: &Client, stream: &str) -> Result<Vec<Record>, (String, String)> {
    let shards = c.list_shards().stream_name(stream).send().await.unwrap();
    let mut out = Vec::new();
    for shard in shards.shards() {
        let mut next = Some(trim_horizon(c, stream, shard.shard_id()).await);
        while let Some(it) = next.take() {
            let r = c
                .get_records()
                .shard_iterator(it)
                .send()
                .await
                .map_err(|e| code::<_, ()>(Err(e)))?;
            if r.records().is_empty() {
                break;
            }
            out.extend(r.records().iter().cloned());
            next = r.next_shard_iterator().map(str::to_string);
        }
    }
    Ok(out)
}

fn data(r: &Record) -> String {
    String::from_utf8(r.data().as_ref().to_vec()).unwrap()
}

#[tokio::test]
async fn encryption_at_rest_on_a_standalone_node() {
    let mut node = Node::start_with(&[
        "--throttling",
        "off",
        "--key-changes-per-day-limit",
        "3",
        // Long enough that a call right after StartStreamEncryption finds the stream UPDATING.
        "--transition-delay-ms",
        "1500",
    ])
    .await;
    let c = client(&node);
    create_active(&c, "orders", 2).await;

    // Before: nothing is encrypted, and the standalone node made its own keyring.
    assert_eq!(summary(&c, "orders").await, (Some(EncryptionType::None), None));
    assert!(
        node.data_dir().join("keyring").exists(),
        "a standalone node creates its keyring"
    );
    assert_eq!(
        put(&c, "orders", "plain-record-0").await,
        Ok(Some(EncryptionType::None))
    );

    start(&c, "orders", EncryptionType::Kms, "alias/aws/kinesis")
        .await
        .unwrap();
    // UPDATING until the transition completes: a second change is refused meanwhile.
    let busy = start(&c, "orders", EncryptionType::Kms, "alias/aws/kinesis")
        .await
        .unwrap_err();
    let (kind, message) = busy;
    assert_eq!(kind, "ResourceInUseException");
    assert!(
        message.contains("not ACTIVE, instead in state UPDATING"),
        "{message}"
    );
    wait_active(&c, "orders").await;
    assert_eq!(
        summary(&c, "orders").await,
        (Some(EncryptionType::Kms), Some("alias/aws/kinesis".into()))
    );

    // Writes after the change are encrypted, say so, and read back intact.
    assert_eq!(
        put(&c, "orders", "secret-record-1").await,
        Ok(Some(EncryptionType::Kms))
    );
    let entries: Vec<PutRecordsRequestEntry> = (2..40)
        .map(|i| {
            PutRecordsRequestEntry::builder()
                .partition_key(format!("k{i}"))
                .data(Blob::new(format!("secret-record-{i}")))
                .build()
                .unwrap()
        })
        .collect();
    let out = c
        .put_records()
        .stream_name("orders")
        .set_records(Some(entries))
        .send()
        .await
        .unwrap();
    assert_eq!(out.failed_record_count(), Some(0));
    assert_eq!(out.encryption_type(), Some(&EncryptionType::Kms));
    let check = |records: &[Record]| {
        let mut seen: Vec<(String, Option<EncryptionType>)> = records
            .iter()
            .map(|r| (data(r), r.encryption_type().cloned()))
            .collect();
        seen.sort();
        assert_eq!(seen.len(), 40);
        for (d, e) in seen {
            let want = if d.starts_with("secret-") {
                Some(EncryptionType::Kms)
            } else {
                None
            };
            assert_eq!(e, want, "{d}");
        }
    };
    check(&read_all(&c, "orders").await.unwrap());
    // Encryption at rest: the encrypted records' bytes are nowhere on disk; the record
    // written before encryption is.
    let shards = node.data_dir().join("shards");
    assert!(found_in(&shards, b"plain-record-0"));
    assert!(!found_in(&shards, b"secret-record"));

    // A restart keeps the keyring and the records readable.
    node.restart().await;
    let c = client(&node);
    check(&read_all(&c, "orders").await.unwrap());

    // The errors AWS answers.
    let unknown = start(&c, "orders", EncryptionType::Kms, "alias/nope")
        .await
        .unwrap_err();
    assert_eq!(unknown.0, "KMSNotFoundException");
    let none = start(&c, "orders", EncryptionType::None, "alias/aws/kinesis")
        .await
        .unwrap_err();
    assert_eq!(none.0, "InvalidArgumentException");
    let missing = start(&c, "absent", EncryptionType::Kms, "alias/aws/kinesis")
        .await
        .unwrap_err();
    assert_eq!(missing.0, "ResourceNotFoundException");

    // Stopping: new records are plain again, old ones stay encrypted.
    c.stop_stream_encryption()
        .stream_name("orders")
        .encryption_type(EncryptionType::Kms)
        .key_id("alias/aws/kinesis")
        .send()
        .await
        .unwrap();
    wait_active(&c, "orders").await;
    assert_eq!(summary(&c, "orders").await, (Some(EncryptionType::None), None));
    assert_eq!(
        put(&c, "orders", "plain-record-40").await,
        Ok(Some(EncryptionType::None))
    );
    let records = read_all(&c, "orders").await.unwrap();
    assert_eq!(records.len(), 41);
    assert_eq!(
        records.iter().filter(|r| r.encryption_type().is_some()).count(),
        39
    );

    // The node's limit (3 per rolling 24 hours here; AWS: 25) counts every key applied, by
    // any of the KeyId forms: the first StartStreamEncryption above and these two.
    for key in [
        "alias/aws/kinesis",
        "arn:aws:kms:us-east-1:000000000000:alias/aws/kinesis",
    ] {
        start(&c, "orders", EncryptionType::Kms, key).await.unwrap();
        wait_active(&c, "orders").await;
    }
    let over = start(&c, "orders", EncryptionType::Kms, "alias/aws/kinesis")
        .await
        .unwrap_err();
    assert_eq!(over.0, "LimitExceededException");
}

#[tokio::test]
async fn a_lost_key_fails_reads_and_writes_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let keyring = dir.path().join("keyring");
    std::fs::write(&keyring, keyring_text(MATERIAL_A)).unwrap();
    let path = keyring.display().to_string();
    let mut node = Node::start_with(&["--throttling", "off", "--kms-keyring", &path]).await;
    let c = client(&node);
    create_active(&c, "payments", 1).await;
    start(&c, "payments", EncryptionType::Kms, KEY_A).await.unwrap();
    wait_active(&c, "payments").await;
    for i in 0..5 {
        assert_eq!(
            put(&c, "payments", &format!("payment-{i}")).await,
            Ok(Some(EncryptionType::Kms))
        );
    }

    // The keyring's `key-a` now has other material: the node cannot open what it sealed, and
    // refuses (never returns ciphertext as data); writes fail without storing anything.
    std::fs::write(&keyring, keyring_text(OTHER_MATERIAL)).unwrap();
    node.restart().await;
    let c = client(&node);
    let (kind, _) = read_all(&c, "payments").await.unwrap_err();
    assert_eq!(
        kind, "InternalFailure",
        "a key with other material does not authenticate"
    );
    // Without the key at all: KMSAccessDeniedException on reads, KMSNotFoundException on writes.
    std::fs::write(
        &keyring,
        format!("key {KEY_B} HxwdHh8AAQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRo=\n"),
    )
    .unwrap();
    node.restart().await;
    let c = client(&node);
    let (kind, message) = read_all(&c, "payments").await.unwrap_err();
    assert_eq!(kind, "KMSAccessDeniedException", "{message}");
    let (kind, _) = put(&c, "payments", "lost-write").await.unwrap_err();
    assert_eq!(kind, "KMSNotFoundException");
    let batch = c
        .put_records()
        .stream_name("payments")
        .records(
            PutRecordsRequestEntry::builder()
                .partition_key("k")
                .data(Blob::new("lost-write-2"))
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(batch.failed_record_count(), Some(1));
    assert_eq!(batch.records()[0].error_code(), Some("KMSNotFoundException"));

    // The key is back: every acknowledged record reads back, and nothing refused was stored.
    std::fs::write(&keyring, keyring_text(MATERIAL_A)).unwrap();
    node.restart().await;
    let c = client(&node);
    let got: Vec<String> = read_all(&c, "payments").await.unwrap().iter().map(data).collect();
    assert_eq!(got, (0..5).map(|i| format!("payment-{i}")).collect::<Vec<_>>());
}

#[tokio::test]
async fn every_replica_of_a_cluster_stores_only_ciphertext() {
    let dir = tempfile::tempdir().unwrap();
    let keyring = dir.path().join("keyring");
    std::fs::write(&keyring, keyring_text(MATERIAL_A)).unwrap();
    let path = keyring.display().to_string();
    let cluster = Cluster::start_with(3, &["--throttling", "off", "--kms-keyring", &path]);
    let mut admin = cluster.create_stream(0, "clicks", 3).await;
    support::wait_active(&mut admin, "clicks").await;
    // Through the admin API (what the operator uses), by alias.
    admin
        .update_encryption(pb::UpdateEncryptionRequest {
            stream_name: "clicks".into(),
            key_id: Some("alias/orders".into()),
        })
        .await
        .unwrap();
    support::wait_active(&mut admin, "clicks").await;
    let d = admin
        .describe_stream(pb::DescribeStreamRequest {
            stream_name: "clicks".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        d.stream.unwrap().encryption_key_id.as_deref(),
        Some("alias/orders")
    );

    // Written through node 2 (most shards are led elsewhere), read through node 3.
    let writer = client_for_port(cluster.members[1].kinesis);
    let mut sent = Vec::new();
    for i in 0..60 {
        let d = format!("click-{i:03}");
        assert_eq!(put(&writer, "clicks", &d).await, Ok(Some(EncryptionType::Kms)));
        sent.push(d);
    }
    let reader = client_for_port(cluster.members[2].kinesis);
    let records = read_all(&reader, "clicks").await.unwrap();
    assert!(
        records
            .iter()
            .all(|r| r.encryption_type() == Some(&EncryptionType::Kms))
    );
    let mut got: Vec<String> = records.iter().map(data).collect();
    got.sort();
    assert_eq!(got, sent);
    // The native gRPC API says so too.
    let mut streams = support::streams_client(&cluster.members[0].endpoint())
        .await
        .unwrap();
    let shard = support::read_shard(&mut streams, "clicks", "shardId-000000000000").await;
    assert!(!shard.is_empty() && shard.iter().all(|r| r.encrypted));
    // No replica holds the plaintext.
    for m in &cluster.members {
        assert!(non_empty_dir(&m.dir));
        assert!(!found_in(&m.dir, b"click-0"), "node {} stores plaintext", m.id);
    }
}

fn non_empty_dir(dir: &Path) -> bool {
    support::non_empty(dir)
}

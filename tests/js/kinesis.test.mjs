// The Kinesis API through @aws-sdk/client-kinesis against a real standalone node:
// create, wait, put, get, list shards, errors.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  KinesisClient,
  CreateStreamCommand,
  PutRecordCommand,
  PutRecordsCommand,
  GetShardIteratorCommand,
  GetRecordsCommand,
  ListShardsCommand,
  DescribeStreamCommand,
  waitUntilStreamExists,
} from "@aws-sdk/client-kinesis";

const freePort = () =>
  new Promise((resolve) => {
    const s = createServer();
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });

const nodeBin = () =>
  process.env.RUNNEL_NODE_BIN ||
  join(process.env.CARGO_TARGET_DIR || "../../target", "debug", "runnel-node");

let proc, dir, client;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "runnel-js-"));
  const port = await freePort();
  proc = spawn(nodeBin(), [
    "standalone",
    "--data-dir", join(dir, "data"),
    "--kinesis-addr", `127.0.0.1:${port}`,
    "--grpc-addr", `127.0.0.1:${await freePort()}`,
    "--metrics-addr", `127.0.0.1:${await freePort()}`,
    // Whether a burst of test requests exceeds a per-shard rate would depend on timing.
    "--throttling", "off",
  ], { stdio: ["ignore", "pipe", "inherit"] });
  await new Promise((resolve, reject) => {
    proc.stdout.on("data", (d) => { if (String(d).includes("ready")) resolve(); });
    proc.on("exit", () => reject(new Error("runnel-node exited")));
  });
  client = new KinesisClient({
    endpoint: `http://127.0.0.1:${port}`,
    region: "us-east-1",
    credentials: { accessKeyId: "AKIDTEST", secretAccessKey: "secret" },
  });
});

after(() => {
  proc?.kill("SIGKILL");
  rmSync(dir, { recursive: true, force: true });
});

test("create, put, get, list shards", async () => {
  const StreamName = "js-stream";
  await client.send(new CreateStreamCommand({ StreamName, ShardCount: 2 }));
  await waitUntilStreamExists({ client, maxWaitTime: 60, minDelay: 1 }, { StreamName });
  const put = await client.send(new PutRecordCommand({
    StreamName, PartitionKey: "k", Data: new TextEncoder().encode("hello"),
  }));
  assert.match(put.ShardId, /^shardId-\d{12}$/);
  const batch = await client.send(new PutRecordsCommand({
    StreamName,
    Records: [{ PartitionKey: "k", Data: new TextEncoder().encode("world") }],
  }));
  assert.equal(batch.FailedRecordCount, 0);
  const { ShardIterator } = await client.send(new GetShardIteratorCommand({
    StreamName, ShardId: put.ShardId, ShardIteratorType: "TRIM_HORIZON",
  }));
  const got = await client.send(new GetRecordsCommand({ ShardIterator }));
  assert.deepEqual(
    got.Records.map((r) => new TextDecoder().decode(r.Data)),
    ["hello", "world"],
  );
  assert.equal(got.Records[0].SequenceNumber, put.SequenceNumber);
  assert.ok(got.NextShardIterator);
  const shards = await client.send(new ListShardsCommand({ StreamName, MaxResults: 1 }));
  assert.equal(shards.Shards.length, 1);
  const rest = await client.send(new ListShardsCommand({ NextToken: shards.NextToken }));
  assert.equal(rest.Shards[0].ShardId, "shardId-000000000001");
});

test("errors carry AWS types and messages", async () => {
  await assert.rejects(
    client.send(new DescribeStreamCommand({ StreamName: "missing" })),
    (e) => e.name === "ResourceNotFoundException" &&
      e.message === "Stream missing under account 000000000000 not found.",
  );
});

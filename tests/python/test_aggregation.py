"""KPL aggregation between Runnel's `runnel` CLI and the AWS tools: records the CLI puts with
`--aggregate` are read back through boto3 and de-aggregated by `aws-kinesis-agg` (as a KCL or
Lambda consumer would), and aggregates made by `aws-kinesis-agg` come out of `runnel get` as
their user records."""
import base64
import hashlib
import json
import uuid

import pytest
from aws_kinesis_agg.aggregator import RecordAggregator
from aws_kinesis_agg.deaggregator import deaggregate_records

from conftest import runnel_cli, wait_active


def read_stream(kinesis, stream):
    """(shard, record) for every record of every shard."""
    out = []
    for shard in kinesis.list_shards(StreamName=stream)["Shards"]:
        it = kinesis.get_shard_iterator(
            StreamName=stream, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        out += [(shard, r) for r in kinesis.get_records(ShardIterator=it, Limit=10000)["Records"]]
    return out


@pytest.mark.runnel_only("the runnel CLI writes to Runnel only")
def test_cli_aggregates_are_read_by_aws_kinesis_agg(node, kinesis):
    n = "py-" + uuid.uuid4().hex[:10]
    kinesis.create_stream(StreamName=n, ShardCount=4)
    wait_active(kinesis, n)
    lines = "".join(json.dumps({"user": f"u{i % 13}", "n": i}) + "\n" for i in range(300))
    summary = json.loads(runnel_cli(
        node, "--json", "put", n, "--key-field", "user", "--aggregate", stdin=lines.encode()
    ))
    assert summary["records_put"] == 300 and summary["records_failed"] == 0
    stored = read_stream(kinesis, n)
    assert 4 <= len(stored) < 300, "records travel aggregated, at most one aggregate per shard"
    users = deaggregate_records([
        {"kinesis": {"kinesisSchemaVersion": "1.0", "sequenceNumber": r["SequenceNumber"],
                     "partitionKey": r["PartitionKey"],
                     "approximateArrivalTimestamp": r["ApproximateArrivalTimestamp"].timestamp(),
                     "data": base64.b64encode(r["Data"]).decode()},
         "shard": shard}
        for shard, r in stored
    ])
    got = [json.loads(base64.b64decode(u["kinesis"]["data"])) for u in users]
    assert sorted(g["n"] for g in got) == list(range(300))
    # Each user record sits in the shard its own partition key hashes to, in the order put.
    for u in users:
        key = u["kinesis"]["partitionKey"]
        h = int(hashlib.md5(key.encode()).hexdigest(), 16)
        r = u["shard"]["HashKeyRange"]
        assert int(r["StartingHashKey"]) <= h <= int(r["EndingHashKey"]), key
    per_user = {}
    for g in got:
        per_user.setdefault(g["user"], []).append(g["n"])
    assert all(ns == sorted(ns) for ns in per_user.values())


@pytest.mark.runnel_only("the runnel CLI reads from Runnel only")
def test_runnel_get_deaggregates_kpl_records(node, kinesis):
    n = "py-" + uuid.uuid4().hex[:10]
    kinesis.create_stream(StreamName=n, ShardCount=1)
    wait_active(kinesis, n)
    agg = RecordAggregator()
    for i in range(25):
        assert agg.add_user_record(f"pk-{i}", f"user-record-{i}".encode()) is None
    pk, ehk, data = agg.clear_and_get().get_contents()
    extra = {"ExplicitHashKey": ehk} if ehk else {}
    kinesis.put_record(StreamName=n, PartitionKey=pk, Data=data, **extra)
    kinesis.put_record(StreamName=n, PartitionKey="plain", Data=b"not aggregated")
    out = runnel_cli(node, "--json", "get", n).decode()
    records = [json.loads(line) for line in out.splitlines()]
    assert [r["text"] for r in records] == [f"user-record-{i}" for i in range(25)] + ["not aggregated"]
    assert [r["partition_key"] for r in records[:3]] == ["pk-0", "pk-1", "pk-2"]
    raw = runnel_cli(node, "--json", "get", n, "--raw").decode().splitlines()
    assert len(raw) == 2

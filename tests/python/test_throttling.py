"""Per-shard throttling through boto3, against a real node started with small limits.

Every case exceeds its limit by a wide margin in one burst, so no outcome depends on how fast
the machine runs the requests.
"""
import urllib.request
import uuid

import boto3
import botocore.exceptions
import pytest
from botocore.config import Config

from conftest import ENV, Node, wait_active

# 10 records/s and 10 KiB/s of writes, 2 calls/s and 10 KiB/s of reads per shard.
SMALL_LIMITS = (
    "--shard-write-records-per-sec", "10",
    "--shard-write-bytes-per-sec", "10240",
    "--shard-read-calls-per-sec", "2",
    "--shard-read-bytes-per-sec", "10240",
)
THROTTLED = "ProvisionedThroughputExceededException"


@pytest.fixture(scope="module")
def node():
    n = Node(*SMALL_LIMITS, throttled=True)
    yield n
    n.stop()


@pytest.fixture(scope="module")
def kinesis(node):
    return boto3.client(
        "kinesis",
        endpoint_url=node.endpoint,
        region_name="us-east-1",
        aws_access_key_id=ENV["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=ENV["AWS_SECRET_ACCESS_KEY"],
        # No retries: every throttled call must be seen.
        config=Config(retries={"total_max_attempts": 1}),
    )


def name():
    return "py-" + uuid.uuid4().hex[:10]


def metric(node, metric_name, stream):
    page = urllib.request.urlopen(f"http://127.0.0.1:{node.metrics_port}/metrics").read().decode()
    prefix = f'{metric_name}{{stream="{stream}"}} '
    for line in page.splitlines():
        if line.startswith(prefix):
            return float(line[len(prefix):])
    return 0.0


def error(fn, **kw):
    with pytest.raises(botocore.exceptions.ClientError) as e:
        fn(**kw)
    r = e.value.response
    return r["ResponseMetadata"]["HTTPStatusCode"], r["Error"]["Code"], r["Error"].get("Message", "")


def test_put_records_fails_only_the_entries_over_the_budget(node, kinesis):
    n = name()
    kinesis.create_stream(StreamName=n, ShardCount=1)
    wait_active(kinesis, n)
    r = kinesis.put_records(
        StreamName=n,
        Records=[{"PartitionKey": f"k{i}", "Data": b"0123456789"} for i in range(100)],
    )
    assert r["FailedRecordCount"] == 90
    assert [e.get("ShardId") for e in r["Records"][:10]] == ["shardId-000000000000"] * 10
    for e in r["Records"][10:]:
        assert e == {
            "ErrorCode": THROTTLED,
            "ErrorMessage": f"Rate exceeded for shard shardId-000000000000 in stream {n} "
            "under account 000000000000.",
        }
    assert metric(node, "runnel_write_provisioned_throughput_exceeded_total", n) == 90


def test_put_record_raises_while_the_shard_is_over_budget(node, kinesis):
    n = name()
    kinesis.create_stream(StreamName=n, ShardCount=1)
    wait_active(kinesis, n)
    # 100 KiB on an idle shard allowed 10 KiB/s passes and leaves ~9 s of debt.
    kinesis.put_record(StreamName=n, PartitionKey="a", Data=b"x" * (100 << 10))
    status, code, message = error(kinesis.put_record, StreamName=n, PartitionKey="a", Data=b"x")
    assert (status, code) == (400, THROTTLED)
    assert message == (
        f"Rate exceeded for shard shardId-000000000000 in stream {n} under account 000000000000."
    )


def test_get_records_is_throttled(node, kinesis):
    n = name()
    kinesis.create_stream(StreamName=n, ShardCount=1)
    wait_active(kinesis, n)
    kinesis.put_record(StreamName=n, PartitionKey="a", Data=b"x" * (100 << 10))
    it = kinesis.get_shard_iterator(
        StreamName=n, ShardId="shardId-000000000000", ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]
    got = kinesis.get_records(ShardIterator=it)
    assert len(got["Records"]) == 1
    # The 100 KiB read leaves the shard ~9 s in read debt.
    status, code, message = error(kinesis.get_records, ShardIterator=got["NextShardIterator"])
    assert (status, code) == (400, THROTTLED)
    assert message == f"Rate exceeded for Shard - 000000000000/{n}/shardId-000000000000"
    assert metric(node, "runnel_read_provisioned_throughput_exceeded_total", n) == 1


def test_on_demand_streams_are_not_throttled(node, kinesis):
    n = name()
    kinesis.create_stream(StreamName=n, StreamModeDetails={"StreamMode": "ON_DEMAND"})
    wait_active(kinesis, n)
    r = kinesis.put_records(
        StreamName=n, Records=[{"PartitionKey": f"k{i}", "Data": b"x" * 100} for i in range(500)]
    )
    assert r["FailedRecordCount"] == 0
    shard = kinesis.list_shards(StreamName=n)["Shards"][0]["ShardId"]
    it = kinesis.get_shard_iterator(StreamName=n, ShardId=shard, ShardIteratorType="TRIM_HORIZON")[
        "ShardIterator"
    ]
    for _ in range(20):
        kinesis.get_records(ShardIterator=it, Limit=1)
    assert metric(node, "runnel_write_provisioned_throughput_exceeded_total", n) == 0
    assert metric(node, "runnel_read_provisioned_throughput_exceeded_total", n) == 0

"""The Kinesis API through boto3 and the AWS CLI, against a real standalone node."""
import base64
import json
import os
import shutil
import subprocess
import sys
import urllib.request
import uuid

import botocore.exceptions
import cbor2
import pytest
from aws_kinesis_agg.aggregator import RecordAggregator
from aws_kinesis_agg.deaggregator import deaggregate_records

from conftest import ENV, Node, _client, wait_active


def name():
    return "py-" + uuid.uuid4().hex[:10]


def error(fn, **kw):
    with pytest.raises(botocore.exceptions.ClientError) as e:
        fn(**kw)
    return e.value.response["Error"]["Code"], e.value.response["Error"].get("Message", "")


@pytest.fixture
def stream(kinesis):
    n = name()
    kinesis.create_stream(StreamName=n, ShardCount=2)
    wait_active(kinesis, n)
    return n


def test_create_describe_list_delete(kinesis):
    n = name()
    kinesis.create_stream(StreamName=n, ShardCount=3, Tags={"team": "data"})
    d = kinesis.describe_stream(StreamName=n)["StreamDescription"]
    assert d["StreamStatus"] in ("CREATING", "ACTIVE")
    wait_active(kinesis, n)
    d = kinesis.describe_stream(StreamName=n, Limit=2)["StreamDescription"]
    assert [s["ShardId"] for s in d["Shards"]] == ["shardId-000000000000", "shardId-000000000001"]
    assert d["HasMoreShards"] is True
    assert d["StreamARN"] == f"arn:aws:kinesis:us-east-1:000000000000:stream/{n}"
    s = kinesis.describe_stream_summary(StreamARN=d["StreamARN"])["StreamDescriptionSummary"]
    assert s["OpenShardCount"] == 3 and s["StreamModeDetails"]["StreamMode"] == "PROVISIONED"
    names = []
    for page in kinesis.get_paginator("list_streams").paginate(PaginationConfig={"PageSize": 1}):
        names += page["StreamNames"]
    assert n in names
    assert kinesis.list_tags_for_stream(StreamName=n)["Tags"] == [{"Key": "team", "Value": "data"}]
    kinesis.delete_stream(StreamName=n, EnforceConsumerDeletion=True)
    kinesis.get_waiter("stream_not_exists").wait(
        StreamName=n, WaiterConfig={"Delay": 0.2, "MaxAttempts": 100}
    )


def test_records_and_iterators(kinesis, stream):
    r = kinesis.put_record(StreamName=stream, PartitionKey="k", Data=b"one")
    shard, seq = r["ShardId"], r["SequenceNumber"]
    out = kinesis.put_records(
        StreamName=stream,
        Records=[{"PartitionKey": "k", "Data": b"two"}, {"PartitionKey": "k", "Data": b"three"}],
    )
    assert out["FailedRecordCount"] == 0
    it = kinesis.get_shard_iterator(
        StreamName=stream, ShardId=shard, ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]
    got = kinesis.get_records(ShardIterator=it, Limit=2)
    assert [x["Data"] for x in got["Records"]] == [b"one", b"two"]
    got = kinesis.get_records(ShardIterator=got["NextShardIterator"])
    assert [x["Data"] for x in got["Records"]] == [b"three"]
    assert got["MillisBehindLatest"] == 0
    it = kinesis.get_shard_iterator(
        StreamName=stream, ShardId=shard, ShardIteratorType="AFTER_SEQUENCE_NUMBER",
        StartingSequenceNumber=seq,
    )["ShardIterator"]
    assert kinesis.get_records(ShardIterator=it, Limit=1)["Records"][0]["Data"] == b"two"
    # Iterators are AWS-shaped: base64 of 00..01 + 152 + 16k bytes.
    raw = base64.b64decode(it)
    assert raw[:8] == bytes([0, 0, 0, 0, 0, 0, 0, 1]) and (len(raw) - 160) % 16 == 0


def test_kpl_aggregated_records_round_trip(kinesis, stream):
    agg = RecordAggregator()
    for i in range(20):
        assert agg.add_user_record(f"pk-{i}", f"user-record-{i}".encode()) is None
    rec = agg.clear_and_get()
    pk, ehk, data = rec.get_contents()
    extra = {"ExplicitHashKey": ehk} if ehk else {}
    kinesis.put_record(StreamName=stream, PartitionKey=pk, Data=data, **extra)
    records = []
    for shard in kinesis.list_shards(StreamName=stream)["Shards"]:
        it = kinesis.get_shard_iterator(
            StreamName=stream, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        records += kinesis.get_records(ShardIterator=it)["Records"]
    users = deaggregate_records(
        [{"kinesis": {"kinesisSchemaVersion": "1.0", "sequenceNumber": r["SequenceNumber"],
                      "partitionKey": r["PartitionKey"],
                      "approximateArrivalTimestamp": r["ApproximateArrivalTimestamp"].timestamp(),
                      "data": base64.b64encode(r["Data"]).decode()}}
         for r in records]
    )
    got = sorted(base64.b64decode(u["kinesis"]["data"]).decode() for u in users)
    assert got == sorted(f"user-record-{i}" for i in range(20))


def test_list_shards_paging_and_filters(kinesis):
    n = name()
    kinesis.create_stream(StreamName=n, ShardCount=5)
    wait_active(kinesis, n)
    page = kinesis.list_shards(StreamName=n, MaxResults=2)
    ids = [s["ShardId"] for s in page["Shards"]]
    while "NextToken" in page:
        page = kinesis.list_shards(NextToken=page["NextToken"], MaxResults=2)
        ids += [s["ShardId"] for s in page["Shards"]]
    assert ids == [f"shardId-{i:012d}" for i in range(5)]
    after = kinesis.list_shards(
        StreamName=n, ShardFilter={"Type": "AFTER_SHARD_ID", "ShardId": "shardId-000000000003"}
    )
    assert [s["ShardId"] for s in after["Shards"]] == ["shardId-000000000004"]
    assert len(kinesis.list_shards(StreamName=n, ShardFilter={"Type": "AT_LATEST"})["Shards"]) == 5
    code, _ = error(kinesis.list_shards, StreamName=n, NextToken="x")
    assert code == "InvalidArgumentException"


def test_retention_tags_limits_mode(kinesis, stream):
    kinesis.increase_stream_retention_period(StreamName=stream, RetentionPeriodHours=48)
    code, msg = error(kinesis.increase_stream_retention_period, StreamName=stream, RetentionPeriodHours=24)
    assert code == "InvalidArgumentException" and "Use DecreaseRetentionPeriod API" in msg
    kinesis.decrease_stream_retention_period(StreamName=stream, RetentionPeriodHours=24)
    arn = f"arn:aws:kinesis:us-east-1:000000000000:stream/{stream}"
    kinesis.tag_resource(ResourceARN=arn, Tags={"a": "1", "b": "2"})
    kinesis.untag_resource(ResourceARN=arn, TagKeys=["a"])
    assert kinesis.list_tags_for_resource(ResourceARN=arn)["Tags"] == [{"Key": "b", "Value": "2"}]
    limits = kinesis.describe_limits()
    assert limits["ShardLimit"] >= limits["OpenShardCount"] >= 2
    kinesis.update_stream_mode(StreamARN=arn, StreamModeDetails={"StreamMode": "ON_DEMAND"})
    wait_active(kinesis, stream)
    s = kinesis.describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"]
    assert s["StreamModeDetails"]["StreamMode"] == "ON_DEMAND"


@pytest.mark.runnel_only("keys come from Runnel's keyring (a standalone node makes its own)")
def test_stream_encryption(kinesis, stream):
    kinesis.start_stream_encryption(StreamName=stream, EncryptionType="KMS", KeyId="alias/aws/kinesis")
    wait_active(kinesis, stream)
    s = kinesis.describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"]
    assert (s["EncryptionType"], s["KeyId"]) == ("KMS", "alias/aws/kinesis")
    put = kinesis.put_record(StreamName=stream, PartitionKey="k", Data=b"sealed")
    assert put["EncryptionType"] == "KMS"
    it = kinesis.get_shard_iterator(StreamName=stream, ShardId=put["ShardId"],
                                    ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    records = kinesis.get_records(ShardIterator=it)["Records"]
    assert [(r["Data"], r["EncryptionType"]) for r in records] == [(b"sealed", "KMS")]
    code, _ = error(kinesis.start_stream_encryption, StreamName=stream, EncryptionType="KMS",
                    KeyId="alias/missing")
    assert code == "KMSNotFoundException"
    kinesis.stop_stream_encryption(StreamName=stream, EncryptionType="KMS", KeyId="alias/aws/kinesis")
    wait_active(kinesis, stream)
    assert kinesis.put_record(StreamName=stream, PartitionKey="k", Data=b"plain")["EncryptionType"] == "NONE"
    s = kinesis.describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"]
    assert s["EncryptionType"] == "NONE" and "KeyId" not in s


@pytest.mark.parametrize(
    "op,kw,code,message",
    [
        ("describe_stream", {"StreamName": "missing"}, "ResourceNotFoundException",
         "Stream missing under account 000000000000 not found."),
        ("create_stream", {"StreamName": "x", "ShardCount": 0}, "ValidationException",
         "1 validation error detected: Value '0' at 'shardCount' failed to satisfy constraint: "
         "Member must have value greater than or equal to 1"),
        ("create_stream", {"StreamName": "bad name", "ShardCount": 1}, "ValidationException",
         "1 validation error detected: Value 'bad name' at 'streamName' failed to satisfy "
         "constraint: Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+"),
        ("get_records", {"ShardIterator": "AAAAAAAAAAE="}, "InvalidArgumentException",
         "Invalid ShardIterator."),
        ("list_streams", {"Limit": 0}, "ValidationException",
         "1 validation error detected: Value '0' at 'limit' failed to satisfy constraint: "
         "Member must have value greater than or equal to 1"),
    ],
)
def test_error_cases(make_kinesis, op, kw, code, message):
    # boto3 validates some parameters client-side; turn that off so the server answers.
    raw = make_kinesis(parameter_validation=False)
    got = error(getattr(raw, op), **kw)
    assert got == (code, message)


def test_wire_encoding(kinesis, wire):
    kinesis.list_streams()
    if wire == "cbor":
        stats = kinesis.cbor_stats
        assert stats["requests"] > 0 and stats["responses"] == stats["requests"]
    else:
        assert not hasattr(kinesis, "cbor_stats")


@pytest.fixture
def slow_node():
    """A node whose streams stay CREATING / DELETING (10 min) and allows 2 such at once."""
    n = Node("--transition-delay-ms", "600000", "--transitioning-stream-limit", "2")
    yield n
    n.stop()


@pytest.mark.runnel_only("kinesis-local's limit (5 streams CREATING) cannot be configured")
def test_too_many_streams_creating_or_deleting(slow_node, wire):
    c = _client(slow_node.endpoint, wire)
    prefix = name()
    c.create_stream(StreamName=f"{prefix}-a", ShardCount=1)
    c.create_stream(StreamName=f"{prefix}-b", ShardCount=1)
    assert c.describe_stream_summary(StreamName=f"{prefix}-a")[
        "StreamDescriptionSummary"]["StreamStatus"] == "CREATING"
    limit = (
        "LimitExceededException",
        "This request would have exceed the limit on the number of streams that can "
        "simultaneously be in CREATING or DELETING for the account 000000000000. Limit: 2.",
    )
    assert error(c.create_stream, StreamName=f"{prefix}-c", ShardCount=1) == limit
    # DeleteStream would put one more stream in transition too.
    assert error(c.delete_stream, StreamName=f"{prefix}-a") == limit
    assert f"{prefix}-c" not in c.list_streams()["StreamNames"]


def _post(node, target, body, content_type="application/x-amz-json-1.1", auth=True):
    headers = {"Content-Type": content_type, "X-Amz-Target": target}
    if auth:
        headers["Authorization"] = (
            "AWS4-HMAC-SHA256 Credential=AKID/20240101/us-east-1/kinesis/aws4_request, "
            "SignedHeaders=host;x-amz-date, Signature=00"
        )
        headers["X-Amz-Date"] = "20240101T000000Z"
    req = urllib.request.Request(node.endpoint + "/", data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


@pytest.mark.runnel_only("raw HTTP requests to Runnel")
def test_protocol_errors(node):
    st, h, body = _post(node, "Kinesis_20131202.PutResourcePolicy", b"{}")
    assert st == 400 and json.loads(body) == {"__type": "UnknownOperationException"}
    assert h["x-amzn-RequestId"]
    st, _, body = _post(node, "Kinesis_20131202.ListStreams", b"{}", auth=False)
    assert json.loads(body)["__type"] == "MissingAuthenticationTokenException"
    st, _, body = _post(node, "Kinesis_20131202.ListStreams", b"nope")
    assert json.loads(body) == {"__type": "SerializationException"}
    st, h, body = _post(node, "Kinesis_20131202.ListStreams", cbor2.dumps({}),
                        content_type="application/x-amz-cbor-1.1")
    assert st == 200 and h["Content-Type"] == "application/x-amz-cbor-1.1"
    # Timestamps are tag 1 + integer epoch milliseconds (the Java SDK's form), which
    # cbor2's RFC 8949 (seconds) decoder would reject: keep them raw.
    doc = cbor2.loads(body, semantic_decoders={1: lambda v, _imm: ("tag1", v)})
    assert "StreamNames" in doc
    for s in doc.get("StreamSummaries", []):
        tag, ms = s["StreamCreationTimestamp"]
        assert tag == "tag1" and isinstance(ms, int) and ms > 10**12


def _aws(node, *args):
    aws = shutil.which("aws", path=os.path.dirname(sys.executable)) or shutil.which("aws")
    if not aws:
        pytest.skip("AWS CLI not installed")
    env = dict(os.environ, **ENV)
    out = subprocess.run(
        [aws, "--endpoint-url", node.endpoint, "--output", "json", "kinesis", *args],
        env=env, capture_output=True, text=True, check=True,
    ).stdout
    return json.loads(out) if out.strip() else None


@pytest.mark.runnel_only("the AWS CLI is pointed at Runnel only")
def test_aws_cli(node):
    n = name()
    _aws(node, "create-stream", "--stream-name", n, "--shard-count", "1")
    _aws(node, "wait", "stream-exists", "--stream-name", n)
    # CLI v1 takes --data as text; v2 as base64 by default: "aGk=" is valid either way.
    put = _aws(node, "put-record", "--stream-name", n, "--partition-key", "k", "--data", "aGk=")
    assert put["ShardId"] == "shardId-000000000000"
    it = _aws(node, "get-shard-iterator", "--stream-name", n, "--shard-id", put["ShardId"],
              "--shard-iterator-type", "TRIM_HORIZON")["ShardIterator"]
    got = _aws(node, "get-records", "--shard-iterator", it)
    assert got["Records"][0]["SequenceNumber"] == put["SequenceNumber"]
    assert n in _aws(node, "list-streams")["StreamNames"]
    _aws(node, "delete-stream", "--stream-name", n)

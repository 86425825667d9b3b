"""Enhanced fan-out through boto3 (JSON and CBOR): RegisterStreamConsumer,
DescribeStreamConsumer, ListStreamConsumers, DeregisterStreamConsumer with AWS's errors, and
SubscribeToShard read with botocore's own event-stream parser.

botocore parses SubscribeToShard's event stream (initial-response, SubscribeToShardEvent,
exception events) but sends it over HTTP/1.1 (urllib3), which AWS refuses and Runnel answers
with a chunked event stream; the subscription tests therefore run against Runnel only, and only
over JSON (botocore's event-stream parser reads JSON payloads; the CBOR event stream is tested
in node/tests/fan_out.rs).
"""
import time
import uuid

import botocore.exceptions
import pytest

from conftest import wait_active

ARN = "arn:aws:kinesis:us-east-1:000000000000:stream/"


def error(fn, **kw):
    with pytest.raises(botocore.exceptions.ClientError) as e:
        fn(**kw)
    return e.value.response["Error"]["Code"]


def new_stream(kinesis, shards=1):
    n = "py-" + uuid.uuid4().hex[:10]
    kinesis.create_stream(StreamName=n, ShardCount=shards)
    wait_active(kinesis, n)
    return n


def stream_arn(kinesis, name):
    return kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"][
        "StreamARN"
    ]


def wait_consumer(kinesis, arn, status="ACTIVE"):
    for _ in range(600):
        try:
            d = kinesis.describe_stream_consumer(ConsumerARN=arn)["ConsumerDescription"]
        except botocore.exceptions.ClientError as e:
            if status is None and e.response["Error"]["Code"] == "ResourceNotFoundException":
                return None
            raise
        if d["ConsumerStatus"] == status:
            return d
        time.sleep(0.1)
    raise AssertionError(f"consumer {arn} never reached {status}")


def register(kinesis, stream, name):
    c = kinesis.register_stream_consumer(StreamARN=stream_arn(kinesis, stream), ConsumerName=name)
    return c["Consumer"]


def test_consumer_lifecycle(kinesis):
    n = new_stream(kinesis)
    sarn = stream_arn(kinesis, n)
    c = register(kinesis, n, "app")
    assert c["ConsumerName"] == "app"
    assert c["ConsumerStatus"] in ("CREATING", "ACTIVE")
    arn = c["ConsumerARN"]
    assert arn.startswith(f"{sarn}/consumer/app:")
    d = wait_consumer(kinesis, arn)
    assert d["StreamARN"] == sarn
    assert d["ConsumerName"] == "app"
    by_name = kinesis.describe_stream_consumer(StreamARN=sarn, ConsumerName="app")
    assert by_name["ConsumerDescription"]["ConsumerARN"] == arn
    listed = kinesis.list_stream_consumers(StreamARN=sarn)["Consumers"]
    assert [x["ConsumerName"] for x in listed] == ["app"]
    summary = kinesis.describe_stream_summary(StreamName=n)["StreamDescriptionSummary"]
    assert summary["ConsumerCount"] == 1

    kinesis.deregister_stream_consumer(ConsumerARN=arn)
    kinesis.delete_stream(StreamName=n, EnforceConsumerDeletion=True)


@pytest.mark.runnel_only(
    "the DELETING → gone transition finishes at different moments on the two servers"
)
def test_deregistered_consumer_goes_away(kinesis):
    n = new_stream(kinesis)
    sarn = stream_arn(kinesis, n)
    arn = register(kinesis, n, "app")["ConsumerARN"]
    wait_consumer(kinesis, arn)
    kinesis.deregister_stream_consumer(StreamARN=sarn, ConsumerName="app")
    assert wait_consumer(kinesis, arn, status=None) is None
    assert kinesis.list_stream_consumers(StreamARN=sarn)["Consumers"] == []
    summary = kinesis.describe_stream_summary(StreamName=n)["StreamDescriptionSummary"]
    assert summary["ConsumerCount"] == 0
    # A stream without consumers is deleted without EnforceConsumerDeletion.
    kinesis.delete_stream(StreamName=n)


@pytest.mark.parametrize(
    "case,call,expected",
    [
        ("duplicate", "register_dup", "ResourceInUseException"),
        ("missing stream", "register_missing", "ResourceNotFoundException"),
        ("bad name", "register_bad_name", "ValidationException"),
        ("describe neither", "describe_neither", "InvalidArgumentException"),
        ("describe unknown", "describe_unknown", "ResourceNotFoundException"),
        ("deregister neither", "deregister_neither", "InvalidArgumentException"),
        ("delete with consumers", "delete_with_consumers", "ResourceInUseException"),
        ("list missing stream", "list_missing", "ResourceNotFoundException"),
    ],
)
def test_consumer_errors(kinesis, case, call, expected):
    n = new_stream(kinesis)
    sarn = stream_arn(kinesis, n)
    register(kinesis, n, "app")
    missing = ARN + "nope-" + uuid.uuid4().hex[:6]
    calls = {
        "register_dup": lambda: kinesis.register_stream_consumer(StreamARN=sarn, ConsumerName="app"),
        "register_missing": lambda: kinesis.register_stream_consumer(
            StreamARN=missing, ConsumerName="x"
        ),
        "register_bad_name": lambda: kinesis.register_stream_consumer(
            StreamARN=sarn, ConsumerName="a b"
        ),
        "describe_neither": lambda: kinesis.describe_stream_consumer(StreamARN=sarn),
        "describe_unknown": lambda: kinesis.describe_stream_consumer(
            StreamARN=sarn, ConsumerName="zz"
        ),
        "deregister_neither": lambda: kinesis.deregister_stream_consumer(ConsumerName="app"),
        "delete_with_consumers": lambda: kinesis.delete_stream(StreamName=n),
        "list_missing": lambda: kinesis.list_stream_consumers(StreamARN=missing),
    }
    assert error(calls[call]) == expected, case
    kinesis.delete_stream(StreamName=n, EnforceConsumerDeletion=True)


@pytest.mark.runnel_only("botocore sends SubscribeToShard over HTTP/1.1, which AWS refuses")
def test_subscribe_to_shard_with_botocore(kinesis, wire):
    if wire == "cbor":
        pytest.skip("botocore's event-stream parser reads JSON payloads only")
    n = new_stream(kinesis)
    arn = register(kinesis, n, "reader")["ConsumerARN"]
    wait_consumer(kinesis, arn)
    seqs = [
        kinesis.put_record(StreamName=n, PartitionKey="k", Data=f"r{i}".encode())["SequenceNumber"]
        for i in range(5)
    ]
    out = kinesis.subscribe_to_shard(
        ConsumerARN=arn,
        ShardId="shardId-000000000000",
        StartingPosition={"Type": "TRIM_HORIZON"},
    )
    got = []
    continuation = None
    for event in out["EventStream"]:
        e = event["SubscribeToShardEvent"]
        got += [(r["Data"], r["SequenceNumber"]) for r in e["Records"]]
        continuation = e["ContinuationSequenceNumber"]
        if len(got) >= 5:
            break
    out["EventStream"].close()
    assert got == [(f"r{i}".encode(), s) for i, s in enumerate(seqs)]
    assert continuation == seqs[-1]
    # A second subscription right away is refused (the first was closed, but AWS refuses
    # within 5 seconds of a successful call while the first may still be held).
    code = None
    for _ in range(100):
        try:
            again = kinesis.subscribe_to_shard(
                ConsumerARN=arn,
                ShardId="shardId-000000000000",
                StartingPosition={"Type": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": seqs[2]},
            )
        except botocore.exceptions.ClientError as e:
            code = e.response["Error"]["Code"]
            assert code == "ResourceInUseException"
            time.sleep(0.1)
            continue
        first = next(iter(again["EventStream"]))["SubscribeToShardEvent"]
        assert [r["Data"] for r in first["Records"]] == [b"r3", b"r4"]
        again["EventStream"].close()
        break
    else:
        raise AssertionError(f"never resubscribed (last error {code})")
    kinesis.delete_stream(StreamName=n, EnforceConsumerDeletion=True)

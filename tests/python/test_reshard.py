"""Resharding through boto3 (JSON and CBOR, and compared with kinesis-local under RUNNEL_DIFF=1):
SplitShard, MergeShards and UpdateShardCount, a closed shard read to its end (ChildShards, no
NextShardIterator) and every record read back once, parents before children."""
import uuid

import botocore.exceptions
import pytest

from conftest import wait_active


def sid(i):
    return f"shardId-{i:012d}"


def error(fn, **kw):
    with pytest.raises(botocore.exceptions.ClientError) as e:
        fn(**kw)
    return e.value.response["Error"]["Code"], e.value.response["Error"].get("Message", "")


def put(kinesis, stream, tag, n=24):
    records = [{"PartitionKey": f"key-{i}", "Data": f"{tag}-{i}".encode()} for i in range(n)]
    out = kinesis.put_records(StreamName=stream, Records=records)
    assert out["FailedRecordCount"] == 0
    return {r["Data"].decode() for r in records}


def drain(kinesis, stream, shard):
    """(records' data, ChildShards or None) of one shard, read from TRIM_HORIZON."""
    it = kinesis.get_shard_iterator(
        StreamName=stream, ShardId=shard, ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]
    data = []
    while True:
        out = kinesis.get_records(ShardIterator=it)
        data += [r["Data"].decode() for r in out["Records"]]
        if "NextShardIterator" not in out:
            return data, out["ChildShards"]
        if not out["Records"] and out["MillisBehindLatest"] == 0:
            return data, None
        it = out["NextShardIterator"]


def test_split_and_merge(kinesis):
    n = "py-" + uuid.uuid4().hex[:10]
    kinesis.create_stream(StreamName=n, ShardCount=2)
    wait_active(kinesis, n)
    written = put(kinesis, n, "a")
    shard0 = kinesis.list_shards(StreamName=n)["Shards"][0]["HashKeyRange"]
    lo, hi = int(shard0["StartingHashKey"]), int(shard0["EndingHashKey"])
    mid = lo + (hi - lo) // 2

    kinesis.split_shard(StreamName=n, ShardToSplit=sid(0), NewStartingHashKey=str(mid))
    wait_active(kinesis, n)
    written |= put(kinesis, n, "b")
    shards = kinesis.list_shards(StreamName=n)["Shards"]
    assert [s["ShardId"] for s in shards] == [sid(i) for i in range(4)]
    assert "EndingSequenceNumber" in shards[0]["SequenceNumberRange"]
    assert shards[2]["ParentShardId"] == sid(0)
    assert shards[2]["HashKeyRange"] == {"StartingHashKey": str(lo), "EndingHashKey": str(mid - 1)}
    assert shards[3]["HashKeyRange"] == {"StartingHashKey": str(mid), "EndingHashKey": str(hi)}

    code, message = error(
        kinesis.merge_shards, StreamName=n, ShardToMerge=sid(2), AdjacentShardToMerge=sid(1)
    )
    assert code == "InvalidArgumentException"
    kinesis.merge_shards(StreamName=n, ShardToMerge=sid(3), AdjacentShardToMerge=sid(1))
    wait_active(kinesis, n)
    written |= put(kinesis, n, "c")
    open_ = kinesis.list_shards(StreamName=n, ShardFilter={"Type": "AT_LATEST"})["Shards"]
    assert [s["ShardId"] for s in open_] == [sid(2), sid(4)]
    assert open_[1]["ParentShardId"] == sid(3) and open_[1]["AdjacentParentShardId"] == sid(1)

    check_read_back(kinesis, n, written)
    kinesis.delete_stream(StreamName=n)


def check_read_back(kinesis, n, written):
    """Every shard read to its end; a closed shard names its children; nothing lost or doubled."""
    shards = kinesis.list_shards(StreamName=n)["Shards"]
    read = []
    for s in shards:
        data, children = drain(kinesis, n, s["ShardId"])
        read += data
        if "EndingSequenceNumber" in s["SequenceNumberRange"]:
            expected = sorted(
                k["ShardId"] for k in shards
                if s["ShardId"] in (k.get("ParentShardId"), k.get("AdjacentParentShardId"))
            )
            assert sorted(c["ShardId"] for c in children) == expected
            for c in children:
                assert s["ShardId"] in c["ParentShards"] and "HashKeyRange" in c
        else:
            assert children is None
    assert sorted(read) == sorted(written)


@pytest.mark.runnel_only(
    "kinesis-mock's UpdateShardCount closes every open shard and opens the target count; AWS "
    "(and Runnel) split and merge as few shards as it takes, so the layouts differ"
)
def test_update_shard_count(kinesis):
    n = "py-" + uuid.uuid4().hex[:10]
    kinesis.create_stream(StreamName=n, ShardCount=3)
    wait_active(kinesis, n)
    written = put(kinesis, n, "a")
    out = kinesis.update_shard_count(StreamName=n, TargetShardCount=5, ScalingType="UNIFORM_SCALING")
    assert (out["CurrentShardCount"], out["TargetShardCount"]) == (3, 5)
    assert out["StreamName"] == n
    wait_active(kinesis, n)
    written |= put(kinesis, n, "b")
    summary = kinesis.describe_stream_summary(StreamName=n)["StreamDescriptionSummary"]
    assert summary["OpenShardCount"] == 5
    # Uniform: the open shards divide the key space as a stream created with 5 shards does.
    other = "py-" + uuid.uuid4().hex[:10]
    kinesis.create_stream(StreamName=other, ShardCount=5)
    wait_active(kinesis, other)

    def ranges(stream, **kw):
        shards = kinesis.list_shards(StreamName=stream, **kw)["Shards"]
        return sorted((int(s["HashKeyRange"]["StartingHashKey"]), int(s["HashKeyRange"]["EndingHashKey"])) for s in shards)

    assert ranges(n, ShardFilter={"Type": "AT_LATEST"}) == ranges(other)
    code, message = error(kinesis.update_shard_count, StreamName=n, TargetShardCount=11, ScalingType="UNIFORM_SCALING")
    assert (code, message) == (
        "InvalidArgumentException",
        "UpdateShardCount cannot scale up over double your current open shard count. "
        "Current open shard count: 5 Target shard count: 11",
    )
    check_read_back(kinesis, n, written)
    kinesis.delete_stream(StreamName=n)
    kinesis.delete_stream(StreamName=other)

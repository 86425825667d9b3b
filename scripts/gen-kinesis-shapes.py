#!/usr/bin/env python3
"""Derives node/src/service/shapes.rs from botocore's Kinesis service model.

    pip download botocore --no-deps -d /tmp/bc && unzip -o /tmp/bc/botocore-*.whl \
        'botocore/data/kinesis/*' -d /tmp/bc
    python3 scripts/gen-kinesis-shapes.py /tmp/bc/botocore/data/kinesis/2013-12-02/service-2.json.gz

Only the input shapes of the operations Runnel serves are kept. Members are emitted in
alphabetical order: the order in which AWS reports validation errors.
"""
import gzip
import json
import sys

OPERATIONS = [
    "AddTagsToStream", "CreateStream", "DecreaseStreamRetentionPeriod", "DeleteStream",
    "DeregisterStreamConsumer", "DescribeAccountSettings", "DescribeLimits", "DescribeStream",
    "DescribeStreamConsumer", "DescribeStreamSummary", "GetRecords", "GetShardIterator",
    "IncreaseStreamRetentionPeriod", "ListShards", "ListStreamConsumers", "ListStreams",
    "ListTagsForResource", "ListTagsForStream", "MergeShards", "PutRecord", "PutRecords",
    "RegisterStreamConsumer", "RemoveTagsFromStream", "SplitShard", "SubscribeToShard",
    "TagResource", "UntagResource", "UpdateMaxRecordSize", "UpdateShardCount", "UpdateStreamMode",
]


# The model marks PartitionKey optional (for streams with a record distribution strategy other
# than hashing, which Runnel does not have); the API reference and every SDK treat it as required.
REQUIRED = {("PutRecordInput", "PartitionKey"), ("PutRecordsRequestEntry", "PartitionKey")}


def main(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt") as f:
        model = json.load(f)
    shapes = model["shapes"]
    used = {}

    def visit(name):
        if name in used:
            return
        s = shapes[name]
        used[name] = s
        t = s["type"]
        if t == "structure":
            for m in s["members"].values():
                visit(m["shape"])
        elif t == "list":
            visit(s["member"]["shape"])
        elif t == "map":
            visit(s["key"]["shape"])
            visit(s["value"]["shape"])

    ops = []
    for op in OPERATIONS:
        o = model["operations"][op]
        inp = o.get("input", {}).get("shape")
        if inp:
            visit(inp)
        ops.append((op, inp))

    def opt(v):
        return "None" if v is None else f"Some({v})"

    def rs(s):
        return json.dumps(s)

    out = [
        "//! Input shapes of the Kinesis operations Runnel serves, derived from botocore's service",
        "//! model (`kinesis/2013-12-02/service-2.json`) by `scripts/gen-kinesis-shapes.py`.",
        "//! Do not edit by hand. Members are in alphabetical order, the order AWS reports",
        "//! validation errors in.",
        "",
        "use super::document::Kind;",
        "use super::document::Member;",
        "use super::document::Shape;",
        "",
        "pub static OPERATIONS: &[(&str, Option<&str>)] = &[",
    ]
    for op, inp in sorted(ops):
        out.append(f"    ({rs(op)}, {opt(rs(inp)) if inp else 'None'}),")
    out.append("];")
    out.append("")
    out.append("pub static SHAPES: &[Shape] = &[")
    for name in sorted(used):
        s = used[name]
        t = s["type"]
        if t == "structure":
            req = set(s.get("required", []))
            members = ", ".join(
                f"Member {{ name: {rs(m)}, shape: {rs(s['members'][m]['shape'])}, required: {str(m in req or (name, m) in REQUIRED).lower()} }}"
                for m in sorted(s["members"])
            )
            kind = f"Kind::Structure(&[{members}])"
        elif t == "list":
            kind = f"Kind::List({rs(s['member']['shape'])})"
        elif t == "map":
            kind = f"Kind::Map({rs(s['key']['shape'])}, {rs(s['value']['shape'])})"
        else:
            kind = {
                "string": "Kind::String", "integer": "Kind::Integer", "long": "Kind::Long",
                "boolean": "Kind::Boolean", "blob": "Kind::Blob", "timestamp": "Kind::Timestamp",
                "double": "Kind::Double",
            }[t]
        pattern = s.get("pattern")
        if pattern is not None:
            pattern = pattern.removeprefix("^").removesuffix("$")
        enums = ", ".join(rs(e) for e in s.get("enum", []))
        out.append(
            f"    Shape {{ name: {rs(name)}, kind: {kind}, min: {opt(s.get('min'))}, "
            f"max: {opt(s.get('max'))}, pattern: {opt(rs(pattern)) if pattern else 'None'}, "
            f"enums: &[{enums}] }},"
        )
    out.append("];")
    print("\n".join(out))


if __name__ == "__main__":
    main(sys.argv[1])

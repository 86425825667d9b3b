"""Differential runs (RUNNEL_DIFF=1): every boto3 call a test makes goes to Runnel *and* to
kinesis-local (the npm build of kinesis-mock), and the two answers are compared by shape —
the keys present, the kind of every value, the error `__type` — never by value. The test goes on
with Runnel's answer.

Values that name server state (shard iterators, sequence numbers, paging tokens) differ between
the two servers; the proxy learns which kinesis-local value answers to each Runnel value and
translates later requests, so a test can feed a Runnel iterator back in.

Differences where Runnel is right (it follows AWS and kinesis-local does not) or that are known
and accepted are listed in ALLOWED with the reason; any other difference fails the test.
"""
import datetime

import botocore.exceptions

# (operation, path) -> why the difference is accepted. A path names a key that is present on
# one side only, or whose value is of another kind on each side; "error R/L" is a call that
# fails with R on Runnel and L on kinesis-local ("-" for success, a number for an HTTP status
# without __type).
ALLOWED = {
    # Runnel follows AWS (ValidationException from the model's constraints, as AWS's Coral
    # front end and kinesalite answer); kinesis-local answers otherwise.
    ("CreateStream", "error ValidationException/LimitExceededException"):
        "ShardCount 0 violates the model's min 1: AWS answers ValidationException",
    ("CreateStream", "error ValidationException/InvalidArgumentException"):
        "a StreamName outside [a-zA-Z0-9_.-]+ violates the model's pattern: ValidationException",
    ("RegisterStreamConsumer", "error ValidationException/InvalidArgumentException"):
        "a ConsumerName outside [a-zA-Z0-9_.-]+ violates the model's pattern: ValidationException",
    ("ListStreams", "error ValidationException/InvalidArgumentException"):
        "Limit 0 violates the model's min 1: ValidationException",
    ("GetRecords", "error InvalidArgumentException/500"):
        "kinesis-local fails with HTTP 500 on a malformed iterator; AWS answers "
        "InvalidArgumentException",
    ("ListStreams", "StreamSummaries"):
        "AWS returns StreamSummaries (since 2022); kinesis-local does not",
    ("DescribeStreamSummary", "StreamDescriptionSummary.MaxRecordSizeInKiB"):
        "AWS's StreamDescriptionSummary has MaxRecordSizeInKiB (since 2025, with "
        "UpdateMaxRecordSize); kinesis-local leaves it out unless set",
    ("UpdateShardCount", "StreamARN"):
        "AWS's UpdateShardCountOutput has StreamARN (since 2023); kinesis-local omits it",
    ("ListStreamConsumers", "NextToken"):
        "kinesis-local returns a NextToken on the last page too; Runnel returns one only when "
        "more consumers follow, as the API reference describes it",
    # docs/COMPATIBILITY.md, GetRecords.
    ("GetRecords", "Records[].EncryptionType"):
        "Runnel sets EncryptionType on encrypted records only (KMS); kinesis-local sets NONE",
}

TOKEN_KEYS = {
    "ShardIterator",
    "NextShardIterator",
    "NextToken",
    "SequenceNumber",
    "StartingSequenceNumber",
    "EndingSequenceNumber",
}


def _kind(v):
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, (bytes, bytearray)) or hasattr(v, "read"):
        return "blob"
    if isinstance(v, datetime.datetime):
        return "timestamp"
    if isinstance(v, list):
        return "list"
    if isinstance(v, dict):
        return "structure"
    return type(v).__name__


def shape_differences(ours, theirs, path=""):
    """(path, description) of every shape difference between two parsed responses."""
    out = []
    ko, kt = _kind(ours), _kind(theirs)
    if ko != kt:
        return [(path, f"runnel has {ko}, kinesis-local has {kt}")]
    if ko == "structure":
        for k in sorted(set(ours) | set(theirs)):
            if k == "ResponseMetadata":
                continue
            p = f"{path}.{k}" if path else k
            if k not in theirs:
                out.append((p, "only runnel returns it"))
            elif k not in ours:
                out.append((p, "only kinesis-local returns it"))
            else:
                out += shape_differences(ours[k], theirs[k], p)
    elif ko == "list":
        for a, b in zip(ours, theirs):
            out += shape_differences(a, b, f"{path}[]")
    # Keep the first report of each path (lists repeat them).
    seen, unique = set(), []
    for p, d in out:
        if p not in seen:
            seen.add(p)
            unique.append((p, d))
    return unique


class Differential:
    """A boto3 Kinesis client that also runs every call on kinesis-local and compares."""

    def __init__(self, runnel, local):
        self._runnel = runnel
        self._local = local
        self._tokens = {}
        self.differences = []

    # --- values naming server state ---
    def _learn(self, ours, theirs, key=None):
        if isinstance(ours, dict) and isinstance(theirs, dict):
            for k in ours.keys() & theirs.keys():
                self._learn(ours[k], theirs[k], k)
        elif isinstance(ours, list) and isinstance(theirs, list):
            for a, b in zip(ours, theirs):
                self._learn(a, b, key)
        elif key in TOKEN_KEYS and isinstance(ours, str) and isinstance(theirs, str):
            self._tokens[ours] = theirs

    def _translate(self, v):
        if isinstance(v, dict):
            return {k: self._translate(x) for k, x in v.items()}
        if isinstance(v, list):
            return [self._translate(x) for x in v]
        if isinstance(v, str):
            return self._tokens.get(v, v)
        return v

    # --- comparison ---
    def _check(self, op, found):
        unexpected = [(p, d) for p, d in found if (op, p) not in ALLOWED]
        self.differences += [(op, p, d) for p, d in found]
        if unexpected:
            lines = "\n".join(f"  {op} {p}: {d}" for p, d in unexpected)
            raise AssertionError(f"runnel and kinesis-local answer differently:\n{lines}")

    def _call(self, name, kw):
        op = self._runnel.meta.method_to_api_mapping[name]
        ours = theirs = ours_err = theirs_err = None
        try:
            ours = getattr(self._runnel, name)(**kw)
        except botocore.exceptions.ClientError as e:
            ours_err = e
        try:
            theirs = getattr(self._local, name)(**self._translate(kw))
        except botocore.exceptions.ClientError as e:
            theirs_err = e
        def code(e):
            return e.response["Error"]["Code"] if e else "-"

        if ours_err or theirs_err:
            if code(ours_err) != code(theirs_err):
                path = f"error {code(ours_err)}/{code(theirs_err)}"
                self._check(op, [(path, "the calls fail differently")])
        else:
            self._check(op, shape_differences(ours, theirs))
            self._learn(ours, theirs)
        if ours_err:
            raise ours_err
        return ours

    def get_waiter(self, name):
        return _Waiter(self, name)

    def __getattr__(self, name):
        if name in self._runnel.meta.method_to_api_mapping:
            return lambda **kw: self._call(name, kw)
        # meta, exceptions, paginators (Runnel only: pages are not compared).
        return getattr(self._runnel, name)


class _Waiter:
    def __init__(self, diff, name):
        self._diff = diff
        self._name = name

    def wait(self, **kw):
        self._diff._runnel.get_waiter(self._name).wait(**kw)
        self._diff._local.get_waiter(self._name).wait(**self._diff._translate(kw))

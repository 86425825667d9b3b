"""boto3 over AWS CBOR 1.1: botocore only speaks JSON 1.1 to Kinesis, so two event handlers put
CBOR on the wire the way the Java SDK (v1 and v2) and the KCL do.

- `before-sign`: the JSON body botocore serialized is re-encoded to CBOR using the operation's
  input shape (blobs become byte strings, timestamps tag 1 + integer epoch milliseconds, as the
  Java SDK's `SdkCborGenerator` writes them) and sent as `application/x-amz-cbor-1.1`. It runs
  before signing, so the signature covers the CBOR body.
- `before-parse`: the CBOR response is checked against the output shape (it must be CBOR;
  blobs must be byte strings; timestamps tag 1 + integer milliseconds, which is what the Java
  SDK's `DateCborUnmarshaller` reads) and handed to botocore's JSON parser as the equivalent
  JSON (base64 blobs, epoch-second timestamps).
"""
import base64
import json

import cbor2

CBOR = "application/x-amz-cbor-1.1"
JSON = "application/x-amz-json-1.1"


class _Timestamp:
    """A tag-1 value as decoded from a response."""

    def __init__(self, value):
        self.value = value


def _to_cbor(value, shape):
    t = shape.type_name if shape is not None else None
    try:
        if t == "structure" and isinstance(value, dict):
            return {k: _to_cbor(v, shape.members.get(k)) for k, v in value.items()}
        if t == "list" and isinstance(value, list):
            return [_to_cbor(v, shape.member) for v in value]
        if t == "map" and isinstance(value, dict):
            return {k: _to_cbor(v, shape.value) for k, v in value.items()}
        if t == "blob" and isinstance(value, str):
            return base64.b64decode(value, validate=True)
        if t == "timestamp" and isinstance(value, (int, float)) and not isinstance(value, bool):
            return cbor2.CBORTag(1, int(round(value * 1000)))
    except ValueError:
        pass  # not what the model says (parameter validation off): send it as it is
    return value


def _from_cbor(value, shape, path, strict):
    t = shape.type_name if shape is not None else None
    if t == "structure" or (t is None and isinstance(value, dict)):
        assert isinstance(value, dict), f"{path}: expected a map, got {value!r}"
        members = shape.members if shape is not None else {}
        return {
            k: _from_cbor(v, members.get(k), f"{path}.{k}", strict)
            for k, v in value.items()
            # kinesis-local sends absent members as null; AWS and Runnel leave them out.
            if strict or v is not None
        }
    if t == "list" or (t is None and isinstance(value, list)):
        assert isinstance(value, list), f"{path}: expected an array, got {value!r}"
        member = shape.member if shape is not None else None
        return [_from_cbor(v, member, f"{path}[]", strict) for v in value]
    if t == "map":
        assert isinstance(value, dict), f"{path}: expected a map, got {value!r}"
        return {k: _from_cbor(v, shape.value, f"{path}.{k}", strict) for k, v in value.items()}
    if t == "blob" and not strict and isinstance(value, str):
        return value  # kinesis-local sends blobs as base64 text in CBOR
    if t == "blob" or isinstance(value, bytes):
        assert isinstance(value, bytes), f"{path}: a blob must be a CBOR byte string, got {value!r}"
        return base64.b64encode(value).decode()
    if t == "timestamp" and not strict and isinstance(value, int):
        return value / 1000  # untagged milliseconds: the Java SDK reads them too
    if t == "timestamp" or isinstance(value, _Timestamp):
        assert isinstance(value, _Timestamp) and isinstance(value.value, int), (
            f"{path}: a timestamp must be tag 1 + integer epoch milliseconds, got {value!r}"
        )
        return value.value / 1000
    return value


def install(client, strict=True):
    """Makes `client` (a botocore Kinesis client) speak CBOR 1.1; returns a dict of counters.

    `strict` (for Runnel) checks the response as the Java SDK reads it. kinesis-local is read
    leniently: it sends timestamps as untagged integer milliseconds, blobs as base64 text,
    absent members as null, and some failures without a CBOR body.
    """
    stats = {"requests": 0, "responses": 0}
    model = client.meta.service_model

    def before_sign(request, operation_name, **_):
        body = request.data
        doc = json.loads(body) if body else {}
        shape = model.operation_model(operation_name).input_shape
        request.data = cbor2.dumps(_to_cbor(doc, shape))
        request.headers["Content-Type"] = CBOR
        stats["requests"] += 1

    def before_parse(operation_model, response_dict, **_):
        content_type = response_dict["headers"].get("content-type", "")
        body = response_dict["body"]
        if not strict and content_type != CBOR:
            return  # kinesis-local's failures (HTTP 500) are not CBOR
        assert content_type == CBOR, f"a CBOR request was answered with {content_type!r}"
        doc = cbor2.loads(body, semantic_decoders={1: lambda v, _imm: _Timestamp(v)}) if body else {}
        ok = response_dict["status_code"] < 300
        shape = operation_model.output_shape if ok else None
        doc = _from_cbor(doc, shape, operation_model.name, strict)
        response_dict["body"] = json.dumps(doc).encode()
        response_dict["headers"]["content-type"] = JSON
        stats["responses"] += 1

    client.meta.events.register("before-sign.kinesis", before_sign)
    client.meta.events.register("before-parse.kinesis", before_parse)
    return stats

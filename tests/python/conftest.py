"""Fixtures: a real `runnel-node standalone` process on free ports and clients for it.

The node binary is $RUNNEL_NODE_BIN, or $CARGO_TARGET_DIR/debug/runnel-node
(scripts/test.sh builds it first).

Every test that takes the `kinesis` client (or `make_kinesis`) runs twice: with boto3's own
AWS JSON 1.1 (`[json]`) and with the same calls carried as CBOR 1.1 (`[cbor]`, cbor_wire.py).

RUNNEL_DIFF=1 also starts kinesis-local (tests/js/node_modules, `npm ci` there) and compares
every call's answer with Runnel's (differential.py).
"""
import os
import socket
import subprocess
import tempfile
import time

import botocore.session
import pytest
from botocore.config import Config

import cbor_wire
from differential import Differential


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _bin(name):
    target = os.environ.get("CARGO_TARGET_DIR") or os.path.join(
        os.path.dirname(__file__), "..", "..", "target"
    )
    return os.path.join(target, "debug", name)


def _node_bin():
    return os.environ.get("RUNNEL_NODE_BIN") or _bin("runnel-node")


def runnel_cli(node, *args, stdin=None):
    """Runs the `runnel` CLI (built by scripts/test.sh) against the node's gRPC port."""
    cli = os.environ.get("RUNNEL_CLI_BIN") or _bin("runnel")
    return subprocess.run(
        [cli, "--endpoint", node.grpc_endpoint, *args],
        input=stdin, capture_output=True, check=True,
    ).stdout


# Per-shard throttling is off unless a test asks for it: whether a burst of test requests
# exceeds a rate would depend on how fast the machine runs them.
UNTHROTTLED = ("--throttling", "off")


class Node:
    def __init__(self, *args, throttled=False):
        """Starts a standalone node; per-shard throttling is off unless `throttled`."""
        if not throttled:
            args = (*UNTHROTTLED, *args)
        self.dir = tempfile.TemporaryDirectory()
        self.port = _free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.metrics_port = _free_port()
        self.grpc_port = _free_port()
        self.grpc_endpoint = f"http://127.0.0.1:{self.grpc_port}"
        self.log = open(os.path.join(self.dir.name, "node.log"), "w")
        self.proc = subprocess.Popen(
            [
                _node_bin(), "standalone",
                "--data-dir", os.path.join(self.dir.name, "data"),
                "--kinesis-addr", f"127.0.0.1:{self.port}",
                "--grpc-addr", f"127.0.0.1:{self.grpc_port}",
                "--metrics-addr", f"127.0.0.1:{self.metrics_port}",
                *args,
            ],
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
        )
        for line in self.proc.stdout:
            if "ready" in line:
                break
        else:
            raise RuntimeError("runnel-node exited before it was ready")

    def stop(self):
        self.proc.kill()
        self.proc.wait()
        self.log.close()
        self.dir.cleanup()


@pytest.fixture(scope="session")
def node():
    n = Node()
    yield n
    n.stop()


ENV = {
    "AWS_ACCESS_KEY_ID": "AKIDTEST",
    "AWS_SECRET_ACCESS_KEY": "secret",
    "AWS_DEFAULT_REGION": "us-east-1",
}


KINESIS_LOCAL = os.path.join(
    os.path.dirname(__file__), "..", "js", "node_modules", "kinesis-local"
)


class KinesisLocal:
    """kinesis-local (kinesis-mock built for Node.js) on a free port, plain HTTP."""

    def __init__(self):
        main = os.path.join(KINESIS_LOCAL, "main.js")
        if not os.path.exists(main):
            pytest.fail("RUNNEL_DIFF=1 needs kinesis-local: run 'npm ci' in tests/js")
        self.port = _free_port()
        env = dict(
            os.environ,
            KINESIS_MOCK_PLAIN_PORT=str(self.port),
            KINESIS_MOCK_TLS_PORT=str(_free_port()),
            KINESIS_MOCK_CERT_PATH=os.path.join(KINESIS_LOCAL, "server.json"),
            # Runnel's default transition delay, so waiters behave alike.
            CREATE_STREAM_DURATION="100ms",
            DELETE_STREAM_DURATION="100ms",
            UPDATE_STREAM_MODE_DURATION="100ms",
            REGISTER_STREAM_CONSUMER_DURATION="100ms",
            DEREGISTER_STREAM_CONSUMER_DURATION="100ms",
            SHARD_LIMIT="1000",
            LOG_LEVEL="WARN",
        )
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            ["node", main], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.proc.kill()
                    raise RuntimeError("kinesis-local did not start")
                time.sleep(0.2)

    def stop(self):
        self.proc.kill()
        self.proc.wait()


@pytest.fixture(scope="session")
def kinesis_local():
    if os.environ.get("RUNNEL_DIFF") != "1":
        yield None
        return
    k = KinesisLocal()
    yield k
    k.stop()


@pytest.fixture(scope="session", params=["json", "cbor"])
def wire(request):
    """The encoding on the wire: boto3's JSON 1.1, or the same calls as CBOR 1.1."""
    return request.param


def _client(endpoint, wire, strict_cbor=True, **config):
    client = botocore.session.get_session().create_client(
        "kinesis",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=ENV["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=ENV["AWS_SECRET_ACCESS_KEY"],
        config=Config(retries={"max_attempts": 1}, **config),
    )
    if wire == "cbor":
        client.cbor_stats = cbor_wire.install(client, strict=strict_cbor)
    return client


@pytest.fixture(scope="session")
def make_kinesis(node, wire, kinesis_local):
    """Builds a Kinesis client for the node (botocore Config options as keywords)."""

    def make(**config):
        client = _client(node.endpoint, wire, **config)
        if kinesis_local is not None:
            local = _client(kinesis_local.endpoint, wire, strict_cbor=False, **config)
            return Differential(client, local)
        return client

    return make


@pytest.fixture(scope="session")
def kinesis(make_kinesis):
    return make_kinesis()


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "runnel_only(reason): not compared with kinesis-local under RUNNEL_DIFF=1"
    )


def pytest_collection_modifyitems(config, items):
    if os.environ.get("RUNNEL_DIFF") != "1":
        return
    for item in items:
        mark = item.get_closest_marker("runnel_only")
        if mark:
            item.add_marker(pytest.mark.skip(reason="not compared: " + mark.args[0]))


def wait_active(kinesis, name):
    kinesis.get_waiter("stream_exists").wait(
        StreamName=name, WaiterConfig={"Delay": 0.2, "MaxAttempts": 100}
    )

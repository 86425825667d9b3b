"""Fixtures: a real `runnel-node standalone` process on free ports and clients for it.

The node binary is $RUNNEL_NODE_BIN, or $CARGO_TARGET_DIR/debug/runnel-node
(scripts/test.sh builds it first).
"""
import os
import socket
import subprocess
import tempfile

import boto3
import pytest
from botocore.config import Config


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _node_bin():
    if os.environ.get("RUNNEL_NODE_BIN"):
        return os.environ["RUNNEL_NODE_BIN"]
    target = os.environ.get("CARGO_TARGET_DIR") or os.path.join(
        os.path.dirname(__file__), "..", "..", "target"
    )
    return os.path.join(target, "debug", "runnel-node")


# Per-shard throttling is off unless a test asks for it: whether a burst of test requests
# exceeds a rate would depend on how fast the machine runs them.
UNTHROTTLED = ("--throttling", "off")


class Node:
    def __init__(self, args=UNTHROTTLED):
        self.dir = tempfile.TemporaryDirectory()
        self.port = _free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.metrics_port = _free_port()
        self.log = open(os.path.join(self.dir.name, "node.log"), "w")
        self.proc = subprocess.Popen(
            [
                _node_bin(), "standalone",
                "--data-dir", os.path.join(self.dir.name, "data"),
                "--kinesis-addr", f"127.0.0.1:{self.port}",
                "--grpc-addr", f"127.0.0.1:{_free_port()}",
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


@pytest.fixture(scope="session")
def kinesis(node):
    return boto3.client(
        "kinesis",
        endpoint_url=node.endpoint,
        region_name="us-east-1",
        aws_access_key_id=ENV["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=ENV["AWS_SECRET_ACCESS_KEY"],
        config=Config(retries={"max_attempts": 1}),
    )


def wait_active(kinesis, name):
    kinesis.get_waiter("stream_exists").wait(
        StreamName=name, WaiterConfig={"Delay": 0.2, "MaxAttempts": 100}
    )

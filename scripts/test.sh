#!/usr/bin/env bash
# Runs every test of Runnel: the Rust workspace (unit, property, integration tests that start
# real runnel-node processes, openraft's storage suite) and, once present, the client suites.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/runnel-target}"
# Integration tests in other crates start the node binary from here.
export RUNNEL_NODE_BIN="${RUNNEL_NODE_BIN:-$CARGO_TARGET_DIR/debug/runnel-node}"
# The Kubernetes e2e tests (e2e/) run the operator binary against a real API server: the
# cluster of $KUBECONFIG, or a private local control plane (../shared/tools/k8s/) that the
# tests start and stop themselves.
export RUNNEL_OPERATOR_BIN="${RUNNEL_OPERATOR_BIN:-$CARGO_TARGET_DIR/debug/runnel-operator}"
export RUNNEL_BENCH_BIN="${RUNNEL_BENCH_BIN:-$CARGO_TARGET_DIR/debug/runnel-bench}"
cargo build --locked -p runnel-node -p runnel-operator -p runnel-bench -p runnel-client
cargo test --locked --workspace --all-targets

# The Kinesis API through real clients: boto3 (over JSON 1.1 and CBOR 1.1) + AWS CLI +
# aws-kinesis-agg (pytest) and @aws-sdk/client-kinesis (node --test). .ci/run installs both
# environments (kinesis-local for the differential run comes with tests/js).
venv="${RUNNEL_VENV:-$HOME/.cache/runnel-venv}"
if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c "import boto3, pytest" 2>/dev/null; then
  PATH="$venv/bin:$PATH" "$venv/bin/python" -m pytest -q tests/python
  # Differential run: the same scenarios, each call also sent to kinesis-local (kinesis-mock
  # for Node.js, installed by 'npm ci' in tests/js) and the answers compared by shape.
  if [ -f tests/js/node_modules/kinesis-local/main.js ]; then
    RUNNEL_DIFF=1 PATH="$venv/bin:$PATH" "$venv/bin/python" -m pytest -q tests/python
  else
    echo "skipping the kinesis-local differential run: run 'npm ci' in tests/js" >&2
  fi
else
  echo "skipping tests/python: no venv at $venv (see .ci/run)" >&2
fi
if [ -d tests/js/node_modules ]; then
  (cd tests/js && npm test --silent)
else
  echo "skipping tests/js: run 'npm ci' in tests/js (see .ci/run)" >&2
fi

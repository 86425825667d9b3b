#!/usr/bin/env bash
# Runs every test of Runnel: the Rust workspace (unit, property, integration tests that start
# real runnel-node processes, openraft's storage suite) and, once present, the client suites.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/runnel-target}"
# Integration tests in other crates start the node binary from here.
export RUNNEL_NODE_BIN="${RUNNEL_NODE_BIN:-$CARGO_TARGET_DIR/debug/runnel-node}"
cargo build --locked -p runnel-node
cargo test --locked --workspace --all-targets

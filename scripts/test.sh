#!/usr/bin/env bash
# The one command that runs every test from a fresh clone: installs what is
# missing (scripts/setup.sh), builds the binaries the end-to-end tests start,
# and runs the whole workspace's tests. The tests start and stop their own
# etcd, brokers, coordinators and runners on free loopback ports.
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/setup.sh --with-tansu
export PATH="$HOME/.cargo/bin:$PATH"

cargo build --workspace --bins --locked
cargo test --workspace --locked --no-fail-fast

#!/usr/bin/env bash
# Regenerates the protocol stubs in weir_connect/_proto from
# proto/weir/connector/v2/connector.proto. Needs grpcio-tools, which
# scripts/setup.sh installs into the project's .venv (used here when present);
# the stubs require protobuf and grpcio at least as new as the generator
# (pyproject.toml).
set -euo pipefail
cd "$(dirname "$0")"
python="../../.venv/bin/python"
[ -x "$python" ] || python=python3
"$python" -m grpc_tools.protoc -I ../../proto \
  --python_out=weir_connect/_proto --grpc_python_out=weir_connect/_proto \
  ../../proto/weir/connector/v2/connector.proto

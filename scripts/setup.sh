#!/usr/bin/env bash
# Installs what building and testing Weir needs, only what is missing:
# Debian packages (protoc for etcd-client's build, cmake for librdkafka,
# etcd, kcat) and the tansu 0.6.0 broker from crates.io (~15 min once; cached
# in ~/.cargo/bin).
set -euo pipefail

need_packages=()
command -v protoc >/dev/null || need_packages+=(protobuf-compiler)
command -v cmake >/dev/null || need_packages+=(cmake)
command -v etcd >/dev/null || need_packages+=(etcd-server)
command -v kcat >/dev/null || need_packages+=(kcat)
command -v c++ >/dev/null || need_packages+=(g++)
command -v make >/dev/null || need_packages+=(make)
command -v curl >/dev/null || need_packages+=(curl)

if [ ${#need_packages[@]} -gt 0 ]; then
  echo "setup: installing ${need_packages[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need_packages[@]}" >/dev/null
fi

if [ "${1:-}" = "--with-tansu" ]; then
  if ! tansu --version 2>/dev/null | grep -q "0.6.0"; then
    echo "setup: building tansu 0.6.0 (cargo install, about 15 minutes on 2 cores)"
    cargo install tansu --version 0.6.0 --locked --features dynostore,libsql
  fi
fi

#!/usr/bin/env bash
# Installs what building and testing Weir needs, and only what is missing.
#
# Debian packages are checked one by one with `dpkg -s` (a command being on
# the PATH says nothing about a -dev package's headers). The one list:
#   build:   protobuf-compiler and libprotobuf-dev (its well-known .proto files)
#            for etcd-client's and weir-proto's build, cmake,
#            g++, make, pkg-config (librdkafka's build)
#   librdkafka with TLS, SASL and every codec:
#            libssl-dev (TLS, SCRAM, OAUTHBEARER), libsasl2-dev and
#            libsasl2-modules-gssapi-mit (GSSAPI), libcurl4-openssl-dev (OIDC;
#            librdkafka includes curl.h whatever its features say),
#            libzstd-dev, zlib1g-dev (gzip); lz4 and snappy are built in
#   Python SDK: python3 and python3-venv; its PyPI packages (grpcio,
#            protobuf, grpcio-health-checking) go into ./.venv, with
#            prometheus-client, whose text-format parser checks /metrics,
#            and grpcio-tools, which connectors/python/generate.sh runs to
#            regenerate the committed stubs when the proto changes
#   tests:   etcd-server, kcat, openssl (test certificates), socat (the TLS
#            listener in front of tansu, which accepts --cert/--key but
#            serves plaintext in 0.6.0), curl
#   Node.js example connector: node and npm (Debian's nodejs and npm, unless
#            a Node.js with its npm is already installed: NodeSource's nodejs
#            package bundles npm and conflicts with Debian's), then `npm ci`
#            in connectors/examples/node from its committed lockfile
#   web console test: chromium and chromium-driver (headless, driven over
#            WebDriver), fonts-liberation (readable screenshots without
#            chromium's recommended packages)
#
# `--with-tansu` also builds the tansu 0.6.0 broker from crates.io (about 15
# minutes once on 2 cores; cached in ~/.cargo/bin).
set -euo pipefail

packages=(
  protobuf-compiler libprotobuf-dev cmake g++ make pkg-config
  libssl-dev libsasl2-dev libsasl2-modules-gssapi-mit libcurl4-openssl-dev
  libzstd-dev zlib1g-dev
  python3 python3-venv
  etcd-server kcat openssl socat curl ca-certificates
  chromium chromium-driver fonts-liberation
)

missing=()
for package in "${packages[@]}"; do
  dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
done

# Node.js counts as present when both commands are (see the list above).
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  missing+=(nodejs npm)
fi

if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The Python SDK's dependencies, in a venv of the project's own (Debian's
# python3 refuses system-wide pip installs), checked by package.
cd "$(dirname "$0")/.."
python_packages=("grpcio>=1.85.1" "protobuf>=7.35.1" "grpcio-health-checking>=1.85.1" "prometheus-client>=0.20" "grpcio-tools>=1.85.1")
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv for the Python SDK"
  python3 -m venv .venv
fi
# `pip show a b` succeeds when any one is installed: ask for each.
missing_python=0
for package in grpcio protobuf grpcio-health-checking prometheus-client grpcio-tools; do
  .venv/bin/python -m pip show "$package" >/dev/null 2>&1 || missing_python=1
done
if [ "$missing_python" = 1 ]; then
  echo "setup: installing ${python_packages[*]} into .venv"
  .venv/bin/python -m pip install -q --disable-pip-version-check "${python_packages[@]}"
fi

# The Node.js example connector's packages, exactly as locked.
node_example=connectors/examples/node
# npm writes node_modules/.package-lock.json on install: older than the
# committed lockfile means the lockfile changed since.
if [ ! -f "$node_example/node_modules/.package-lock.json" ] ||
   [ "$node_example/package-lock.json" -nt "$node_example/node_modules/.package-lock.json" ]; then
  echo "setup: npm ci in $node_example"
  (cd "$node_example" && npm ci --no-audit --no-fund --loglevel=error)
fi

if [ "${1:-}" = "--with-tansu" ]; then
  export PATH="$HOME/.cargo/bin:$PATH"
  if ! tansu --version 2>/dev/null | grep -q "0.6.0"; then
    echo "setup: building tansu 0.6.0 (cargo install, about 15 minutes on 2 cores)"
    cargo install tansu --version 0.6.0 --locked --features dynostore,libsql
  fi
fi

#!/usr/bin/env bash
# Proves that scripts/setup.sh installs everything Weir needs: it makes a
# fresh Debian bookworm with debootstrap (no -dev package, no protoc, no
# cmake), clones this checkout into it, and there, chrooted, runs
# scripts/setup.sh, a release build of `weir`, and then the README's two
# commands (the quickstart and the test command). The host's Rust toolchain
# and ~/.cargo/bin (with a tansu built before, as the README says it is
# cached) are mounted read-only: no toolchain can be downloaded here.
# cargo's registry cache is shared so crates are not fetched twice.
#
# Usage: sudo scripts/check-fresh-machine.sh [SCRATCH_DIR]
# Not part of the test command: it takes about 30 minutes and needs root.
# With SETUP_ONLY=1 it runs only scripts/setup.sh there and checks what it
# installed (a few minutes): for a change to the setup alone.
set -euo pipefail
cd "$(dirname "$0")/.."

scratch=${1:-/tmp/weir-fresh-machine}
root="$scratch/bookworm"

if ! dpkg -s debootstrap >/dev/null 2>&1; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
fi

if [ ! -x "$root/bin/bash" ]; then
  mkdir -p "$scratch"
  debootstrap --variant=minbase bookworm "$root" http://deb.debian.org/debian
fi

cleanup() {
  for mount in proc sys dev root/.rustup root/.cargo/bin root/.cargo/registry; do
    umount -l "$root/$mount" 2>/dev/null || true
  done
}
trap cleanup EXIT

mkdir -p "$root/root/.rustup" "$root/root/.cargo/bin" "$root/root/.cargo/registry" "$root/work"
mount -t proc proc "$root/proc"
mount --rbind /sys "$root/sys"
mount --rbind /dev "$root/dev"
mount --bind -o ro "$HOME/.rustup" "$root/root/.rustup"
mount --bind -o ro "$HOME/.cargo/bin" "$root/root/.cargo/bin"
mount --bind "$HOME/.cargo/registry" "$root/root/.cargo/registry"
cp /etc/resolv.conf "$root/etc/resolv.conf"
# Every machine has an /etc/hosts naming localhost; a bare debootstrap has
# none, and chromedriver cannot reach chromium's DevTools without it.
cp /etc/hosts "$root/etc/hosts"
# The machine's own trust setup (its registry proxies' CA), which every
# machine of this kind has and a bare debootstrap does not: pip needs it.
mkdir -p "$root/etc/weir-host"
cp /etc/ssl/certs/ca-certificates.crt "$root/etc/weir-host/ca-certificates.crt"

rm -rf "$root/work/weir"
git clone -q "$PWD" "$root/work/weir"

echo "check: packages in the fresh root before setup:"
chroot "$root" sh -c 'for p in protobuf-compiler libprotobuf-dev cmake g++ libcurl4-openssl-dev libssl-dev libsasl2-dev libzstd-dev; do dpkg -s $p >/dev/null 2>&1 && echo "  $p: installed" || echo "  $p: missing"; done'

chroot "$root" /usr/bin/env -i HOME=/root PATH=/root/.cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  RUSTUP_TOOLCHAIN="$(rustup show active-toolchain | cut -d' ' -f1)" \
  PIP_CERT=/etc/weir-host/ca-certificates.crt SSL_CERT_FILE=/etc/weir-host/ca-certificates.crt \
  NODE_EXTRA_CA_CERTS=/etc/weir-host/ca-certificates.crt SETUP_ONLY="${SETUP_ONLY:-}" \
  bash -euc 'cd /work/weir && ./scripts/setup.sh && if [ -n "$SETUP_ONLY" ]; then node --version && npm --version && ls connectors/examples/node/node_modules/@grpc && .venv/bin/python -c "import grpc, grpc_tools, grpc_health" && exit 0; fi && cargo build --release --locked -p weir --bin weir && ./target/release/weir --version && ./scripts/quickstart.sh && CI=true ./scripts/test.sh'
if [ -n "${SETUP_ONLY:-}" ]; then
  echo "check: scripts/setup.sh alone installed what it should on a fresh bookworm"
else
  echo "check: a fresh bookworm built weir after scripts/setup.sh alone and passed both README commands"
fi

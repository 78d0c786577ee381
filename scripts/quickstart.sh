#!/usr/bin/env bash
# The quickstart: standalone mode on embedded defaults (no Kafka, no etcd).
# It copies quickstart-data/input.txt into a topic and from the topic into
# quickstart-data/output.txt, appends more lines while it runs, shows the
# REST API's view and the topic, then stops.
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/setup.sh
cargo build --locked -p weir --bin weir

data=quickstart-data
rm -rf "$data" && mkdir -p "$data"
printf 'hello from weir\nthis is the seed pipeline\na file, a topic, and a file again\n' > "$data/input.txt"

./target/debug/weir standalone config/quickstart-worker.properties \
  config/quickstart-source.properties config/quickstart-sink.properties > "$data/weir.log" 2>&1 &
weir_pid=$!
trap 'kill $weir_pid 2>/dev/null || true' EXIT

wait_for() { # wait_for <seconds> <description> <command...>
  local deadline=$((SECONDS + $1)) what=$2; shift 2
  until "$@" >/dev/null 2>&1; do
    if [ $SECONDS -ge $deadline ]; then echo "timed out waiting for $what; log:"; cat "$data/weir.log"; exit 1; fi
    sleep 0.2
  done
}

wait_for 60 "the REST API" curl -sf http://127.0.0.1:8083/
wait_for 60 "the copy" cmp -s "$data/input.txt" "$data/output.txt"
echo "== output.txt is identical to input.txt:"
cat "$data/output.txt"

printf 'appended while running\nand one more line\n' >> "$data/input.txt"
wait_for 60 "the appended lines" cmp -s "$data/input.txt" "$data/output.txt"
echo "== after appending two lines, output.txt is still identical:"
cat "$data/output.txt"

echo "== GET /connectors?expand=status"
curl -s 'http://127.0.0.1:8083/connectors?expand=status'; echo
bootstrap=$(grep -o 'bootstrap.servers=[0-9.:]*' "$data/weir.log" | head -1 | cut -d= -f2)
echo "== the topic connect-test on the embedded broker $bootstrap (kcat):"
kcat -b "$bootstrap" -C -t connect-test -e -q
echo "== quickstart done: files in $data/"

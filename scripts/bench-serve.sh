#!/usr/bin/env bash
# Throughput of `keyrite serve` and the latency it adds over the bare KMS Sign call, on the
# local emulator (loopback only). Release build. Usage: scripts/bench-serve.sh [requests] [concurrency]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
requests=${1:-2000}
concurrency=${2:-8}
cargo build --release --quiet --bin keyrite --bench serve_load
bench="$root/$(ls -t target/release/deps/serve_load-* | grep -v "\.d$" | head -1)"
eval "$(scripts/emulator.sh start)"
work=$(mktemp -d)
cleanup() { [ -n "${serve_pid:-}" ] && kill "$serve_pid" 2>/dev/null; "$root/scripts/emulator.sh" stop; }
trap cleanup EXIT
cp manifests/treasury.yaml "$work/keyrite.yaml"
cd "$work"
"$root/target/release/keyrite" apply --auto-approve >/dev/null 2>&1
key_id=$(python3 -c 'import json; print(json.load(open("keyrite.state.json"))["resources"]["treasury_key"]["id"])')
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$root/target/release/keyrite" serve --listen "127.0.0.1:$port" 2>/dev/null &
serve_pid=$!
for _ in $(seq 1 100); do python3 -c "import socket; socket.create_connection(('127.0.0.1', $port), 0.2)" 2>/dev/null && break; sleep 0.1; done
echo "requests=$requests concurrency=$concurrency (emulator KMS on loopback, release build, $(nproc) cores)"
"$bench" "http://127.0.0.1:$port/" "$key_id" "$requests" "$concurrency"

#!/usr/bin/env bash
# `keyrite serve` under load, against a KMS stand-in that answers at once: serve's own CPU
# per request, its CPU at a fixed 1,000 requests/s over mTLS, and the latency it adds over
# the bare KMS Sign call over HTTP, TLS and mTLS, side by side in one run. Release build,
# loopback only. Usage: scripts/bench-serve.sh [requests] [seconds-at-1000-rps]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
requests=${1:-5000}
seconds=${2:-5}
cargo build --release --quiet --bin keyrite --bench serve_load
bench="$root/$(ls -t target/release/deps/serve_load-* | grep -v "\.d$" | head -1)"
"$bench" "$root/target/release/keyrite" "$requests" "$seconds"

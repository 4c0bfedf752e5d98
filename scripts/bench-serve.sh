#!/usr/bin/env bash
# `keyrite serve` under load, against a KMS stand-in that answers at once: serve's own CPU
# per request, its CPU at a fixed 1,000 requests/s over mTLS, and the latency it adds over
# the bare KMS Sign call over HTTP, TLS and mTLS, side by side in one run. Release build,
# loopback only.
#
# Usage: scripts/bench-serve.sh [requests] [seconds-at-1000-rps] [baseline-keyrite-binary]
#
# With a baseline binary (say, main's `keyrite` built and copied aside), every path runs for
# this build and for the baseline, alternating, in the same run. Honours CARGO_TARGET_DIR.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
requests=${1:-5000}
seconds=${2:-5}
baseline=${3:-}
target=${CARGO_TARGET_DIR:-$root/target}
cargo build --release --quiet --bin keyrite --bench serve_load
bench="$(ls -t "$target"/release/deps/serve_load-* | grep -v "\.d$" | head -1)"
"$bench" "$target/release/keyrite" "$requests" "$seconds" ${baseline:+"$baseline"}

#!/usr/bin/env bash
# The Rust Lambda signer against the Node.js template, side by side in one run (release
# build): CPU per request in process (each against a KMS stand-in that answers at once,
# alternating three times), then on the local emulator the deployment package's size and,
# over ROUNDS forced cold starts, the first and second answers' latency, the bootstrap's
# own cold-start timings and each environment's peak RSS.
#   scripts/bench-lambda.sh [requests] [rounds]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
requests=${1:-5000}
rounds=${2:-10}
[ -d node_modules/@aws-sdk/client-kms ] || npm ci --no-audit --no-fund --loglevel=error
cargo build --release --quiet --bin keyrite --bench lambda_signer --bench lambda_cold_start
cargo build --quiet --locked --profile signer -p keyrite-lambda-signer   # what is deployed
newest() { ls -t target/release/deps/"$1"-* | grep -v "\.d$" | head -1; }
signer_bench=$(newest lambda_signer)
cold_bench=$(newest lambda_cold_start)

echo "== CPU per request, in process (Rust, then Node; three times)"
for _ in 1 2 3; do
  "$signer_bench" "$requests"
  npm run --silent bench:signer -- "$requests" | grep -E "^(node |cold start|template handler)"
done

echo "== the Rust signer's package"
ls -l target/signer/keyrite-lambda-signer | awk '{print "executable:", $5, "bytes"}'

echo "== cold start and peak RSS on the emulator ($rounds rounds)"
eval "$(scripts/emulator.sh start)"
work=$(mktemp -d)
trap 'scripts/emulator.sh stop; rm -rf "$work"' EXIT
ln -s "$root/node_modules" "$work/node_modules"
for stack in rust-signer treasury-signer; do
  mkdir -p "$work/$stack"
  cp "manifests/$stack.yaml" "$work/$stack/keyrite.yaml"
  (cd "$work/$stack" && "$root/target/release/keyrite" apply --auto-approve >/dev/null)
done
"$cold_bench" "$rounds" keyrite-ops-rust-signer keyrite-treasury-signer

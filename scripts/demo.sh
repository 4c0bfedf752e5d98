#!/usr/bin/env bash
# The main job, end to end on the local cloud: start the AWS emulator on a loopback port,
# then, with manifests/treasury-signer.yaml (key, role, signer Lambda, Function URL, API
# Gateway): plan → apply → plan (no changes) → addresses → selftest (direct KMS, Function
# URL, API stage; the emulator runs the template with the real AWS SDK as a layer) → drift.
# Safe to run repeatedly: every run uses a fresh emulator and a fresh state directory.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
npm ci --no-audit --no-fund --loglevel=error   # the AWS SDK for the Lambda layer
cargo build --quiet --bin keyrite
keyrite="$root/target/debug/keyrite"
eval "$(scripts/emulator.sh start)"
trap '"$root/scripts/emulator.sh" stop' EXIT
tmp=$(mktemp -d)
work="$tmp/work"
mkdir "$work"
ln -s "$root/node_modules" "$tmp/node_modules"   # the manifest's layer source is ../node_modules
cp manifests/treasury-signer.yaml "$work/keyrite.yaml"
cd "$work"
step() { printf '\n\033[1m$ keyrite %s\033[0m\n' "$*"; }

step plan;                          "$keyrite" plan
step apply --auto-approve;          "$keyrite" apply --auto-approve
step plan --detailed-exitcode;      "$keyrite" plan --detailed-exitcode   # exits 2 if anything is left to do
step addresses;                     "$keyrite" addresses
step selftest --via-emulator "$AWS_ENDPOINT_URL"
"$keyrite" selftest --via-emulator "$AWS_ENDPOINT_URL"                   # live sign-and-recover; exits 1 on failure
step drift;                         "$keyrite" drift                      # exits 2 on drift
printf '\nDone: applied, converged, addresses derived, self-test passed, no drift. State: %s/keyrite.state.json\n' "$work"

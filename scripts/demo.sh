#!/usr/bin/env bash
# The main job, end to end on the local cloud: start the AWS emulator on a loopback port,
# then plan → apply → plan (no changes) → addresses → selftest → drift with manifests/treasury.yaml.
# Safe to run repeatedly: every run uses a fresh emulator and a fresh state directory.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
cargo build --quiet --bin keyrite
keyrite="$root/target/debug/keyrite"
eval "$(scripts/emulator.sh start)"
trap '"$root/scripts/emulator.sh" stop' EXIT
work=$(mktemp -d)
cp manifests/treasury.yaml "$work/keyrite.yaml"
cd "$work"
step() { printf '\n\033[1m$ keyrite %s\033[0m\n' "$*"; }

step plan;                          "$keyrite" plan
step apply --auto-approve;          "$keyrite" apply --auto-approve
step plan --detailed-exitcode;      "$keyrite" plan --detailed-exitcode   # exits 2 if anything is left to do
step addresses;                     "$keyrite" addresses
step selftest;                      "$keyrite" selftest                   # live sign-and-recover; exits 1 on failure
step drift;                         "$keyrite" drift                      # exits 2 on drift
printf '\nDone: applied, converged, addresses derived, self-test passed, no drift. State: %s/keyrite.state.json\n' "$work"

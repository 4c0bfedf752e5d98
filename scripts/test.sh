#!/usr/bin/env bash
# The whole test suite, installing what it needs: the local AWS emulators (Python venvs),
# the Node test dependencies (npm ci) and cargo-fuzz. A short fuzzing run of every parser,
# then the Rust tests (unit, snapshot, and integration against emulators the tests start
# and stop themselves on free loopback ports), then the Node tests of the signer template.
# A missing dependency fails the run; nothing is skipped.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
# A one-shot CI build gains nothing from incremental caches but their disk space.
if [ "${CI:-}" = true ]; then export CARGO_INCREMENTAL=0; fi
scripts/install-emulator.sh
if [ -f package-lock.json ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi
bash scripts/fuzz.sh "${KEYRITE_FUZZ_SECONDS:-20}"
# Every crate of the workspace. The integration tests build the Rust signer's bootstrap
# through its one build path (cargo build --profile signer -p keyrite-lambda-signer).
cargo test --locked --workspace --lib --bins --tests
if [ -d tests/node ] && ls tests/node/*.test.mjs >/dev/null 2>&1; then
  npm run --silent test:node
fi

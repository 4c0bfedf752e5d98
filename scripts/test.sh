#!/usr/bin/env bash
# The whole test suite, installing what it needs: the local AWS emulator (Python venv) and
# the Node test dependencies (npm ci). Tests start and stop their own emulators on free
# loopback ports; a missing dependency fails the run, it never skips.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
scripts/install-emulator.sh
if [ -f package-lock.json ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi
cargo test --locked --all-targets
if [ -d tests/node ] && ls tests/node/*.test.mjs >/dev/null 2>&1; then
  npm run --silent test:node
fi

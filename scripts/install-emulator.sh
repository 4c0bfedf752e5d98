#!/usr/bin/env bash
# Installs the local AWS emulator (ministack, pinned) into .venv/ministack.
# Idempotent: a second run with the right version installed does nothing.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv="$root/.venv/ministack"
version=1.5.33
# ministack needs `cryptography` for KMS asymmetric keys but does not depend on it.
crypto_version=50.0.2
if [ -x "$venv/bin/ministack" ] && "$venv/bin/pip" show ministack 2>/dev/null | grep -qx "Version: $version" \
   && "$venv/bin/pip" show cryptography 2>/dev/null | grep -qx "Version: $crypto_version"; then
  exit 0
fi
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check "ministack==$version" "cryptography==$crypto_version"
echo "installed ministack $version into $venv" >&2

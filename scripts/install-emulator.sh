#!/usr/bin/env bash
# Installs the local AWS emulators into .venv/: ministack (pinned), the one keyrite is run
# against, and moto (pinned), used as a known-faulty KMS: its DIGEST signing signs
# SHA-256(digest), so keyrite's self-test must report it.
# Idempotent: a second run with the right versions installed does nothing.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv="$root/.venv/ministack"
version=1.5.33
# ministack needs `cryptography` for KMS asymmetric keys but does not depend on it.
crypto_version=50.0.2
if ! { [ -x "$venv/bin/ministack" ] && "$venv/bin/pip" show ministack 2>/dev/null | grep -x "Version: $version" >/dev/null \
   && "$venv/bin/pip" show cryptography 2>/dev/null | grep -x "Version: $crypto_version" >/dev/null; }; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "ministack==$version" "cryptography==$crypto_version"
  echo "installed ministack $version into $venv" >&2
fi

moto="$root/.venv/moto"
moto_version=5.2.5
if ! { [ -x "$moto/bin/moto_server" ] && "$moto/bin/pip" show moto 2>/dev/null | grep -x "Version: $moto_version" >/dev/null; }; then
  python3 -m venv "$moto"
  "$moto/bin/pip" install --quiet --disable-pip-version-check "moto[server]==$moto_version"
  echo "installed moto $moto_version into $moto" >&2
fi

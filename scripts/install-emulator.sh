#!/usr/bin/env bash
# Installs the local AWS emulators into .venv/: ministack (pinned), the one keyrite is run
# against, and moto (pinned), used as a known-faulty KMS: its DIGEST signing signs
# SHA-256(digest), so keyrite's self-test must report it.
# Also Google's own Cloud KMS client (google-cloud-kms, pinned), which checks keyrite's
# Cloud KMS stand-in (tests/gcp_standin/) over REST: there is no Cloud KMS emulator.
# Also securesystemslib (an independent DSSE verifier for ceremony records), parliament (an
# IAM policy linter that judges the policies keyrite generates) and, if missing,
# OpenSSH's ssh-keygen (approvals). Idempotent: a second run with the right versions installed does nothing.
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

gcp="$root/.venv/gcp"
gcp_kms_version=3.18.0
if ! { [ -x "$gcp/bin/python" ] && "$gcp/bin/pip" show google-cloud-kms 2>/dev/null | grep -x "Version: $gcp_kms_version" >/dev/null \
   && "$gcp/bin/pip" show cryptography 2>/dev/null | grep -x "Version: $crypto_version" >/dev/null; }; then
  python3 -m venv "$gcp"
  "$gcp/bin/pip" install --quiet --disable-pip-version-check "google-cloud-kms==$gcp_kms_version" \
    "google-crc32c==1.9.0" "cryptography==$crypto_version"
  echo "installed google-cloud-kms $gcp_kms_version into $gcp" >&2
fi

# PyPI securesystemslib (pinned): an independent DSSE verifier for ceremony records.
ssl="$root/.venv/ssl"
ssl_version=1.6.0
if ! { [ -x "$ssl/bin/python" ] && "$ssl/bin/pip" show securesystemslib 2>/dev/null | grep -x "Version: $ssl_version" >/dev/null \
   && "$ssl/bin/pip" show cryptography 2>/dev/null | grep -x "Version: $crypto_version" >/dev/null; }; then
  python3 -m venv "$ssl"
  "$ssl/bin/pip" install --quiet --disable-pip-version-check "securesystemslib==$ssl_version" "cryptography==$crypto_version"
  echo "installed securesystemslib $ssl_version into $ssl" >&2
fi

# PyPI parliament (pinned): Duo Labs' IAM policy linter, an independent judge of the
# policies keyrite generates.
parliament="$root/.venv/parliament"
parliament_version=1.6.4
if ! { [ -x "$parliament/bin/parliament" ] \
   && "$parliament/bin/pip" show parliament 2>/dev/null | grep -x "Version: $parliament_version" >/dev/null; }; then
  python3 -m venv "$parliament"
  "$parliament/bin/pip" install --quiet --disable-pip-version-check "parliament==$parliament_version"
  echo "installed parliament $parliament_version into $parliament" >&2
fi

# PyPI prometheus-client (pinned): the Prometheus project's own parser reads what
# `keyrite serve --metrics-listen` exposes.
prom="$root/.venv/prom"
prom_version=0.26.0
if ! { [ -x "$prom/bin/python" ] && "$prom/bin/pip" show prometheus-client 2>/dev/null | grep -x "Version: $prom_version" >/dev/null; }; then
  python3 -m venv "$prom"
  "$prom/bin/pip" install --quiet --disable-pip-version-check "prometheus-client==$prom_version"
  echo "installed prometheus-client $prom_version into $prom" >&2
fi

apt_install() {
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
  else
    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
  fi
  echo "installed $*" >&2
}
# OpenSSH's ssh-keygen: approvals are made and checked with the real one in the tests.
command -v ssh-keygen >/dev/null || apt_install openssh-client
# OpenSSL's command line: the demo makes the certificates of its mTLS `keyrite serve` with it.
command -v openssl >/dev/null || apt_install openssl

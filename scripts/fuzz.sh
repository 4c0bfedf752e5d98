#!/usr/bin/env bash
# Coverage-guided fuzzing (cargo-fuzz / libFuzzer) of keyrite's parsers: the manifest,
# DER signatures, SPKI/PEM public keys, IAM policies, and the signer contract's request and
# response. Each target runs for SECONDS (default 20), seeded with the project's own
# examples. A crash fails the run and leaves its input under fuzz/artifacts/<target>/.
# Works on the stable toolchain: no sanitizer (-s none), release mode.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
seconds=${1:-20}
cd "$root"
if ! cargo fuzz --version 2>/dev/null | grep -x "cargo-fuzz 0.13.2" >/dev/null; then
  cargo install cargo-fuzz --locked --version 0.13.2
fi
seeds=$(mktemp -d)
trap 'rm -rf "$seeds"' EXIT
mkdir -p "$seeds"/{manifest,der_signature,public_key,policy,signer_response}
cp manifests/*.yaml tests/invalid/*.yaml "$seeds/manifest/"
cp tests/fixtures/policies/* "$seeds/policy/"
printf '%s' '{"hash":"0x1111111111111111111111111111111111111111111111111111111111111111","signerAddress":"0x2c7536E3605D9C16a7a3D7b1898e529396a65c23"}' > "$seeds/signer_response/request.json"
printf '%s' '{"signature":"0x'"$(printf 'ab%.0s' $(seq 1 65))"'"}' > "$seeds/signer_response/response.json"
printf '\x30\x06\x02\x01\x01\x02\x01\x01' > "$seeds/der_signature/minimal.der"
base64 -d > "$seeds/public_key/secp256k1.spki" <<< 'MFYwEAYHKoZIzj0CAQYFK4EEAAoDQgAEjtrz5ZRFrjnzdalE2sqkZ1YNr/oDb4sq5JkmdoLLNrD5BcGG6PK4ASjbs5iZzxMk07lQ2oymrRZfVuJfvMW8aQ=='
cd fuzz
for target in manifest der_signature public_key policy signer_response; do
  echo "fuzzing $target for ${seconds}s" >&2
  mkdir -p "corpus/$target"
  cargo fuzz run --sanitizer none -O "$target" "corpus/$target" "$seeds/$target" -- -max_total_time="$seconds" -print_final_stats=1 2>&1 \
    | grep -E "^(stat::number_of_executed_units|stat::new_units_added|Done|INFO: -max_total_time)|panicked|ERROR|SUMMARY" || true
  if ls "artifacts/$target"/crash-* >/dev/null 2>&1; then
    echo "fuzz target $target crashed; inputs in fuzz/artifacts/$target/" >&2
    exit 1
  fi
done

#!/usr/bin/env bash
# The main job, end to end on the local cloud: start the AWS emulator on a loopback port,
# then, with manifests/rust-signer.yaml (key, role, the Rust Lambda signer: keyrite's own
# signer core as the bootstrap of a provided.al2023 function, which the emulator runs through
# the Lambda Runtime API; Function URL, API Gateway): lint → plan → apply → plan (no changes)
# → addresses → selftest (direct KMS, Function URL, API stage) → drift → lint --live (the
# state's resources as deployed) → lint --live --account aws (the account) → keyrite serve
# over mTLS with an access list (a signature, a refused client, /healthcheck, /metrics, the
# audit log, SIGTERM). The Node.js template, for those who must run JavaScript
# (manifests/treasury-signer.yaml, the real AWS SDK as a layer) → apply → plan (no changes)
# → selftest → drift.
# A fresh state on the same manifest then shows a plan that fails because its names are
# taken; `keyrite discover` then writes a manifest that imports the stack, and its plan
# records every resource as it is. The public AWS guide's stack, made by hand with boto3,
# is discovered, planned (only ownership tags), applied (only tagging calls), self-tested
# and drift-checked. A key ceremony follows: two approvers (one with ssh-keygen, one with keyrite
# approve), apply with proof of possession, and `keyrite ceremony verify` of the record.
# A recovery key behind its quorum gate (manifests/recovery-gate.yaml): apply, lint, `keyrite
# enrol prepare` of a new operational signer, one ssh-keygen approval (refused before any
# call), a second, and `keyrite enrol submit`, which the gate signs. A signer's key is rotated
# (manifests/rotation.yaml): an approved rotation plan, the enrolment of the new address signed
# by the recovery key through the gate, and `rotate --finish` after the grace period.
# Then the same job on Google Cloud KMS, against keyrite's local stand-in for the Cloud KMS
# REST API (tests/gcp_standin; no Cloud KMS emulator exists): key ring, HSM secp256k1 key,
# signerVerifier binding → plan → apply → plan → addresses → render-signer (the Cloud Run
# signDigest function, run here by the Functions Framework behind a Cloud Run-style ID-token
# check) → selftest with a Google ID token → drift; then a Cloud KMS recovery key behind its
# quorum gate (manifests/gcp-recovery-gate.yaml): the gate's container from `render-signer
# --serve`, run as Cloud Run would, refusing one approval and signing with two.
# Safe to run repeatedly: every run uses a fresh emulator and a fresh state directory.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
npm ci --no-audit --no-fund --loglevel=error   # the AWS SDK for the Lambda layer; the Cloud Run runtime
cargo build --quiet --bin keyrite --example gcp-kms-standin
# The Rust signer's bootstrap, from its one build path (target/signer/, where keyrite looks).
cargo build --quiet --locked --profile signer -p keyrite-lambda-signer
keyrite="$root/target/debug/keyrite"
eval "$(scripts/emulator.sh start)"
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; "$root/scripts/emulator.sh" stop' EXIT
tmp=$(mktemp -d)
work="$tmp/work"
mkdir "$work"
ln -s "$root/node_modules" "$tmp/node_modules"   # the manifest's layer source is ../node_modules
cp manifests/rust-signer.yaml "$work/keyrite.yaml"
cd "$work"
step() { printf '\n\033[1m$ keyrite %s\033[0m\n' "$*"; }

step lint;                          "$keyrite" lint                       # security rules; exits 2 on findings
step plan;                          "$keyrite" plan
step apply --auto-approve;          "$keyrite" apply --auto-approve
step plan --detailed-exitcode;      "$keyrite" plan --detailed-exitcode   # exits 2 if anything is left to do
step addresses;                     "$keyrite" addresses
step selftest --via-emulator "$AWS_ENDPOINT_URL"
"$keyrite" selftest --via-emulator "$AWS_ENDPOINT_URL"                   # live sign-and-recover; exits 1 on failure
step drift;                         "$keyrite" drift                      # exits 2 on drift
step lint --live;                   "$keyrite" lint --live                # what is deployed, as the cloud holds it
step lint --live --account aws;     "$keyrite" lint --live --account aws  # every secp256k1 key's stack, read-only
# keyrite serve over mTLS: a CA, a server and a client certificate made with openssl, an
# access list that lets the client use the ops signer; health, a signature, a client the
# list does not name (403, no KMS call), metrics, then SIGTERM drains it.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
https() { python3 -c '
import ssl, sys, urllib.request, urllib.error
url, cert = sys.argv[1], sys.argv[2]
ctx = ssl.create_default_context(cafile="pki/ca.pem")
if cert != "-": ctx.load_cert_chain(f"pki/{cert}.pem", f"pki/{cert}.key")
data = sys.argv[3].encode() if len(sys.argv) > 3 else None
req = urllib.request.Request(url, data=data, method="POST" if data else "GET")
try:
    with urllib.request.urlopen(req, timeout=20, context=ctx if url.startswith("https") else None) as r: print(r.status, r.read().decode())
except urllib.error.HTTPError as e: print(e.code, e.read().decode())
' "$@"; }
mkdir -p pki
cert() {  # name, subject, SAN, extended key usage; signed by the CA
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "pki/$1.key" -subj "$2" -out "pki/$1.csr" 2>/dev/null
  printf 'subjectAltName=%s\nextendedKeyUsage=%s\n' "$3" "$4" > "pki/$1.ext"
  openssl x509 -req -in "pki/$1.csr" -CA pki/ca.pem -CAkey pki/ca.key -CAcreateserial -days 1 -extfile "pki/$1.ext" -out "pki/$1.pem" 2>/dev/null
}
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout pki/ca.key -subj "/CN=demo CA" -days 1 -out pki/ca.pem 2>/dev/null
cert server "/CN=keyrite serve" "DNS:localhost,IP:127.0.0.1" serverAuth
cert bundler "/CN=bundler" "DNS:bundler.internal" clientAuth
cert intruder "/CN=intruder" "DNS:intruder.internal" clientAuth
cat > access.yaml <<'ACCESS'
clients:
  bundler:
    certificate: {san: dns:bundler.internal}
    signers: [ops]
ACCESS
sport=$(free_port); mport=$(free_port)
step serve --listen "127.0.0.1:$sport" --tls-cert pki/server.pem --tls-key pki/server.key --client-ca pki/ca.pem --access access.yaml --metrics-listen "127.0.0.1:$mport" '&'
"$keyrite" serve --listen "127.0.0.1:$sport" --tls-cert pki/server.pem --tls-key pki/server.key \
  --client-ca pki/ca.pem --access access.yaml --metrics-listen "127.0.0.1:$mport" --audit-log audit.jsonl &
spid=$!
for _ in $(seq 100); do python3 -c "import socket,sys; socket.create_connection(('127.0.0.1', $sport), 0.2)" 2>/dev/null && break; sleep 0.2; done
https "https://localhost:$sport/healthcheck" bundler
https "https://localhost:$sport/sign/ops" bundler '{"userOpHash":"0x1111111111111111111111111111111111111111111111111111111111111111"}'
refused=$(https "https://localhost:$sport/sign/ops" intruder '{"userOpHash":"0x1111111111111111111111111111111111111111111111111111111111111111"}')
echo "$refused"; grep -q '^403 ' <<<"$refused"                           # not in the access list: no KMS call
https "http://127.0.0.1:$mport/metrics" - | grep -E '^(200|keyrite_sign_requests_total|keyrite_signer_healthy)'
kill -TERM "$spid"; wait "$spid"                                         # drains, exits 0
echo "audit log:"; cat audit.jsonl
printf '\nAWS done: applied, converged, addresses derived, self-test passed, no drift. State: %s/keyrite.state.json\n' "$work"

printf '\n\033[1m== The Node.js template, for those who must run JavaScript: @noble/curves, the AWS SDK as a layer\033[0m\n'
nwork="$tmp/node-signer"
mkdir "$nwork"
cp "$root/manifests/treasury-signer.yaml" "$nwork/keyrite.yaml"
cd "$nwork"
step apply --auto-approve;          "$keyrite" apply --auto-approve       # packages the template and the SDK layer
step plan --detailed-exitcode;      "$keyrite" plan --detailed-exitcode
step selftest --via-emulator "$AWS_ENDPOINT_URL"
"$keyrite" selftest --via-emulator "$AWS_ENDPOINT_URL"                   # direct, Function URL and API stage, through the Node signer
step drift;                         "$keyrite" drift
cd "$work"

printf '\n\033[1m== A plan that tells the truth: the same manifest with a fresh state finds its names taken\033[0m\n'
fresh="$tmp/fresh"
mkdir "$fresh"
cp "$root/manifests/treasury-signer.yaml" "$fresh/keyrite.yaml"
cd "$fresh"
step plan
if "$keyrite" plan; then echo "expected the plan to fail: its names are taken" >&2; exit 1; fi
cd "$work"

printf '\n\033[1m== Discovery: a manifest that imports what the account holds, read-only\033[0m\n'
dwork="$tmp/discover"
mkdir "$dwork"
cd "$dwork"
step discover aws --key alias/treasury-lambda --out keyrite.yaml
"$keyrite" discover aws --key alias/treasury-lambda --out keyrite.yaml
sed -n '1,12p' keyrite.yaml
step validate;                      "$keyrite" validate
step plan;                          "$keyrite" plan                       # records each resource as it is; changes nothing
cd "$work"

printf '\n\033[1m== Adoption: the public AWS guide'"'"'s stack, made by hand (boto3), comes in changing nothing but tags\033[0m\n'
# POST on the REST API's root, a console Function URL with one of its two permissions, a role
# with AWSLambdaBasicExecutionRole, a handler keyrite has no source of (tests/adoption/).
"$root/.venv/moto/bin/python" "$root/tests/adoption/guide_stack.py" build "$AWS_ENDPOINT_URL" "$root/node_modules" \
  "$root/tests/adoption/guide_signer" >/dev/null
awork="$tmp/adopt"
mkdir "$awork"
cd "$awork"
step discover aws --key alias/my-crossmint-wallet-key --out keyrite.yaml
"$keyrite" discover aws --key alias/my-crossmint-wallet-key --out keyrite.yaml
step validate;                      "$keyrite" validate
step plan;                          "$keyrite" plan                       # only keyrite's ownership tags
step apply --auto-approve;          "$keyrite" apply --auto-approve       # only tagging calls
step plan --detailed-exitcode;      "$keyrite" plan --detailed-exitcode
step selftest --via-emulator "$AWS_ENDPOINT_URL"
"$keyrite" selftest --via-emulator "$AWS_ENDPOINT_URL"                   # the URL and the API's root stage, as they were
step drift;                         "$keyrite" drift
cd "$work"

printf '\n\033[1m== A key ceremony: two approvers, proof of possession, a signed record\033[0m\n'
cwork="$tmp/ceremony"
mkdir -p "$cwork/keys"
cd "$cwork"
{ cat "$root/manifests/treasury.yaml"; printf '\nceremony:\n  approvers: approvers.allowed_signers\n  threshold: 2\n'; } >keyrite.yaml
ssh-keygen -q -N '' -t ed25519 -C alice -f keys/alice
ssh-keygen -q -N '' -t ecdsa -b 256 -C bob -f keys/bob
ssh-keygen -q -N '' -t ed25519 -C operator -f keys/operator
{ printf 'alice@example.com %s\n' "$(cut -d' ' -f1,2 keys/alice.pub)"; printf 'bob@example.com %s\n' "$(cut -d' ' -f1,2 keys/bob.pub)"; } >approvers.allowed_signers
step plan --out ceremony.plan;      "$keyrite" plan --out ceremony.plan
printf '\n\033[1m$ ssh-keygen -Y sign -n keyrite-plan@v1 -f keys/alice ceremony.plan\033[0m   (alice approves with OpenSSH)\n'
ssh-keygen -Y sign -n keyrite-plan@v1 -f keys/alice ceremony.plan && mv ceremony.plan.sig ceremony.plan.alice.sig
step approve ceremony.plan --key keys/bob --yes
"$keyrite" approve ceremony.plan --key keys/bob --yes                       # bob approves with keyrite
step apply ceremony.plan --operator-key keys/operator
"$keyrite" apply ceremony.plan --operator-key keys/operator
record=$(ls ceremonies/*.json)
step ceremony show "$record";       "$keyrite" ceremony show "$record"
step ceremony verify "$record" --chain ceremonies --manifest keyrite.yaml --plan ceremony.plan
"$keyrite" ceremony verify "$record" --chain ceremonies --manifest keyrite.yaml --plan ceremony.plan
printf '\nCeremony done: approved by 2 of 2, keys proved, record verified offline: %s\n' "$cwork/$record"
cd "$work"

printf '\n\033[1m== A recovery key behind a quorum gate: 2 of 3 approvers enrol a new operational signer\033[0m\n'
qwork="$tmp/gate"
mkdir -p "$qwork/keys"
cd "$qwork"
sed 's/approvers: recovery-approvers.allowed_signers/approvers: approvers.allowed_signers/' "$root/manifests/recovery-gate.yaml" >keyrite.yaml
for who in carol dave erin; do ssh-keygen -q -N '' -t ed25519 -C "$who" -f "keys/$who"; done
for who in carol dave erin; do printf '%s@example.com namespaces="keyrite-enrolment@v1" %s\n' "$who" "$(cut -d' ' -f1,2 "keys/$who.pub")"; done >approvers.allowed_signers
step apply --auto-approve;          "$keyrite" apply --auto-approve
step lint;                          "$keyrite" lint                       # the gate alone signs: no KR107/KR111
ops=$("$keyrite" addresses --format json | python3 -c 'import json,sys; print(next(k["evm_address"] for k in json.load(sys.stdin)["keys"] if k["slot"]=="operational"))')
step enrol prepare --new-signer "$ops" --replaces 0x2222222222222222222222222222222222222222 --nonce 1
"$keyrite" enrol prepare --new-signer "$ops" --replaces 0x2222222222222222222222222222222222222222 --nonce 1
printf '\n\033[1m$ ssh-keygen -Y sign -n keyrite-enrolment@v1 -f keys/carol enrolment.json.digest\033[0m   (carol approves)\n'
ssh-keygen -Y sign -n keyrite-enrolment@v1 -f keys/carol enrolment.json.digest && mv enrolment.json.digest.sig enrolment.json.digest.carol.sig
printf '\n\033[1m$ keyrite enrol submit\033[0m   (one approval: refused before anything is sent)\n'
if "$keyrite" enrol submit; then echo "the gate signed with one approval" >&2; exit 1; fi
printf '\n\033[1m$ ssh-keygen -Y sign -n keyrite-enrolment@v1 -f keys/erin enrolment.json.digest\033[0m   (erin approves)\n'
ssh-keygen -Y sign -n keyrite-enrolment@v1 -f keys/erin enrolment.json.digest && mv enrolment.json.digest.sig enrolment.json.digest.erin.sig
step enrol submit;                  "$keyrite" enrol submit
cd "$work"

printf '\n\033[1m== Rotating a signer: a new key, enrolled through the quorum gate, the old key disabled after its grace\033[0m\n'
rwork="$tmp/rotation"
mkdir -p "$rwork/keys"
cd "$rwork"
# A grace period of seconds, so that the demo can wait it out.
sed -e 's/grace: 7d /grace: 5s /' -e 's/every: 90d /every: 30d /' "$root/manifests/rotation.yaml" >keyrite.yaml
for who in alice bob operator frank grace; do ssh-keygen -q -N '' -t ed25519 -C "$who" -f "keys/$who"; done
for who in alice bob; do printf '%s@example.com namespaces="keyrite-plan@v1" %s\n' "$who" "$(cut -d' ' -f1,2 "keys/$who.pub")"; done >rotation-approvers.allowed_signers
for who in frank grace; do printf '%s@example.com namespaces="keyrite-enrolment@v1" %s\n' "$who" "$(cut -d' ' -f1,2 "keys/$who.pub")"; done >recovery-approvers.allowed_signers
approve_plan() { for who in alice bob; do ssh-keygen -Y sign -n keyrite-plan@v1 -f "keys/$who" "$1" && mv "$1.sig" "$1.$who.sig"; done; }
export KEYRITE_VIA_EMULATOR="$AWS_ENDPOINT_URL"   # the self-test reaches the Function URL through the emulator
step plan --out first.plan;         "$keyrite" plan --out first.plan >/dev/null && approve_plan first.plan
step apply first.plan --operator-key keys/operator
"$keyrite" apply first.plan --operator-key keys/operator
step rotate treasury --out rotation.plan
"$keyrite" rotate treasury --out rotation.plan
printf '\n\033[1m$ ssh-keygen -Y sign -n keyrite-plan@v1 …\033[0m   (alice and bob approve the rotation plan)\n'
approve_plan rotation.plan
step apply rotation.plan --operator-key keys/operator
"$keyrite" apply rotation.plan --operator-key keys/operator
printf '\n\033[1m$ ssh-keygen -Y sign -n keyrite-enrolment@v1 … rotation.plan.enrolment.json.digest\033[0m   (frank and grace approve the enrolment)\n'
for who in frank grace; do
  ssh-keygen -Y sign -n keyrite-enrolment@v1 -f "keys/$who" rotation.plan.enrolment.json.digest
  mv rotation.plan.enrolment.json.digest.sig "rotation.plan.enrolment.json.digest.$who.sig"
done
step rotate treasury --enrol rotation.plan.enrolment.json --operator-key keys/operator
"$keyrite" rotate treasury --enrol rotation.plan.enrolment.json --operator-key keys/operator
sleep 6                                            # the grace period
step rotate treasury --finish --operator-key keys/operator
"$keyrite" rotate treasury --finish --operator-key keys/operator
step addresses;                     "$keyrite" addresses
for record in ceremonies/*.json; do "$keyrite" ceremony verify "$record" --chain ceremonies >/dev/null; done
step ceremony verify "$(ls ceremonies/*.json | tail -1)" --chain ceremonies
"$keyrite" ceremony verify "$(ls ceremonies/*.json | tail -1)" --chain ceremonies
unset KEYRITE_VIA_EMULATOR
cd "$work"

printf '\n\033[1m== Google Cloud KMS (against the local Cloud KMS stand-in)\033[0m\n'
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 100); do (echo >"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; echo "port $1 did not open" >&2; return 1; }
kms_port=$(free_port)
fn_port=$(free_port)
"$root/target/debug/examples/gcp-kms-standin" "$kms_port" >/dev/null &
pids+=($!)
wait_port "$kms_port"
# Application Default Credentials come from the stand-in's metadata server; HOME points at
# the scratch directory so that no real gcloud credentials are picked up.
export KEYRITE_GCP_KMS_ENDPOINT="http://127.0.0.1:$kms_port" GCE_METADATA_HOST="127.0.0.1:$kms_port" HOME="$tmp"
gwork="$tmp/gcp"
mkdir "$gwork"
sed "s|https://treasury-signer-4711.us-east1.run.app|http://127.0.0.1:$fn_port|" "$root/manifests/gcp-treasury.yaml" >"$gwork/keyrite.yaml"
cd "$gwork"
step plan;                          "$keyrite" plan
step apply --auto-approve;          "$keyrite" apply --auto-approve
step plan --detailed-exitcode;      "$keyrite" plan --detailed-exitcode
step addresses;                     "$keyrite" addresses
step render-signer --out signer-fn; "$keyrite" render-signer --out signer-fn
step render-signer --serve --out serve-container   # the same signer as a keyrite serve container
"$keyrite" render-signer --serve --out serve-container
cat serve-container/Dockerfile
ln -s "$root/node_modules" signer-fn/node_modules
state="$gwork/keyrite.state.json"
KMS_API_ENDPOINT="$KEYRITE_GCP_KMS_ENDPOINT" \
  KMS_KEY_VERSION=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["resources"]["signer_key"]["outputs"]["version_id"])' "$state") \
  EXPECTED_ADDRESS=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["resources"]["signer_key"]["outputs"]["address"])' "$state") \
  SIGNING_MODE=digest \
  node "$root/tests/node/support/cloud-run-local.mjs" signer-fn "$fn_port" "http://127.0.0.1:$fn_port" >/dev/null &
pids+=($!)
wait_port "$fn_port"
step selftest;                      "$keyrite" selftest                   # direct Cloud KMS, and the function with an ID token
step drift;                         "$keyrite" drift
printf '\nGCP done (against the stand-in, not live GCP): applied, converged, addresses derived, self-test passed, no drift. State: %s\n' "$state"

printf '\n\033[1m== A Cloud KMS recovery key behind its quorum gate: keyrite serve, as Cloud Run runs it\033[0m\n'
rgwork="$tmp/gcp-gate"
mkdir -p "$rgwork/keys"
cd "$rgwork"
cp "$root/manifests/gcp-recovery-gate.yaml" keyrite.yaml
for who in heidi ivan judy; do ssh-keygen -q -N '' -t ed25519 -C "$who" -f "keys/$who"; done
for who in heidi ivan judy; do printf '%s@example.com namespaces="keyrite-enrolment@v1" %s\n' "$who" "$(cut -d' ' -f1,2 "keys/$who.pub")"; done >recovery-approvers.allowed_signers
step apply --auto-approve;          "$keyrite" apply --auto-approve
step lint;                          "$keyrite" lint                       # the gate's service account alone signs
step render-signer --signer recovery --serve --out gate
"$keyrite" render-signer --signer recovery --serve --out gate
gate_port=$(free_port)
# The container's ENTRYPOINT, in its directory, as Cloud Run would run it (PORT, metadata-server credentials).
(cd gate && PORT="$gate_port" exec ./keyrite serve --file keyrite.yaml --signer recovery --drain-seconds 8 >/dev/null 2>&1) &
pids+=($!)
wait_port "$gate_port"
step enrol prepare --new-signer 0x1111111111111111111111111111111111111111 --replaces 0x2222222222222222222222222222222222222222 --nonce 1
"$keyrite" enrol prepare --new-signer 0x1111111111111111111111111111111111111111 --replaces 0x2222222222222222222222222222222222222222 --nonce 1
printf '\n\033[1m$ ssh-keygen -Y sign -n keyrite-enrolment@v1 -f keys/heidi enrolment.json.digest\033[0m   (heidi approves)\n'
ssh-keygen -Y sign -n keyrite-enrolment@v1 -f keys/heidi enrolment.json.digest && mv enrolment.json.digest.sig enrolment.json.digest.heidi.sig
printf '\n\033[1m$ keyrite enrol submit --url http://127.0.0.1:%s/\033[0m   (one approval: refused before anything is sent)\n' "$gate_port"
if "$keyrite" enrol submit --url "http://127.0.0.1:$gate_port/"; then echo "the gate signed with one approval" >&2; exit 1; fi
ssh-keygen -Y sign -n keyrite-enrolment@v1 -f keys/judy enrolment.json.digest && mv enrolment.json.digest.sig enrolment.json.digest.judy.sig
step enrol submit --url "http://127.0.0.1:$gate_port/"
"$keyrite" enrol submit --url "http://127.0.0.1:$gate_port/"
cd "$work"

//! The quorum gate in front of a recovery key (`manifests/recovery-gate.yaml`) on the
//! emulator: three approvers with keys the real `ssh-keygen` makes, two of them needed. The
//! enrolment's digest is computed by ethers (a wallet's own EIP-712 encoding), the approvals
//! are `ssh-keygen -Y sign` over it, and the gate's signature is recovered by ethers'
//! `verifyTypedData` to the recovery key's address. Every refusal is counted at a proxy in
//! front of KMS: none makes a `Sign` call. The recovery key's policy, read back with boto3,
//! lets only the gate's role sign; a changed threshold, a new principal on the key and new
//! gate code are drift.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::{Value, json};

use crate::ceremony_core::common as keygen;
use crate::common::fault_proxy::{FaultProxy, Faults};
use crate::common::{self, Emulator, Run, Workdir, repo_root};

const NAMESPACE: &str = "keyrite-enrolment@v1";
const WALLET: &str = "0x5FbDB2315678afecb367f032d93F642f64180aa3";
const NEW_SIGNER: &str = "0x1111111111111111111111111111111111111111";
const OLD_SIGNER: &str = "0x2222222222222222222222222222222222222222";

/// ethers, through `tests/gate/eip712.mjs`.
fn ethers(args: &[&str]) -> String {
    let out = Command::new("node")
        .arg(repo_root().join("tests/gate/eip712.mjs"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("node runs");
    assert!(out.status.success(), "eip712.mjs {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// The enrolment as a wallet's dapp would hand it to `eth_signTypedData_v4`.
fn enrolment(new_signer: &str, nonce: u64, deadline: u64) -> Value {
    json!({
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"},
                {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"},
                {"name": "verifyingContract", "type": "address"},
            ],
            "Enrolment": [
                {"name": "wallet", "type": "address"},
                {"name": "newSigner", "type": "address"},
                {"name": "replaces", "type": "address"},
                {"name": "nonce", "type": "uint256"},
                {"name": "deadline", "type": "uint256"},
            ],
        },
        "primaryType": "Enrolment",
        "domain": {"name": "Treasury Wallet", "version": "1", "chainId": 11155111, "verifyingContract": WALLET},
        "message": {"wallet": WALLET, "newSigner": new_signer, "replaces": OLD_SIGNER, "nonce": nonce, "deadline": deadline},
    })
}

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

/// Three approvers and an outsider, with keys from the real ssh-keygen.
struct Approvers {
    dir: PathBuf,
}

impl Approvers {
    fn new(work: &Path) -> Approvers {
        let dir = work.join("keys");
        std::fs::create_dir_all(&dir).unwrap();
        for (name, kind) in [("alice", "ed25519"), ("bob", "ecdsa"), ("carol", "ed25519"), ("mallory", "ed25519")] {
            keygen::gen_key(&dir, name, kind, (kind == "ecdsa").then_some("256"), "");
        }
        Approvers { dir }
    }

    /// The allowed_signers lines of `names`, each limited to the enrolment namespace.
    fn allowed_signers(&self, names: &[&str]) -> String {
        keygen::allowed_signers(&self.dir, names, Some(NAMESPACE))
    }

    /// `ssh-keygen -Y sign -n keyrite-enrolment@v1` over the 32 bytes of `digest`.
    fn approve(&self, name: &str, digest: &str, namespace: &str) -> String {
        let file = self.dir.join(format!("{name}-{}.digest", &digest[2..10]));
        std::fs::write(&file, hex::decode(digest.trim_start_matches("0x")).unwrap()).unwrap();
        let key = self.dir.join(name);
        let out = keygen::ssh_keygen(
            &["-Y", "sign", "-n", namespace, "-f", key.to_str().unwrap(), file.to_str().unwrap()],
            &[],
        );
        assert!(out.status.success(), "ssh-keygen -Y sign: {}", String::from_utf8_lossy(&out.stderr));
        let sig = PathBuf::from(format!("{}.sig", file.display()));
        let armored = std::fs::read_to_string(&sig).unwrap();
        std::fs::remove_file(sig).unwrap();
        armored
    }
}

/// The example, with the test's approvers, and the gate's KMS calls through `kms_endpoint`.
fn manifest(kms_endpoint: &str) -> String {
    let text = std::fs::read_to_string(repo_root().join("manifests/recovery-gate.yaml")).unwrap();
    let anchor = "    reserved_concurrency: 2\n    gate:\n";
    assert!(text.contains(anchor));
    text.replacen(
        anchor,
        &format!(
            "    reserved_concurrency: 2\n    environment:\n      AWS_ENDPOINT_URL_KMS: {kms_endpoint}\n    gate:\n"
        ),
        1,
    )
}

fn keyrite(w: &Workdir, emu: &Emulator, args: &[&str]) -> Run {
    let mut command = w.command(&emu.endpoint, args);
    command.env("KEYRITE_RUST_SIGNER", common::signer_bootstrap()).stdin(Stdio::null());
    Run::from(command.output().unwrap())
}

/// Invokes the gate with a Function URL event carrying `body`: (status, body).
fn invoke(rt: &tokio::runtime::Runtime, lambda: &aws_sdk_lambda::Client, function: &str, body: &Value) -> (u64, Value) {
    let event = json!({"version": "2.0", "requestContext": {"http": {"method": "POST"}}, "body": body.to_string(), "isBase64Encoded": false});
    let out = rt
        .block_on(
            lambda
                .invoke()
                .function_name(function)
                .payload(aws_sdk_lambda::primitives::Blob::new(event.to_string()))
                .send(),
        )
        .unwrap();
    let payload = String::from_utf8_lossy(out.payload().unwrap().as_ref()).into_owned();
    assert_eq!(out.function_error(), None, "{payload}");
    let response: Value = serde_json::from_str(&payload).unwrap();
    (response["statusCode"].as_u64().unwrap(), serde_json::from_str(response["body"].as_str().unwrap()).unwrap())
}

#[test]
fn the_gate_signs_an_enrolment_two_approvers_approved_and_refuses_all_else_without_asking_kms() {
    let emu = Emulator::start();
    let proxy = FaultProxy::start(&emu.endpoint, Faults::default(), 25);
    let w = Workdir::with_text(&manifest(&proxy.endpoint));
    let people = Approvers::new(w.dir.path());
    let approvers = w.path().join("recovery-approvers.allowed_signers");
    std::fs::write(&approvers, people.allowed_signers(&["alice", "bob", "carol"])).unwrap();
    keyrite(&w, &emu, &["apply", "--auto-approve"]).expect(0);
    keyrite(&w, &emu, &["plan", "--detailed-exitcode"]).expect(0);

    let keys = keyrite(&w, &emu, &["addresses", "--format", "json"]).expect(0).json();
    let recovery = keys["keys"].as_array().unwrap().iter().find(|k| k["slot"] == "recovery").unwrap();
    let recovery_address = recovery["evm_address"].as_str().unwrap().to_owned();

    // Only the gate's role may sign with the recovery key, as boto3 reads the policy back.
    let python = repo_root().join(".venv/moto/bin/python");
    assert!(python.exists(), "run scripts/install-emulator.sh (scripts/test.sh does)");
    let out = Command::new(&python)
        .arg(repo_root().join("tests/gate/recovery_policy.py"))
        .args([&emu.endpoint, &w.id("recovery_key"), "keyrite-treasury-recovery-gate"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let read: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(read["signers"], json!([read["gate_role"]]), "{read:#}");

    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let lambda = rt.block_on(emu.lambda());
    let gate = w.id("recovery_gate");
    let signs = || proxy.counts.operations().iter().filter(|op| *op == "Sign").count();

    // Two of three approvers approve the exact digest ethers computes: the gate signs it, and
    // ethers recovers the recovery key's address from the typed message and the signature.
    let deadline = now() + 3600;
    let good = enrolment(NEW_SIGNER, 8, deadline);
    let digest = ethers(&["hash", &good.to_string()]);
    let (alice, bob) = (people.approve("alice", &digest, NAMESPACE), people.approve("bob", &digest, NAMESPACE));
    let (status, body) = invoke(&rt, &lambda, &gate, &json!({"enrolment": good, "approvals": [alice, bob]}));
    assert_eq!(status, 200, "{body:#}");
    assert_eq!(body["digest"], digest.as_str());
    assert_eq!(body["approvers"], json!(["alice@example.com", "bob@example.com"]));
    let signature = body["signature"].as_str().unwrap();
    assert_eq!(ethers(&["recover", &good.to_string(), signature]).to_lowercase(), recovery_address.to_lowercase());
    assert_eq!(signs(), 1);

    // Each of these is refused with its reason, and makes no Sign call.
    let approve = |name: &str, e: &Value| people.approve(name, &ethers(&["hash", &e.to_string()]), NAMESPACE);
    let other_signer = enrolment("0x3333333333333333333333333333333333333333", 8, deadline);
    let other_nonce = enrolment(NEW_SIGNER, 9, deadline);
    let other_deadline = enrolment(NEW_SIGNER, 8, deadline + 60);
    let expired = enrolment(NEW_SIGNER, 8, now() - 60);
    let carol = approve("carol", &good);
    let refused: Vec<(&str, Value, &str)> = vec![
        ("k-1 approvals", json!({"enrolment": good, "approvals": [carol]}), "1 of the 2 approvals needed"),
        ("one approver twice", json!({"enrolment": good, "approvals": [carol, carol]}), "count once"),
        (
            "an approver not in the list",
            json!({"enrolment": good, "approvals": [carol, approve("mallory", &good)]}),
            "not in the allowed signers",
        ),
        (
            "approvals of another new signer",
            json!({"enrolment": good, "approvals": [approve("alice", &other_signer), approve("bob", &other_signer)]}),
            "does not verify",
        ),
        (
            "approvals of another nonce",
            json!({"enrolment": good, "approvals": [approve("alice", &other_nonce), approve("bob", &other_nonce)]}),
            "does not verify",
        ),
        (
            "approvals of another deadline",
            json!({"enrolment": good, "approvals": [approve("alice", &other_deadline), approve("bob", &other_deadline)]}),
            "does not verify",
        ),
        (
            "an expired deadline",
            json!({"enrolment": expired, "approvals": [approve("alice", &expired), approve("bob", &expired)]}),
            "has passed",
        ),
        (
            "a raw digest",
            json!({"hash": digest, "signerAddress": recovery_address, "approvals": [carol]}),
            "never a raw digest",
        ),
        (
            "k approvals with a tampered message",
            json!({"enrolment": other_signer, "approvals": [approve("alice", &good), approve("carol", &good)]}),
            "0 of the 2 approvals needed",
        ),
        (
            "an approval of a plan, not of an enrolment",
            json!({"enrolment": good, "approvals": [carol, people.approve("alice", &digest, "keyrite-plan@v1")]}),
            "namespace",
        ),
    ];
    for (case, request, reason) in refused {
        let (status, body) = invoke(&rt, &lambda, &gate, &request);
        let error = body["error"].as_str().unwrap_or_default();
        assert!(matches!(status, 400 | 403) && error.contains(reason), "{case}: {status} {body:#}");
        assert!(body.get("signature").is_none(), "{case}: {body:#}");
        assert_eq!(signs(), 1, "{case} made a Sign call");
    }

    // The same through keyrite's CLI: `enrol prepare` writes the enrolment and its digest,
    // the approvers sign the digest file with ssh-keygen, `enrol submit` sends it. With one
    // approval it is refused before anything is sent.
    let file = w.path().join("enrolment.json");
    let prepare =
        ["enrol", "prepare", "--new-signer", NEW_SIGNER, "--replaces", OLD_SIGNER, "--nonce", "9", "--valid-for", "2h"];
    let prepared = keyrite(&w, &emu, &prepare).expect(0);
    let written: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    let digest = ethers(&["hash", &written.to_string()]);
    assert_eq!(std::fs::read(w.path().join("enrolment.json.digest")).unwrap(), hex::decode(&digest[2..]).unwrap());
    assert!(
        prepared.stdout.contains(&digest) && prepared.stdout.contains("ssh-keygen -Y sign -n keyrite-enrolment@v1")
    );
    let digest_file = w.path().join("enrolment.json.digest");
    let sign_file = |name: &str| {
        let key = people.dir.join(name);
        let args = ["-Y", "sign", "-n", NAMESPACE, "-f", key.to_str().unwrap(), digest_file.to_str().unwrap()];
        let out = keygen::ssh_keygen(&args, &[]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    };
    let run_in = |args: &[&str]| {
        let mut command = w.command(&emu.endpoint, args);
        command.current_dir(w.path());
        Run::from(command.output().unwrap())
    };
    sign_file("carol");
    let alone = run_in(&["enrol", "submit"]);
    assert_eq!(alone.code, 1, "{}{}", alone.stdout, alone.stderr);
    assert!(
        alone.stderr.contains("1 of the 2 approvals needed") && alone.stderr.contains("nothing was sent"),
        "{}",
        alone.stderr
    );
    assert_eq!(signs(), 1);
    std::fs::rename(w.path().join("enrolment.json.digest.sig"), w.path().join("enrolment.json.digest.carol.sig"))
        .unwrap();
    sign_file("alice");
    run_in(&["enrol", "submit"]).expect(0);
    assert_eq!(signs(), 2);
    let record: Value =
        serde_json::from_str(&std::fs::read_to_string(w.path().join("enrolment.json.signature.json")).unwrap())
            .unwrap();
    assert_eq!(record["approvers"], json!(["alice@example.com", "carol@example.com"]));
    let recovered = ethers(&["recover", &written.to_string(), record["signature"].as_str().unwrap()]);
    assert_eq!(recovered.to_lowercase(), recovery_address.to_lowercase());

    // What an auditor relies on: the key's principals, the gate's approvers and k, its code.
    keyrite(&w, &emu, &["drift"]).expect(0);
    let config = rt.block_on(lambda.get_function_configuration().function_name(&gate).send()).unwrap();
    let mut env = config.environment().unwrap().variables().unwrap().clone();
    env.insert("GATE_THRESHOLD".into(), "1".into());
    rt.block_on(
        lambda
            .update_function_configuration()
            .function_name(&gate)
            .environment(aws_sdk_lambda::types::Environment::builder().set_variables(Some(env)).build())
            .send(),
    )
    .unwrap();
    let drift = keyrite(&w, &emu, &["drift"]);
    assert_eq!(drift.code, 2, "{}{}", drift.stdout, drift.stderr);
    assert!(drift.stdout.contains("recovery_gate") && drift.stdout.contains("GATE_THRESHOLD"), "{}", drift.stdout);
    keyrite(&w, &emu, &["apply", "--auto-approve"]).expect(0);
    keyrite(&w, &emu, &["drift"]).expect(0);

    let kms = rt.block_on(emu.kms());
    let key = w.id("recovery_key");
    let policy = rt.block_on(kms.get_key_policy().key_id(&key).policy_name("default").send()).unwrap();
    let mut doc: Value = serde_json::from_str(policy.policy().unwrap()).unwrap();
    doc["Statement"].as_array_mut().unwrap().push(json!({
        "Sid": "Helpdesk", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::000000000000:user/helpdesk"},
        "Action": "kms:Sign", "Resource": "*",
    }));
    rt.block_on(kms.put_key_policy().key_id(&key).policy_name("default").policy(doc.to_string()).send()).unwrap();
    let drift = keyrite(&w, &emu, &["drift"]);
    assert_eq!(drift.code, 2, "{}{}", drift.stdout, drift.stderr);
    assert!(drift.stdout.contains("recovery_key") && drift.stdout.contains("helpdesk"), "{}", drift.stdout);
    let live = keyrite(&w, &emu, &["lint", "--live"]);
    assert!(live.stdout.contains("KR110") && live.stdout.contains("helpdesk"), "{}{}", live.stdout, live.stderr);
    keyrite(&w, &emu, &["apply", "--auto-approve"]).expect(0);

    // Code keyrite did not write, out of band: drift names the gate's code.
    rt.block_on(
        lambda
            .update_function_code()
            .function_name(&gate)
            .zip_file(aws_sdk_lambda::primitives::Blob::new(common::a_zip()))
            .send(),
    )
    .unwrap();
    let drift = keyrite(&w, &emu, &["drift"]);
    assert_eq!(drift.code, 2, "{}{}", drift.stdout, drift.stderr);
    assert!(drift.stdout.contains("code_sha256"), "{}", drift.stdout);
}

const GATE_ACCOUNT: &str = "serviceAccount:recovery-gate@treasury-prod-4711.iam.gserviceaccount.com";
const RECOVERY_KEY: &str =
    "projects/treasury-prod-4711/locations/us-east1/keyRings/treasury-recovery/cryptoKeys/treasury-recovery";

/// POSTs `body` to `http://127.0.0.1:port/`: the status and the JSON answer.
fn post(port: u16, body: &Value) -> (u16, Value) {
    use std::io::{Read, Write};
    let body = body.to_string();
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        stream,
        "POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let status = answer.split_whitespace().nth(1).unwrap().parse().unwrap();
    let json = answer.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or_default();
    (status, serde_json::from_str(json).unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cloud_run_gate_is_the_only_member_that_signs_and_signs_only_an_approved_enrolment() {
    let kms = common::gcp_kms::GcpKms::start();
    let text = std::fs::read_to_string(repo_root().join("manifests/gcp-recovery-gate.yaml")).unwrap();
    let w = Workdir::with_text(&text);
    let people = Approvers::new(w.dir.path());
    std::fs::write(
        w.path().join("recovery-approvers.allowed_signers"),
        people.allowed_signers(&["alice", "bob", "carol"]),
    )
    .unwrap();
    w.keyrite_gcp(&kms, &["apply", "--auto-approve"]).expect(0);
    w.keyrite_gcp(&kms, &["plan", "--detailed-exitcode"]).expect(0);

    // Google's own client reads the key's IAM policy back: the gate's service account is the
    // only member of any role on the recovery key.
    let client = google_cloud_kms_v1::client::KeyManagementService::builder()
        .with_endpoint(&kms.endpoint)
        .with_credentials(google_cloud_auth::credentials::anonymous::Builder::new().build())
        .build()
        .await
        .unwrap();
    let policy = client.get_iam_policy().set_resource(RECOVERY_KEY).send().await.unwrap();
    let members: Vec<(&str, &str)> =
        policy.bindings.iter().flat_map(|b| b.members.iter().map(|m| (b.role.as_str(), m.as_str()))).collect();
    assert_eq!(members, [("roles/cloudkms.signerVerifier", GATE_ACCOUNT)], "{policy:?}");

    // Another member beside the gate is a way around the quorum: lint says so.
    let loosened = text.replace(
        &format!("      - {GATE_ACCOUNT}\n"),
        &format!("      - {GATE_ACCOUNT}\n      - user:officer@example.com\n"),
    );
    assert_ne!(loosened, text);
    let l = Workdir::with_text(&loosened);
    std::fs::copy(
        w.path().join("recovery-approvers.allowed_signers"),
        l.path().join("recovery-approvers.allowed_signers"),
    )
    .unwrap();
    let lint = l.keyrite_gcp(&kms, &["lint"]);
    assert!(lint.stdout.contains("KR110") && lint.stdout.contains("user:officer@example.com"), "{}", lint.stdout);

    // The container Cloud Run would run: `keyrite serve --signer recovery`, with the gate's
    // approvers copied beside the manifest, deployed as the gate's service account.
    let dir = w.path().join("gate");
    let rendered = w
        .keyrite_gcp(&kms, &["render-signer", "--signer", "recovery", "--serve", "--out", dir.to_str().unwrap()])
        .expect(0);
    assert!(rendered.stdout.contains("--service-account=recovery-gate@treasury-prod-4711.iam.gserviceaccount.com"));
    let dockerfile = std::fs::read_to_string(dir.join("Dockerfile")).unwrap();
    assert!(dockerfile.contains("COPY recovery-approvers.allowed_signers ./recovery-approvers.allowed_signers\n"));
    let line = dockerfile.lines().find_map(|l| l.strip_prefix("ENTRYPOINT ")).unwrap();
    let entrypoint: Vec<String> = serde_json::from_str(line).unwrap();
    let port = common::free_port();
    let mut container = Command::new(dir.join("keyrite"));
    container.args(&entrypoint[1..]).current_dir(&dir).stdout(Stdio::null()).stderr(Stdio::null());
    for (k, v) in w.gcp_command(&kms, &[]).get_envs() {
        match v {
            Some(v) => container.env(k, v),
            None => container.env_remove(k),
        };
    }
    let mut serve = container.env("PORT", port.to_string()).spawn().unwrap();
    common::wait_for_port(port, "the quorum gate");

    let keys = w.keyrite_gcp(&kms, &["addresses", "--format", "json"]).expect(0).json();
    let recovery_address = keys["keys"][0]["evm_address"].as_str().unwrap().to_owned();
    let signs = kms.signs();
    let deadline = now() + 3600;
    let good = enrolment(NEW_SIGNER, 3, deadline);
    let digest = ethers(&["hash", &good.to_string()]);
    let (alice, bob) = (people.approve("alice", &digest, NAMESPACE), people.approve("bob", &digest, NAMESPACE));
    let refused = [
        ("k-1 approvals", json!({"enrolment": good, "approvals": [alice]}), "1 of the 2 approvals needed"),
        ("one approver twice", json!({"enrolment": good, "approvals": [alice, alice]}), "count once"),
        ("a raw digest", json!({"hash": digest, "signerAddress": recovery_address}), "never a raw digest"),
        (
            "a tampered message",
            json!({"enrolment": enrolment(NEW_SIGNER, 4, deadline), "approvals": [alice, bob]}),
            "0 of the 2 approvals needed",
        ),
        (
            "an expired deadline",
            {
                let expired = enrolment(NEW_SIGNER, 3, now() - 60);
                let d = ethers(&["hash", &expired.to_string()]);
                json!({"enrolment": expired, "approvals": [people.approve("alice", &d, NAMESPACE), people.approve("bob", &d, NAMESPACE)]})
            },
            "has passed",
        ),
    ];
    for (case, request, reason) in refused {
        let (status, body) = post(port, &request);
        let error = body["error"].as_str().unwrap_or_default();
        assert!(matches!(status, 400 | 403) && error.contains(reason), "{case}: {status} {body:#}");
        assert_eq!(kms.signs(), signs, "{case} asked Cloud KMS to sign");
    }
    let (status, body) = post(port, &json!({"enrolment": good, "approvals": [alice, bob]}));
    // The same through the CLI: `enrol prepare` takes the signer's gate, `enrol submit --url`
    // sends the approvals beside the file to the service.
    let prepare = ["enrol", "prepare", "--new-signer", NEW_SIGNER, "--replaces", OLD_SIGNER, "--nonce", "5"];
    w.keyrite_gcp(&kms, &prepare).expect(0);
    let digest_file = w.path().join("enrolment.json.digest");
    for name in ["carol", "bob"] {
        keygen::sign_as(&people.dir, name, &digest_file, NAMESPACE);
    }
    let url = format!("http://127.0.0.1:{port}/");
    let submitted = w.keyrite_gcp(&kms, &["enrol", "submit", "--url", &url]);
    let _ = serve.kill();
    let _ = serve.wait();
    submitted.expect(0);
    let written: Value =
        serde_json::from_str(&std::fs::read_to_string(w.path().join("enrolment.json.signature.json")).unwrap())
            .unwrap();
    let typed =
        serde_json::from_str::<Value>(&std::fs::read_to_string(w.path().join("enrolment.json")).unwrap()).unwrap();
    let by_cli = ethers(&["recover", &typed.to_string(), written["signature"].as_str().unwrap()]);
    assert_eq!(by_cli.to_lowercase(), recovery_address.to_lowercase());
    assert_eq!(written["approvers"], json!(["bob@example.com", "carol@example.com"]));
    assert_eq!(status, 200, "{body:#}");
    assert_eq!(kms.signs(), signs + 2);
    assert_eq!(body["digest"], digest.as_str());
    assert_eq!(body["approvers"], json!(["alice@example.com", "bob@example.com"]));
    let recovered = ethers(&["recover", &good.to_string(), body["signature"].as_str().unwrap()]);
    assert_eq!(recovered.to_lowercase(), recovery_address.to_lowercase());

    // The self-test never asks a key only its gate may use to sign: it checks the public key.
    let selftest = w.keyrite_gcp(&kms, &["selftest", "--format", "json"]).expect(0).json();
    let targets: Vec<&str> =
        selftest["signers"][0]["checks"].as_array().unwrap().iter().map(|c| c["target"].as_str().unwrap()).collect();
    assert_eq!(targets, ["public-key"], "{selftest:#}");
    assert_eq!(kms.signs(), signs + 2);

    // A member added out of band beside the gate: security drift, and lint --live names it.
    let mut policy = policy;
    policy.bindings[0].members.push("user:officer@example.com".into());
    client.set_iam_policy().set_resource(RECOVERY_KEY).set_policy(policy).send().await.unwrap();
    let drift = w.keyrite_gcp(&kms, &["drift"]);
    assert_eq!(drift.code, 2, "{}{}", drift.stdout, drift.stderr);
    assert!(drift.stdout.contains("user:officer@example.com"), "{}", drift.stdout);
    let live = w.keyrite_gcp(&kms, &["lint", "--live"]);
    assert!(live.stdout.contains("KR110") && live.stdout.contains("user:officer@example.com"), "{}", live.stdout);
    w.keyrite_gcp(&kms, &["apply", "--auto-approve"]).expect(0);
    let healed = client.get_iam_policy().set_resource(RECOVERY_KEY).send().await.unwrap();
    let members: Vec<&str> = healed.bindings.iter().flat_map(|b| b.members.iter().map(String::as_str)).collect();
    assert_eq!(members, [GATE_ACCOUNT]);
}

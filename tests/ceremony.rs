//! Key ceremonies end to end on the local emulator and the Cloud KMS stand-in: approvals made
//! by the real `ssh-keygen` and by `keyrite approve`, the quorum enforced before any cloud
//! call, proofs of possession, records chained per lineage. Judged by software nobody here
//! wrote: `ssh-keygen -Y verify` for approvals, PyPI securesystemslib for the DSSE envelope,
//! and ethers (npm) for every proof of possession.

use crate::ceremony_core::common as keygen;
use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine;
use common::gcp_kms::GcpKms;
use common::{Emulator, Run, Workdir, repo_root};
use serde_json::Value;

const NS: &str = "keyrite-plan@v1";

fn ssh_keygen(args: &[&str], stdin: Option<&Path>) -> std::process::Output {
    keygen::ssh_keygen(args, &stdin.map(|f| std::fs::read(f).unwrap()).unwrap_or_default())
}

/// Keys of two approvers (ed25519 and ecdsa-p256), an operator and an outsider, made by the
/// real ssh-keygen, and the allowed_signers file naming the approvers.
struct People {
    dir: PathBuf,
}

impl People {
    fn new(work: &Path) -> People {
        let dir = work.join("keys");
        std::fs::create_dir_all(&dir).unwrap();
        for (name, kind) in [("alice", "ed25519"), ("bob", "ecdsa"), ("operator", "ed25519"), ("mallory", "ed25519")] {
            keygen::gen_key(&dir, name, kind, (kind == "ecdsa").then_some("256"), "");
        }
        let signers = format!("# Treasury approvers\n{}", keygen::allowed_signers(&dir, &["alice", "bob"], None));
        std::fs::write(work.join("approvers.allowed_signers"), signers).unwrap();
        People { dir }
    }

    fn key(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }

    /// `ssh-keygen -Y sign` over `file` in `namespace`, renamed to `file.<name>.sig`.
    fn ssh_sign(&self, name: &str, file: &Path, namespace: &str) -> PathBuf {
        keygen::sign_as(&self.dir, name, file, namespace)
    }
}

fn with_ceremony(example: &str) -> Workdir {
    let mut text = std::fs::read_to_string(repo_root().join("manifests").join(example)).unwrap();
    // The Cloud Run endpoint of the GCP example is not deployed here: the self-test signs
    // through Cloud KMS directly.
    if let Some(cut) = text.find("    endpoints:\n      - url: https://treasury-signer-4711") {
        text.truncate(cut);
    }
    Workdir::with_text(&format!(
        "{text}\nceremony:\n  approvers: approvers.allowed_signers\n  threshold: 2\n  records: ceremonies\n"
    ))
}

fn records(w: &Workdir) -> Vec<PathBuf> {
    let mut r: Vec<PathBuf> = std::fs::read_dir(w.path().join("ceremonies"))
        .map(|d| d.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    r.sort();
    r
}

pub(crate) fn statement(record: &Path) -> Value {
    let envelope: Value = serde_json::from_slice(&std::fs::read(record).unwrap()).unwrap();
    let payload = base64::engine::general_purpose::STANDARD.decode(envelope["payload"].as_str().unwrap()).unwrap();
    serde_json::from_slice(&payload).unwrap()
}

/// PyPI securesystemslib verifies the envelope with the operator's Ed25519 key.
pub(crate) fn securesystemslib_accepts(record: &Path, operator_pub: &Path) {
    let key = ssh_key::PublicKey::read_openssh_file(operator_pub).unwrap();
    let keyid = key.fingerprint(ssh_key::HashAlg::Sha256).to_string();
    let raw = hex::encode(key.key_data().ed25519().unwrap().as_ref());
    let keys =
        serde_json::json!({keyid.clone(): {"keytype": "ed25519", "scheme": "ed25519", "keyval": {"public": raw}}});
    let scratch = tempfile::tempdir().unwrap();
    let keys_file = scratch.path().join("keys.json");
    std::fs::write(&keys_file, keys.to_string()).unwrap();
    let python = repo_root().join(".venv/ssl/bin/python");
    assert!(python.exists(), "securesystemslib is not installed: run scripts/install-emulator.sh");
    let out = Command::new(python)
        .arg(repo_root().join("tests/ceremony/ssl_verify.py"))
        .args([record.as_os_str(), keys_file.as_os_str()])
        .arg("1")
        .output()
        .unwrap();
    assert!(out.status.success(), "securesystemslib refused the record: {}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains(&keyid));
}

/// ethers' `verifyMessage` recovers every proof of possession to its recorded address.
fn ethers_recovers_every_proof(record: &Path) {
    let keys = statement(record)["predicate"]["keys"].clone();
    assert!(!keys.as_array().unwrap().is_empty(), "the record proves no key");
    let script = r#"
        const { verifyMessage, getAddress } = require("ethers");
        const keys = JSON.parse(process.argv[1]);
        for (const k of keys) {
            const got = verifyMessage(k.proof.statement, k.proof.signature);
            if (got !== getAddress(k.evm_address)) { console.error(`${k.address}: ${got} != ${k.evm_address}`); process.exit(1); }
            console.log(`${k.address} ${got}`);
        }"#;
    let out =
        Command::new("node").arg("-e").arg(script).arg(keys.to_string()).current_dir(repo_root()).output().unwrap();
    assert!(
        out.status.success(),
        "ethers: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn keyrite_in(w: &Workdir, emu: &Emulator, args: &[&str]) -> Run {
    w.keyrite(emu, args)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_ceremony_needs_its_quorum_and_leaves_a_record_auditors_verify() {
    let emu = Emulator::start();
    let w = with_ceremony("treasury.yaml");
    let people = People::new(w.path());
    let plan = w.path().join("ceremony.plan");
    let op = people.key("operator");

    // A ceremony manifest is only applied from an approved plan.
    let direct = keyrite_in(&w, &emu, &["apply", "--auto-approve"]).expect(1);
    assert!(direct.stderr.contains("this manifest runs ceremonies"), "{}", direct.stderr);
    // The refusal says what to run instead, with this manifest, and each command it names works
    // as written below (plan, approve, apply with --operator-key).
    for command in [
        "keyrite plan -f keyrite.yaml --out ceremony.plan",
        "keyrite approve ceremony.plan --key ",
        "ssh-keygen -Y sign -n keyrite-plan@v1 -f ",
        "keyrite apply ceremony.plan --operator-key ",
    ] {
        assert!(direct.stderr.contains(command), "{command:?} missing: {}", direct.stderr);
    }

    keyrite_in(&w, &emu, &["plan", "--out", "ceremony.plan"]).expect(0);

    // 1 of 2: refused before any cloud call, naming who approved and who is missing.
    people.ssh_sign("alice", &plan, NS);
    let one = keyrite_in(&w, &emu, &["apply", "ceremony.plan", "--operator-key", &op]).expect(1);
    assert!(one.stderr.contains("approved by alice@example.com; missing bob@example.com"), "{}", one.stderr);
    assert!(!w.path().join("keyrite.state.json").exists(), "nothing was applied");

    // Refusals, each named: an outsider's key, a wrong namespace.
    let outsider = people.ssh_sign("mallory", &plan, NS);
    let refused = keyrite_in(&w, &emu, &["apply", "ceremony.plan", "--operator-key", &op]).expect(1);
    assert!(refused.stderr.contains("mallory.sig: signing key SHA256:"), "{}", refused.stderr);
    assert!(refused.stderr.contains("is not in the allowed signers"), "{}", refused.stderr);
    std::fs::remove_file(outsider).unwrap();
    let wrong_ns = people.ssh_sign("bob", &plan, "file");
    let refused = keyrite_in(&w, &emu, &["apply", "ceremony.plan", "--operator-key", &op]).expect(1);
    assert!(refused.stderr.contains("namespace \"file\", expected \"keyrite-plan@v1\""), "{}", refused.stderr);
    std::fs::remove_file(wrong_ns).unwrap();

    // Bob approves with keyrite; OpenSSH itself accepts that approval.
    let approve = w.keyrite(&emu, &["approve", "ceremony.plan", "--key", &people.key("bob"), "--yes"]).expect(0);
    assert!(approve.stdout.contains("SHA-256:"), "{}", approve.stdout);
    assert!(approve.stdout.contains("As words"), "{}", approve.stdout);
    let bob_sig = w.path().join("ceremony.plan.bob@example.com.sig");
    let verify = ssh_keygen(
        &[
            "-Y",
            "verify",
            "-f",
            w.path().join("approvers.allowed_signers").to_str().unwrap(),
            "-I",
            "bob@example.com",
            "-n",
            NS,
            "-s",
            bob_sig.to_str().unwrap(),
        ],
        Some(&plan),
    );
    assert!(verify.status.success(), "ssh-keygen -Y verify: {}", String::from_utf8_lossy(&verify.stderr));
    // Alice approves a second time: one principal counts once.
    w.keyrite(&emu, &["approve", "ceremony.plan", "--key", &people.key("alice"), "--yes"]).expect(0);

    // As in most CI containers: no $USER or $LOGNAME, and no CI identity either.
    let output = Command::new(env!("CARGO_BIN_EXE_keyrite"))
        .args(["apply", "ceremony.plan", "--operator-key", &op])
        .current_dir(w.path())
        .envs(emu.env())
        .env_remove("AWS_PROFILE")
        .env_remove("USER")
        .env_remove("LOGNAME")
        .env_remove("GITHUB_ACTOR")
        .env_remove("GITLAB_USER_LOGIN")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let applied = Run::from(output).expect(0);
    assert!(
        applied.stdout.contains("Approvals: 2 of 2 required (alice@example.com, bob@example.com)"),
        "{}",
        applied.stdout
    );
    assert!(applied.stdout.contains("each principal counts once"), "{}", applied.stdout);
    assert!(applied.stdout.contains("Ceremony record #1 written"), "{}", applied.stdout);
    let first = records(&w);
    assert_eq!(first.len(), 1);
    let record = &first[0];

    // The record, checked offline by keyrite and by independent verifiers.
    let verified = w
        .keyrite(
            &emu,
            &[
                "ceremony",
                "verify",
                record.to_str().unwrap(),
                "--chain",
                "ceremonies",
                "--manifest",
                "keyrite.yaml",
                "--plan",
                "ceremony.plan",
            ],
        )
        .expect(0);
    assert!(verified.stdout.contains("approvals: 2 distinct principal(s) of threshold 2"), "{}", verified.stdout);
    assert!(verified.stdout.contains("treasury_key: proof of possession recovers to 0x"), "{}", verified.stdout);
    securesystemslib_accepts(record, &people.dir.join("operator.pub"));
    ethers_recovers_every_proof(record);
    let s = statement(record);
    // operator.user came from the user database, as `id -un` reads it, not `unknown`.
    let id = Command::new("id").arg("-un").output().unwrap();
    assert!(id.status.success(), "id -un: {}", String::from_utf8_lossy(&id.stderr));
    assert_eq!(s["predicate"]["operator"]["user"], String::from_utf8_lossy(&id.stdout).trim(), "{}", s["predicate"]);
    let key = &s["predicate"]["keys"][0];
    assert_eq!(key["cloud"]["key_spec"], "ECC_SECG_P256K1");
    assert_eq!(key["cloud"]["origin"], "AWS_KMS");
    assert_eq!(
        key["evm_address"],
        w.keyrite(&emu, &["addresses", "--format", "json"]).expect(0).json()["keys"][0]["evm_address"]
    );
    assert!(s["predicate"]["operator"]["aws"].as_str().unwrap().starts_with("arn:aws:"));
    let live = w.keyrite(&emu, &["ceremony", "verify", record.to_str().unwrap(), "--live"]).expect(0);
    assert!(
        live.stdout.contains("live: treasury_key exists, is enabled, and has the recorded public key"),
        "{}",
        live.stdout
    );
    let shown = w.keyrite(&emu, &["ceremony", "show", record.to_str().unwrap()]).expect(0);
    assert!(shown.stdout.contains("approved   by alice@example.com, bob@example.com"), "{}", shown.stdout);
    for secret in ["PRIVATE KEY", "AWS_SECRET", "test\""] {
        assert!(!std::fs::read_to_string(record).unwrap().contains(secret), "the record holds {secret:?}");
    }

    // Tampering is caught and named.
    let tampered_plan = w.path().join("tampered.plan");
    let mut bytes = std::fs::read(&plan).unwrap();
    bytes[10] ^= 1;
    std::fs::write(&tampered_plan, bytes).unwrap();
    let bad = w.keyrite(&emu, &["ceremony", "verify", record.to_str().unwrap(), "--plan", "tampered.plan"]).expect(1);
    assert!(bad.stdout.contains("the plan file given has SHA-256"), "{}", bad.stdout);
    let mut envelope: Value = serde_json::from_slice(&std::fs::read(record).unwrap()).unwrap();
    let edited = {
        let mut st = s.clone();
        st["predicate"]["keys"][0]["evm_address"] = "0x0000000000000000000000000000000000000001".into();
        base64::engine::general_purpose::STANDARD.encode(st.to_string())
    };
    let original_payload = envelope["payload"].clone();
    envelope["payload"] = edited.into();
    std::fs::write(w.path().join("edited.json"), envelope.to_string()).unwrap();
    let bad = w.keyrite(&emu, &["ceremony", "verify", "edited.json"]).expect(1);
    assert!(bad.stdout.contains("does not verify with that key"), "{}", bad.stdout);
    envelope["payload"] = original_payload;
    envelope["signatures"] = serde_json::json!([]);
    std::fs::write(w.path().join("unsigned.json"), envelope.to_string()).unwrap();
    let bad = w.keyrite(&emu, &["ceremony", "verify", "unsigned.json"]).expect(1);
    assert!(bad.stdout.contains("the envelope carries no signature"), "{}", bad.stdout);
    std::fs::write(w.path().join("not-dsse.json"), "{\"hello\": \"world\"}").unwrap();
    let bad = w.keyrite(&emu, &["ceremony", "verify", "not-dsse.json"]).expect(1);
    assert!(bad.stdout.contains("not a DSSE envelope"), "{}", bad.stdout);

    // A witness countersigns; the chain still holds. A passphrase-protected key with no
    // terminal to ask on is a clear error.
    let locked = people.dir.join("locked");
    assert!(
        ssh_keygen(&["-q", "-N", "secret", "-t", "ed25519", "-f", locked.to_str().unwrap()], None).status.success()
    );
    let no_tty =
        w.keyrite(&emu, &["ceremony", "sign", record.to_str().unwrap(), "--key", locked.to_str().unwrap()]).expect(1);
    assert!(
        no_tty.stderr.contains("is encrypted and there is no terminal to ask for its passphrase"),
        "{}",
        no_tty.stderr
    );
    w.keyrite(&emu, &["ceremony", "sign", record.to_str().unwrap(), "--key", &people.key("alice")]).expect(0);
    let countersigned = w.keyrite(&emu, &["ceremony", "verify", record.to_str().unwrap()]).expect(0);
    assert!(countersigned.stdout.contains("2 envelope signature(s) verify"), "{}", countersigned.stdout);
    // Without --trusted-keys, the output says the record is not pinned.
    assert!(countersigned.stdout.contains("! not pinned: the operator's key is the one the record names"));

    // A witness whose key the record does not name (mallory is no approver): the rest is
    // checked, the witness is reported as not checked, and verify passes; --require-witness
    // fails until the witness's key is trusted.
    let rec = record.to_str().unwrap();
    w.keyrite(&emu, &["ceremony", "sign", rec, "--key", &people.key("mallory")]).expect(0);
    let witnessed = w.keyrite(&emu, &["ceremony", "verify", rec]).expect(0);
    assert!(witnessed.stdout.contains("present, not checked: key not trusted"), "{}", witnessed.stdout);
    assert!(witnessed.stdout.contains("approvals: 2 distinct principal(s)"), "{}", witnessed.stdout);
    let required = w.keyrite(&emu, &["ceremony", "verify", rec, "--require-witness"]).expect(1);
    assert!(required.stdout.contains("--require-witness: the witness signature with keyid"), "{}", required.stdout);
    let public = |name: &str| std::fs::read_to_string(people.dir.join(format!("{name}.pub"))).unwrap();
    let pinned = format!("operator {}witness {}", public("operator"), public("mallory"));
    std::fs::write(w.path().join("trusted.allowed_signers"), pinned).unwrap();
    let trusted = w
        .keyrite(&emu, &["ceremony", "verify", rec, "--require-witness", "--trusted-keys", "trusted.allowed_signers"])
        .expect(0);
    assert!(trusted.stdout.contains("3 envelope signature(s) verify"), "{}", trusted.stdout);
    assert!(!trusted.stdout.contains("not checked") && !trusted.stdout.contains("not pinned"), "{}", trusted.stdout);
    // --format json says whether the operator's key was pinned, and what was not checked.
    let json = w.keyrite(&emu, &["ceremony", "verify", rec, "--format", "json"]).expect(0).json();
    assert_eq!((json["verified"].as_bool(), json["trusted"].as_bool()), (Some(true), Some(false)), "{json}");
    assert!(json["warnings"][0].as_str().unwrap().starts_with("not pinned"), "{json}");
    assert_eq!(json["witnesses_not_checked"].as_array().unwrap().len(), 1, "{json}");
    let json = w
        .keyrite(&emu, &["ceremony", "verify", rec, "--format", "json", "--trusted-keys", "trusted.allowed_signers"])
        .expect(0)
        .json();
    assert_eq!(json["trusted"], true, "{json}");
    assert!(json["warnings"].as_array().unwrap().is_empty() && json["failure"].is_null(), "{json}");
    // A trusted witness key that is not the one that signed fails.
    let wrong = format!("operator {}witness {}", public("operator"), public("bob"));
    std::fs::write(w.path().join("wrong.allowed_signers"), wrong).unwrap();
    w.keyrite(&emu, &["ceremony", "verify", rec, "--require-witness", "--trusted-keys", "wrong.allowed_signers"])
        .expect(1);

    // The second ceremony of the lineage: a changed manifest, a new plan, the old approvals
    // do not carry over.
    let text = std::fs::read_to_string(&w.manifest).unwrap().replace("purpose: evm-signing", "purpose: evm-signing-v2");
    std::fs::write(&w.manifest, text).unwrap();
    keyrite_in(&w, &emu, &["plan", "--out", "second.plan"]).expect(0);
    let second = w.path().join("second.plan");
    std::fs::copy(w.path().join("ceremony.plan.alice.sig"), w.path().join("second.plan.alice.sig")).unwrap();
    let refused = keyrite_in(&w, &emu, &["apply", "second.plan", "--operator-key", &op]).expect(1);
    assert!(refused.stderr.contains("does not verify over this message"), "{}", refused.stderr);
    std::fs::remove_file(w.path().join("second.plan.alice.sig")).unwrap();
    people.ssh_sign("alice", &second, NS);
    people.ssh_sign("bob", &second, NS);
    let applied = keyrite_in(&w, &emu, &["apply", "second.plan", "--operator-key", &op]).expect(0);
    assert!(applied.stdout.contains("Ceremony record #2 written"), "{}", applied.stdout);
    let both = records(&w);
    assert_eq!(both.len(), 2);
    let chained =
        w.keyrite(&emu, &["ceremony", "verify", both[1].to_str().unwrap(), "--chain", "ceremonies"]).expect(0);
    assert!(chained.stdout.contains("chain of 2 record(s)"), "{}", chained.stdout);
    assert_eq!(statement(&both[1])["predicate"]["previous"]["record_id"], s["predicate"]["record_id"]);

    // A gap in the chain is named.
    std::fs::rename(&both[0], w.path().join("first-record.json")).unwrap();
    let gap = w.keyrite(&emu, &["ceremony", "verify", both[1].to_str().unwrap(), "--chain", "ceremonies"]).expect(1);
    assert!(gap.stdout.contains("chain gap: expected record 1"), "{}", gap.stdout);

    // The state now takes only ceremony plans.
    let plain = with_text_like(&w);
    keyrite_in(&plain, &emu, &["plan", "--out", "plain.plan"]).expect(0);
    let refused = keyrite_in(&plain, &emu, &["apply", "plain.plan"]).expect(1);
    assert!(refused.stderr.contains("this state's changes are made in ceremonies"), "{}", refused.stderr);
}

/// A manifest without `ceremony:` on the same state file.
fn with_text_like(w: &Workdir) -> Workdir {
    let text = std::fs::read_to_string(&w.manifest).unwrap();
    let cut = text.find("\nceremony:").unwrap();
    let state = w.path().join("keyrite.state.json");
    Workdir::with_text(&format!("{}\nstate:\n  local:\n    path: {}\n", &text[..cut], state.display()))
}

#[test]
fn a_malformed_approvers_file_is_a_manifest_error_at_its_line_and_column() {
    let w = Workdir::with_text(
        "version: 1\nresources:\n  k:\n    type: aws_kms_key\nceremony:\n  approvers: approvers.allowed_signers\n  threshold: 1\n",
    );
    std::fs::write(w.path().join("approvers.allowed_signers"), "alice@example.com ssh-foo AAAA\nbob@example.com\n")
        .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_keyrite")).args(["validate"]).current_dir(w.path()).output().unwrap();
    let run = Run::from(out).expect(1);
    assert!(run.stderr.contains("approvers.allowed_signers:1:19"), "{}", run.stderr);
    assert!(run.stderr.contains("unknown key type \"ssh-foo\""), "{}", run.stderr);
    assert!(run.stderr.contains("approvers.allowed_signers:2:"), "{}", run.stderr);
}

#[test]
fn the_same_ceremony_on_cloud_kms() {
    let kms = GcpKms::start();
    let w = with_ceremony("gcp-treasury.yaml");
    let people = People::new(w.path());
    w.keyrite_gcp(&kms, &["plan", "--out", "ceremony.plan"]).expect(0);
    for who in ["alice", "bob"] {
        w.keyrite_gcp(&kms, &["approve", "ceremony.plan", "--key", &people.key(who), "--yes"]).expect(0);
    }
    let applied = w.keyrite_gcp(&kms, &["apply", "ceremony.plan", "--operator-key", &people.key("operator")]).expect(0);
    assert!(applied.stdout.contains("Ceremony record #1 written"), "{}", applied.stdout);
    let record = records(&w).remove(0);
    w.keyrite_gcp(&kms, &["ceremony", "verify", record.to_str().unwrap(), "--chain", "ceremonies", "--live"]).expect(0);
    securesystemslib_accepts(&record, &people.dir.join("operator.pub"));
    ethers_recovers_every_proof(&record);
    let s = statement(&record);
    let key = &s["predicate"]["keys"][0];
    assert_eq!(key["cloud"]["protection_level"], "HSM");
    assert_eq!(key["cloud"]["algorithm"], "EC_SIGN_SECP256K1_SHA256");
    assert!(key["id"].as_str().unwrap().ends_with("/cryptoKeyVersions/1"), "{key:#}");
    assert!(s["predicate"]["operator"]["gcp"].as_str().unwrap().starts_with("serviceAccount:"));
}

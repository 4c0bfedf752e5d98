//! `keyrite rotate` on the emulator, end to end, with `manifests/rotation.yaml`: a treasury
//! signer whose key is rotated in three recorded steps.
//!
//! - Plan approvers (real `ssh-keygen` keys) approve the first apply and the rotation plan;
//!   the rotation's apply is killed with SIGKILL while KMS holds the answer to `CreateKey`,
//!   and the re-run continues it: one new key, never two (counted by their tags with the SDK).
//!   That continuation is killed in turn after every change, during the new key's proof of
//!   possession, and the next one, with nothing left to change, writes the record.
//! - The old key stays enabled and signs until `--finish`; the endpoint signs for the new
//!   address; plan and drift are clean.
//! - The gate's approvers approve the enrolment's digest (ethers computes it from the typed
//!   data keyrite wrote) with `ssh-keygen -Y sign`; the recovery key signs it through the
//!   quorum gate, and ethers recovers the recovery key's address from the record.
//! - `--finish` is refused before the enrolment and during the grace period, then disables
//!   the old key, which KMS then refuses to sign with.
//! - Every record verifies with `ceremony verify --chain`, and with securesystemslib; a
//!   re-signed record whose enrolment, rotation or signature was edited does not.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::ceremony::{securesystemslib_accepts, statement};
use crate::ceremony_core::common as keygen;
use crate::common::fault_proxy::{FaultProxy, Faults};
use crate::common::{self, Emulator, Run, Workdir, repo_root};

const PLAN_NS: &str = "keyrite-plan@v1";
const ENROL_NS: &str = "keyrite-enrolment@v1";
/// Long enough for the enrolment to come before its end, short enough to wait for.
const GRACE_SECONDS: u64 = 45;
/// Just past the grace period: the new key is due for its own rotation by the test's end.
const EVERY_SECONDS: u64 = 50;

struct People {
    dir: PathBuf,
}

impl People {
    fn new(work: &Path) -> People {
        let dir = work.join("keys");
        std::fs::create_dir_all(&dir).unwrap();
        for (name, kind) in [
            ("alice", "ed25519"),
            ("bob", "ecdsa"),
            ("carol", "ed25519"),
            ("dave", "ed25519"),
            ("erin", "ecdsa"),
            ("frank", "ed25519"),
            ("operator", "ed25519"),
        ] {
            keygen::gen_key(&dir, name, kind, (kind == "ecdsa").then_some("256"), "");
        }
        People { dir }
    }

    fn key(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }

    fn allowed_signers(&self, names: &[&str], namespace: &str) -> String {
        keygen::allowed_signers(&self.dir, names, Some(namespace))
    }

    fn sign(&self, name: &str, file: &Path, namespace: &str) {
        keygen::sign_as(&self.dir, name, file, namespace);
    }
}

/// The example, with a grace period the test can wait out and records in `ceremonies/`.
fn manifest() -> String {
    let text = std::fs::read_to_string(repo_root().join("manifests/rotation.yaml")).unwrap();
    let grace = "      grace: 7d ";
    assert!(text.contains(grace));
    let every = "      every: 90d ";
    assert!(text.contains(every));
    text.replacen(grace, &format!("      grace: {GRACE_SECONDS}s "), 1)
        .replacen(every, &format!("      every: {EVERY_SECONDS}s "), 1)
        .replacen("  threshold: 2\n\nresources:", "  threshold: 2\n  records: ceremonies\n\nresources:", 1)
}

fn command(w: &Workdir, endpoint: &str, emu: &Emulator, args: &[&str]) -> Command {
    let mut c = w.command(endpoint, args);
    c.env("KEYRITE_RUST_SIGNER", common::signer_bootstrap())
        .env("KEYRITE_VIA_EMULATOR", &emu.endpoint)
        .stdin(Stdio::null());
    c
}

fn keyrite(w: &Workdir, emu: &Emulator, args: &[&str]) -> Run {
    Run::from(command(w, &emu.endpoint, emu, args).output().unwrap())
}

fn ethers_hash(typed: &str) -> String {
    node(&[repo_root().join("tests/gate/eip712.mjs").to_str().unwrap(), "hash", typed])
}

fn node(args: &[&str]) -> String {
    let out = Command::new("node").args(args).current_dir(repo_root()).output().expect("node runs");
    assert!(out.status.success(), "node {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn records(w: &Workdir) -> Vec<PathBuf> {
    let mut r: Vec<PathBuf> =
        std::fs::read_dir(w.path().join("ceremonies")).unwrap().map(|e| e.unwrap().path()).collect();
    r.sort();
    r
}

/// The keys in the account that carry `treasury_key`'s ownership tags, with their states.
fn treasury_keys(rt: &tokio::runtime::Runtime, kms: &aws_sdk_kms::Client) -> Vec<(String, String)> {
    let mut found = Vec::new();
    let keys = rt.block_on(kms.list_keys().send()).unwrap();
    for k in keys.keys() {
        let id = k.key_id().unwrap();
        let tags = rt.block_on(kms.list_resource_tags().key_id(id).send()).unwrap();
        if tags.tags().iter().any(|t| t.tag_key() == "keyrite:address" && t.tag_value() == "treasury_key") {
            let meta = rt.block_on(kms.describe_key().key_id(id).send()).unwrap();
            found.push((id.to_owned(), meta.key_metadata().unwrap().key_state().unwrap().as_str().to_owned()));
        }
    }
    found.sort();
    found
}

fn kms_signs(rt: &tokio::runtime::Runtime, kms: &aws_sdk_kms::Client, key: &str) -> Result<(), String> {
    rt.block_on(
        kms.sign()
            .key_id(key)
            .message(aws_sdk_kms::primitives::Blob::new([7u8; 32]))
            .message_type(aws_sdk_kms::types::MessageType::Digest)
            .signing_algorithm(aws_sdk_kms::types::SigningAlgorithmSpec::EcdsaSha256)
            .send(),
    )
    .map(|_| ())
    .map_err(|e| aws_sdk_kms::error::DisplayErrorContext(e).to_string())
}

/// A change to a record's statement.
type Edit = Box<dyn FnOnce(&mut Value)>;

/// Runs keyrite through `proxy`, and kills it with SIGKILL once `operation` has been
/// forwarded (and its answer, slowed by the proxy, has not come back).
fn kill_during(w: &Workdir, proxy: &FaultProxy, emu: &Emulator, args: &[&str], operation: &str) {
    let mut child = command(w, &proxy.endpoint, emu, args).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while !proxy.counts.operations().iter().any(|o| o == operation) {
        assert!(child.try_wait().unwrap().is_none(), "keyrite {args:?} ended before {operation}");
        assert!(Instant::now() < deadline, "no {operation} in 120 s");
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(500));
    child.kill().unwrap();
    child.wait().unwrap();
}

/// Re-signs `record` as the operator after `edit`, so that only the content checks can fail.
fn edited(record: &Path, people: &People, out: &Path, edit: impl FnOnce(&mut Value)) {
    let mut s = statement(record);
    edit(&mut s);
    let key = ssh_key::PrivateKey::read_openssh_file(&people.dir.join("operator")).unwrap();
    let mut envelope = keyrite_core::ceremony::dsse::Envelope::new(
        keyrite_core::ceremony::dsse::IN_TOTO_PAYLOAD_TYPE,
        &serde_json::to_vec(&s).unwrap(),
    );
    envelope.sign(&key).unwrap();
    std::fs::write(out, envelope.to_json()).unwrap();
}

#[test]
fn a_rotation_makes_one_new_key_enrols_it_through_the_quorum_and_disables_the_old_key_after_its_grace() {
    let emu = Emulator::start();
    let w = Workdir::with_text(&manifest());
    let people = People::new(w.path());
    std::fs::write(
        w.path().join("rotation-approvers.allowed_signers"),
        people.allowed_signers(&["alice", "bob", "carol"], PLAN_NS),
    )
    .unwrap();
    std::fs::write(
        w.path().join("recovery-approvers.allowed_signers"),
        people.allowed_signers(&["dave", "erin", "frank"], ENROL_NS),
    )
    .unwrap();
    let op = people.key("operator");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let kms = rt.block_on(emu.kms());

    // Rotation needs the first apply: a ceremony like any other.
    let before = keyrite(&w, &emu, &["rotate", "treasury", "--out", "rotation.plan"]).expect(1);
    assert!(before.stderr.contains("apply the manifest before rotating"), "{}", before.stderr);
    keyrite(&w, &emu, &["plan", "--out", "first.plan"]).expect(0);
    people.sign("alice", &w.path().join("first.plan"), PLAN_NS);
    people.sign("bob", &w.path().join("first.plan"), PLAN_NS);
    keyrite(&w, &emu, &["apply", "first.plan", "--operator-key", &op]).expect(0);
    let old_id = w.id("treasury_key");
    let address_of = |w: &Workdir| {
        let keys = keyrite(w, &emu, &["addresses", "--format", "json"]).expect(0).json();
        let k = keys["keys"].as_array().unwrap().iter().find(|k| k["address"] == "treasury_key").cloned().unwrap();
        k["evm_address"].as_str().unwrap().to_owned()
    };
    let old_address = address_of(&w);
    // Nobody but its gate may sign with the recovery key, so the ceremony asks for no proof of
    // possession from it, and says why.
    let first = statement(&records(&w)[0]);
    let recovery =
        first["predicate"]["keys"].as_array().unwrap().iter().find(|k| k["address"] == "recovery_key").cloned();
    let recovery = recovery.expect("the first record names the recovery key");
    assert!(recovery.get("proof").is_none(), "{recovery:#}");
    assert_eq!(recovery["gate"], "keyrite-rotating-treasury-gate");

    // The rotation plan: a new key, the role, alias and endpoint moved to it.
    let planned = keyrite(&w, &emu, &["rotate", "treasury", "--out", "rotation.plan"]).expect(0);
    for text in [
        "Rotation of signer treasury (treasury_key): generation 2 replaces key",
        &old_address,
        "NEW KEY WITH A NEW ADDRESS",
        "stays enabled, and signs, until `keyrite rotate treasury --finish`",
        "keyrite approve rotation.plan",
    ] {
        assert!(planned.stdout.contains(text), "{text:?} missing:\n{}", planned.stdout);
    }
    // Unapproved, it is not applied.
    let unapproved = keyrite(&w, &emu, &["apply", "rotation.plan", "--operator-key", &op]).expect(1);
    assert!(unapproved.stderr.contains("needs approvals from 2 distinct approvers"), "{}", unapproved.stderr);
    people.sign("alice", &w.path().join("rotation.plan"), PLAN_NS);
    people.sign("carol", &w.path().join("rotation.plan"), PLAN_NS);

    // SIGKILL while KMS holds its answer to CreateKey: the key exists, the state does not say so.
    let proxy = FaultProxy::start(&emu.endpoint, Faults { slow: Some(("CreateKey", 4000)), ..Faults::default() }, 9);
    kill_during(&w, &proxy, &emu, &["apply", "rotation.plan", "--operator-key", &op], "CreateKey");
    assert_eq!(treasury_keys(&rt, &kms).len(), 2, "the killed apply made the new key");
    assert!(w.state()["resources"].get("treasury_key").is_none());
    let stuck = keyrite(&w, &emu, &["plan"]).expect(1);
    assert!(stuck.stdout.contains("was interrupted before its new key was recorded"), "{}", stuck.stdout);

    // The re-run continues the rotation: the new key is adopted, never made twice.
    let again = keyrite(&w, &emu, &["rotate", "treasury", "--out", "continue.plan"]).expect(0);
    assert!(again.stdout.contains("continues the rotation an interrupted apply started"), "{}", again.stdout);
    assert!(again.stdout.contains("adopted, not created again"), "{}", again.stdout);
    people.sign("bob", &w.path().join("continue.plan"), PLAN_NS);
    people.sign("carol", &w.path().join("continue.plan"), PLAN_NS);
    // Killed again once every change is made, while KMS holds its answer to the new key's
    // proof of possession: all is applied, nothing is recorded.
    let proxy = FaultProxy::start(&emu.endpoint, Faults { slow: Some(("Sign", 4000)), ..Faults::default() }, 10);
    kill_during(&w, &proxy, &emu, &["apply", "continue.plan", "--operator-key", &op], "Sign");
    assert_eq!(records(&w).len(), 1);
    assert!(w.state()["resources"].get("treasury_key").is_some());
    assert_eq!(w.state()["rotations"][0]["phase"], "applying");
    // The continuation has nothing left to change, and its apply writes the record.
    let resume = keyrite(&w, &emu, &["rotate", "treasury", "--out", "resume.plan"]).expect(0);
    assert!(
        resume.stdout.contains("No changes") && resume.stdout.contains("continues the rotation"),
        "{}",
        resume.stdout
    );
    people.sign("alice", &w.path().join("resume.plan"), PLAN_NS);
    people.sign("carol", &w.path().join("resume.plan"), PLAN_NS);
    let applied = keyrite(&w, &emu, &["apply", "resume.plan", "--operator-key", &op]).expect(0);
    assert!(applied.stdout.contains("Ceremony record #2 written"), "{}", applied.stdout);
    assert!(applied.stdout.contains("ssh-keygen -Y sign -n keyrite-enrolment@v1"), "{}", applied.stdout);
    let keys = treasury_keys(&rt, &kms);
    assert_eq!(keys.len(), 2, "one new key, never two: {keys:?}");
    assert!(keys.iter().all(|(_, state)| state == "Enabled"), "{keys:?}");
    let new_id = w.id("treasury_key");
    assert_ne!(new_id, old_id);
    let new_address = address_of(&w);
    assert_ne!(new_address, old_address);
    // The old key still signs; the endpoint signs for the new address; nothing else is pending.
    kms_signs(&rt, &kms, &old_id).unwrap();
    let selftest = keyrite(&w, &emu, &["selftest", "--format", "json", "--timeout", "30"]).expect(0).json();
    assert!(selftest.to_string().contains(&new_address), "{selftest:#}");
    // The recovery key is never asked to sign directly: its gate is asked to sign a raw digest,
    // and refuses.
    let signers = selftest["signers"].as_array().unwrap();
    let recovery = signers.iter().find(|s| s["signer"] == "recovery").unwrap();
    let targets: Vec<&str> =
        recovery["checks"].as_array().unwrap().iter().map(|c| c["target"].as_str().unwrap()).collect();
    assert_eq!(targets, ["public-key", "gate keyrite-rotating-treasury-gate"], "{recovery:#}");
    keyrite(&w, &emu, &["plan", "--detailed-exitcode"]).expect(0);
    keyrite(&w, &emu, &["drift"]).expect(0);
    let finish_early = keyrite(&w, &emu, &["rotate", "treasury", "--finish", "--operator-key", &op]).expect(1);
    assert!(finish_early.stderr.contains("only once the new one is enrolled"), "{}", finish_early.stderr);

    // The enrolment keyrite wrote is the typed data ethers hashes to the digest beside it.
    let file = w.path().join("resume.plan.enrolment.json");
    let typed = std::fs::read_to_string(&file).unwrap();
    let digest = ethers_hash(&typed);
    let digest_file = w.path().join("resume.plan.enrolment.json.digest");
    assert_eq!(std::fs::read(&digest_file).unwrap(), hex::decode(&digest[2..]).unwrap());
    let message = &serde_json::from_str::<Value>(&typed).unwrap()["message"];
    assert_eq!(message["newSigner"].as_str().unwrap().to_lowercase(), new_address.to_lowercase());
    assert_eq!(message["replaces"].as_str().unwrap().to_lowercase(), old_address.to_lowercase());
    // One gate approver is not enough, and nothing is sent.
    people.sign("dave", &digest_file, ENROL_NS);
    let enrol = ["rotate", "treasury", "--enrol", "resume.plan.enrolment.json", "--operator-key", &op];
    let alone = keyrite(&w, &emu, &enrol).expect(1);
    assert!(alone.stderr.contains("1 of the 2 approvals needed") && alone.stderr.contains("nothing was sent"));
    people.sign("erin", &digest_file, ENROL_NS);
    let enrolled = keyrite(&w, &emu, &enrol).expect(0);
    assert!(enrolled.stdout.contains("Ceremony record #3 written"), "{}", enrolled.stdout);

    let all = records(&w);
    assert_eq!(all.len(), 3, "{all:?}");
    let e = statement(&all[2])["predicate"]["enrolment"].clone();
    let recovered = node(&[
        repo_root().join("tests/gate/eip712.mjs").to_str().unwrap(),
        "recover",
        &e["typed_data"].to_string(),
        e["signature"].as_str().unwrap(),
    ]);
    let recovery_address = {
        let keys = keyrite(&w, &emu, &["addresses", "--format", "json"]).expect(0).json();
        let k = keys["keys"].as_array().unwrap().iter().find(|k| k["address"] == "recovery_key").cloned().unwrap();
        k["evm_address"].as_str().unwrap().to_owned()
    };
    assert_eq!(recovered.to_lowercase(), recovery_address.to_lowercase());
    assert_eq!(e["recovery_address"], recovery_address.as_str());

    // The grace period: the old key keeps signing until it is over.
    let state = w.state();
    let grace_until = state["rotations"][0]["grace_until"].as_str().unwrap().to_owned();
    let during = keyrite(&w, &emu, &["rotate", "treasury", "--finish", "--operator-key", &op]).expect(1);
    assert!(during.stderr.contains("is in its grace period until"), "{}", during.stderr);
    kms_signs(&rt, &kms, &old_id).unwrap();
    let left = || keyrite_core::rotation::seconds_between(&keyrite_core::state::now(), &grace_until).unwrap();
    while left() >= 0 {
        std::thread::sleep(Duration::from_millis(500));
    }
    let finished = keyrite(&w, &emu, &["rotate", "treasury", "--finish", "--operator-key", &op]).expect(0);
    assert!(finished.stdout.contains("Ceremony record #4 written"), "{}", finished.stdout);
    let states: Vec<(String, String)> = treasury_keys(&rt, &kms);
    assert!(states.contains(&(old_id.clone(), "Disabled".into())), "{states:?}");
    assert!(states.contains(&(new_id.clone(), "Enabled".into())), "{states:?}");
    let refused = kms_signs(&rt, &kms, &old_id).unwrap_err();
    assert!(refused.contains("Disabled"), "{refused}");
    kms_signs(&rt, &kms, &new_id).unwrap();
    keyrite(&w, &emu, &["plan", "--detailed-exitcode"]).expect(0);

    // Every record verifies offline, chained, and by securesystemslib.
    let all = records(&w);
    assert_eq!(all.len(), 4);
    let expect = [
        "",
        "rotation: treasury_key generation 2 is the new key",
        "enrolment: the recovery key",
        "rotation: the old key",
    ];
    for (record, text) in all.iter().zip(expect) {
        let v = keyrite(&w, &emu, &["ceremony", "verify", record.to_str().unwrap(), "--chain", "ceremonies"]).expect(0);
        assert!(v.stdout.contains(text) && v.stdout.contains("chain of"), "{text:?}:\n{}", v.stdout);
        securesystemslib_accepts(record, &people.dir.join("operator.pub"));
    }
    let v = keyrite(&w, &emu, &["ceremony", "verify", all[2].to_str().unwrap()]).expect(0);
    assert!(v.stdout.contains("enrolment: 2 of threshold 2 gate approvers"), "{}", v.stdout);

    // Edited and re-signed by the operator: the envelope verifies, the content does not.
    let out = w.path().join("edited.json");
    let cases: Vec<(&str, Edit, &str)> = vec![
        (
            "another new signer in the enrolment",
            Box::new(|s| {
                s["predicate"]["enrolment"]["typed_data"]["message"]["newSigner"] =
                    "0x3333333333333333333333333333333333333333".into()
            }),
            "is not the typed data's EIP-712 digest",
        ),
        (
            "another signature",
            Box::new(|s| {
                let sig = s["predicate"]["enrolment"]["signature"].as_str().unwrap().to_owned();
                let flipped = if sig.ends_with('b') { "1c" } else { "1b" };
                s["predicate"]["enrolment"]["signature"] = format!("{}{flipped}", &sig[..sig.len() - 2]).into();
            }),
            "is not the recovery key's",
        ),
        (
            "another rotation target",
            Box::new(|s| {
                s["predicate"]["rotation"]["new"]["evm_address"] = "0x3333333333333333333333333333333333333333".into()
            }),
            "but the rotation is from",
        ),
        (
            "a lower threshold",
            Box::new(|s| s["predicate"]["enrolment"]["threshold"] = 1.into()),
            "is not the one the record names",
        ),
        (
            "an approval dropped",
            Box::new(|s| {
                s["predicate"]["enrolment"]["approvals"].as_array_mut().unwrap().pop();
            }),
            "1 of the 2 approvals the gate needs",
        ),
    ];
    for (case, edit, reason) in cases {
        edited(&all[2], &people, &out, edit);
        let bad = keyrite(&w, &emu, &["ceremony", "verify", "edited.json"]).expect(1);
        assert!(bad.stdout.contains(reason), "{case}: {}", bad.stdout);
    }
    // Not re-signed: the envelope itself fails.
    let mut envelope: Value = serde_json::from_slice(&std::fs::read(&all[1]).unwrap()).unwrap();
    let mut s = statement(&all[1]);
    s["predicate"]["rotation"]["grace_until"] = "2099-01-01T00:00:00Z".into();
    use base64::Engine;
    envelope["payload"] = base64::engine::general_purpose::STANDARD.encode(s.to_string()).into();
    std::fs::write(&out, envelope.to_string()).unwrap();
    let bad = keyrite(&w, &emu, &["ceremony", "verify", "edited.json"]).expect(1);
    assert!(bad.stdout.contains("does not verify with that key"), "{}", bad.stdout);

    // The new key's own rotation comes due once it is older than `every`: lint --live warns,
    // and the plan says so.
    let rotated_at = w.state()["rotations"][0]["rotated_at"].as_str().unwrap().to_owned();
    let age = || keyrite_core::rotation::seconds_between(&rotated_at, &keyrite_core::state::now()).unwrap();
    while age() <= EVERY_SECONDS as i64 + 1 {
        std::thread::sleep(Duration::from_millis(500));
    }
    let live = keyrite(&w, &emu, &["lint", "--live", "--format", "json"]);
    assert!(
        live.stdout.contains("KR112") && live.stdout.contains("a rotation of signer treasury is due"),
        "{}",
        live.stdout
    );
    let plan = keyrite(&w, &emu, &["plan"]).expect(0);
    assert!(plan.stdout.contains("Rotation due: a rotation of signer treasury is due"), "{}", plan.stdout);

    // `ceremony show` and `rotate` say what happened and where the rotation is.
    let shown = keyrite(&w, &emu, &["ceremony", "show", all[2].to_str().unwrap()]).expect(0);
    assert!(shown.stdout.contains("rotation   enrol of signer treasury"), "{}", shown.stdout);
    assert!(
        shown.stdout.contains("enrolment  digest 0x") && shown.stdout.contains("dave@example.com"),
        "{}",
        shown.stdout
    );
    let status = keyrite(&w, &emu, &["rotate", "treasury"]).expect(0);
    assert!(status.stdout.contains("generation 2:") && status.stdout.contains("finished"), "{}", status.stdout);
    assert!(status.stdout.contains("a rotation of signer treasury is due"), "{}", status.stdout);

    // Addresses show the history.
    let shown = keyrite(&w, &emu, &["addresses"]).expect(0);
    assert!(shown.stdout.contains(&old_address) && shown.stdout.contains("rotated"), "{}", shown.stdout);
}

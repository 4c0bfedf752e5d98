//! End-to-end lifecycle against the local AWS emulator with the real SDK: apply, converge,
//! drift of every kind made through the AWS API, healing, saved plans, locking, destroy.

use crate::common;

use common::{Emulator, Workdir};
use serde_json::{Value, json};

fn drift_items(run: &common::Run) -> Vec<Value> {
    run.json()["drift"].as_array().cloned().unwrap_or_default()
}

fn find<'a>(items: &'a [Value], address: &str, attribute: &str) -> &'a Value {
    items
        .iter()
        .find(|i| i["address"] == address && i["attribute"] == attribute)
        .unwrap_or_else(|| panic!("no drift for {address}.{attribute} in {items:#?}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn apply_converges_and_a_second_apply_makes_no_mutating_calls() {
    let emu = Emulator::start();
    let w = Workdir::with_example("treasury.yaml");
    let first = w.keyrite(&emu, &["apply", "--auto-approve"]).expect(0);
    assert!(first.stdout.contains("Plan: 4 to create"), "{}", first.stdout);
    assert!(first.stdout.contains("Apply complete: 4 changes applied"), "{}", first.stdout);

    let plan = w.keyrite(&emu, &["plan", "--detailed-exitcode"]).expect(0);
    assert!(plan.stdout.contains("No changes."), "{}", plan.stdout);

    let second = w.keyrite(&emu, &["apply", "--auto-approve"]).expect(0);
    assert!(second.stdout.contains("(0 mutating)"), "second apply mutated something:\n{}", second.stdout);

    w.keyrite(&emu, &["drift"]).expect(0);

    let state = w.state();
    assert_eq!(state["serial"], 8, "two state writes per create: the intent before the call, the record after");
    assert!(state.get("pending").is_none(), "no create intent is left behind");
    assert!(state["lineage"].as_str().is_some_and(|l| l.len() == 36));

    // Ownership tags on the key, and the key really is secp256k1.
    let kms = emu.kms().await;
    let key_id = w.id("treasury_key");
    let tags = kms.list_resource_tags().key_id(&key_id).send().await.unwrap();
    let tag = |k: &str| tags.tags().iter().find(|t| t.tag_key() == k).map(|t| t.tag_value().to_owned());
    assert_eq!(tag("keyrite:address").as_deref(), Some("treasury_key"));
    assert_eq!(tag("keyrite:lineage").as_deref(), state["lineage"].as_str());
    let described = kms.describe_key().key_id(&key_id).send().await.unwrap();
    assert_eq!(described.key_metadata().unwrap().key_spec().unwrap().as_str(), "ECC_SECG_P256K1");

    // show: stable JSON with identifiers and the public key.
    let show = w.keyrite(&emu, &["show", "--format", "json"]).expect(0).json();
    assert_eq!(show["format_version"], 1);
    let key = show["resources"].as_array().unwrap().iter().find(|r| r["address"] == "treasury_key").unwrap();
    assert_eq!(key["id"], key_id.as_str());
    assert!(key["outputs"]["arn"].as_str().unwrap().starts_with("arn:aws:kms:us-east-1:"));
    assert!(
        key["outputs"]["public_key"].as_str().unwrap().starts_with("MFYwEAYHKoZIzj0CAQYFK4EEAAoDQgAE"),
        "secp256k1 SPKI"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn out_of_band_edits_are_reported_as_drift_and_apply_heals_them() {
    let emu = Emulator::start();
    let w = Workdir::with_example("treasury.yaml");
    w.keyrite(&emu, &["apply", "--auto-approve"]).expect(0);
    let (kms, iam) = (emu.kms().await, emu.iam().await);
    let key_id = w.id("treasury_key");
    let role = "keyrite-treasury-signer";

    // Broaden the signing statement: any KMS action, no algorithm condition.
    let policy = kms.get_key_policy().key_id(&key_id).policy_name("default").send().await.unwrap();
    let mut doc: Value = serde_json::from_str(policy.policy().unwrap()).unwrap();
    for st in doc["Statement"].as_array_mut().unwrap() {
        if st["Sid"] == "AllowSigning" {
            st["Action"] = json!("kms:*");
            st.as_object_mut().unwrap().remove("Condition");
        }
    }
    kms.put_key_policy().key_id(&key_id).policy_name("default").policy(doc.to_string()).send().await.unwrap();
    // An inline policy nobody declared.
    let backdoor = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]});
    iam.put_role_policy()
        .role_name(role)
        .policy_name("backdoor")
        .policy_document(backdoor.to_string())
        .send()
        .await
        .unwrap();
    // A disabled key, changed tags, and a deleted alias.
    kms.disable_key().key_id(&key_id).send().await.unwrap();
    iam.tag_role()
        .role_name(role)
        .tags(aws_sdk_iam::types::Tag::builder().key("owner").value("eve").build().unwrap())
        .send()
        .await
        .unwrap();
    kms.delete_alias().alias_name("alias/treasury").send().await.unwrap();

    let drift = w.keyrite(&emu, &["drift", "--format", "json"]).expect(2);
    let items = drift_items(&drift);
    let policy = find(&items, "treasury_key", "policy");
    assert_eq!(policy["severity"], "security");
    assert!(policy["message"].as_str().unwrap().contains("BROADENED"));
    let detail =
        policy["detail"].as_array().unwrap().iter().map(|l| l.as_str().unwrap()).collect::<Vec<_>>().join("\n");
    assert!(detail.contains("AllowSigning"), "statement named: {detail}");
    assert!(detail.contains("Action") && detail.contains("kms:*"), "field named: {detail}");
    assert!(detail.contains("kms:SigningAlgorithm"), "removed condition named: {detail}");
    assert!(
        find(&items, "signer_role", "undeclared_inline_policies")["message"].as_str().unwrap().contains("backdoor")
    );
    assert!(find(&items, "treasury_key", "key_state")["message"].as_str().unwrap().contains("DISABLED"));
    assert!(find(&items, "signer_role", "tags")["message"].as_str().unwrap().contains("+owner=eve"));
    let gone = items.iter().find(|i| i["address"] == "treasury_alias").expect("deleted alias reported");
    assert!(gone["attribute"].is_null() && gone["message"].as_str().unwrap().contains("deleted outside keyrite"));

    let human = w.keyrite(&emu, &["drift"]).expect(2);
    assert!(human.stdout.contains("! treasury_key.policy (aws_kms_key): policy was BROADENED"), "{}", human.stdout);

    // Apply heals everything; afterwards drift is clean and the backdoor is gone.
    w.keyrite(&emu, &["apply", "--auto-approve"]).expect(0);
    w.keyrite(&emu, &["drift"]).expect(0);
    let names = iam.list_role_policies().role_name(role).send().await.unwrap();
    assert_eq!(names.policy_names(), ["sign"]);
    let state = kms.describe_key().key_id(&key_id).send().await.unwrap();
    assert_eq!(state.key_metadata().unwrap().key_state().unwrap().as_str(), "Enabled");

    // A key scheduled for deletion is drift too, and apply cancels the deletion.
    kms.schedule_key_deletion().key_id(&key_id).pending_window_in_days(7).send().await.unwrap();
    let items = drift_items(&w.keyrite(&emu, &["drift", "--format", "json"]).expect(2));
    assert!(find(&items, "treasury_key", "key_state")["message"].as_str().unwrap().contains("PENDING DELETION"));
    w.keyrite(&emu, &["apply", "--auto-approve"]).expect(0);
    w.keyrite(&emu, &["drift"]).expect(0);
    assert_eq!(w.id("treasury_key"), key_id, "healing never replaces the key");
}

#[tokio::test(flavor = "multi_thread")]
async fn equivalent_but_reformatted_policies_are_not_drift() {
    let emu = Emulator::start();
    let w = Workdir::with_example("treasury.yaml");
    w.keyrite(&emu, &["apply", "--auto-approve"]).expect(0);
    let (kms, iam) = (emu.kms().await, emu.iam().await);
    let key_id = w.id("treasury_key");

    // Same key policy: statements reversed, strings as one-element lists, action case changed,
    // pretty-printed with different indentation.
    let policy = kms.get_key_policy().key_id(&key_id).policy_name("default").send().await.unwrap();
    let mut doc: Value = serde_json::from_str(policy.policy().unwrap()).unwrap();
    let statements = doc["Statement"].as_array_mut().unwrap();
    statements.reverse();
    for st in statements.iter_mut() {
        if let Some(a) = st["Action"].as_str() {
            st["Action"] = json!([a.to_uppercase().replace("KMS:", "kms:")]);
        }
        st["Resource"] = json!(["*"]);
    }
    kms.put_key_policy()
        .key_id(&key_id)
        .policy_name("default")
        .policy(serde_json::to_string_pretty(&doc).unwrap())
        .send()
        .await
        .unwrap();

    // Same inline role policy, reordered and reformatted.
    let inline = iam.get_role_policy().role_name("keyrite-treasury-signer").policy_name("sign").send().await.unwrap();
    let decoded = percent_decode(inline.policy_document());
    let mut doc: Value = serde_json::from_str(&decoded).unwrap();
    doc["Statement"].as_array_mut().unwrap().reverse();
    iam.put_role_policy()
        .role_name("keyrite-treasury-signer")
        .policy_name("sign")
        .policy_document(format!("\n{}\n", serde_json::to_string_pretty(&doc).unwrap()))
        .send()
        .await
        .unwrap();

    let drift = w.keyrite(&emu, &["drift"]).expect(0);
    assert!(drift.stdout.contains("No drift"), "{}", drift.stdout);
    let second = w.keyrite(&emu, &["apply", "--auto-approve"]).expect(0);
    assert!(second.stdout.contains("(0 mutating)"), "{}", second.stdout);
}

fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn destroy_needs_the_flag_for_keys_and_only_schedules_their_deletion() {
    let emu = Emulator::start();
    let w = Workdir::with_example("treasury.yaml");
    w.keyrite(&emu, &["apply", "--auto-approve"]).expect(0);
    let key_id = w.id("treasury_key");
    let kms = emu.kms().await;

    let refused = w.keyrite(&emu, &["destroy", "--auto-approve"]).expect(1);
    assert!(refused.stderr.contains("--allow-key-deletion"), "{}", refused.stderr);
    assert!(refused.stderr.contains("Nothing was changed"), "{}", refused.stderr);
    assert_eq!(w.state()["resources"].as_object().unwrap().len(), 4, "state untouched");
    assert!(
        kms.list_aliases().send().await.unwrap().aliases().iter().any(|a| a.alias_name() == Some("alias/treasury"))
    );

    let done = w.keyrite(&emu, &["destroy", "--auto-approve", "--allow-key-deletion"]).expect(0);
    assert!(done.stderr.contains("scheduled for deletion"), "{}", done.stderr);
    let meta = kms.describe_key().key_id(&key_id).send().await.unwrap();
    assert_eq!(meta.key_metadata().unwrap().key_state().unwrap().as_str(), "PendingDeletion");
    assert!(
        !kms.list_aliases().send().await.unwrap().aliases().iter().any(|a| a.alias_name() == Some("alias/treasury"))
    );
    let iam = emu.iam().await;
    assert!(iam.get_role().role_name("keyrite-treasury-signer").send().await.is_err(), "role removed");
    assert_eq!(w.state()["resources"], json!({}));
}

#[tokio::test(flavor = "multi_thread")]
async fn saved_plans_apply_exactly_once_and_stale_plans_are_refused() {
    let emu = Emulator::start();
    let w = Workdir::with_example("treasury.yaml");
    w.keyrite(&emu, &["plan", "--out", "first.plan"]).expect(0);
    w.keyrite(&emu, &["plan", "--out", "second.plan"]).expect(0);
    w.keyrite(&emu, &["apply", "first.plan"]).expect(0);
    let stale = w.keyrite(&emu, &["apply", "second.plan"]).expect(1);
    assert!(stale.stderr.contains("belongs to another state") || stale.stderr.contains("stale"), "{}", stale.stderr);

    // Change the manifest, save a plan, move the state on, then try the plan.
    let text = std::fs::read_to_string(&w.manifest).unwrap().replace("Treasury hot signer", "Treasury signer v2");
    std::fs::write(&w.manifest, text).unwrap();
    w.keyrite(&emu, &["plan", "--out", "update.plan"]).expect(0);
    w.keyrite(&emu, &["apply", "--auto-approve"]).expect(0);
    let stale = w.keyrite(&emu, &["apply", "update.plan"]).expect(1);
    assert!(
        stale.stderr.contains("saved plan is stale: it was made against state serial 8, the state is now at serial 9"),
        "{}",
        stale.stderr
    );

    let no_tty = w.keyrite(&emu, &["apply"]).expect(0);
    assert!(no_tty.stdout.contains("nothing to do"), "{}", no_tty.stdout);
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_terminal_apply_needs_auto_approve_and_key_replacement_needs_its_flag() {
    let emu = Emulator::start();
    let w = Workdir::with_example("treasury.yaml");
    let refused = w.keyrite(&emu, &["apply"]).expect(1);
    assert!(refused.stderr.contains("--auto-approve"), "{}", refused.stderr);
    assert!(!w.path().join("keyrite.state.json").exists(), "nothing applied");
    w.keyrite(&emu, &["apply", "--auto-approve"]).expect(0);
    let key_id = w.id("treasury_key");

    let text = std::fs::read_to_string(&w.manifest)
        .unwrap()
        .replace("description: Treasury hot signer", "description: Treasury hot signer\n    key_spec: ECC_NIST_P256");
    std::fs::write(&w.manifest, text).unwrap();
    let plan = w.keyrite(&emu, &["plan", "--detailed-exitcode"]).expect(2);
    assert!(plan.stdout.contains("REPLACED: NEW KEY, NEW ADDRESS"), "{}", plan.stdout);
    assert!(plan.stdout.contains("# forces replacement"), "{}", plan.stdout);
    let refused = w.keyrite(&emu, &["apply", "--auto-approve"]).expect(1);
    assert!(refused.stderr.contains("refusing to replace treasury_key"), "{}", refused.stderr);
    assert_eq!(w.id("treasury_key"), key_id, "the key is untouched");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_writer_fails_at_once_naming_the_lock_holder() {
    let emu = Emulator::start();
    let w = Workdir::with_example("treasury.yaml");
    let backend = keyrite::state::LocalBackend::new(w.path().join("keyrite.state.json"));
    let guard = backend.lock("apply").unwrap();
    let blocked = w.keyrite(&emu, &["apply", "--auto-approve"]).expect(1);
    assert!(blocked.stderr.contains("is locked by"), "{}", blocked.stderr);
    assert!(blocked.stderr.contains(&guard.info.id), "{}", blocked.stderr);
    assert!(blocked.stderr.contains(&format!("pid {}", std::process::id())), "{}", blocked.stderr);
    drop(guard);
    w.keyrite(&emu, &["apply", "--auto-approve"]).expect(0);
}

/// The manifest without its top-level `ceremony:` block: what converges here is the stack;
/// the ceremony that applies it is tests/ceremony.rs's and tests/rotation.rs's subject.
fn without_ceremony(text: &str) -> String {
    let mut out = String::new();
    let mut inside = false;
    for line in text.lines() {
        if line.starts_with("ceremony:") {
            inside = true;
            continue;
        }
        if inside && (line.is_empty() || line.starts_with(' ') || line.starts_with('#')) {
            continue;
        }
        inside = false;
        out.push_str(line);
        out.push('\n');
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn every_example_manifest_applies_and_converges() {
    // rust-signer.yaml deploys the Rust signer's bootstrap, from its build path.
    common::signer_bootstrap();
    let emu = Emulator::start();
    // Examples for Google Cloud run against the Cloud KMS stand-in.
    let gcp = common::gcp_kms::GcpKms::start();
    let mut names: Vec<String> = std::fs::read_dir(common::repo_root().join("manifests"))
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".yaml"))
        .collect();
    names.sort();
    assert!(names.len() >= 3);
    for name in names {
        let w = Workdir::with_example(&name);
        let text = without_ceremony(&std::fs::read_to_string(&w.manifest).unwrap());
        // Examples may name their own state file; keep it inside the scratch directory.
        let on_gcp = text.contains("type: gcp_");
        std::fs::write(&w.manifest, text).unwrap();
        let keyrite = |args: &[&str]| if on_gcp { w.keyrite_gcp(&gcp, args) } else { w.keyrite(&emu, args) };
        let applied = keyrite(&["apply", "--auto-approve"]);
        assert_eq!(applied.code, 0, "{name}: apply failed\n{}\n{}", applied.stdout, applied.stderr);
        let plan = keyrite(&["plan", "--detailed-exitcode"]);
        assert_eq!(plan.code, 0, "{name}: plan after apply is not empty\n{}", plan.stdout);
        let drift = keyrite(&["drift"]);
        assert_eq!(drift.code, 0, "{name}: drift after apply\n{}", drift.stdout);
    }
}

//! Plans that tell the truth before anything is applied: names already taken by hand are
//! plan errors (and apply then makes no mutating call), names this state owns are adopted,
//! the plan names who it acts as and checks the permissions its changes need, and cloud
//! errors read as one-line messages. Against ministack through the real SDK, and the Cloud
//! KMS stand-in judged elsewhere by Google's own client.

use crate::common;

use common::fault_proxy::{FaultProxy, Faults};
use common::gcp_kms::{Faults as GcpFaults, GcpKms};
use common::{Emulator, Workdir, hand_made_stack, read_only};

async fn key_count(emu: &Emulator) -> usize {
    emu.kms().await.list_keys().send().await.unwrap().keys().len()
}

#[tokio::test(flavor = "multi_thread")]
async fn names_taken_by_hand_fail_the_plan_and_apply_makes_no_mutating_call() {
    let emu = Emulator::start();
    let key_id = hand_made_stack(&emu).await;
    let w = Workdir::with_example("treasury-signer.yaml");

    let plan = w.keyrite(&emu, &["plan", "--out", "ceremony.plan"]).expect(1);
    let out = &plan.stdout;
    for expected in [
        format!("alias/treasury-lambda → key {key_id}"),
        "role arn:aws:iam::000000000000:role/keyrite-treasury-lambda".to_owned(),
        "function arn:aws:lambda:us-east-1:000000000000:function:keyrite-treasury-signer".to_owned(),
        "layer keyrite-aws-sdk-kms, with 1 version".to_owned(),
        "The plan was not saved.".to_owned(),
    ] {
        assert!(out.contains(&expected), "plan does not say {expected:?}:\n{out}");
    }
    assert!(out.contains("treasury_alias cannot be created"), "{out}");
    assert!(out.contains("choose another name for treasury_alias"), "{out}");
    assert!(!w.path().join("ceremony.plan").exists(), "a plan with errors is never saved");

    // apply through a logging proxy: every call it makes only reads, and no key is made.
    let before = key_count(&emu).await;
    let proxy = FaultProxy::start(&emu.endpoint, Faults::default(), 1);
    let apply = w.keyrite_via(&proxy.endpoint, &["apply", "--auto-approve"]).expect(1);
    assert!(apply.stderr.contains("the plan has errors (above); nothing was applied"), "{}", apply.stderr);
    assert!(apply.stderr.contains("(0 mutating)"), "{}", apply.stderr);
    let operations = proxy.counts.operations();
    assert!(operations.iter().any(|o| o == "ListAliases"), "the alias was looked up: {operations:?}");
    let writes: Vec<&String> = operations.iter().filter(|o| !read_only(o)).collect();
    assert!(writes.is_empty(), "apply made mutating calls: {writes:?}");
    assert_eq!(key_count(&emu).await, before, "no key was created");
    assert!(!w.path().join("keyrite.state.json").exists(), "no state was written");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_function_url_made_by_hand_is_a_plan_error() {
    let emu = Emulator::start();
    hand_made_stack(&emu).await;
    let w = Workdir::with_text(
        "version: 1\nresources:\n  url:\n    type: aws_lambda_function_url\n    function: keyrite-treasury-signer\n",
    );
    let plan = w.keyrite(&emu, &["plan"]).expect(1);
    assert!(plan.stdout.contains("url cannot be created: the URL https://"), "{}", plan.stdout);
    assert!(plan.stdout.contains("of function keyrite-treasury-signer (auth NONE)"), "{}", plan.stdout);
}

#[tokio::test(flavor = "multi_thread")]
async fn names_this_state_owns_are_adopted_not_created() {
    let emu = Emulator::start();
    let w = Workdir::with_example("treasury.yaml");
    w.keyrite(&emu, &["apply", "--auto-approve"]).expect(0);
    // The state loses its records of the role, its policy and the alias (a restore from an
    // older backup, say); the resources still carry this lineage's tags or point at its key.
    let mut state = w.state();
    let resources = state["resources"].as_object_mut().unwrap();
    let lost: Vec<String> =
        resources.keys().filter(|a| a.starts_with("signer_role") || *a == "treasury_alias").cloned().collect();
    assert_eq!(lost.len(), 3, "{lost:?}");
    for a in &lost {
        resources.remove(a);
    }
    std::fs::write(w.path().join("keyrite.state.json"), serde_json::to_vec_pretty(&state).unwrap()).unwrap();

    let plan = w.keyrite(&emu, &["plan"]).expect(0);
    assert!(plan.stdout.contains("Plan: 3 to adopt, 0 to create"), "{}", plan.stdout);
    assert!(
        plan.stdout.contains("role keyrite-treasury-signer carries this state's ownership tags"),
        "{}",
        plan.stdout
    );
    assert!(plan.stdout.contains("alias/treasury already points at the declared key"), "{}", plan.stdout);
    let keys = key_count(&emu).await;
    w.keyrite(&emu, &["apply", "--auto-approve"]).expect(0);
    w.keyrite(&emu, &["plan", "--detailed-exitcode"]).expect(0);
    assert_eq!(key_count(&emu).await, keys);
}

/// An IAM user of the emulator with an access key, and the environment that signs as it.
async fn user_with_policy(emu: &Emulator, name: &str, policy: &str) -> (String, String) {
    let iam = emu.iam().await;
    iam.create_user().user_name(name).send().await.unwrap();
    iam.put_user_policy().user_name(name).policy_name("deploy").policy_document(policy).send().await.unwrap();
    let key = iam.create_access_key().user_name(name).send().await.unwrap();
    let key = key.access_key().unwrap();
    (key.access_key_id().to_owned(), key.secret_access_key().to_owned())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_plan_names_its_identity_and_the_permissions_it_lacks() {
    let emu = Emulator::start();
    // Everything a deployer of treasury.yaml needs, except kms:CreateAlias.
    let policy = r#"{"Version":"2012-10-17","Statement":[
        {"Effect":"Allow","Action":["kms:*","iam:*","sts:GetCallerIdentity"],"Resource":"*"},
        {"Effect":"Deny","Action":"kms:CreateAlias","Resource":"*"}]}"#;
    let (id, secret) = user_with_policy(&emu, "deployer", policy).await;
    let w = Workdir::with_example("treasury.yaml");
    let plan = w
        .command(&emu.endpoint, &["plan", "--format", "json"])
        .env("AWS_ACCESS_KEY_ID", &id)
        .env("AWS_SECRET_ACCESS_KEY", &secret)
        .output()
        .map(common::Run::from)
        .unwrap()
        .expect(1);
    let json = plan.json();
    assert_eq!(json["identity"]["aws"], "arn:aws:iam::000000000000:user/deployer");
    let checks = json["permissions"].as_array().unwrap();
    let verdict = |p: &str| checks.iter().find(|c| c["permission"] == p).map(|c| c["verdict"].clone());
    assert_eq!(verdict("kms:CreateAlias"), Some("missing".into()), "{checks:#?}");
    assert_eq!(verdict("kms:CreateKey"), Some("granted".into()));
    assert_eq!(verdict("iam:CreateRole"), Some("granted".into()));
    let errors = json["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert!(
        errors[0]["message"].as_str().unwrap().contains("kms:CreateAlias on * (for treasury_alias)"),
        "{errors:#?}"
    );

    // As the account root user, the check is skipped and the plan says why.
    let root = w.keyrite(&emu, &["plan"]).expect(0);
    assert!(root.stdout.contains("Acting on AWS as arn:aws:iam::000000000000:root."), "{}", root.stdout);
    assert!(
        root.stdout.contains("not checked: arn:aws:iam::000000000000:root is the account root user"),
        "{}",
        root.stdout
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_saved_plan_applies_only_as_the_identity_it_names() {
    let emu = Emulator::start();
    let all = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#;
    let (alice, alice_secret) = user_with_policy(&emu, "alice", all).await;
    let (mallory, mallory_secret) = user_with_policy(&emu, "mallory", all).await;
    let w = Workdir::with_example("treasury.yaml");
    let as_user = |args: &[&str], id: &str, secret: &str| {
        w.command(&emu.endpoint, args)
            .env("AWS_ACCESS_KEY_ID", id)
            .env("AWS_SECRET_ACCESS_KEY", secret)
            .output()
            .map(common::Run::from)
            .unwrap()
    };
    as_user(&["plan", "--out", "ceremony.plan"], &alice, &alice_secret).expect(0);
    let saved: serde_json::Value =
        serde_json::from_slice(&std::fs::read(w.path().join("ceremony.plan")).unwrap()).unwrap();
    assert_eq!(saved["identity"]["aws"], "arn:aws:iam::000000000000:user/alice");

    let refused = as_user(&["apply", "ceremony.plan"], &mallory, &mallory_secret).expect(1);
    assert!(
        refused
            .stderr
            .contains("planned as arn:aws:iam::000000000000:user/alice, now arn:aws:iam::000000000000:user/mallory"),
        "{}",
        refused.stderr
    );
    assert!(!w.path().join("keyrite.state.json").exists(), "nothing was applied");
    let flagged = as_user(&["apply", "ceremony.plan", "--allow-identity-change"], &mallory, &mallory_secret).expect(0);
    assert!(flagged.stdout.contains("Applying as another identity than planned"), "{}", flagged.stdout);
}

/// Replaces what varies between runs (ports, temporary paths) so messages can be snapshotted.
fn stable(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let mut l = line.to_owned();
        while let Some(start) = l.find("127.0.0.1:") {
            let end = l[start + 10..].find(|c: char| !c.is_ascii_digit()).map_or(l.len(), |e| start + 10 + e);
            l.replace_range(start..end, "127.0.0.1:PORT");
            if !l[start + 14..].contains("127.0.0.1:") {
                break;
            }
        }
        out.push_str(&l);
        out.push('\n');
    }
    out
}

fn assert_no_debug(text: &str) {
    for tell in ["{ source:", "DispatchFailure(", "ConnectorError {", "Some(", "kind: "] {
        assert!(!text.contains(tell), "Debug syntax {tell:?} in: {text}");
    }
    assert_eq!(text.trim_end().lines().count(), 1, "one line: {text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn cloud_errors_read_as_one_line_messages() {
    let emu = Emulator::start();
    let w = Workdir::with_example("treasury.yaml");

    // No AWS credentials anywhere.
    let none = w
        .command(&emu.endpoint, &["plan"])
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env("HOME", w.dir.path())
        .env("AWS_CONFIG_FILE", w.dir.path().join("no-config"))
        .env("AWS_SHARED_CREDENTIALS_FILE", w.dir.path().join("no-credentials"))
        .output()
        .map(common::Run::from)
        .unwrap()
        .expect(1);
    assert_no_debug(&none.stderr);
    insta::assert_snapshot!("no_aws_credentials", stable(&none.stderr));

    // AccessDenied on the first mutating call, injected by the fault proxy.
    let deny = FaultProxy::start(&emu.endpoint, Faults { deny: Some("CreateKey"), ..Faults::default() }, 1);
    let denied = w.keyrite_via(&deny.endpoint, &["apply", "--auto-approve"]).expect(1);
    let error = &denied.stderr[denied.stderr.find("error:").expect("an error")..];
    let cause = error.lines().nth(1).unwrap_or_default().trim();
    assert_no_debug(cause);
    assert!(cause.starts_with("treasury_key: kms:CreateKey failed: AccessDeniedException:"), "{error}");
    insta::assert_snapshot!("access_denied", stable(error));

    // An expired session token.
    let expired = FaultProxy::start(&emu.endpoint, Faults { expired_token: true, ..Faults::default() }, 1);
    let run = w.keyrite_via(&expired.endpoint, &["plan"]).expect(1);
    assert_no_debug(&run.stderr);
    insta::assert_snapshot!("expired_aws_token", stable(&run.stderr));
}

fn gcp_manifest() -> Workdir {
    Workdir::with_example("gcp-treasury.yaml")
}

#[test]
fn gcp_without_credentials_is_a_plan_error() {
    let kms = GcpKms::start();
    let w = gcp_manifest();
    let closed = common::free_port();
    let run = w
        .gcp_command(&kms, &["plan"])
        .env("GCE_METADATA_HOST", format!("127.0.0.1:{closed}"))
        .output()
        .map(common::Run::from)
        .unwrap()
        .expect(1);
    assert_no_debug(&run.stderr);
    insta::assert_snapshot!("no_gcp_credentials", stable(&run.stderr));
    assert!(kms.calls().is_empty(), "no Cloud KMS call without credentials: {:?}", kms.calls());

    // An expired or revoked token: Google answers UNAUTHENTICATED.
    kms.set_faults(GcpFaults { unauthenticated: true, ..GcpFaults::default() });
    let run = w.keyrite_gcp(&kms, &["plan"]).expect(1);
    assert_no_debug(&run.stderr);
    insta::assert_snapshot!("expired_gcp_token", stable(&run.stderr));
}

#[test]
fn gcp_an_existing_ring_is_adopted_and_a_foreign_key_name_is_an_error() {
    let kms = GcpKms::start();
    let w = gcp_manifest();
    let plan = w.keyrite_gcp(&kms, &["plan", "--format", "json"]).expect(0).json();
    assert!(plan["identity"]["gcp"].as_str().unwrap().starts_with("serviceAccount:"), "{plan:#}");
    // Make the ring (and, by hand, a key under the declared key's name) with the stand-in's
    // REST API, as gcloud would.
    let ring_parent = "projects/treasury-prod-4711/locations/us-east1";
    kms.create_by_hand(&format!("{ring_parent}/keyRings?keyRingId=treasury"), "{}");
    let human = w.keyrite_gcp(&kms, &["plan"]).expect(0);
    assert!(human.stdout.contains("Plan: 1 to adopt, 2 to create"), "{}", human.stdout);
    assert!(human.stdout.contains("Cloud KMS never deletes key rings, so it is the declared ring"), "{}", human.stdout);
    assert!(human.stdout.contains("Acting on Google Cloud as serviceAccount:"), "{}", human.stdout);

    kms.create_by_hand(
        &format!("{ring_parent}/keyRings/treasury/cryptoKeys?cryptoKeyId=treasury-signer"),
        r#"{"purpose":"ASYMMETRIC_SIGN","versionTemplate":{"algorithm":"EC_SIGN_SECP256K1_SHA256","protectionLevel":"HSM"}}"#,
    );
    let before = kms.mutating_calls().len();
    let conflict = w.keyrite_gcp(&kms, &["apply", "--auto-approve"]).expect(1);
    assert!(
        conflict.stdout.contains(&format!(
            "key {ring_parent}/keyRings/treasury/cryptoKeys/treasury-signer (ASYMMETRIC_SIGN, no keyrite-lineage label)"
        )),
        "{}",
        conflict.stdout
    );
    let writes = &kms.mutating_calls()[before..];
    assert!(writes.is_empty(), "apply made mutating calls: {writes:?}");
}

#[test]
fn gcp_missing_permissions_are_listed_before_any_apply() {
    let kms = GcpKms::start();
    let w = gcp_manifest();
    kms.create_by_hand("projects/treasury-prod-4711/locations/us-east1/keyRings?keyRingId=treasury", "{}");
    kms.set_faults(GcpFaults { denied_permissions: vec!["cloudkms.cryptoKeys.create".into()], ..GcpFaults::default() });
    let plan = w.keyrite_gcp(&kms, &["plan"]).expect(1);
    assert!(plan.stdout.contains("MISSING"), "{}", plan.stdout);
    assert!(
        plan.stdout.contains(
            "✗ cloudkms.cryptoKeys.create on projects/treasury-prod-4711/locations/us-east1/keyRings/treasury (for signer_key)"
        ),
        "{}",
        plan.stdout
    );
    let before = kms.mutating_calls().len();
    w.keyrite_gcp(&kms, &["apply", "--auto-approve"]).expect(1);
    let writes = &kms.mutating_calls()[before..];
    assert!(writes.is_empty(), "apply made mutating calls: {writes:?}");
}

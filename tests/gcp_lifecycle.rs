//! The Google Cloud KMS provider end to end, against the Cloud KMS stand-in (no Cloud KMS
//! emulator exists; `gcp_standin_conformance.rs` holds the stand-in to Google's own client).
//!
//! keyrite runs as a process with Application Default Credentials served by the stand-in's
//! metadata server and no AWS settings at all. Out-of-band edits are made with Google's Rust
//! client, as another administrator would; signatures are checked with k256 directly. The
//! Cloud Run template runs in the real Node runtime under the Functions Framework, with
//! the real `@google-cloud/kms` client (REST) talking to the stand-in, behind a local check
//! of the Google ID token that Cloud Run would make.

use crate::common;

use std::process::{Child, Command, Stdio};

use common::gcp_kms::{ACCESS_TOKEN, Faults, GcpKms, USER_ACCESS_TOKEN};
use common::{Run, Workdir, repo_root};
use google_cloud_iam_v1::model::Binding;
use google_cloud_kms_v1::client::KeyManagementService;
use google_cloud_kms_v1::model::CryptoKeyVersion;
use google_cloud_kms_v1::model::crypto_key_version::CryptoKeyVersionState;
use k256::ecdsa::{RecoveryId, Signature, VerifyingKey};
use serde_json::Value;
use sha3::{Digest, Keccak256};

const KEY: &str = "projects/treasury-prod-4711/locations/us-east1/keyRings/treasury/cryptoKeys/treasury-signer";
const SIGNER_ACCOUNT: &str = "serviceAccount:kms-signer@treasury-prod-4711.iam.gserviceaccount.com";
const AUDITORS: &str = "key-auditors@example.com";

/// The example manifest, its Cloud Run URL replaced by `url` (when given).
fn workdir(url: Option<&str>) -> Workdir {
    let text = std::fs::read_to_string(repo_root().join("manifests/gcp-treasury.yaml")).unwrap();
    let text = match url {
        Some(url) => text.replace("https://treasury-signer-4711.us-east1.run.app", url),
        None => text,
    };
    Workdir::with_text(&text)
}

/// Google's Rust client, as an administrator working outside keyrite would use it.
async fn admin(kms: &GcpKms) -> KeyManagementService {
    KeyManagementService::builder()
        .with_endpoint(&kms.endpoint)
        .with_credentials(google_cloud_auth::credentials::anonymous::Builder::new().build())
        .build()
        .await
        .unwrap()
}

/// The EVM address of a key version, derived here from the PEM with k256 and sha3.
async fn address_of(client: &KeyManagementService, version: &str) -> String {
    use k256::elliptic_curve::sec1::ToEncodedPoint;
    use k256::pkcs8::DecodePublicKey;
    let pem = client.get_public_key().set_name(version).send().await.unwrap().pem;
    let key = k256::PublicKey::from_public_key_pem(&pem).unwrap();
    let point = key.to_encoded_point(false);
    format!("0x{}", hex::encode(&Keccak256::digest(&point.as_bytes()[1..])[12..]))
}

/// The address an r‖s‖v signature over `prehash` recovers to (low-s required).
fn recover(prehash: &[u8], sig_hex: &str) -> String {
    let sig = hex::decode(sig_hex.trim_start_matches("0x")).unwrap();
    assert_eq!(sig.len(), 65);
    let signature = Signature::from_slice(&sig[..64]).unwrap();
    assert!(signature.normalize_s().is_none(), "high-s signature");
    let key =
        VerifyingKey::recover_from_prehash(prehash, &signature, RecoveryId::from_byte(sig[64] - 27).unwrap()).unwrap();
    let point = key.to_encoded_point(false);
    format!("0x{}", hex::encode(&Keccak256::digest(&point.as_bytes()[1..])[12..]))
}

fn state_output(w: &Workdir, address: &str, output: &str) -> String {
    w.state()["resources"][address]["outputs"][output].as_str().unwrap_or_default().to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn apply_converges_with_adc_and_no_aws_settings_and_a_second_apply_changes_nothing() {
    let kms = GcpKms::start();
    let w = workdir(None);
    let run = w.keyrite_gcp(&kms, &["apply", "--auto-approve"]).expect(0);
    assert!(run.stdout.contains("3 changes applied"), "{}", run.stdout);
    w.keyrite_gcp(&kms, &["plan", "--detailed-exitcode"]).expect(0);

    let mutating = kms.mutating_calls();
    let again = w.keyrite_gcp(&kms, &["apply", "--auto-approve"]).expect(0);
    assert!(again.stdout.contains("(0 mutating)"), "{}", again.stdout);
    assert_eq!(kms.mutating_calls(), mutating, "a converged apply sent a mutating request");

    // Every API request carried the access token ADC got from the metadata server.
    let auth = kms.authorizations();
    assert!(!auth.is_empty() && auth.iter().all(|a| a == &format!("Bearer {ACCESS_TOKEN}")), "{auth:?}");

    let client = admin(&kms).await;
    let key = client.get_crypto_key().set_name(KEY).send().await.unwrap();
    assert_eq!(key.version_template.as_ref().unwrap().protection_level.name(), Some("HSM"));
    assert_eq!(key.labels.get("team").map(String::as_str), Some("treasury"));
    assert_eq!(key.labels.get("keyrite-address").map(String::as_str), Some("signer_key"));
    assert_eq!(key.labels.get("keyrite-lineage"), w.state()["lineage"].as_str().map(str::to_owned).as_ref());
    let policy = client.get_iam_policy().set_resource(KEY).send().await.unwrap();
    assert_eq!(policy.bindings.len(), 1);
    assert_eq!(policy.bindings[0].role, "roles/cloudkms.signerVerifier");
    assert_eq!(policy.bindings[0].members, vec![SIGNER_ACCOUNT.to_owned()]);

    let version = format!("{KEY}/cryptoKeyVersions/1");
    assert_eq!(state_output(&w, "signer_key", "version_id"), version);
    let derived = address_of(&client, &version).await;
    let addresses = w.keyrite_gcp(&kms, &["addresses", "--format", "json"]).expect(0).json();
    let row = &addresses["keys"][0];
    assert_eq!(row["provider"], "gcp");
    assert_eq!(row["key_id"], version.as_str());
    assert_eq!(row["evm_address"].as_str().unwrap().to_lowercase(), derived);
    assert_eq!(row["keystore_uri"], Value::Null);
}

#[tokio::test(flavor = "multi_thread")]
async fn out_of_band_iam_and_version_changes_are_security_drift_and_apply_heals() {
    let kms = GcpKms::start();
    let w = workdir(None);
    w.keyrite_gcp(&kms, &["apply", "--auto-approve"]).expect(0);
    w.keyrite_gcp(&kms, &["drift"]).expect(0);

    let client = admin(&kms).await;
    let mut policy = client.get_iam_policy().set_resource(KEY).send().await.unwrap();
    policy.bindings[0].members.push("user:eve@example.com".into());
    policy.bindings.push(Binding::new().set_role("roles/cloudkms.admin").set_members(["user:mallory@example.com"]));
    client.set_iam_policy().set_resource(KEY).set_policy(policy).send().await.unwrap();
    let v1 = format!("{KEY}/cryptoKeyVersions/1");
    client
        .update_crypto_key_version()
        .set_crypto_key_version(CryptoKeyVersion::new().set_name(&v1).set_state(CryptoKeyVersionState::Disabled))
        .set_update_mask(wkt::FieldMask::default().set_paths(["state"]))
        .send()
        .await
        .unwrap();
    let v2 = client
        .create_crypto_key_version()
        .set_parent(KEY)
        .set_crypto_key_version(CryptoKeyVersion::new())
        .send()
        .await
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(400)); // the new version finishes generating

    let drift = w.keyrite_gcp(&kms, &["drift", "--format", "json"]).expect(2).json();
    let items = drift["drift"].as_array().unwrap_or_else(|| panic!("{drift:#}"));
    let find = |attr: &str| {
        items.iter().find(|i| i["attribute"] == attr).unwrap_or_else(|| panic!("no drift on {attr}: {drift:#}"))
    };
    for attr in ["members", "other_bindings", "version_state", "other_enabled_versions"] {
        assert_eq!(find(attr)["severity"], "security", "{attr}: {drift:#}");
    }
    assert!(find("members")["message"].as_str().unwrap().contains("+user:eve@example.com"));
    assert!(find("other_bindings")["message"].as_str().unwrap().contains("roles/cloudkms.admin"));
    assert!(find("version_state")["message"].as_str().unwrap().contains("DISABLED"));
    assert!(find("other_enabled_versions")["message"].as_str().unwrap().contains('2'));

    // The key keeps signing with the pinned version: nothing followed version 2.
    w.keyrite_gcp(&kms, &["apply", "--auto-approve"]).expect(0);
    w.keyrite_gcp(&kms, &["drift"]).expect(0);
    let policy = client.get_iam_policy().set_resource(KEY).send().await.unwrap();
    assert_eq!(policy.bindings.len(), 1, "{policy:?}");
    assert_eq!(policy.bindings[0].members, vec![SIGNER_ACCOUNT.to_owned()]);
    let state = |name: &str| {
        let client = client.clone();
        let name = name.to_owned();
        async move { client.get_crypto_key_version().set_name(name).send().await.unwrap().state }
    };
    assert_eq!(state(&v1).await, CryptoKeyVersionState::Enabled);
    assert_eq!(
        state(&v2.name).await,
        CryptoKeyVersionState::Disabled,
        "an undeclared version is disabled, not destroyed"
    );
    assert_eq!(state_output(&w, "signer_key", "version_id"), v1);
}

#[tokio::test(flavor = "multi_thread")]
async fn other_declared_roles_are_granted_kept_and_healed_and_undeclared_ones_still_drift() {
    let kms = GcpKms::start();
    let text = std::fs::read_to_string(repo_root().join("manifests/gcp-treasury.yaml")).unwrap();
    let members = format!("      - {SIGNER_ACCOUNT}\n");
    let text = text.replacen(
        &members,
        &format!("{members}    other_bindings:\n      roles/cloudkms.publicKeyViewer: [group:{AUDITORS}]\n"),
        1,
    );
    let w = Workdir::with_text(&text);
    w.keyrite_gcp(&kms, &["apply", "--auto-approve"]).expect(0);
    w.keyrite_gcp(&kms, &["plan", "--detailed-exitcode"]).expect(0);

    let client = admin(&kms).await;
    let roles = |policy: &google_cloud_iam_v1::model::Policy| {
        let mut roles: Vec<(String, Vec<String>)> =
            policy.bindings.iter().map(|b| (b.role.clone(), b.members.clone())).collect();
        roles.sort();
        roles
    };
    let declared = vec![
        ("roles/cloudkms.publicKeyViewer".to_owned(), vec![format!("group:{AUDITORS}")]),
        ("roles/cloudkms.signerVerifier".to_owned(), vec![SIGNER_ACCOUNT.to_owned()]),
    ];
    let policy = client.get_iam_policy().set_resource(KEY).send().await.unwrap();
    assert_eq!(roles(&policy), declared);

    // Someone drops the auditors and grants themselves admin.
    let mut policy = policy;
    policy.bindings.retain(|b| b.role != "roles/cloudkms.publicKeyViewer");
    policy.bindings.push(Binding::new().set_role("roles/cloudkms.admin").set_members(["user:mallory@example.com"]));
    client.set_iam_policy().set_resource(KEY).set_policy(policy).send().await.unwrap();

    let drift = w.keyrite_gcp(&kms, &["drift", "--format", "json"]).expect(2).json();
    let items = drift["drift"].as_array().unwrap_or_else(|| panic!("{drift:#}"));
    assert_eq!(items.len(), 1, "{drift:#}");
    assert_eq!(items[0]["attribute"], "other_bindings");
    assert_eq!(items[0]["severity"], "security");
    let message = items[0]["message"].as_str().unwrap();
    assert!(message.contains("roles/cloudkms.admin +user:mallory@example.com"), "{message}");
    assert!(message.contains(&format!("roles/cloudkms.publicKeyViewer -group:{AUDITORS}")), "{message}");

    w.keyrite_gcp(&kms, &["apply", "--auto-approve"]).expect(0);
    w.keyrite_gcp(&kms, &["drift"]).expect(0);
    let policy = client.get_iam_policy().set_resource(KEY).send().await.unwrap();
    assert_eq!(roles(&policy), declared);

    // Destroying the binding removes exactly the declared roles.
    let mut policy = policy;
    policy.bindings.push(Binding::new().set_role("roles/cloudkms.viewer").set_members(["user:carol@example.com"]));
    client.set_iam_policy().set_resource(KEY).set_policy(policy).send().await.unwrap();
    let text = std::fs::read_to_string(&w.manifest).unwrap();
    let start = text.find("  signer_access:").unwrap();
    let end = text.find("signers:").unwrap();
    std::fs::write(&w.manifest, format!("{}{}", &text[..start], &text[end..])).unwrap();
    w.keyrite_gcp(&kms, &["apply", "--auto-approve"]).expect(0);
    let policy = client.get_iam_policy().set_resource(KEY).send().await.unwrap();
    assert_eq!(roles(&policy), vec![("roles/cloudkms.viewer".to_owned(), vec!["user:carol@example.com".to_owned()])]);
}

#[tokio::test(flavor = "multi_thread")]
async fn raising_the_pinned_version_rotates_to_a_new_address_explicitly() {
    let kms = GcpKms::start();
    let w = workdir(None);
    w.keyrite_gcp(&kms, &["apply", "--auto-approve"]).expect(0);
    let old = state_output(&w, "signer_key", "address");
    let text = std::fs::read_to_string(&w.manifest).unwrap().replace("    version: 1\n", "    version: 2\n");
    std::fs::write(&w.manifest, text).unwrap();
    let plan = w.keyrite_gcp(&kms, &["plan"]).expect(0);
    assert!(plan.stdout.contains("version") && plan.stdout.contains("1 → 2"), "{}", plan.stdout);
    w.keyrite_gcp(&kms, &["apply", "--auto-approve"]).expect(0);
    w.keyrite_gcp(&kms, &["plan", "--detailed-exitcode"]).expect(0);
    let new = state_output(&w, "signer_key", "address");
    assert_ne!(new, old);
    assert_eq!(state_output(&w, "signer_key", "version_id"), format!("{KEY}/cryptoKeyVersions/2"));
    assert_eq!(new.to_lowercase(), address_of(&admin(&kms).await, &format!("{KEY}/cryptoKeyVersions/2")).await);
}

/// The rendered Cloud Run function, served locally by the Functions Framework behind the ID
/// token check Cloud Run makes; killed when dropped.
struct CloudRun {
    child: Child,
    url: String,
}

impl CloudRun {
    fn start(w: &Workdir, kms: &GcpKms) -> CloudRun {
        assert!(
            repo_root().join("node_modules/@google-cloud/kms").exists(),
            "run `npm ci` (scripts/test.sh does) to get @google-cloud/kms and the Functions Framework"
        );
        let dir = w.path().join("signer-fn");
        let out = w.keyrite_gcp(kms, &["render-signer", "--out", dir.to_str().unwrap()]).expect(0);
        assert!(out.stdout.contains("gcloud functions deploy keyrite-treasury"), "{}", out.stdout);
        assert!(out.stdout.contains("--entry-point=signDigest") && out.stdout.contains("--no-allow-unauthenticated"));
        std::os::unix::fs::symlink(repo_root().join("node_modules"), dir.join("node_modules")).unwrap();
        let port = common::free_port();
        let url = format!("http://127.0.0.1:{port}");
        let home = w.dir.path().join("cloud-run-home");
        std::fs::create_dir_all(&home).unwrap();
        let child = Command::new("node")
            .arg(repo_root().join("tests/node/support/cloud-run-local.mjs"))
            .args([dir.to_str().unwrap(), &port.to_string(), &url])
            .env("KMS_API_ENDPOINT", &kms.endpoint)
            .env("GCE_METADATA_HOST", format!("127.0.0.1:{}", kms.port))
            // On Cloud Run the function has no credentials file, only the metadata server.
            .env("HOME", &home)
            .env("KMS_KEY_VERSION", state_output(w, "signer_key", "version_id"))
            .env("EXPECTED_ADDRESS", state_output(w, "signer_key", "address"))
            .env("SIGNING_MODE", "digest")
            .stdout(Stdio::null())
            .stderr(Stdio::from(std::fs::File::create(w.dir.path().join("cloud-run.log")).unwrap()))
            .spawn()
            .expect("start node");
        common::wait_for_port(port, "the local Cloud Run function");
        CloudRun { child, url }
    }
}

impl Drop for CloudRun {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The container `render-signer --serve` writes: its directory and its Dockerfile's
/// ENTRYPOINT.
struct ServeContainer {
    dir: std::path::PathBuf,
    entrypoint: Vec<String>,
}

impl ServeContainer {
    fn render(w: &Workdir, kms: &GcpKms) -> ServeContainer {
        let dir = w.path().join("serve-container");
        let out = w.keyrite_gcp(kms, &["render-signer", "--serve", "--out", dir.to_str().unwrap()]).expect(0);
        assert!(out.stdout.contains("gcloud run deploy keyrite-treasury"), "{}", out.stdout);
        for flag in ["--project=treasury-prod-4711", "--region=us-east1", "--no-allow-unauthenticated"] {
            assert!(out.stdout.contains(flag), "{flag}: {}", out.stdout);
        }
        assert!(out.stdout.contains("--service-account=kms-signer@treasury-prod-4711.iam.gserviceaccount.com"));
        let dockerfile = std::fs::read_to_string(dir.join("Dockerfile")).unwrap();
        assert!(dockerfile.contains("FROM gcr.io/distroless/cc-debian12:nonroot\n"), "{dockerfile}");
        assert!(dockerfile.contains("WORKDIR /srv/keyrite\nCOPY keyrite keyrite.yaml ./\n"), "{dockerfile}");
        assert!(dockerfile.contains("USER nonroot\n"), "{dockerfile}");
        // Every file the image copies is there; the state is the one apply wrote.
        for file in ["keyrite", "keyrite.yaml", "keyrite.state.json"] {
            assert!(dir.join(file).is_file(), "{file} missing from {}", dir.display());
        }
        assert_eq!(
            std::fs::read(dir.join("keyrite.state.json")).unwrap(),
            std::fs::read(w.path().join("keyrite.state.json")).unwrap()
        );
        let line = dockerfile.lines().find_map(|l| l.strip_prefix("ENTRYPOINT ")).expect("an ENTRYPOINT");
        let entrypoint: Vec<String> = serde_json::from_str(line).unwrap();
        assert_eq!(entrypoint[..2], ["/srv/keyrite/keyrite", "serve"]);
        ServeContainer { dir, entrypoint }
    }

    /// The ENTRYPOINT, run in the container's directory (its WORKDIR) with the environment
    /// Cloud Run gives: credentials from the metadata server only, and PORT.
    fn command(&self, w: &Workdir, kms: &GcpKms) -> Command {
        let mut cmd = w.gcp_command(kms, &[]);
        cmd.current_dir(&self.dir);
        let mut args = self.entrypoint.iter();
        let program = args.next().unwrap().replace("/srv/keyrite", self.dir.to_str().unwrap());
        let mut container = Command::new(program);
        container.args(args).current_dir(&self.dir).stdout(Stdio::null()).stderr(Stdio::null());
        for (k, v) in cmd.get_envs() {
            match v {
                Some(v) => container.env(k, v),
                None => container.env_remove(k),
            };
        }
        container
    }
}

fn selftest(w: &Workdir, kms: &GcpKms) -> Run {
    w.keyrite_gcp(kms, &["selftest", "--format", "json", "--timeout", "30"])
}

#[tokio::test(flavor = "multi_thread")]
async fn sign_and_selftest_work_through_kms_and_the_cloud_run_template_with_an_id_token() {
    let kms = GcpKms::start();
    let w = workdir(Some("http://127.0.0.1:1")); // replaced once the function's port is known
    w.keyrite_gcp(&kms, &["apply", "--auto-approve"]).expect(0);
    let address = state_output(&w, "signer_key", "address").to_lowercase();

    let digest = [0x5au8; 32];
    let sig = w.keyrite_gcp(&kms, &["sign", "--hash", &format!("0x{}", hex::encode(digest))]).expect(0);
    assert_eq!(recover(&digest, sig.stdout.trim()), address, "mode digest signs the bytes as given");

    let function = CloudRun::start(&w, &kms);
    // `keyrite serve` in front of the same Cloud KMS key, as a second endpoint, run from the
    // container recipe `render-signer --serve` writes, as Cloud Run would run it.
    let serve_port = common::free_port();
    let mut serve =
        ServeContainer::render(&w, &kms).command(&w, &kms).env("PORT", serve_port.to_string()).spawn().unwrap();
    common::wait_for_port(serve_port, "keyrite serve");
    let serve_url = format!("http://127.0.0.1:{serve_port}/");
    let text = std::fs::read_to_string(&w.manifest).unwrap().replace("http://127.0.0.1:1", &function.url).replace(
        "        google_id_token: true\n",
        &format!("        google_id_token: true\n      - url: {serve_url}\n"),
    );
    std::fs::write(&w.manifest, &text).unwrap();
    let report = selftest(&w, &kms).expect(0).json();
    let _ = serve.kill();
    let _ = serve.wait();
    let checks = report["signers"][0]["checks"].as_array().unwrap();
    assert_eq!(checks.len(), 4, "public key, direct, Cloud Run, serve: {checks:#?}");
    assert_eq!(checks[3]["target"], serve_url.as_str());
    for c in &checks[1..] {
        assert_eq!(c["passed"], true, "{c:#}");
        let digest = hex::decode(c["digest"].as_str().unwrap().trim_start_matches("0x")).unwrap();
        if c["target"] == function.url.as_str() {
            assert_eq!(recover(&digest, c["signature"].as_str().unwrap()), address);
        }
    }
    assert_eq!(kms.id_token_audiences(), vec![function.url.clone()], "ID token minted for the function's origin");

    // The same endpoint without an ID token is refused, and the self-test says how.
    std::fs::write(&w.manifest, text.replace("google_id_token: true", "google_id_token: false")).unwrap();
    let report = selftest(&w, &kms).expect(1).json();
    let check = &report["signers"][0]["checks"][2];
    assert_eq!(check["cause"], "http_status", "{check:#}");
    assert!(check["message"].as_str().unwrap().contains("401"), "{check:#}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_checksum_mismatch_is_an_error_never_a_signature() {
    let kms = GcpKms::start();
    let w = workdir(Some("http://127.0.0.1:1"));
    w.keyrite_gcp(&kms, &["apply", "--auto-approve"]).expect(0);
    let function = CloudRun::start(&w, &kms);
    let text = std::fs::read_to_string(&w.manifest).unwrap().replace("http://127.0.0.1:1", &function.url);
    std::fs::write(&w.manifest, &text).unwrap();
    selftest(&w, &kms).expect(0); // the function has loaded its key

    let hash = format!("0x{}", "11".repeat(32));
    let cases = [
        (Faults { bad_signature_crc: true, ..Faults::default() }, "signature failed its integrity check"),
        (Faults { unverified_digest: true, ..Faults::default() }, "did not confirm the digest's CRC32C"),
        (Faults { bad_pem_crc: true, ..Faults::default() }, "public key PEM failed its integrity check"),
        (Faults { wrong_signature: true, ..Faults::default() }, "does not"),
    ];
    for (faults, message) in cases {
        kms.set_faults(faults.clone());
        let run = w.keyrite_gcp(&kms, &["sign", "--hash", &hash]).expect(1);
        assert!(run.stderr.contains(message), "{faults:?}: {}", run.stderr);
        assert!(run.stdout.trim().is_empty(), "{faults:?}: printed {}", run.stdout);
        if !faults.bad_pem_crc {
            // The template checks the same things: its answer is an error, not a signature.
            let report = selftest(&w, &kms).expect(1).json();
            let endpoint = &report["signers"][0]["checks"][2];
            assert_eq!(endpoint["cause"], "http_status", "{faults:?}: {endpoint:#}");
            assert!(endpoint["message"].as_str().unwrap().contains("500"), "{faults:?}: {endpoint:#}");
        }
    }
    kms.set_faults(Faults::default());
    selftest(&w, &kms).expect(0);
}

#[tokio::test(flavor = "multi_thread")]
async fn destroy_schedules_the_versions_says_what_remains_and_a_new_apply_restores_them() {
    let kms = GcpKms::start();
    let w = workdir(None);
    w.keyrite_gcp(&kms, &["apply", "--auto-approve"]).expect(0);
    let client = admin(&kms).await;
    let version = format!("{KEY}/cryptoKeyVersions/1");
    let address = state_output(&w, "signer_key", "address");

    let refused = w.keyrite_gcp(&kms, &["destroy", "--auto-approve"]).expect(1);
    assert!(refused.stderr.contains("--allow-key-deletion"), "{}", refused.stderr);
    let v = client.get_crypto_key_version().set_name(&version).send().await.unwrap();
    assert_eq!(v.state, CryptoKeyVersionState::Enabled, "nothing was destroyed without the flag");

    let run = w.keyrite_gcp(&kms, &["destroy", "--auto-approve", "--allow-key-deletion"]).expect(0);
    assert!(run.stderr.contains("version 1 scheduled for destruction on"), "{}", run.stderr);
    assert!(run.stderr.contains("The key and its key ring remain"), "{}", run.stderr);
    assert!(run.stderr.contains("remains: Cloud KMS never deletes key rings"), "{}", run.stderr);
    let v = client.get_crypto_key_version().set_name(&version).send().await.unwrap();
    assert_eq!(v.state, CryptoKeyVersionState::DestroyScheduled);
    let window = v.destroy_time.unwrap().seconds()
        - std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    assert!((29 * 86_400..=30 * 86_400).contains(&window), "destroy window {window}s");
    assert!(w.state()["resources"].as_object().unwrap().is_empty());
    let policy = client.get_iam_policy().set_resource(KEY).send().await.unwrap();
    assert!(policy.bindings.is_empty(), "the signer's binding was removed: {policy:?}");

    // Within the window, applying the same manifest takes the key back: same key, same address.
    w.keyrite_gcp(&kms, &["apply", "--auto-approve"]).expect(0);
    w.keyrite_gcp(&kms, &["plan", "--detailed-exitcode"]).expect(0);
    let v = client.get_crypto_key_version().set_name(&version).send().await.unwrap();
    assert_eq!(v.state, CryptoKeyVersionState::Enabled);
    assert_eq!(state_output(&w, "signer_key", "address"), address);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_create_whose_answer_is_lost_is_adopted_never_made_twice() {
    let kms = GcpKms::start();
    let w = workdir(None);
    // The ring and the key are both created, and both answers are lost on the way back.
    kms.set_faults(Faults { lose_create_responses: 2, ..Faults::default() });
    let run = w.keyrite_gcp(&kms, &["apply", "--auto-approve"]).expect(0);
    assert!(run.stdout.contains("3 changes applied"), "{}\n{}", run.stdout, run.stderr);
    w.keyrite_gcp(&kms, &["plan", "--detailed-exitcode"]).expect(0);
    let creates = kms.calls().iter().filter(|c| c.starts_with("POST ") && c.ends_with("/cryptoKeys")).count();
    assert_eq!(creates, 1, "CreateCryptoKey was repeated: {:?}", kms.calls());
    let client = admin(&kms).await;
    let ring = KEY.rsplit_once("/cryptoKeys/").unwrap().0;
    let keys = client.list_crypto_keys().set_parent(ring).send().await.unwrap().crypto_keys;
    assert_eq!(keys.len(), 1);
    assert_eq!(
        state_output(&w, "signer_key", "address").to_lowercase(),
        address_of(&client, &format!("{KEY}/cryptoKeyVersions/1")).await
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn anonymous_credentials_and_the_endpoint_can_come_from_the_manifest() {
    let kms = GcpKms::start();
    let text = std::fs::read_to_string(repo_root().join("manifests/gcp-treasury.yaml")).unwrap().replace(
        "    project: treasury-prod-4711\n",
        &format!("    project: treasury-prod-4711\n    endpoint: {}\n    credentials: anonymous\n", kms.endpoint),
    );
    let w = Workdir::with_text(&text);
    let mut cmd = w.gcp_command(&kms, &["apply", "--auto-approve"]);
    cmd.env_remove("KEYRITE_GCP_KMS_ENDPOINT").env_remove("GCE_METADATA_HOST");
    let run = Run::from(cmd.stdin(Stdio::null()).output().unwrap()).expect(0);
    assert!(run.stderr.contains("warning[credentials]"), "anonymous credentials warn: {}", run.stderr);
    assert!(kms.authorizations().is_empty(), "anonymous requests carried credentials: {:?}", kms.authorizations());
    assert!(!state_output(&w, "signer_key", "address").is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_apply_under_unavailable_answers_converges_with_one_key() {
    let kms = GcpKms::start();
    let w = workdir(None);
    // A third of the requests fail with 503 before the service acts: reads are retried by the
    // client, a failed create is looked for before it is retried, and anything else fails
    // the run with the state consistent, for the next run to finish.
    kms.set_faults(Faults { unavailable_percent: 35, ..Faults::default() });
    let mut runs = 0;
    loop {
        runs += 1;
        let run = w.keyrite_gcp(&kms, &["apply", "--auto-approve"]);
        if run.code == 0 {
            break;
        }
        assert!(runs < 5, "no convergence after {runs} applies:\n{}\n{}", run.stdout, run.stderr);
        assert!(run.stderr.contains("UNAVAILABLE"), "failed for another reason:\n{}", run.stderr);
    }
    assert!(kms.unavailable_answers() > 0);
    kms.set_faults(Faults::default());
    w.keyrite_gcp(&kms, &["plan", "--detailed-exitcode"]).expect(0);
    w.keyrite_gcp(&kms, &["drift"]).expect(0);
    let client = admin(&kms).await;
    let ring = KEY.rsplit_once("/cryptoKeys/").unwrap().0;
    assert_eq!(client.list_crypto_keys().set_parent(ring).send().await.unwrap().crypto_keys.len(), 1);
    let versions = client.list_crypto_key_versions().set_parent(KEY).send().await.unwrap().crypto_key_versions;
    assert_eq!(versions.len(), 1, "one version, one address");
    eprintln!("converged in {runs} apply run(s), {} requests answered UNAVAILABLE", kms.unavailable_answers());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_users_gcloud_credentials_apply_and_reach_cloud_run_with_the_users_id_token() {
    let kms = GcpKms::start();
    let w = workdir(Some("http://127.0.0.1:1"));
    // What `gcloud auth application-default login` writes (token_uri pointed at the stand-in).
    let adc = w.dir.path().join(".config/gcloud/application_default_credentials.json");
    std::fs::create_dir_all(adc.parent().unwrap()).unwrap();
    let user = serde_json::json!({
        "type": "authorized_user",
        "client_id": "32555940559.apps.googleusercontent.com",
        "client_secret": "not-a-secret",
        "refresh_token": "ceremony-refresh-token",
        "token_uri": format!("{}/token", kms.endpoint),
    });
    std::fs::write(&adc, user.to_string()).unwrap();
    let as_user = |args: &[&str]| {
        let mut cmd = w.gcp_command(&kms, args);
        cmd.env_remove("GCE_METADATA_HOST");
        Run::from(cmd.stdin(Stdio::null()).output().unwrap())
    };
    as_user(&["apply", "--auto-approve"]).expect(0);
    let auth = kms.authorizations();
    assert!(!auth.is_empty() && auth.iter().all(|a| a == &format!("Bearer {USER_ACCESS_TOKEN}")), "{auth:?}");

    let function = CloudRun::start(&w, &kms);
    let text = std::fs::read_to_string(&w.manifest).unwrap().replace("http://127.0.0.1:1", &function.url);
    std::fs::write(&w.manifest, &text).unwrap();
    let refreshes = kms.user_refreshes();
    let report = as_user(&["selftest", "--format", "json", "--timeout", "30"]).expect(0).json();
    assert_eq!(report["signers"][0]["checks"][2]["passed"], true, "{report:#}");
    assert!(kms.user_refreshes() > refreshes, "the user's ID token came from the OAuth endpoint");
    assert!(kms.id_token_audiences().is_empty(), "no metadata-server token was used");
}

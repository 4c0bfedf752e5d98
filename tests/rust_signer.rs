//! The Rust Lambda signer (`keyrite-lambda-signer`, template `rust-signer` on
//! provided.al2023): the bootstrap's glibc needs as `objdump` reads them, its package as
//! Python's zipfile reads it, and the whole stack on the emulator, which runs the bootstrap
//! through the Lambda Runtime API. A Node signer on the same key answers beside it; every
//! signature is recovered here with k256.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::common;

use common::{Emulator, Run, Workdir};
use k256::ecdsa::{RecoveryId, Signature, VerifyingKey};
use serde_json::{Value, json};
use sha3::{Digest, Keccak256};

/// The deployed build of the signer (its `signer` profile).
fn bootstrap() -> &'static Path {
    common::signer_bootstrap()
}

/// The GLIBC_x.y versions `objdump -T` lists for a binary's dynamic symbols.
fn objdump_glibc(binary: &Path) -> Vec<(u32, u32)> {
    let out = Command::new("objdump").arg("-T").arg(binary).output().expect("objdump (binutils) runs");
    assert!(out.status.success(), "objdump -T failed: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    let mut versions: Vec<(u32, u32)> = text
        .split(|c: char| c.is_whitespace() || c == '(' || c == ')')
        .filter_map(|w| w.strip_prefix("GLIBC_"))
        .filter_map(|v| {
            let mut p = v.split('.');
            Some((p.next()?.parse().ok()?, p.next()?.parse().ok()?))
        })
        .collect();
    versions.sort();
    versions.dedup();
    versions
}

/// The machine's own Lambda architecture name.
fn host_architecture() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "x86_64",
        "aarch64" => "arm64",
        other => panic!("no Lambda architecture for {other}"),
    }
}

#[test]
fn the_bootstrap_needs_no_glibc_newer_than_amazon_linux_2023() {
    let versions = objdump_glibc(bootstrap());
    let newest = *versions.last().expect("the bootstrap is dynamically linked against glibc: objdump lists versions");
    assert!(
        newest <= (2, 34),
        "the bootstrap needs GLIBC_{}.{}; provided.al2023 has 2.34: {versions:?}",
        newest.0,
        newest.1
    );
    let format =
        String::from_utf8(Command::new("objdump").arg("-f").arg(bootstrap()).output().unwrap().stdout).unwrap();
    let expected_format = match host_architecture() {
        "x86_64" => "elf64-x86-64",
        _ => "elf64-littleaarch64",
    };
    assert!(format.contains(expected_format), "{format}");
    // keyrite's own reading, which refuses a bootstrap before packaging it, agrees.
    let bytes = std::fs::read(bootstrap()).unwrap();
    let seen = keyrite::package::inspect_bootstrap(&bytes).unwrap();
    assert_eq!((seen.architecture, seen.glibc), (host_architecture(), Some(newest)));
}

/// A C program built here against this machine's glibc (2.36, Debian 12), needing
/// `arc4random@GLIBC_2.36`: a bootstrap that would not start on Amazon Linux 2023.
fn too_new_for_al2023(dir: &Path) -> PathBuf {
    let source = dir.join("new.c");
    std::fs::write(&source, "#include <stdlib.h>\nint main(void) { return (int)(arc4random() & 1); }\n").unwrap();
    let binary = dir.join("new-bootstrap");
    let out = Command::new("gcc").arg("-o").arg(&binary).arg(&source).output().expect("gcc runs");
    assert!(out.status.success(), "gcc: {}", String::from_utf8_lossy(&out.stderr));
    binary
}

fn validate_with(w: &Workdir, bootstrap: &Path) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_keyrite"))
        .arg("validate")
        .current_dir(w.path())
        .env("KEYRITE_RUST_SIGNER", bootstrap)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    Run::from(out)
}

const FUNCTION: &str = "version: 1\nresources:\n  f:\n    type: aws_lambda_function\n    name: f\n    runtime: provided.al2023\n    role: arn:aws:iam::111122223333:role/r\n    key: k\n    expected_address: '0x0000000000000000000000000000000000000001'\n";

#[test]
fn a_bootstrap_that_would_not_start_on_lambda_is_refused_at_validation() {
    let scratch = tempfile::tempdir().unwrap();
    let new = too_new_for_al2023(scratch.path());
    assert_eq!(objdump_glibc(&new).last(), Some(&(2, 36)), "objdump sees the test binary's glibc need");
    let w = Workdir::with_text(FUNCTION);
    let run = validate_with(&w, &new).expect(1);
    assert!(run.stderr.contains("keyrite.yaml:4:5: error[template]"), "{}", run.stderr);
    assert!(run.stderr.contains("needs glibc 2.36, but provided.al2023 has 2.34"), "{}", run.stderr);

    // Another machine's build: the architecture must be declared, and then it packages.
    let mut other = std::fs::read(bootstrap()).unwrap();
    let (machine, name) = if host_architecture() == "x86_64" { (0xb7u16, "arm64") } else { (0x3e, "x86_64") };
    other[18..20].copy_from_slice(&machine.to_le_bytes());
    let other_path = scratch.path().join("other-arch");
    std::fs::write(&other_path, &other).unwrap();
    let declared = if name == "arm64" { "x86_64" } else { "arm64" };
    let w = Workdir::with_text(&format!("{FUNCTION}    architecture: {declared}\n"));
    let run = validate_with(&w, &other_path).expect(1);
    assert!(run.stderr.contains(&format!("is built for {name}: declare `architecture: {name}`")), "{}", run.stderr);
    let w = Workdir::with_text(&format!("{FUNCTION}    architecture: {name}\n"));
    validate_with(&w, &other_path).expect(0);

    // Not a Linux executable at all (a macOS build, say), or not there.
    let macho = scratch.path().join("keyrite-macos");
    std::fs::write(&macho, [0xcf, 0xfa, 0xed, 0xfe, 7, 0, 0, 1]).unwrap();
    let run = validate_with(&Workdir::with_text(FUNCTION), &macho).expect(1);
    assert!(
        run.stderr.contains("is not a Linux executable for x86_64 or arm64 (a macOS Mach-O file)"),
        "{}",
        run.stderr
    );
    let run = validate_with(&Workdir::with_text(FUNCTION), &scratch.path().join("absent")).expect(1);
    assert!(run.stderr.contains("the Rust signer's executable") && run.stderr.contains("is missing"), "{}", run.stderr);

    // The Rust signer on a Node.js runtime, and a Node template on provided.al2023.
    let w = Workdir::with_text(
        &FUNCTION.replace("provided.al2023", "nodejs20.x").replace("runtime:", "template: rust-signer\n    runtime:"),
    );
    let run = validate_with(&w, bootstrap()).expect(1);
    assert!(run.stderr.contains("the template rust-signer runs on provided.al2023, not nodejs20.x"), "{}", run.stderr);
    let w = Workdir::with_text(&FUNCTION.replace("runtime:", "template: aws-lambda-signer\n    runtime:"));
    let run = validate_with(&w, bootstrap()).expect(1);
    assert!(run.stderr.contains("runs on nodejs20.x or nodejs22.x, not provided.al2023"), "{}", run.stderr);
}

#[test]
fn the_package_is_the_bootstrap_deflated_executable_and_the_same_every_time() {
    let a = keyrite::package::rust_signer_package(bootstrap()).unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let zip = scratch.path().join("signer.zip");
    std::fs::write(&zip, &a.bytes).unwrap();
    // Python's zipfile, not the zip crate, reads it back.
    let script = "import sys, zipfile, hashlib\nz = zipfile.ZipFile(sys.argv[1])\nfor i in z.infolist():\n    print(i.filename, oct(i.external_attr >> 16), i.compress_type, i.date_time, i.file_size, i.compress_size, hashlib.sha256(z.read(i)).hexdigest())\n";
    let out = Command::new("python3").args(["-c", script]).arg(&zip).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let listing = String::from_utf8(out.stdout).unwrap();
    let fields: Vec<&str> = listing.split_whitespace().collect();
    let binary = std::fs::read(bootstrap()).unwrap();
    assert_eq!(listing.lines().count(), 1, "{listing}");
    assert_eq!(&fields[..3], ["bootstrap", "0o100755", "8"], "{listing}"); // 8: deflated
    assert_eq!(fields[3..9].join(" "), "(1980, 1, 1, 0, 0, 0)");
    assert_eq!(fields[9], binary.len().to_string());
    assert_eq!(fields[11], hex::encode(sha2::Sha256::digest(&binary)));
    let zipped: usize = fields[10].parse().unwrap();
    // Deflated, not stored: well under the executable's size.
    assert!(zipped < binary.len() * 3 / 5 && a.bytes.len() < 50 << 20, "{} of {} bytes", a.bytes.len(), binary.len());
}

/// The treasury stack (the Node signer on its key) with the Rust signer beside it, on the
/// same key: its own function, Function URL and API stage.
fn both_signers() -> String {
    let text = std::fs::read_to_string(common::repo_root().join("manifests/treasury-signer.yaml")).unwrap();
    let rust = "  rust_signer:\n    type: aws_lambda_function\n    name: keyrite-treasury-rust-signer\n    runtime: provided.al2023\n    role: ${signer_role.arn}\n    key: ${treasury_key.key_id}\n    expected_address: ${treasury_key.address}\n    memory_mb: 128\n    reserved_concurrency: 20\n\n  rust_url:\n    type: aws_lambda_function_url\n    function: ${rust_signer.name}\n\n  rust_api:\n    type: aws_api_gateway_rest_api\n    name: keyrite-treasury-rust-signer\n    function: ${rust_signer.arn}\n    path: sign\n    stage: prod\n    policy:\n      generated: {}\n\nsigners:\n";
    assert!(text.contains("\nsigners:\n"));
    let text = text.replacen("\nsigners:\n", &format!("\n{rust}"), 1);
    format!(
        "{text}  treasury_rust:\n    key: treasury_key\n    mode: eip191\n    endpoints:\n      - function_url: rust_url\n      - api: rust_api\n"
    )
}

/// keyrite against the emulator, with the Rust signer's executable at `bootstrap`.
fn keyrite_with(w: &Workdir, emu: &Emulator, bootstrap: &Path, args: &[&str]) -> Run {
    let out = w.command(&emu.endpoint, args).env("KEYRITE_RUST_SIGNER", bootstrap).stdin(Stdio::null()).output();
    Run::from(out.unwrap())
}

/// The address an r‖s‖v signature over EIP-191(digest) recovers to, requiring low-s and
/// v ∈ {27, 28}; k256 and sha3 directly, not keyrite's crypto module.
fn recover_eip191(digest: &[u8; 32], sig_hex: &str) -> String {
    let sig = hex::decode(sig_hex.trim_start_matches("0x")).unwrap();
    assert_eq!(sig.len(), 65);
    let mut h = Keccak256::new();
    h.update(b"\x19Ethereum Signed Message:\n32");
    h.update(digest);
    let signature = Signature::from_slice(&sig[..64]).unwrap();
    assert!(signature.normalize_s().is_none(), "high-s signature returned");
    assert!(matches!(sig[64], 27 | 28), "v = {}", sig[64]);
    let id = RecoveryId::from_byte(sig[64] - 27).unwrap();
    let key = VerifyingKey::recover_from_prehash(&h.finalize(), &signature, id).unwrap();
    let point = key.to_encoded_point(false);
    format!("0x{}", hex::encode(&Keccak256::digest(&point.as_bytes()[1..])[12..]))
}

/// Invokes a function with a Function URL event carrying `body`: (status, body).
async fn invoke(lambda: &aws_sdk_lambda::Client, function: &str, method: &str, body: &Value) -> (u64, Value) {
    let event = json!({"version": "2.0", "requestContext": {"http": {"method": method}}, "body": body.to_string(), "isBase64Encoded": false});
    let out = lambda
        .invoke()
        .function_name(function)
        .payload(aws_sdk_lambda::primitives::Blob::new(event.to_string()))
        .send()
        .await
        .unwrap();
    assert_eq!(
        out.function_error(),
        None,
        "{function}: {:?}",
        out.payload().map(|p| String::from_utf8_lossy(p.as_ref()).into_owned())
    );
    let response: Value = serde_json::from_slice(out.payload().unwrap().as_ref()).unwrap();
    let body = serde_json::from_str(response["body"].as_str().unwrap()).unwrap();
    (response["statusCode"].as_u64().unwrap(), body)
}

/// A cargo target directory of its own under `root`, holding a copy of the keyrite under
/// test in `release/` and `debug/`, each beside a `keyrite-lambda-signer` of another build
/// (what `cargo build --release` or `cargo bench` of the workspace leaves there), and the
/// deployed build in `signer/`. Returns the release keyrite.
fn target_dir_with_other_builds(root: &Path) -> PathBuf {
    let target = root.join("target");
    std::fs::create_dir_all(target.join("signer")).unwrap();
    std::fs::write(target.join("CACHEDIR.TAG"), "Signature: 8a477f597d28d172789f06886806bc55\n").unwrap();
    std::fs::copy(bootstrap(), target.join("signer/keyrite-lambda-signer")).unwrap();
    let mut other = std::fs::read(bootstrap()).unwrap();
    other.extend_from_slice(b"\0the benchmark's build\0");
    for profile in ["release", "debug"] {
        let dir = target.join(profile);
        std::fs::create_dir_all(&dir).unwrap();
        let keyrite = dir.join("keyrite");
        if std::fs::hard_link(env!("CARGO_BIN_EXE_keyrite"), &keyrite).is_err() {
            std::fs::copy(env!("CARGO_BIN_EXE_keyrite"), &keyrite).unwrap();
        }
        std::fs::write(dir.join("keyrite-lambda-signer"), &other).unwrap();
        std::fs::set_permissions(
            dir.join("keyrite-lambda-signer"),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
    }
    target.join("release/keyrite")
}

#[test]
fn what_is_deployed_is_the_signer_profiles_build_whatever_else_was_built_beside_keyrite() {
    let emu = Emulator::start();
    let w = Workdir::with_text(FUNCTION);
    let deployed = keyrite::package::rust_signer_package(bootstrap()).unwrap();
    // No KEYRITE_RUST_SIGNER: the keyrite under test takes target/signer/ on its own.
    Run::from(w.command(&emu.endpoint, &["apply", "--auto-approve"]).stdin(Stdio::null()).output().unwrap()).expect(0);
    assert_eq!(w.state()["resources"]["f"]["attrs"]["code_sha256"], deployed.sha256.as_str());

    let scratch = tempfile::tempdir().unwrap();
    let release = target_dir_with_other_builds(scratch.path());
    let plan_with = |keyrite: &Path, args: &[&str]| {
        Run::from(w.command_of(keyrite, &emu.endpoint, args).stdin(Stdio::null()).output().unwrap())
    };
    for keyrite in [release.clone(), scratch.path().join("target/debug/keyrite")] {
        let run = plan_with(&keyrite, &["plan", "--detailed-exitcode"]).expect(0);
        assert!(!run.stdout.contains("upgrades the signer code"), "{}: {}", keyrite.display(), run.stdout);
    }

    // A new build in signer/ (its sources changed) is an upgrade, and says so.
    let signer = scratch.path().join("target/signer/keyrite-lambda-signer");
    let mut rebuilt = std::fs::read(&signer).unwrap();
    rebuilt.extend_from_slice(b"\0new sources\0");
    std::fs::write(&signer, rebuilt).unwrap();
    let run = plan_with(&release, &["plan", "--detailed-exitcode"]).expect(2);
    assert!(run.stdout.contains("upgrades the signer code") && run.stdout.contains(&deployed.sha256), "{}", run.stdout);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_rust_signer_deploys_self_tests_signs_as_the_node_one_does_and_drift_heals() {
    assert!(
        common::repo_root().join("node_modules/@aws-sdk/client-kms").exists(),
        "run `npm ci` (scripts/test.sh does) to get the real AWS SDK for the Node signer's layer"
    );
    let emu = Emulator::start();
    let w = Workdir::with_text(&both_signers());

    // An earlier keyrite's bootstrap: another build of the signer (the executable with bytes
    // appended, which still runs) deployed first, so that this build's is an upgrade.
    let earlier = w.dir.path().join("earlier-keyrite-lambda-signer");
    let mut bytes = std::fs::read(bootstrap()).unwrap();
    bytes.extend_from_slice(b"\0an earlier build\0");
    std::fs::write(&earlier, &bytes).unwrap();
    std::fs::set_permissions(&earlier, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    keyrite_with(&w, &emu, &earlier, &["apply", "--auto-approve"]).expect(0);
    // The planning process packaged it exactly as this one does.
    let earlier_sha = keyrite::package::rust_signer_package(&earlier).unwrap().sha256;
    assert_eq!(w.state()["resources"]["rust_signer"]["attrs"]["code_sha256"], earlier_sha.as_str());

    let plan = keyrite_with(&w, &emu, bootstrap(), &["plan", "--format", "json"]).expect(0).json();
    let changes = plan["changes"].as_array().unwrap();
    let upgrade = changes.iter().find(|c| c["address"] == "rust_signer").unwrap_or_else(|| panic!("{plan:#}"));
    assert_eq!(upgrade["action"], "update", "{upgrade:#}");
    assert_eq!(upgrade["attributes"].as_array().unwrap().len(), 1, "{upgrade:#}");
    assert_eq!(upgrade["attributes"][0]["name"], "code_sha256", "{upgrade:#}");
    let reason = upgrade["reason"].as_str().unwrap();
    assert!(reason.contains("upgrades the signer code") && reason.contains(&earlier_sha), "{reason}");
    assert!(changes.iter().filter(|c| c["address"] != "rust_signer").all(|c| c["action"] == "no_op"), "{plan:#}");
    let human = keyrite_with(&w, &emu, bootstrap(), &["plan"]).expect(0);
    assert!(human.stdout.contains("upgrades the signer code"), "{}", human.stdout);

    keyrite_with(&w, &emu, bootstrap(), &["apply", "--auto-approve"]).expect(0);
    let current = keyrite::package::rust_signer_package(bootstrap()).unwrap();
    assert_eq!(w.state()["resources"]["rust_signer"]["attrs"]["code_sha256"], current.sha256.as_str());
    w.keyrite(&emu, &["plan", "--detailed-exitcode"]).expect(0);
    let lambda = emu.lambda().await;
    let config = lambda.get_function().function_name("keyrite-treasury-rust-signer").send().await.unwrap();
    let config = config.configuration().unwrap();
    assert_eq!(config.runtime().map(|r| r.as_str()), Some("provided.al2023"));
    assert_eq!(config.handler(), Some("bootstrap"));
    assert_eq!(config.memory_size(), Some(128));
    assert_eq!(config.code_sha256(), Some(current.sha256.as_str()));

    let address = w.keyrite(&emu, &["addresses", "--format", "json"]).expect(0).json()["keys"][0]["evm_address"]
        .as_str()
        .unwrap()
        .to_lowercase();
    let selftest = |w: &Workdir| {
        w.keyrite(&emu, &["selftest", "--format", "json", "--timeout", "30", "--via-emulator", &emu.endpoint])
    };
    let report = selftest(&w).expect(0).json();
    let reports = report["signers"].as_array().unwrap();
    let rust = reports.iter().find(|r| r["signer"] == "treasury_rust").unwrap_or_else(|| panic!("{report:#}"));
    let checks = rust["checks"].as_array().unwrap();
    assert_eq!(checks.len(), 4, "public key, direct, function URL, API stage: {checks:#?}");
    assert!(checks[2]["target"].as_str().unwrap().contains(".lambda-url.us-east-1.on.aws"), "{checks:#?}");
    assert!(checks[3]["target"].as_str().unwrap().contains(".execute-api.us-east-1.amazonaws.com/prod/sign"));
    for c in reports.iter().flat_map(|r| r["checks"].as_array().unwrap()[2..].to_vec()) {
        assert_eq!(c["passed"], true, "{c:#}");
        let digest: [u8; 32] =
            hex::decode(c["digest"].as_str().unwrap().trim_start_matches("0x")).unwrap().try_into().unwrap();
        assert_eq!(recover_eip191(&digest, c["signature"].as_str().unwrap()), address);
    }

    // The same request to both signers: both signatures recover to the key's address.
    let digest = [0x5au8; 32];
    let request = json!({"userOpHash": format!("0x{}", hex::encode(digest)), "signerAddress": address});
    let (node_status, node) = invoke(&lambda, "keyrite-treasury-signer", "POST", &request).await;
    let (rust_status, rust) = invoke(&lambda, "keyrite-treasury-rust-signer", "POST", &request).await;
    assert_eq!((node_status, rust_status), (200, 200), "{node:#} {rust:#}");
    assert_eq!(recover_eip191(&digest, node["signature"].as_str().unwrap()), address);
    assert_eq!(recover_eip191(&digest, rust["signature"].as_str().unwrap()), address);
    let fields = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(fields(&node), fields(&rust), "the Rust signer answers with the Node one's fields");
    // And they refuse alike.
    for (method, body) in [
        (
            "POST",
            json!({"hash": format!("0x{}", hex::encode(digest)), "signerAddress": "0x0000000000000000000000000000000000000001"}),
        ),
        ("POST", json!({"hash": "0x1234"})),
        ("GET", json!({})),
    ] {
        let (ns, nb) = invoke(&lambda, "keyrite-treasury-signer", method, &body).await;
        let (rs, rb) = invoke(&lambda, "keyrite-treasury-rust-signer", method, &body).await;
        assert_eq!(rs, ns, "{method} {body}: Rust {rb}, Node {nb}");
        assert!(matches!(rs, 400 | 405) && rb["error"].as_str().is_some_and(|m| !m.is_empty()), "{rb}");
        assert!(rb.get("signature").is_none());
    }

    // Out of band: the same executable zipped another way, and another expected address.
    let other_zip = keyrite::package::zip(vec![("bootstrap".into(), std::fs::read(bootstrap()).unwrap())]).unwrap();
    lambda
        .update_function_code()
        .function_name("keyrite-treasury-rust-signer")
        .zip_file(aws_sdk_lambda::primitives::Blob::new(other_zip.bytes))
        .send()
        .await
        .unwrap();
    let mut env: std::collections::HashMap<String, String> = config.environment().unwrap().variables().unwrap().clone();
    env.insert("EXPECTED_ADDRESS".into(), "0x000000000000000000000000000000000000dEaD".into());
    // The bootstrap's KMS calls, counted: its SDK takes the service's own endpoint variable
    // over the AWS_ENDPOINT_URL the emulator gives functions.
    let kms_proxy = common::fault_proxy::FaultProxy::start(&emu.endpoint, common::fault_proxy::Faults::default(), 7);
    env.insert("AWS_ENDPOINT_URL_KMS".into(), kms_proxy.endpoint.clone());
    lambda
        .update_function_configuration()
        .function_name("keyrite-treasury-rust-signer")
        .environment(aws_sdk_lambda::types::Environment::builder().set_variables(Some(env)).build())
        .send()
        .await
        .unwrap();
    let drift = w.keyrite(&emu, &["drift", "--format", "json"]).expect(2).json();
    let items = drift["drift"].as_array().unwrap();
    let on = |attr: &str| {
        items
            .iter()
            .find(|i| i["address"] == "rust_signer" && i["attribute"] == attr)
            .unwrap_or_else(|| panic!("no drift on {attr}: {items:#?}"))
    };
    assert!(on("code_sha256")["message"].as_str().unwrap().contains("signer code replaced out of band"));
    assert!(on("environment")["message"].as_str().unwrap().contains("EXPECTED_ADDRESS"), "{:#}", on("environment"));
    // The Rust signer now finds its key is not the configured address's, and signs nothing;
    // it asked KMS once, at cold start, and a flood of requests makes no further KMS call.
    for _ in 0..5 {
        let (status, body) = invoke(&lambda, "keyrite-treasury-rust-signer", "POST", &request).await;
        assert_eq!((status, &body), (500, &json!({"error": "internal error"})));
    }
    assert_eq!(kms_proxy.counts.operations(), ["GetPublicKey"], "the runtime's KMS calls after the mismatch");
    let broken = selftest(&w).expect(1).json();
    let rust = broken["signers"].as_array().unwrap().iter().find(|r| r["signer"] == "treasury_rust").unwrap().clone();
    let endpoints = &rust["checks"].as_array().unwrap()[2..];
    assert!(endpoints.iter().all(|c| c["passed"] == false && c["cause"] == "http_status"), "{rust:#}");

    w.keyrite(&emu, &["apply", "--auto-approve"]).expect(0);
    w.keyrite(&emu, &["drift"]).expect(0);
    selftest(&w).expect(0);
    let (status, body) = invoke(&lambda, "keyrite-treasury-rust-signer", "POST", &request).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(recover_eip191(&digest, body["signature"].as_str().unwrap()), address);
}

/// A TLS endpoint on loopback that forwards each connection to `upstream` (the emulator),
/// with a server certificate for `localhost` issued by a CA made here. Counts the
/// handshakes that completed.
struct TlsForwarder {
    endpoint: String,
    ca_pem: PathBuf,
    handshakes: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl TlsForwarder {
    async fn start(upstream: &str, dir: &Path) -> TlsForwarder {
        use rcgen::{CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(DnType::CommonName, "keyrite test KMS CA");
        ca_params.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign, rcgen::KeyUsagePurpose::DigitalSignature];
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
        let key = KeyPair::generate().unwrap();
        let leaf = CertificateParams::new(vec!["localhost".to_owned()]).unwrap().signed_by(&key, &ca).unwrap();
        let ca_pem = dir.join("kms-ca.pem");
        std::fs::write(&ca_pem, ca.pem()).unwrap();
        let config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf.der().clone()],
            rustls_pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap(),
        )
        .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let upstream = upstream.trim_start_matches("http://").to_owned();
        let handshakes = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let counted = handshakes.clone();
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else { return };
                let (acceptor, upstream, counted) = (acceptor.clone(), upstream.clone(), counted.clone());
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else { return };
                    counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let mut plain = tokio::net::TcpStream::connect(&upstream).await.unwrap();
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
                });
            }
        });
        TlsForwarder { endpoint: format!("https://localhost:{port}"), ca_pem, handshakes }
    }
}

/// The deployed bootstrap's TLS: rustls on ring, trusting the roots the system gives it
/// (here `SSL_CERT_FILE`, as the OpenSSL convention and rustls-native-certs read it), and
/// nothing else.
#[tokio::test(flavor = "multi_thread")]
async fn the_bootstrap_reaches_kms_over_tls_with_the_systems_roots_and_refuses_an_untrusted_server() {
    let emu = Emulator::start();
    let w =
        Workdir::with_text(&std::fs::read_to_string(common::repo_root().join("manifests/rust-signer.yaml")).unwrap());
    keyrite_with(&w, &emu, bootstrap(), &["apply", "--auto-approve"]).expect(0);
    let address = w.keyrite(&emu, &["addresses", "--format", "json"]).expect(0).json()["keys"][0]["evm_address"]
        .as_str()
        .unwrap()
        .to_lowercase();
    let function = w.id("signer");
    let lambda = emu.lambda().await;
    let tls = TlsForwarder::start(&emu.endpoint, w.dir.path()).await;
    std::fs::create_dir(w.dir.path().join("other")).unwrap();
    let untrusted = TlsForwarder::start(&emu.endpoint, &w.dir.path().join("other")).await;
    let configure = |endpoint: &str, ca: &Path| {
        let (lambda, function, endpoint, ca) = (lambda.clone(), function.clone(), endpoint.to_owned(), ca.to_owned());
        async move {
            let config = lambda.get_function_configuration().function_name(&function).send().await.unwrap();
            let mut env = config.environment().unwrap().variables().unwrap().clone();
            env.insert("AWS_ENDPOINT_URL_KMS".into(), endpoint);
            env.insert("SSL_CERT_FILE".into(), ca.display().to_string());
            lambda
                .update_function_configuration()
                .function_name(&function)
                .environment(aws_sdk_lambda::types::Environment::builder().set_variables(Some(env)).build())
                .send()
                .await
                .unwrap();
        }
    };
    let digest = [0x5a; 32];
    let request = json!({"hash": format!("0x{}", hex::encode(digest)), "signerAddress": address});

    configure(&tls.endpoint, &tls.ca_pem).await;
    let (status, body) = invoke(&lambda, &function, "POST", &request).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(recover_eip191(&digest, body["signature"].as_str().unwrap()), address);
    assert!(tls.handshakes.load(std::sync::atomic::Ordering::SeqCst) >= 1, "the signer's KMS calls went over TLS");

    // A server whose certificate no trusted root issued: the signer makes no KMS call and
    // signs nothing.
    configure(&untrusted.endpoint, &tls.ca_pem).await;
    let event = json!({"version": "2.0", "requestContext": {"http": {"method": "POST"}}, "body": request.to_string(), "isBase64Encoded": false});
    let out = lambda
        .invoke()
        .function_name(&function)
        .payload(aws_sdk_lambda::primitives::Blob::new(event.to_string()))
        .send()
        .await
        .unwrap();
    let payload = String::from_utf8_lossy(out.payload().unwrap().as_ref()).into_owned();
    assert!(!payload.contains("signature"), "signed through an untrusted server: {payload}");
    assert_eq!(untrusted.handshakes.load(std::sync::atomic::Ordering::SeqCst), 0, "{payload}");
}

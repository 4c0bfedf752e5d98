//! Adoption of the stacks the public guides build by hand, without touching them.
//!
//! `tests/adoption/guide_stack.py` builds the AWS guide's stack with boto3, as a person would
//! (console defaults, POST on the REST API's root, a Function URL made before October 2025, a
//! role with AWSLambdaBasicExecutionRole, a handler keyrite has no source of), and reads it
//! back with boto3. Then `discover`, `validate`, `plan`, `apply`, and everything a signer or an
//! auditor depends on must read back the same, except keyrite's ownership tags; the calls
//! apply makes are counted by operation at a logging proxy.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value as Json;
use sha3::Digest;

use crate::common::fault_proxy::{FaultProxy, Faults};
use crate::common::{self, Emulator, Workdir, repo_root};

/// boto3 comes with the moto venv that `scripts/install-emulator.sh` makes.
fn python() -> PathBuf {
    let p = repo_root().join(".venv/moto/bin/python");
    assert!(p.exists(), "{} is missing: run scripts/install-emulator.sh (scripts/test.sh does this)", p.display());
    p
}

fn guide(args: &[&str]) -> Json {
    script(&python(), "guide_stack.py", args)
}

/// Runs `tests/adoption/<file>` with `python` and parses the JSON it prints.
fn script(python: &std::path::Path, file: &str, args: &[&str]) -> Json {
    let out = Command::new(python)
        .arg(repo_root().join("tests/adoption").join(file))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run {file}: {e}"));
    assert!(out.status.success(), "{file} {args:?} failed:\n{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{file} prints JSON: {e}"))
}

/// Builds the guide's stack on `emu`; returns what it made.
fn build(emu: &Emulator) -> Json {
    let root = repo_root();
    let (modules, handler) = (root.join("node_modules"), root.join("tests/adoption/guide_signer"));
    guide(&["build", &emu.endpoint, modules.to_str().unwrap(), handler.to_str().unwrap()])
}

/// Everything a signer or an auditor depends on, read with boto3 (no tags).
fn snapshot(emu: &Emulator, made: &Json) -> Json {
    guide(&["snapshot", &emu.endpoint, &made.to_string()])
}

/// True for a call that only adds or removes tags.
fn tagging(op: &str) -> bool {
    matches!(op, "TagResource" | "TagRole") || op.contains("/tags/")
}

fn mutating(proxy: &FaultProxy) -> Vec<String> {
    proxy.counts.operations().into_iter().filter(|o| !common::read_only(o)).collect()
}

/// The EIP-55-insensitive address of an SPKI (hex), derived here with sha3.
fn address_of_spki(hex_spki: &str) -> String {
    let spki = hex::decode(hex_spki).unwrap();
    let point = &spki[spki.len() - 65..];
    assert_eq!(point[0], 4, "an uncompressed point ends the SPKI");
    let hash = sha3::Keccak256::digest(&point[1..]);
    format!("0x{}", hex::encode(&hash[12..]))
}

/// Discovers the guide's stack through a logging proxy into `w`'s manifest.
fn discover(emu: &Emulator, w: &Workdir) -> String {
    let proxy = FaultProxy::start(&emu.endpoint, Faults::default(), 1);
    w.keyrite_via(&proxy.endpoint, &["discover", "aws", "--all", "--out", "found.yaml"]).expect(0);
    assert_eq!(mutating(&proxy), Vec::<String>::new(), "discovery only reads");
    std::fs::rename(w.path().join("found.yaml"), &w.manifest).unwrap();
    std::fs::read_to_string(&w.manifest).unwrap()
}

#[test]
fn the_guides_stack_comes_in_with_nothing_changed_but_ownership_tags() {
    let emu = Emulator::start();
    let made = build(&emu);
    let before = snapshot(&emu, &made);
    let w = Workdir::with_text("version: 1\nresources: {}\n");
    let text = discover(&emu, &w);
    // Every shape of the guide is declared as it is.
    for expected in [
        "path: \"/\"",
        "throttle: \"none\"",
        "\"arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole\"",
        "\"kms.policy\":",
        "public_actions:\n      - \"lambda:InvokeFunctionUrl\"",
        "code:\n      keep:",
        "import: \"alias/treasury-hot\"",
        "# review: warning[KR305]",
        // The console's Lambda permission for API Gateway is named, not dropped.
        "lambda permission \"c3b5e1f0-4e7d-4c2a-9f59-0a1d8e2b7c41\" of kms-signer-function",
    ] {
        assert!(text.contains(expected), "{expected:?} missing:\n{text}");
    }
    // The AWS_IAM URL declares no public access.
    let iam_url = &text[text.find("  kms_signer_function_iam_url:").unwrap()..];
    let iam_url = &iam_url[..iam_url.find("\n\n").unwrap()];
    assert!(!iam_url.contains("public"), "{iam_url}");
    w.keyrite(&emu, &["validate"]).expect(0);

    let plan = w.keyrite(&emu, &["plan", "--format", "json"]).expect(0).json();
    for c in plan["changes"].as_array().unwrap() {
        assert!(["adopt", "update"].contains(&c["action"].as_str().unwrap()), "{c:#}");
        for a in c["attributes"].as_array().unwrap() {
            assert_eq!(a["name"], "tags", "{}: only ownership tags may change: {a:#}", c["address"]);
        }
    }

    // Apply makes only tagging calls.
    let proxy = FaultProxy::start(&emu.endpoint, Faults::default(), 2);
    w.keyrite_via(&proxy.endpoint, &["apply", "--auto-approve"]).expect(0);
    let calls = mutating(&proxy);
    assert!(!calls.is_empty() && calls.iter().all(|o| tagging(o)), "apply made other calls: {calls:?}");
    // The two keys, the two roles, the two functions and the API (a retried call under load
    // would show twice).
    assert!(calls.len() >= 7, "{calls:?}");

    let after = snapshot(&emu, &made);
    assert_eq!(before, after, "what the stack depends on must read back the same");
    w.keyrite(&emu, &["plan", "--detailed-exitcode"]).expect(0);
    w.keyrite(&emu, &["drift"]).expect(0);
    let addresses = w.keyrite(&emu, &["addresses", "--format", "json"]).expect(0).json();
    for key in addresses["keys"].as_array().unwrap() {
        let id = key["key_id"].as_str().unwrap();
        let spki = before["keys"][id]["public_key"].as_str().unwrap();
        assert_eq!(key["evm_address"].as_str().unwrap().to_lowercase(), address_of_spki(spki), "{key:#}");
    }
    let selftest = w
        .keyrite(&emu, &["selftest", "--via-emulator", &emu.endpoint, "--format", "json", "--timeout", "60"])
        .expect(0)
        .json();
    let endpoints: Vec<&str> = selftest["signers"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["checks"].as_array().unwrap())
        .filter_map(|c| c["target"].as_str().filter(|t| t.starts_with("https://")))
        .collect();
    assert_eq!(endpoints.len(), 3, "both URLs and the API's root stage: {selftest:#}");
    assert!(endpoints.iter().any(|e| e.ends_with(".execute-api.us-east-1.amazonaws.com/prod/")), "{endpoints:?}");

    // Adding the missing public permission is one named change that keeps every statement.
    let text = std::fs::read_to_string(&w.manifest).unwrap();
    std::fs::write(&w.manifest, text.replace("    public_actions:\n      - \"lambda:InvokeFunctionUrl\"\n", ""))
        .unwrap();
    let plan = w.keyrite(&emu, &["plan", "--format", "json"]).expect(0).json();
    let changed: Vec<(&str, Vec<&str>)> = plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["action"] != "no_op")
        .map(|c| {
            let attrs = c["attributes"].as_array().unwrap().iter().map(|a| a["name"].as_str().unwrap()).collect();
            (c["address"].as_str().unwrap(), attrs)
        })
        .collect();
    assert_eq!(changed, vec![("kms_signer_function_url", vec!["public_permissions"])]);
    let proxy = FaultProxy::start(&emu.endpoint, Faults::default(), 3);
    w.keyrite_via(&proxy.endpoint, &["apply", "--auto-approve"]).expect(0);
    assert_eq!(mutating(&proxy), vec!["POST /2015-03-31/functions/kms-signer-function/policy".to_owned()]);
    let policy = &snapshot(&emu, &made)["functions"]["kms-signer-function"]["policy"]["statements"];
    let old = &before["functions"]["kms-signer-function"]["policy"]["statements"];
    let sids = |p: &Json| -> Vec<String> {
        p.as_array().unwrap().iter().map(|s| s["Sid"].as_str().unwrap().to_owned()).collect()
    };
    let (now, was) = (sids(policy), sids(old));
    assert!(was.iter().all(|s| now.contains(s)), "every statement stays: {was:?} → {now:?}");
    assert_eq!(now.len(), was.len() + 1, "{now:?}");
    w.keyrite(&emu, &["plan", "--detailed-exitcode"]).expect(0);
    w.keyrite(&emu, &["lint", "--live"]).expect(2);
}

#[test]
fn a_kill_during_the_import_apply_then_a_rerun_duplicates_nothing() {
    let emu = Emulator::start();
    let made = build(&emu);
    let before = snapshot(&emu, &made);
    let w = Workdir::with_text("version: 1\nresources: {}\n");
    discover(&emu, &w);
    // Slow tagging calls, so that the kill lands in the middle of the apply.
    let faults = Faults { delay: 1.0, max_delay_ms: 150, ..Faults::default() };
    let proxy = FaultProxy::start(&emu.endpoint, faults, 4);
    let mut child = w
        .command(&proxy.endpoint, &["apply", "--auto-approve"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    let killed = loop {
        if child.try_wait().unwrap().is_some() {
            break false;
        }
        if mutating(&proxy).iter().any(|o| tagging(o)) {
            child.kill().unwrap(); // SIGKILL
            child.wait().unwrap();
            break true;
        }
        assert!(Instant::now() < deadline, "apply made no tagging call in 120 s");
        std::thread::sleep(Duration::from_millis(2));
    };
    assert!(killed, "the apply finished before the kill");
    w.keyrite(&emu, &["apply", "--auto-approve"]).expect(0);
    w.keyrite(&emu, &["plan", "--detailed-exitcode"]).expect(0);
    let after = snapshot(&emu, &made);
    assert_eq!(before, after, "no second key, no duplicate permission, nothing else changed");
}

#[test]
fn plans_never_promise_what_a_failed_import_cannot_keep() {
    let emu = Emulator::start();
    let made = build(&emu);
    let key = made["keys"][0].as_str().unwrap().to_owned();
    let head = "version: 1\nprovider:\n  aws: {region: us-east-1}\nresources:\n";
    // Two bad imports at once: both reported, each with its position and id.
    let body = format!(
        "  gone:\n    type: aws_kms_key\n    import: alias/nothing-here\n  denied:\n    type: aws_iam_role\n    import: kms-signer-role\n    name: kms-signer-role\n    trust: {{services: [lambda.amazonaws.com]}}\n  fine:\n    type: aws_kms_key\n    import: {key}\n    policy: {{generated: {{}}}}\n"
    );
    let w = Workdir::with_text(&format!("{head}{body}"));
    let proxy = FaultProxy::start(&emu.endpoint, Faults { deny: Some("GetRole"), ..Faults::default() }, 5);
    let run = w.keyrite_via(&proxy.endpoint, &["plan", "--out", "p.plan"]);
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains("keyrite.yaml:7:13: gone: import alias/nothing-here: no aws_kms_key with this id exists"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("keyrite.yaml:10:13: denied: cannot read kms-signer-role to import it:")
            && run.stdout.contains("AccessDenied"),
        "{}",
        run.stdout
    );
    assert!(!run.stdout.contains("will be created") && !run.stdout.contains("will be"), "{}", run.stdout);
    assert!(run.stdout.contains("The plan has 2 errors"), "{}", run.stdout);
    assert!(!w.path().join("p.plan").exists(), "no plan file");
    let json = w.keyrite_via(&proxy.endpoint, &["plan", "--format", "json"]);
    assert_eq!(json.code, 1);
    let json = json.json();
    let addresses: Vec<&str> =
        json["changes"].as_array().unwrap().iter().filter_map(|c| c["address"].as_str()).collect();
    assert!(!addresses.contains(&"gone") && !addresses.contains(&"denied"), "{json:#}");
    assert_eq!(mutating(&proxy), Vec::<String>::new());
    // apply refuses the same plan before any mutating call.
    w.keyrite_via(&proxy.endpoint, &["apply", "--auto-approve"]).expect(1);
    assert_eq!(mutating(&proxy), Vec::<String>::new());

    // A key another keyrite state owns: imported into a state of its own, or into a new
    // state under another address, it is refused.
    let first = Workdir::with_text(&format!(
        "{head}  k:\n    type: aws_kms_key\n    import: {key}\n    policy: {{generated: {{}}}}\n"
    ));
    first.keyrite(&emu, &["apply", "--auto-approve"]).expect(0);
    let lineage = first.state()["lineage"].as_str().unwrap().to_owned();
    let theirs = format!("  theirs:\n    type: aws_kms_key\n    import: {key}\n    policy: {{generated: {{}}}}\n");
    let fresh = Workdir::with_text(&format!("{head}{theirs}"));
    let run = fresh.keyrite(&emu, &["plan"]).expect(1);
    assert!(
        run.stdout.contains(&format!(
            "keyrite.yaml:7:13: theirs: import {key}: it belongs to another keyrite state (lineage {lineage} as k)"
        )),
        "{}",
        run.stdout
    );
    let second = Workdir::with_text(&format!("{head}  mine:\n    type: aws_kms_key\n    description: other\n"));
    second.keyrite(&emu, &["apply", "--auto-approve"]).expect(0);
    let text = std::fs::read_to_string(&second.manifest).unwrap();
    std::fs::write(&second.manifest, format!("{text}{theirs}")).unwrap();
    let run = second.keyrite(&emu, &["plan"]).expect(1);
    assert!(
        run.stdout.contains(&format!(
            "keyrite.yaml:10:13: theirs: import {key}: it belongs to another keyrite state (lineage {lineage} as k)"
        )),
        "{}",
        run.stdout
    );
    assert!(!run.stdout.contains("will be"), "{}", run.stdout);
}

/// Every field `discover` writes is named in docs/manifest.md under its kind's heading.
#[test]
fn docs_name_every_field_discover_writes() {
    let emu = Emulator::start();
    build(&emu);
    let w = Workdir::with_text("version: 1\nresources: {}\n");
    let text = discover(&emu, &w);
    let docs = std::fs::read_to_string(repo_root().join("docs/manifest.md")).unwrap();
    let section = |kind: &str| -> String {
        let start = docs.find(&format!("## `{kind}`")).unwrap_or_else(|| panic!("docs/manifest.md has no {kind}"));
        let rest = &docs[start + 3..];
        rest[..rest.find("\n## ").unwrap_or(rest.len())].to_owned()
    };
    let import = section("import:");
    let mut kind = String::new();
    let mut checked = 0;
    let resources = &text[text.find("\nresources:\n").unwrap()..];
    let resources = &resources[..resources.find("\nsigners:").unwrap_or(resources.len())];
    for line in resources.lines().filter(|l| !l.trim_start().starts_with('#')) {
        let Some(field) = line.strip_prefix("    ").filter(|f| !f.starts_with(' ')) else { continue };
        let Some((name, value)) = field.split_once(':') else { continue };
        let name = name.trim_matches('"');
        if name == "type" {
            kind = value.trim().trim_matches('"').to_owned();
            continue;
        }
        let (docs_for, needle) = if name == "import" {
            (import.clone(), "`import:".to_owned())
        } else {
            (section(&kind), format!("`{name}`"))
        };
        assert!(docs_for.contains(&needle), "docs/manifest.md does not name {kind}.{name}");
        checked += 1;
    }
    // Values with a meaning of their own, and nested fields.
    for (kind, what) in [
        ("aws_api_gateway_rest_api", "`none`"),
        ("aws_api_gateway_rest_api", "`/`"),
        ("aws_lambda_function", "`{keep: <CodeSha256>}`"),
    ] {
        assert!(section(kind).contains(what), "docs/manifest.md does not explain {kind} {what}");
    }
    assert!(checked > 30, "only {checked} fields checked:\n{text}");
}

fn gcloud(args: &[&str]) -> Json {
    let python = repo_root().join(".venv/gcp/bin/python");
    assert!(python.exists(), "{} is missing: run scripts/install-emulator.sh", python.display());
    script(&python, "gcloud_stack.py", args)
}

#[test]
fn the_cloud_run_guides_key_comes_in_with_nothing_changed_but_labels() {
    use k256::elliptic_curve::sec1::ToEncodedPoint;
    use k256::pkcs8::DecodePublicKey;

    let kms = common::gcp_kms::GcpKms::start();
    let made = gcloud(&["build", &kms.endpoint]);
    let key = made["key"].as_str().unwrap().to_owned();
    let before = gcloud(&["snapshot", &kms.endpoint, &key]);
    let w = Workdir::with_text("version: 1\nresources: {}\n");
    let args = ["discover", "gcp", "--project", "wallet-prod-2026", "--location", "us-east1", "--out", "found.yaml"];
    let calls = kms.mutating_calls().len();
    w.keyrite_gcp(&kms, &args).expect(0);
    std::fs::rename(w.path().join("found.yaml"), &w.manifest).unwrap();
    w.keyrite_gcp(&kms, &["validate"]).expect(0);
    let plan = w.keyrite_gcp(&kms, &["plan", "--format", "json"]).expect(0).json();
    for c in plan["changes"].as_array().unwrap() {
        assert!(["adopt", "update"].contains(&c["action"].as_str().unwrap()), "{c:#}");
        for a in c["attributes"].as_array().unwrap() {
            assert_eq!(a["name"], "labels", "{}: only ownership labels may change: {a:#}", c["address"]);
        }
    }
    w.keyrite_gcp(&kms, &["apply", "--auto-approve"]).expect(0);
    // One call: the key's labels. The ring and the binding are not written at all.
    let writes = kms.mutating_calls()[calls..].to_vec();
    assert_eq!(writes.len(), 1, "{writes:?}");
    assert!(writes[0].starts_with("PATCH ") && writes[0].contains("/cryptoKeys/wallet-signer"), "{writes:?}");
    assert_eq!(before, gcloud(&["snapshot", &kms.endpoint, &key]), "the same ring, key, versions and IAM policy");
    w.keyrite_gcp(&kms, &["plan", "--detailed-exitcode"]).expect(0);
    w.keyrite_gcp(&kms, &["drift"]).expect(0);
    let pem = before["public_key_pem"].as_str().unwrap();
    let point = k256::PublicKey::from_public_key_pem(pem).unwrap().to_encoded_point(false);
    let derived = format!("0x{}", hex::encode(&sha3::Keccak256::digest(&point.as_bytes()[1..])[12..]));
    let addresses = w.keyrite_gcp(&kms, &["addresses", "--format", "json"]).expect(0).json();
    assert_eq!(addresses["keys"][0]["evm_address"].as_str().unwrap().to_lowercase(), derived, "{addresses:#}");
    w.keyrite_gcp(&kms, &["selftest"]).expect(0);
}

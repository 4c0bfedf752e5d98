//! Bringing a hand-made signer stack under keyrite with `import:`: the stack of the public
//! guides is built on ministack through the AWS API, as a person would in the console; a
//! manifest imports it; the plan shows the imports and nothing but keyrite's ownership
//! marks; apply keeps the key, its address and the function's code; drift then works as for
//! any stack. Bad imports are plan errors that name the resource and the id.

use crate::common;

use common::{Emulator, TRUST, Workdir, hand_made_stack};

const SIGN: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["kms:Sign","kms:GetPublicKey"],"Resource":"*"}]}"#;

/// A manifest that declares the hand-made stack as it is, importing every resource.
async fn manifest_for(emu: &Emulator, key_import: &str) -> String {
    let kms = emu.kms().await;
    let key_id =
        kms.describe_key().key_id(key_import).send().await.unwrap().key_metadata().unwrap().key_id().to_owned();
    let policy = kms.get_key_policy().key_id(&key_id).policy_name("default").send().await.unwrap();
    let f = emu.lambda().await.get_function().function_name("keyrite-treasury-signer").send().await.unwrap();
    let c = f.configuration().unwrap();
    format!(
        r#"version: 1
provider:
  aws: {{region: us-east-1}}
resources:
  treasury_key:
    type: aws_kms_key
    import: {key_import}
    policy:
      document: '{policy}'
  treasury_alias:
    type: aws_kms_alias
    import: alias/treasury-lambda
    name: alias/treasury-lambda
    target_key: ${{treasury_key.key_id}}
  signer_role:
    type: aws_iam_role
    import: arn:aws:iam::000000000000:role/keyrite-treasury-lambda
    name: keyrite-treasury-lambda
    trust:
      document: '{TRUST}'
    policies:
      sign:
        document: '{SIGN}'
  signer:
    type: aws_lambda_function
    import: keyrite-treasury-signer
    name: keyrite-treasury-signer
    code: {{keep: "{sha}"}}
    runtime: nodejs20.x
    handler: index.handler
    role: ${{signer_role.arn}}
    memory_mb: {memory}
    timeout_seconds: {timeout}
    environment: {{KMS_KEY_ID: "{key_id}"}}
  signer_url:
    type: aws_lambda_function_url
    import: keyrite-treasury-signer
    function: ${{signer.name}}
    public: true
lint:
  allow:
    KR202:
      signer_role/sign: "the guide's policy; narrowed to the key after the import"
"#,
        policy = policy.policy().unwrap(),
        sha = c.code_sha256().unwrap(),
        memory = c.memory_size().unwrap(),
        timeout = c.timeout().unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hand_made_stack_is_imported_without_replacing_anything() {
    let emu = Emulator::start();
    let key_id = hand_made_stack(&emu).await;
    let lambda = emu.lambda().await;
    let code_before = lambda
        .get_function()
        .function_name("keyrite-treasury-signer")
        .send()
        .await
        .unwrap()
        .configuration()
        .unwrap()
        .code_sha256()
        .unwrap()
        .to_owned();
    // The key by its alias; the role by its ARN; the function and URL by name.
    let w = Workdir::with_text(&manifest_for(&emu, "alias/treasury-lambda").await);
    w.keyrite(&emu, &["validate"]).expect(0);

    let plan = w.keyrite(&emu, &["plan", "--format", "json"]).expect(0).json();
    let changes = plan["changes"].as_array().unwrap();
    let key = changes.iter().find(|c| c["address"] == "treasury_key").unwrap();
    assert!(
        key["reason"].as_str().unwrap().starts_with(&format!("import: alias/treasury-lambda ({key_id})")),
        "{key:#}"
    );
    for c in changes {
        assert_ne!(c["action"], "create", "nothing is created: {c:#}");
        let attrs: Vec<&str> =
            c["attributes"].as_array().unwrap().iter().map(|a| a["name"].as_str().unwrap()).collect();
        // Only keyrite's ownership tags, and the URL's public-access statements that keyrite
        // keeps under its own statement ids.
        assert!(attrs.iter().all(|a| ["tags", "public_permissions"].contains(a)), "{}: {attrs:?}", c["address"]);
    }
    let human = w.keyrite(&emu, &["plan"]).expect(0);
    assert!(human.stdout.contains("import: keyrite-treasury-signer"), "{}", human.stdout);
    // The findings name the public URL and the broad key policy; the allowance is printed.
    assert!(
        human.stderr.contains("warning[KR301]") || human.stdout.contains("KR301"),
        "{}{}",
        human.stdout,
        human.stderr
    );
    assert!(human.stderr.contains("KR109") || human.stdout.contains("KR109"), "{}{}", human.stdout, human.stderr);

    w.keyrite(&emu, &["apply", "--auto-approve"]).expect(0);
    assert_eq!(w.id("treasury_key"), key_id, "the same key");
    let address = w.state()["resources"]["treasury_key"]["outputs"]["address"].as_str().unwrap().to_owned();
    let spki = emu.kms().await.get_public_key().key_id(&key_id).send().await.unwrap();
    let derived = keyrite::crypto::evm_address(
        &keyrite::crypto::public_key_from_spki_der(spki.public_key().unwrap().as_ref()).unwrap(),
    );
    assert_eq!(address, derived.to_string(), "the same address");
    let code_after = lambda.get_function().function_name("keyrite-treasury-signer").send().await.unwrap();
    assert_eq!(code_after.configuration().unwrap().code_sha256().unwrap(), code_before, "the same code");
    w.keyrite(&emu, &["plan", "--detailed-exitcode"]).expect(0);
    w.keyrite(&emu, &["drift"]).expect(0);

    // Moving the function to keyrite's template: the plan says plainly that the code goes.
    let kept = std::fs::read_to_string(&w.manifest).unwrap();
    let start = kept.find("    code: {keep:").unwrap();
    let end = start + kept[start..].find('\n').unwrap() + 1;
    let templated = format!(
        "{}    template: aws-lambda-signer\n    key: ${{treasury_key.key_id}}\n    expected_address: ${{treasury_key.address}}\n{}",
        &kept[..start],
        &kept[end..]
    )
    .replace(&format!("    environment: {{KMS_KEY_ID: \"{key_id}\"}}\n"), "");
    std::fs::write(&w.manifest, &templated).unwrap();
    let plan = w.keyrite(&emu, &["plan"]).expect(0);
    assert!(
        plan.stdout.contains(&format!(
            "the apply REPLACES the function's current code (CodeSha256 {code_before}), which keyrite did not write, with the template aws-lambda-signer"
        )),
        "{}",
        plan.stdout
    );
    std::fs::write(&w.manifest, &kept).unwrap();

    // Out of band afterwards: new code and a bigger function are drift; apply restores the
    // configuration, and refuses to upload code it did not write.
    lambda
        .update_function_code()
        .function_name("keyrite-treasury-signer")
        .zip_file(aws_sdk_lambda::primitives::Blob::new(
            keyrite::package::zip(vec![(
                "index.mjs".into(),
                b"export const handler = async () => ({statusCode: 200});".to_vec(),
            )])
            .unwrap()
            .bytes,
        ))
        .send()
        .await
        .unwrap();
    let drift = w.keyrite(&emu, &["drift"]).expect(2);
    assert!(drift.stdout.contains("code_sha256"), "{}", drift.stdout);
    let apply = w.keyrite(&emu, &["apply", "--auto-approve"]).expect(1);
    assert!(apply.stderr.contains("keyrite never uploads code it did not write"), "{}", apply.stderr);

    // The import line has no effect once the address is in the state: without it, the plan is
    // the same.
    let text = std::fs::read_to_string(&w.manifest).unwrap();
    let without: String =
        text.lines().filter(|l| !l.trim_start().starts_with("import:")).map(|l| format!("{l}\n")).collect();
    std::fs::write(&w.manifest, without).unwrap();
    let plan = w.keyrite(&emu, &["plan"]).expect(0);
    assert!(plan.stdout.contains("code_sha256"), "only the code drift is left: {}", plan.stdout);
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_import_by_arn_as_by_alias_and_functions_by_arn() {
    let emu = Emulator::start();
    let key_id = hand_made_stack(&emu).await;
    let key_arn = format!("arn:aws:kms:us-east-1:000000000000:key/{key_id}");
    let text = manifest_for(&emu, &key_arn)
        .await
        .replace(
            "import: keyrite-treasury-signer\n    name:",
            "import: arn:aws:lambda:us-east-1:000000000000:function:keyrite-treasury-signer\n    name:",
        )
        .replace(
            "import: alias/treasury-lambda\n    name: alias",
            "import: arn:aws:kms:us-east-1:000000000000:alias/treasury-lambda\n    name: alias",
        );
    let w = Workdir::with_text(&text);
    let plan = w.keyrite(&emu, &["plan"]).expect(0);
    for expected in [
        format!("# import: {key_arn} ({key_id})"),
        "# import: arn:aws:lambda:us-east-1:000000000000:function:keyrite-treasury-signer (keyrite-treasury-signer)"
            .to_owned(),
        "# import: arn:aws:kms:us-east-1:000000000000:alias/treasury-lambda (alias/treasury-lambda)".to_owned(),
    ] {
        assert!(plan.stdout.contains(&expected), "{expected}\n{}", plan.stdout);
    }
    w.keyrite(&emu, &["apply", "--auto-approve"]).expect(0);
    assert_eq!(w.id("treasury_key"), key_id);
    assert_eq!(w.id("signer"), "keyrite-treasury-signer");
    assert_eq!(w.id("treasury_alias"), "alias/treasury-lambda");
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_imports_are_plan_errors_that_name_the_resource_and_the_id() {
    let emu = Emulator::start();
    hand_made_stack(&emu).await;
    let head = "version: 1\nprovider:\n  aws: {region: us-east-1}\nresources:\n";
    let plan_error = |body: &str| {
        let w = Workdir::with_text(&format!("{head}{body}"));
        let run = w.keyrite(&emu, &["plan"]);
        assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
        format!("{}{}", run.stdout, run.stderr)
    };
    // An id that does not exist.
    let out = plan_error("  k:\n    type: aws_kms_key\n    import: alias/nothing-here\n");
    assert!(out.contains("k: import alias/nothing-here: no aws_kms_key with this id exists"), "{out}");
    // The wrong kind, by ARN: a manifest error, before any call.
    let w = Workdir::with_text(&format!(
        "{head}  r:\n    type: aws_iam_role\n    import: arn:aws:kms:us-east-1:000000000000:key/abc\n    name: r\n    trust: {{services: [lambda.amazonaws.com]}}\n"
    ));
    let run = w.keyrite(&emu, &["validate"]).expect(1);
    assert!(
        run.stderr.contains("keyrite.yaml:7:13: ")
            && run.stderr.contains("is the ARN of a kms key, not of an IAM role"),
        "{}",
        run.stderr
    );
    // A key that is not secp256k1, for an EVM signer: importing it would replace it.
    let p256 = common::p256_key(&emu).await;
    let out = plan_error(&format!("  k:\n    type: aws_kms_key\n    import: {p256}\n"));
    assert!(
        out.contains(&format!("importing {p256} as k would replace it (key_spec: ECC_NIST_P256 → ECC_SECG_P256K1)")),
        "{out}"
    );
    assert!(out.contains("keyrite never replaces an imported resource"), "{out}");
    // An id already in the state under another address.
    let w = Workdir::with_text(&format!(
        "{head}  k:\n    type: aws_kms_key\n    import: alias/treasury-lambda\n    policy: {{generated: {{}}}}\n"
    ));
    w.keyrite(&emu, &["apply", "--auto-approve"]);
    let text = std::fs::read_to_string(&w.manifest).unwrap();
    std::fs::write(&w.manifest, format!("{text}  again:\n    type: aws_kms_key\n    import: alias/treasury-lambda\n"))
        .unwrap();
    let run = w.keyrite(&emu, &["plan"]).expect(1);
    assert!(run.stdout.contains("is already in the state as k"), "{}", run.stdout);
}

/// `(address, attribute names)` of every change a JSON plan would make.
fn planned(plan: &serde_json::Value) -> Vec<(String, Vec<String>)> {
    plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let attrs =
                c["attributes"].as_array().unwrap().iter().map(|a| a["name"].as_str().unwrap().to_owned()).collect();
            (c["address"].as_str().unwrap().to_owned(), attrs)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn discover_writes_a_manifest_that_imports_the_guides_stack_as_it_is() {
    let emu = Emulator::start();
    let key_id = hand_made_stack(&emu).await;
    let lambda = emu.lambda().await;
    let code = |f: aws_sdk_lambda::operation::get_function::GetFunctionOutput| {
        f.configuration().unwrap().code_sha256().unwrap().to_owned()
    };
    let code_before = code(lambda.get_function().function_name("keyrite-treasury-signer").send().await.unwrap());
    let w = Workdir::with_text("version: 1\nresources: {}\n");

    // Discovery only reads: the logging proxy sees no mutating call, and keyrite counts none.
    let proxy = common::fault_proxy::FaultProxy::start(&emu.endpoint, common::fault_proxy::Faults::default(), 1);
    let run = w.keyrite_via(&proxy.endpoint, &["discover", "aws", "--all", "--out", "discovered.yaml"]).expect(0);
    let operations = proxy.counts.operations();
    let writes: Vec<&String> = operations.iter().filter(|o| !common::read_only(o)).collect();
    assert!(writes.is_empty(), "discovery made mutating calls: {writes:?}");
    let text = std::fs::read_to_string(w.path().join("discovered.yaml")).unwrap();
    assert!(text.contains("(0 mutating)"), "{text}");
    // The findings stand out: the public URL and the key policy giving kms:* to the account.
    assert!(run.stderr.contains("warning[KR301]") && run.stderr.contains("warning[KR109]"), "{}", run.stderr);
    assert!(text.contains("# review: warning[KR301]") && text.contains("# review: warning[KR109]"), "{text}");
    for kind in [
        "aws_kms_key",
        "aws_kms_alias",
        "aws_iam_role",
        "aws_lambda_function",
        "aws_lambda_function_url",
        "aws_api_gateway_rest_api",
    ] {
        assert!(text.contains(&format!("type: \"{kind}\"")), "{kind} missing:\n{text}");
    }
    assert!(text.contains(&format!("import: \"{key_id}\"")), "{text}");

    std::fs::rename(w.path().join("discovered.yaml"), &w.manifest).unwrap();
    w.keyrite(&emu, &["validate"]).expect(0);
    let plan = w.keyrite(&emu, &["plan", "--format", "json"]).expect(0).json();
    for (address, attrs) in planned(&plan) {
        assert!(
            attrs.iter().all(|a| a == "tags"),
            "{address} would change {attrs:?} (only ownership tags may):\n{text}"
        );
    }
    w.keyrite(&emu, &["apply", "--auto-approve"]).expect(0);
    let key =
        w.state()["resources"].as_object().unwrap().values().find(|r| r["type"] == "aws_kms_key").unwrap().clone();
    assert_eq!(key["id"], key_id.as_str(), "the same key");
    assert_eq!(code(lambda.get_function().function_name("keyrite-treasury-signer").send().await.unwrap()), code_before);
    w.keyrite(&emu, &["plan", "--detailed-exitcode"]).expect(0);
    w.keyrite(&emu, &["drift"]).expect(0);
    // An out-of-band change afterwards is caught.
    let open = r#"{"Version":"2012-10-17","Statement":[{"Sid":"Open","Effect":"Allow","Principal":{"AWS":"*"},"Action":"kms:*","Resource":"*"}]}"#;
    emu.kms().await.put_key_policy().key_id(&key_id).policy_name("default").policy(open).send().await.unwrap();
    let drift = w.keyrite(&emu, &["drift"]).expect(2);
    assert!(drift.stdout.contains("policy"), "{}", drift.stdout);
}

#[tokio::test(flavor = "multi_thread")]
async fn discover_over_a_stack_keyrite_made_gives_an_empty_plan() {
    let emu = Emulator::start();
    let made = Workdir::with_example("treasury-signer.yaml");
    made.keyrite(&emu, &["apply", "--auto-approve"]).expect(0);
    let w = Workdir::with_text("version: 1\nresources: {}\n");
    w.keyrite(&emu, &["discover", "aws", "--key", "alias/treasury-lambda", "--out", "again.yaml"]).expect(0);
    std::fs::rename(w.path().join("again.yaml"), &w.manifest).unwrap();
    let text = std::fs::read_to_string(&w.manifest).unwrap();
    // Addresses come back from keyrite's own marks.
    // (An alias and a Function URL carry no tags, so they get new addresses; they have no
    // ownership marks to change either.)
    for address in ["treasury_key:", "signer_role:", "signer:", "signer_api:"] {
        assert!(text.contains(&format!("  {address}\n")), "{address} missing:\n{text}");
    }
    // The plan records every resource as it is and changes nothing; once applied, nothing is
    // left to do.
    let plan = w.keyrite(&emu, &["plan", "--format", "json"]).expect(0).json();
    for c in plan["changes"].as_array().unwrap() {
        assert_eq!(c["action"], "adopt", "{c:#}\n{text}");
        assert_eq!(c["attributes"], serde_json::json!([]), "{c:#}\n{text}");
    }
    w.keyrite(&emu, &["apply", "--auto-approve"]).expect(0);
    w.keyrite(&emu, &["plan", "--detailed-exitcode"]).expect(0);
    assert_eq!(w.state()["lineage"], made.state()["lineage"], "the lost state's lineage continues");
}

#[test]
fn discover_brings_a_hand_made_cloud_kms_signer_under_keyrite() {
    let kms = common::gcp_kms::GcpKms::start();
    let parent = "projects/treasury-prod-4711/locations/us-east1";
    let ring = format!("{parent}/keyRings/by-hand");
    kms.create_by_hand(&format!("{parent}/keyRings?keyRingId=by-hand"), "{}");
    kms.create_by_hand(
        &format!("{ring}/cryptoKeys?cryptoKeyId=hot"),
        r#"{"purpose":"ASYMMETRIC_SIGN","labels":{"team":"treasury"},"versionTemplate":{"algorithm":"EC_SIGN_SECP256K1_SHA256","protectionLevel":"HSM"}}"#,
    );
    kms.create_by_hand(
        &format!("{ring}/cryptoKeys/hot:setIamPolicy"),
        r#"{"policy":{"bindings":[{"role":"roles/cloudkms.signerVerifier","members":["serviceAccount:signer@treasury-prod-4711.iam.gserviceaccount.com"]}]}}"#,
    );
    let w = Workdir::with_text("version: 1\nresources: {}\n");
    let before = kms.mutating_calls().len();
    let args = ["discover", "gcp", "--project", "treasury-prod-4711", "--location", "us-east1", "--out", "found.yaml"];
    w.keyrite_gcp(&kms, &args).expect(0);
    assert_eq!(kms.mutating_calls()[before..], [] as [String; 0], "discovery only read");
    std::fs::rename(w.path().join("found.yaml"), &w.manifest).unwrap();
    let text = std::fs::read_to_string(&w.manifest).unwrap();
    assert!(text.contains(&format!("import: \"{ring}/cryptoKeys/hot\"")) && text.contains("version: 1\n"), "{text}");
    w.keyrite_gcp(&kms, &["validate"]).expect(0);
    let plan = w.keyrite_gcp(&kms, &["plan", "--format", "json"]).expect(0).json();
    for (address, attrs) in planned(&plan) {
        assert!(
            attrs.iter().all(|a| a == "labels"),
            "{address} would change {attrs:?} (only ownership labels may):\n{text}"
        );
    }
    let key_before = w.keyrite_gcp(&kms, &["plan", "--format", "json"]).expect(0).json();
    assert!(key_before["changes"].as_array().unwrap().iter().all(|c| c["action"] != "create"), "{key_before:#}");
    w.keyrite_gcp(&kms, &["apply", "--auto-approve"]).expect(0);
    let key = w.state()["resources"]
        .as_object()
        .unwrap()
        .values()
        .find(|r| r["type"] == "gcp_kms_crypto_key")
        .unwrap()
        .clone();
    assert_eq!(key["id"], format!("{ring}/cryptoKeys/hot"));
    assert!(key["outputs"]["version_id"].as_str().unwrap().ends_with("/cryptoKeyVersions/1"), "{key:#}");
    w.keyrite_gcp(&kms, &["plan", "--detailed-exitcode"]).expect(0);
    w.keyrite_gcp(&kms, &["drift"]).expect(0);
    // Afterwards, a member granted by hand is drift.
    kms.create_by_hand(
        &format!("{ring}/cryptoKeys/hot:setIamPolicy"),
        r#"{"policy":{"bindings":[{"role":"roles/cloudkms.signerVerifier","members":["serviceAccount:signer@treasury-prod-4711.iam.gserviceaccount.com","user:mallory@example.com"]}]}}"#,
    );
    let drift = w.keyrite_gcp(&kms, &["drift"]).expect(2);
    assert!(drift.stdout.contains("mallory@example.com"), "{}", drift.stdout);
}

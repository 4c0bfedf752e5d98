//! Manifest validation: every problem reported at once, at the right line and column.

use std::path::{Path, PathBuf};

use crate::manifest::*;

fn errors(text: &str) -> Vec<String> {
    match parse(Path::new("m.yaml"), text) {
        Ok(_) => panic!("expected errors for:\n{text}"),
        Err(d) => d.0.iter().map(ToString::to_string).collect(),
    }
}

fn has(errors: &[String], needle: &str) {
    assert!(errors.iter().any(|e| e.contains(needle)), "no error containing {needle:?} in:\n{}", errors.join("\n"));
}

const GOOD: &str = r#"
version: 1
provider:
  aws: {region: us-east-1}
resources:
  role:
    type: aws_iam_role
    name: signer
    trust: {services: [lambda.amazonaws.com]}
    policies:
      sign:
        generated: {sign_keys: ["${key.arn}"]}
  key:
    type: aws_kms_key
    policy:
      generated: {signers: ["${role.arn}"], source_ips: [203.0.113.0/24]}
  alias:
    type: aws_kms_alias
    name: alias/k
    target_key: ${key.key_id}
"#;

#[test]
fn a_valid_manifest_orders_resources_by_reference() {
    let m = parse(Path::new("m.yaml"), GOOD).unwrap();
    let names: Vec<&str> = m.resources.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, vec!["role", "key", "role/sign", "alias"]);
    assert_eq!(m.resource("role/sign").unwrap().kind, "aws_iam_role_policy");
    assert_eq!(m.resource("alias").unwrap().depends_on, ["key".to_string()].into());
    assert_eq!(m.aws.region.as_deref(), Some("us-east-1"));
    assert_eq!(m.state, StateConfig::Local { path: PathBuf::from("m.state.json") });
    let key = &m.resource("key").unwrap().desired;
    assert_eq!(key["key_spec"], "ECC_SECG_P256K1");
    assert_eq!(key["deletion_window_days"], 30);
}

#[test]
fn every_problem_is_reported_at_once_with_positions() {
    let text = "version: 1\nresources:\n  key:\n    type: aws_kms_key\n    key_spek: ECC_SECG_P256K1\n    deletion_window_days: 3\n    enabled: yes\n  alias:\n    type: aws_kms_alias\n    name: treasury\n    target_key: ${nokey.key_id}\n";
    let e = errors(text);
    assert_eq!(e.len(), 5, "{e:#?}");
    has(&e, "m.yaml:5:5: error[unknown-field]: resources.key: unknown field `key_spek` (did you mean `key_spec`?)");
    has(&e, "m.yaml:6:27: error[range]: resources.key.deletion_window_days: 3 is out of range (7–30)");
    has(&e, "m.yaml:7:14: error[type]: resources.key.enabled: expected true or false, found the string \"yes\"");
    has(&e, "resources.alias.name: alias name \"treasury\" must start with \"alias/\"");
    has(&e, "m.yaml:11:17: error[reference]: ${nokey.key_id}: no resource named `nokey` in this manifest");
}

#[test]
fn yaml_syntax_errors_have_a_position() {
    let e = errors("version: 1\nresources:\n  key: {type: aws_kms_key\n");
    assert_eq!(e.len(), 1);
    assert!(e[0].starts_with("m.yaml:4:1: error[yaml]: invalid YAML"), "{e:?}");
}

#[test]
fn duplicate_keys_are_errors() {
    has(
        &errors("version: 1\nresources: {}\nversion: 1\n"),
        "m.yaml:3:1: error[yaml]: duplicate key \"version\" (first defined at 1:1)",
    );
}

#[test]
fn version_and_resources_are_required() {
    let e = errors("provider: {aws: {region: us-east-1}}\n");
    has(&e, "missing `version: 1`");
    has(&e, "missing `resources:`");
    has(&errors("version: 2\nresources: {}\n"), "unsupported manifest version the number 2");
}

#[test]
fn unknown_types_and_wrong_shapes() {
    let e = errors("version: 1\nresources:\n  a:\n    type: aws_s3_bucket\n  b: [1, 2]\n  C:\n    type: aws_kms_key\n");
    has(
        &e,
        "m.yaml:4:11: error[type]: resources.a.type: unknown resource type \"aws_s3_bucket\"; expected one of aws_kms_key, aws_kms_alias, aws_iam_role",
    );
    has(&e, "m.yaml:5:6: error[type]: resources.b: expected a mapping, found a list");
    has(&e, "m.yaml:6:3: error[name]: invalid resource name \"C\"");
}

#[test]
fn bad_references_are_errors() {
    let text = "version: 1\nresources:\n  key:\n    type: aws_kms_key\n    description: ${key.arn}\n  alias:\n    type: aws_kms_alias\n    name: alias/x\n    target_key: ${key.nope}\n  alias2:\n    type: aws_kms_alias\n    name: alias/y\n    target_key: ${key.key_id\n";
    let e = errors(text);
    has(&e, "m.yaml:5:18: error[reference]: ${key.arn}: a resource cannot refer to itself");
    has(&e, "${key.nope}: `key` has no attribute `nope` (it has: key_id, arn, public_key, address)");
    has(&e, "unterminated reference");
}

#[test]
fn cycles_are_reported() {
    let text = "version: 1\nresources:\n  a:\n    type: aws_kms_key\n    description: ${b.arn}\n  b:\n    type: aws_kms_key\n    description: ${a.arn}\n";
    has(&errors(text), "error[cycle]: dependency cycle: a → b → a");
}

#[test]
fn policies_are_checked_when_the_manifest_is() {
    let text = r#"version: 1
resources:
  key:
    type: aws_kms_key
    policy:
      document:
        Version: "2012-10-17"
        Statement:
          - Effect: Permit
            Principal: "*"
            Action: kms:Sign
            Resource: "*"
  key2:
    type: aws_kms_key
    policy:
      generated:
        admins: [not-an-arn]
        source_ips: [300.1.1.1/8, 10.0.0.0/40]
  role:
    type: aws_iam_role
    name: r
    trust: {}
    policies:
      p: {}
"#;
    let e = errors(text);
    has(&e, "m.yaml:7:9: error[policy]: resources.key.policy.document:");
    has(&e, "Effect must be Allow or Deny");
    has(&e, "\"not-an-arn\" is not an IAM principal ARN");
    has(&e, "\"300.1.1.1/8\" is not an IP address or CIDR block");
    has(&e, "\"10.0.0.0/40\": prefix length must be 0–32");
    has(&e, "resources.role.trust: name at least one of `services` or `principals`");
    has(&e, "an inline policy needs `document:` or `generated:`");
}

#[test]
fn role_policies_cannot_be_declared_alone() {
    has(
        &errors("version: 1\nresources:\n  p:\n    type: aws_iam_role_policy\n"),
        "is declared under an aws_iam_role's `policies:`",
    );
}

#[test]
fn explicit_documents_may_be_json_strings() {
    let text = "version: 1\nresources:\n  key:\n    type: aws_kms_key\n    policy:\n      document: '{\"Version\":\"2012-10-17\",\"Statement\":{\"Effect\":\"Allow\",\"Principal\":{\"AWS\":\"${aws.account_id}\"},\"Action\":\"kms:*\",\"Resource\":\"*\"}}'\n";
    let m = parse(Path::new("m.yaml"), text).unwrap();
    assert_eq!(m.resources[0].desired["policy"]["Statement"]["Principal"]["AWS"], "${aws.account_id}");
}

#[test]
fn state_path_is_relative_to_the_manifest_and_endpoint_must_be_a_url() {
    let m = parse(Path::new("dir/m.yaml"), "version: 1\nstate: {local: {path: s/x.json}}\nresources: {}\n").unwrap();
    assert_eq!(m.state, StateConfig::Local { path: PathBuf::from("dir/s/x.json") });
    has(
        &errors("version: 1\nprovider: {aws: {endpoint: localhost:4566}}\nresources: {}\n"),
        "expected an http:// or https:// URL",
    );
}

#[test]
fn every_example_manifest_is_valid() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("manifests");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let text = std::fs::read_to_string(&path).unwrap();
            match parse(&path, &text) {
                Ok(_) => {}
                // A unit test's executable is in target/*/deps, where no keyrite-lambda-signer
                // is built: that must be the Rust signer's only complaint. The integration
                // tests validate, apply and lint it with the executable cargo builds.
                Err(d) if text.contains("runtime: provided.al2023") => {
                    // One complaint per Rust Lambda function in the manifest.
                    let text_of_manifest_functions = |p: &std::path::Path| {
                        std::fs::read_to_string(p).unwrap().matches("runtime: provided.al2023").count()
                    };
                    let text = d.to_string();
                    assert!(
                        text.contains("error[template]") && text.contains("keyrite-lambda-signer is missing"),
                        "{text}"
                    );
                    let functions = text_of_manifest_functions(&path);
                    assert_eq!(text.matches("error[").count(), functions, "{text}");
                }
                Err(d) => panic!("{} is invalid:\n{d}", path.display()),
            }
            seen += 1;
        }
    }
    assert!(seen >= 3, "expected several examples in manifests/, found {seen}");
}

#[test]
fn an_iam_binding_declares_further_roles_under_other_bindings_with_positions() {
    let text = r#"
version: 1
provider:
  gcp: {project: treasury-prod-4711}
resources:
  ring:
    type: gcp_kms_key_ring
    location: us-east1
  key:
    type: gcp_kms_crypto_key
    key_ring: ${ring.id}
  access:
    type: gcp_kms_crypto_key_iam_binding
    crypto_key: ${key.id}
    members: [serviceAccount:signer@treasury-prod-4711.iam.gserviceaccount.com]
    other_bindings:
      roles/cloudkms.publicKeyViewer: [group:auditors@example.com, group:auditors@example.com]
"#;
    let m = parse(Path::new("m.yaml"), text).unwrap();
    assert_eq!(
        m.resource("access").unwrap().desired["other_bindings"],
        serde_json::json!({"roles/cloudkms.publicKeyViewer": ["group:auditors@example.com"]})
    );

    let bad = text.replace(
        "      roles/cloudkms.publicKeyViewer: [group:auditors@example.com, group:auditors@example.com]",
        "      cloudkms.viewer: [group:auditors@example.com]\n      roles/cloudkms.signerVerifier: [alice@example.com]\n      roles/cloudkms.admin: [allUsers]",
    );
    let errors = parse(Path::new("m.yaml"), &bad).unwrap_err().to_string();
    for expected in [
        "m.yaml:17:24: error[value]: resources.access.other_bindings.cloudkms.viewer: \"cloudkms.viewer\" is not a role",
        "m.yaml:18:38: error[value]: resources.access.other_bindings.roles/cloudkms.signerVerifier: roles/cloudkms.signerVerifier is the binding's own role",
        "m.yaml:18:38: error[value]: resources.access.other_bindings.roles/cloudkms.signerVerifier: \"alice@example.com\" is not an IAM member",
        "m.yaml:19:29: error[public]: resources.access.other_bindings.roles/cloudkms.admin: allUsers would let anyone use this key",
    ] {
        assert!(errors.contains(expected), "missing {expected:?} in:\n{errors}");
    }
}

#[test]
fn gcp_resources_take_the_provider_project_and_risky_choices_warn() {
    let text = r#"
version: 1
provider:
  gcp: {project: treasury-prod-4711}
resources:
  ring:
    type: gcp_kms_key_ring
    location: us-east1
  hot_key:
    type: gcp_kms_crypto_key
    key_ring: ${ring.id}
    protection_level: SOFTWARE
  access:
    type: gcp_kms_crypto_key_iam_binding
    crypto_key: ${hot_key.id}
    members: [allAuthenticatedUsers]
    allow_public: true
"#;
    let m = parse(Path::new("m.yaml"), text).unwrap();
    let ring = m.resource("ring").unwrap();
    assert_eq!(ring.desired["project"], "treasury-prod-4711");
    assert_eq!(ring.desired["name"], "ring");
    let key = m.resource("hot_key").unwrap();
    assert_eq!(key.desired["name"], "hot-key", "the default id is the resource name with '-'");
    assert_eq!(key.desired["version"], 1, "version 1 is pinned by default");
    assert_eq!(m.resource("access").unwrap().desired["iam_role"], "roles/cloudkms.signerVerifier");
    let warnings: Vec<String> = m.warnings.iter().map(Diagnostic::as_warning).collect();
    assert!(
        warnings.iter().any(|w| w.contains("m.yaml:12:23: warning[protection]") && w.contains("SOFTWARE")),
        "{warnings:?}"
    );
    assert!(
        warnings.iter().any(|w| w.contains("warning[public]") && w.contains("allAuthenticatedUsers")),
        "{warnings:?}"
    );
    assert_eq!(m.resources.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(), ["ring", "hot_key", "access"]);
}

#[test]
fn a_kind_of_a_cloud_the_build_leaves_out_names_the_feature_at_its_position() {
    use crate::provider::{Schema, Schemas};
    // What `--no-default-features --features aws` registers.
    let aws_only: &'static Schemas = Box::leak(Box::new(
        Schemas::new(crate::provider::aws::KINDS.iter().map(|k| *k as &'static dyn Schema)).leaving_out("gcp_", "gcp"),
    ));
    let text = "version: 1\nprovider:\n  gcp: {project: treasury-prod}\nresources:\n  ring:\n    type: gcp_kms_key_ring\n    name: r\n    location: us-east1\n";
    let errors: Vec<String> = match Manifest::parse(Path::new("m.yaml"), text, aws_only) {
        Ok(_) => panic!("a GCP kind validated in an AWS-only build"),
        Err(d) => d.0.iter().map(ToString::to_string).collect(),
    };
    assert_eq!(errors.len(), 1, "{errors:?}");
    has(&errors, "m.yaml:6:11");
    has(
        &errors,
        "`gcp_kms_key_ring` is a kind of a cloud this keyrite was built without; build it with `--features gcp`",
    );
    // A kind no build has is still an unknown type, with the list.
    let typo = text.replace("gcp_kms_key_ring", "aws_kms_kee");
    let errors: Vec<String> = match Manifest::parse(Path::new("m.yaml"), &typo, aws_only) {
        Ok(_) => panic!("a misspelt kind validated"),
        Err(d) => d.0.iter().map(ToString::to_string).collect(),
    };
    has(&errors, "unknown resource type \"aws_kms_kee\"; expected one of aws_kms_key");
}

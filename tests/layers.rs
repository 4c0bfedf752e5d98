//! The workspace's layering, read from Cargo's own resolution of each crate's dependencies
//! (`cargo tree`): the core stays pure, each provider crate brings only its own cloud, and
//! the Lambda signer only the KMS SDK and the runtime.

use std::collections::BTreeSet;
use std::process::Command;

/// The names of the packages in `package`'s normal (non-dev) dependency tree.
fn tree(package: &str, extra: &[&str]) -> BTreeSet<String> {
    let out = Command::new(env!("CARGO"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["tree", "--locked", "--offline", "-e", "normal", "--prefix", "none", "-p", package])
        .args(extra)
        .output()
        .expect("cargo tree runs");
    assert!(out.status.success(), "cargo tree -p {package}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

fn offending<'a>(names: &'a BTreeSet<String>, forbidden: &[&str]) -> Vec<&'a String> {
    names.iter().filter(|n| forbidden.iter().any(|f| n.starts_with(f))).collect()
}

#[test]
fn the_core_has_no_cloud_sdk_no_async_runtime_and_no_network_client() {
    let core = tree("keyrite-core", &[]);
    assert!(core.contains("k256") && core.contains("saphyr-parser"), "{core:?}");
    let forbidden =
        ["aws-", "google-cloud", "tokio", "hyper", "reqwest", "rustls", "h2", "mio", "keyrite-aws", "keyrite-gcp"];
    assert_eq!(offending(&core, &forbidden), Vec::<&String>::new());
}

#[test]
fn each_provider_crate_brings_only_its_own_cloud() {
    let aws = tree("keyrite-aws", &[]);
    assert!(aws.contains("aws-sdk-kms") && aws.contains("keyrite-core"), "{aws:?}");
    assert_eq!(
        offending(&aws, &["google-", "keyrite-gcp", "keyrite-lambda-signer", "lambda_runtime"]),
        Vec::<&String>::new()
    );

    let gcp = tree("keyrite-gcp", &[]);
    assert!(gcp.contains("google-cloud-kms-v1") && gcp.contains("keyrite-core"), "{gcp:?}");
    // aws-lc-rs is rustls's crypto backend, not an AWS service client.
    assert_eq!(offending(&gcp, &["aws-sdk", "aws-config", "aws-smithy", "keyrite-aws"]), Vec::<&String>::new());
}

#[test]
fn the_lambda_signer_is_the_core_the_kms_sdk_and_the_runtime() {
    let signer = tree("keyrite-lambda-signer", &[]);
    assert!(signer.contains("aws-sdk-kms") && signer.contains("lambda_runtime"), "{signer:?}");
    // aws-sdk-sts comes with aws-config's credential chain (web identity, assumed roles).
    let forbidden = ["aws-sdk-iam", "aws-sdk-lambda", "aws-sdk-s3", "aws-sdk-apigateway", "google-"];
    assert_eq!(offending(&signer, &forbidden), Vec::<&String>::new());
    assert_eq!(offending(&signer, &["keyrite-aws", "keyrite-gcp"]), Vec::<&String>::new());
    assert!(!signer.contains("keyrite"), "the signer must not depend on the CLI");
}

#[test]
fn the_cli_built_for_one_cloud_compiles_no_other_clouds_sdk() {
    let aws_only = tree("keyrite", &["--no-default-features", "--features", "aws"]);
    assert!(aws_only.contains("keyrite-aws") && aws_only.contains("aws-sdk-kms"), "{aws_only:?}");
    assert_eq!(offending(&aws_only, &["google-", "keyrite-gcp"]), Vec::<&String>::new());

    let gcp_only = tree("keyrite", &["--no-default-features", "--features", "gcp"]);
    assert!(gcp_only.contains("keyrite-gcp") && gcp_only.contains("google-cloud-kms-v1"), "{gcp_only:?}");
    // aws-lc-rs is rustls's crypto backend (serve's TLS), not an AWS service client.
    let forbidden = ["aws-sdk", "aws-config", "aws-smithy", "aws-sigv4", "keyrite-aws", "keyrite-lambda-signer"];
    assert_eq!(offending(&gcp_only, &forbidden), Vec::<&String>::new());
}

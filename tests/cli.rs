//! The command line itself: help text (snapshots), exit codes, and commands that need no
//! cloud (`validate`, `policy diff`).

use std::process::Command;

fn keyrite(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_keyrite"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("KEYRITE_MANIFEST")
        .env("COLUMNS", "100")
        .output()
        .expect("run keyrite");
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn help_texts() {
    for cmd in ["", "plan", "apply", "drift", "show", "destroy", "validate", "addresses", "policy diff", "force-unlock"] {
        let mut args: Vec<&str> = cmd.split_whitespace().collect();
        args.push("--help");
        let (code, stdout, _) = keyrite(&args);
        assert_eq!(code, 0, "{cmd} --help");
        let name = if cmd.is_empty() { "help".to_owned() } else { format!("help_{}", cmd.replace(' ', "_")) };
        insta::assert_snapshot!(name, stdout);
    }
}

#[test]
fn policy_diff_compares_by_meaning() {
    let (code, stdout, stderr) = keyrite(&["policy", "diff", "tests/fixtures/policies/signer.json", "tests/fixtures/policies/signer-reformatted.txt"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert_eq!(stdout, "The policies are equivalent.\n");

    let (code, stdout, _) = keyrite(&["policy", "diff", "tests/fixtures/policies/signer.json", "tests/fixtures/policies/signer-broadened.json"]);
    assert_eq!(code, 2);
    insta::assert_snapshot!("policy_diff_broadened", stdout);

    let (code, _, stderr) = keyrite(&["policy", "diff", "tests/fixtures/policies/signer.json", "Cargo.toml"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("Cargo.toml is not a valid policy"), "{stderr}");
}

#[test]
fn validate_reports_every_error_and_makes_no_call() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.yaml");
    std::fs::write(&path, "version: 1\nresources:\n  key:\n    type: aws_kms_key\n    colour: blue\n    deletion_window_days: 90\n").unwrap();
    // An endpoint nobody listens on: any API call would fail differently.
    let out = Command::new(env!("CARGO_BIN_EXE_keyrite"))
        .args(["plan", "-f", path.to_str().unwrap()])
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
        .env("AWS_REGION", "us-east-1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr.contains("bad.yaml:5:5: error[unknown-field]: resources.key: unknown field `colour`"), "{stderr}");
    assert!(stderr.contains("bad.yaml:6:27: error[range]: resources.key.deletion_window_days: 90 is out of range (7–30)"), "{stderr}");
    assert!(stderr.contains("manifest is invalid: 2 errors"), "{stderr}");
    assert!(!stderr.contains("127.0.0.1:9"), "no API call was attempted: {stderr}");

    let (code, stdout, _) = keyrite(&["validate", "-f", "manifests/treasury.yaml"]);
    assert_eq!((code, stdout.as_str()), (0, "manifests/treasury.yaml: valid (4 resources)\n"));
}

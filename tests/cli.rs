//! The command line itself: help text (snapshots), exit codes, and commands that need no
//! cloud (`validate`, `policy diff`).

use std::process::Command;

fn keyrite(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_keyrite"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("KEYRITE_MANIFEST")
        .env_remove("KEYRITE_VIA_EMULATOR")
        .env("COLUMNS", "100")
        .output()
        .expect("run keyrite");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn help_texts() {
    for cmd in [
        "",
        "plan",
        "apply",
        "drift",
        "show",
        "destroy",
        "validate",
        "addresses",
        "sign",
        "selftest",
        "serve",
        "sig from-der",
        "sig recover",
        "policy diff",
        "force-unlock",
        "approve",
        "lint",
        "ceremony verify",
        "ceremony show",
        "ceremony sign",
        "rotate",
    ] {
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
    let (code, stdout, stderr) = keyrite(&[
        "policy",
        "diff",
        "tests/fixtures/policies/signer.json",
        "tests/fixtures/policies/signer-reformatted.txt",
    ]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert_eq!(stdout, "The policies are equivalent.\n");

    let (code, stdout, _) = keyrite(&[
        "policy",
        "diff",
        "tests/fixtures/policies/signer.json",
        "tests/fixtures/policies/signer-broadened.json",
    ]);
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
    std::fs::write(
        &path,
        "version: 1\nresources:\n  key:\n    type: aws_kms_key\n    colour: blue\n    deletion_window_days: 90\n",
    )
    .unwrap();
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
    assert!(
        stderr.contains("bad.yaml:6:27: error[range]: resources.key.deletion_window_days: 90 is out of range (7–30)"),
        "{stderr}"
    );
    assert!(stderr.contains("manifest is invalid: 2 errors"), "{stderr}");
    assert!(!stderr.contains("127.0.0.1:9"), "no API call was attempted: {stderr}");

    let (code, stdout, _) = keyrite(&["validate", "-f", "manifests/treasury.yaml"]);
    assert_eq!((code, stdout.as_str()), (0, "manifests/treasury.yaml: valid (4 resources)\n"));
}

#[test]
fn sig_from_der_normalises_high_s_and_picks_v_and_recover_names_the_signer() {
    use k256::ecdsa::{Signature, SigningKey};
    let key = SigningKey::from_slice(
        &hex::decode("4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318").unwrap(),
    )
    .unwrap();
    let address = "0x2c7536E3605D9C16a7a3D7b1898e529396a65c23";
    let pubkey = hex::encode(key.verifying_key().to_encoded_point(true).as_bytes());
    for i in 0..6u8 {
        let digest = [i.wrapping_mul(41).wrapping_add(3); 32];
        let (sig, recid) = key.sign_prehash_recoverable(&digest).unwrap();
        // What KMS may return: the high-s twin half of the time.
        let der = if i % 2 == 0 {
            sig.to_der().as_bytes().to_vec()
        } else {
            Signature::from_scalars(sig.r(), -*sig.s()).unwrap().to_der().as_bytes().to_vec()
        };
        let mut expected = sig.to_bytes().to_vec();
        expected.push(27 + recid.to_byte());
        let expected = format!("0x{}", hex::encode(expected));
        let digest_hex = format!("0x{}", hex::encode(digest));
        for who in [["--address", address], ["--pubkey", pubkey.as_str()]] {
            let (code, out, err) =
                keyrite(&["sig", "from-der", "--der", &hex::encode(&der), "--digest", &digest_hex, who[0], who[1]]);
            assert_eq!((code, out.trim()), (0, expected.as_str()), "{err}");
        }
        let (code, out, _) = keyrite(&["sig", "recover", "--digest", &digest_hex, "--signature", &expected]);
        assert_eq!((code, out.trim()), (0, address));
    }
    let (code, _, err) = keyrite(&[
        "sig",
        "from-der",
        "--der",
        "3006020101020101ff",
        "--digest",
        &format!("0x{}", "00".repeat(32)),
        "--address",
        address,
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("error:"), "{err}");
}

//! The whole signer stack on the local emulator: the Lambda signer built from the template
//! (run by the emulator with the real `@aws-sdk/client-kms` supplied as a layer), its AWS_IAM
//! Function URL and API Gateway stage, the live self-test through both, independent
//! verification of the returned signatures, and drift on every signer-specific attribute.

use crate::common;

use common::{Emulator, Workdir};
use k256::ecdsa::{RecoveryId, Signature, VerifyingKey};
use serde_json::Value;
use sha3::{Digest, Keccak256};

fn selftest(w: &Workdir, emu: &Emulator) -> common::Run {
    w.keyrite(emu, &["selftest", "--format", "json", "--timeout", "30", "--via-emulator", &emu.endpoint])
}

/// Recovers the address from an r‖s‖v signature over EIP-191(digest), with k256 and sha3
/// directly rather than keyrite's crypto module.
fn recover_eip191(digest_hex: &str, sig_hex: &str) -> String {
    let digest = hex::decode(digest_hex.trim_start_matches("0x")).unwrap();
    let sig = hex::decode(sig_hex.trim_start_matches("0x")).unwrap();
    let mut h = Keccak256::new();
    h.update(b"\x19Ethereum Signed Message:\n32");
    h.update(&digest);
    let prehash = h.finalize();
    let signature = Signature::from_slice(&sig[..64]).unwrap();
    assert!(signature.normalize_s().is_none(), "high-s");
    let key =
        VerifyingKey::recover_from_prehash(&prehash, &signature, RecoveryId::from_byte(sig[64] - 27).unwrap()).unwrap();
    let point = key.to_encoded_point(false);
    format!("0x{}", hex::encode(&Keccak256::digest(&point.as_bytes()[1..])[12..]))
}

#[tokio::test(flavor = "multi_thread")]
async fn the_deployed_signer_signs_for_the_address_on_record_and_tampering_is_drift() {
    assert!(
        common::repo_root().join("node_modules/@aws-sdk/client-kms").exists(),
        "run `npm ci` (scripts/test.sh does) to get the real AWS SDK for the layer"
    );
    let emu = Emulator::start();
    let w = Workdir::with_example("treasury-signer.yaml");
    w.keyrite(&emu, &["apply", "--auto-approve"]).expect(0);
    w.keyrite(&emu, &["plan", "--detailed-exitcode"]).expect(0);
    let address = w.keyrite(&emu, &["addresses", "--format", "json"]).expect(0).json()["keys"][0]["evm_address"]
        .as_str()
        .unwrap()
        .to_owned();

    let report = selftest(&w, &emu).expect(0).json();
    let checks = report["signers"][0]["checks"].as_array().unwrap().clone();
    assert_eq!(checks.len(), 4, "public key, direct, function URL, API stage: {checks:#?}");
    assert!(checks[2]["target"].as_str().unwrap().contains(".lambda-url.us-east-1.on.aws"));
    assert!(checks[3]["target"].as_str().unwrap().contains(".execute-api.us-east-1.amazonaws.com/prod/sign"));
    for c in &checks[2..] {
        assert_eq!(c["passed"], true, "{c:#}");
        assert_eq!(
            recover_eip191(c["digest"].as_str().unwrap(), c["signature"].as_str().unwrap()),
            address.to_lowercase()
        );
    }

    // Unsigned requests are refused: the endpoints really are AWS_IAM.
    let state = w.state();
    let url = state["resources"]["signer_url"]["outputs"]["url"].as_str().unwrap().to_owned();
    let host = url.trim_start_matches("https://").trim_end_matches('/');
    let unsigned = unsigned_post(emu.port, host, "/");
    assert_eq!(unsigned, 403, "an AWS_IAM Function URL must refuse unsigned requests");

    // Tamper out of band: replace the code, open the URL to the world, repoint the
    // expected address, broaden the API policy.
    let lambda = emu.lambda().await;
    let other = zip_one(
        "index.mjs",
        b"export const handler = async () => ({statusCode: 200, body: JSON.stringify({signature: '0x00'})});",
    );
    lambda
        .update_function_code()
        .function_name("keyrite-treasury-signer")
        .zip_file(aws_sdk_lambda::primitives::Blob::new(other))
        .send()
        .await
        .unwrap();
    lambda
        .update_function_url_config()
        .function_name("keyrite-treasury-signer")
        .auth_type(aws_sdk_lambda::types::FunctionUrlAuthType::None)
        .send()
        .await
        .unwrap();
    let api_id = state["resources"]["signer_api"]["id"].as_str().unwrap().to_owned();
    let apigw = emu.apigateway().await;
    let open = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"execute-api:Invoke","Resource":"execute-api:/*"}]}"#;
    apigw
        .update_rest_api()
        .rest_api_id(&api_id)
        .patch_operations(
            aws_sdk_apigateway::types::PatchOperation::builder()
                .op(aws_sdk_apigateway::types::Op::Replace)
                .path("/policy")
                .value(open)
                .build(),
        )
        .send()
        .await
        .unwrap();

    let drift = w.keyrite(&emu, &["drift", "--format", "json"]).expect(2).json();
    let items: Vec<Value> = drift["drift"].as_array().unwrap().clone();
    let message = |address: &str, attr: &str| -> String {
        items
            .iter()
            .find(|i| i["address"] == address && i["attribute"] == attr)
            .map(|i| i["message"].as_str().unwrap().to_owned())
            .unwrap_or_else(|| panic!("no drift on {address}.{attr}: {items:#?}"))
    };
    assert!(message("signer", "code_sha256").contains("signer code replaced out of band"));
    assert!(message("signer_url", "auth_type").contains("NONE"));
    assert!(message("signer_api", "policy").contains("BROADENED"));
    assert!(items.iter().all(|i| i["severity"] == "security"), "{items:#?}");

    // The replaced code no longer signs for the address on record: the self-test says so.
    let broken = selftest(&w, &emu).expect(1).json();
    let url_check = &broken["signers"][0]["checks"][2];
    assert_eq!(url_check["passed"], false);
    assert!(
        ["malformed", "wrong_address", "bad_response"].contains(&url_check["cause"].as_str().unwrap()),
        "{url_check:#}"
    );

    // Apply heals it all, and the signer works again.
    w.keyrite(&emu, &["apply", "--auto-approve"]).expect(0);
    w.keyrite(&emu, &["drift"]).expect(0);
    selftest(&w, &emu).expect(0);
    assert_eq!(unsigned_post(emu.port, host, "/"), 403);
}

#[test]
fn a_public_function_url_needs_an_explicit_opt_in_and_warns() {
    let base = "version: 1\nresources:\n  f:\n    type: aws_lambda_function\n    name: f\n    role: arn:aws:iam::111122223333:role/r\n    key: k\n    expected_address: '0x0000000000000000000000000000000000000001'\n  u:\n    type: aws_lambda_function_url\n    function: ${f.name}\n";
    let w = Workdir::with_text(&format!("{base}    auth: NONE\n"));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_keyrite"))
        .args(["validate"])
        .current_dir(w.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("auth NONE makes the signer callable by anyone; it needs an explicit `public: true`")
    );

    let w = Workdir::with_text(&format!("{base}    public: true\n"));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_keyrite"))
        .args(["validate"])
        .current_dir(w.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("warning[public-endpoint]") && stderr.contains("PUBLIC (auth NONE)"), "{stderr}");
}

/// A one-file zip, for out-of-band code replacement.
fn zip_one(name: &str, body: &[u8]) -> Vec<u8> {
    keyrite::package::zip(vec![(name.to_owned(), body.to_vec())]).unwrap().bytes
}

/// An unsigned POST to a Function URL through the emulator; returns the status.
fn unsigned_post(port: u16, host: &str, path: &str) -> u16 {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let body = r#"{"hash":"0x1111111111111111111111111111111111111111111111111111111111111111"}"#;
    write!(s, "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()).unwrap();
    let mut response = String::new();
    s.read_to_string(&mut response).unwrap();
    response.split_whitespace().nth(1).unwrap().parse().unwrap()
}

//! What `keyrite serve` answers a request it refuses, over plain HTTP with an access list of
//! token clients: 401 with a `WWW-Authenticate: Bearer` challenge for no credential or one it
//! does not recognise (RFC 6750's `error="invalid_token"` when a token was presented), 403 for
//! a client it knows that may not use the signer, and the audit log's `reason` for each.

use std::process::{Command, Stdio};

use serde_json::json;
use sha2::Digest;

use super::common::{Emulator, Workdir, free_port, wait_for_port};

/// `(status, the WWW-Authenticate header if any, body)` of a POST with `authorization`.
fn post(port: u16, path: &str, authorization: Option<&str>, body: &str) -> (u16, Option<String>, String) {
    let headers = authorization.map(|a| format!("Authorization: {a}\r\n")).unwrap_or_default();
    let response = super::exchange(port, "POST", path, &headers, body);
    let challenge = response
        .split("\r\n\r\n")
        .next()
        .unwrap()
        .lines()
        .find_map(|l| l.split_once(':').filter(|(name, _)| name.eq_ignore_ascii_case("www-authenticate")))
        .map(|(_, value)| value.trim().to_owned());
    let (status, body) = super::split(&response);
    (status, challenge, body)
}

#[test]
fn serve_answers_401_with_a_bearer_challenge_for_an_unknown_token_and_403_for_a_client_not_allowed_the_signer() {
    let emu = Emulator::start();
    let w = Workdir::with_text(&super::two_signers());
    w.keyrite(&emu, &["apply", "--auto-approve"]).expect(0);
    let address = super::addresses(&w, &emu);
    let token = "ci-token-5e1d";
    let token_sha256 = hex::encode(sha2::Sha256::digest(token.as_bytes()));
    std::fs::write(
        w.path().join("access.yaml"),
        format!("clients:\n  ci:\n    token_sha256: {token_sha256}\n    signers: [ops]\n"),
    )
    .unwrap();
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_keyrite"))
        .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--access", "access.yaml"])
        .args(["--audit-log", "audit.jsonl"])
        .current_dir(w.path())
        .envs(emu.env())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_port(port, "keyrite serve");
    let body = json!({"hash": format!("0x{}", "5b".repeat(32))}).to_string();

    // No credential at all, or a scheme this server does not speak: a challenge, no error code.
    for authorization in [None, Some("Basic Y2k6c2VjcmV0")] {
        let (status, challenge, answer) = post(port, "/sign/ops", authorization, &body);
        assert_eq!(status, 401, "{authorization:?}: {answer}");
        assert_eq!(challenge.as_deref(), Some("Bearer realm=\"keyrite\""), "{authorization:?}");
        assert!(answer.contains("no credentials"), "{answer}");
    }
    // A well-formed token that matches no client, and a malformed one: 401, invalid_token.
    let (status, challenge, answer) = post(port, "/sign/ops", Some("Bearer not-the-token"), &body);
    assert_eq!(status, 401, "{answer}");
    let challenge = challenge.unwrap_or_default();
    assert!(
        challenge.starts_with("Bearer realm=\"keyrite\", error=\"invalid_token\", error_description=\""),
        "{challenge}"
    );
    assert!(answer.contains("the bearer token matches no client of the access list"), "{answer}");
    let (status, challenge, _) = post(port, "/sign/ops", Some("Bearer "), &body);
    assert_eq!(status, 401);
    assert!(challenge.unwrap_or_default().contains("error=\"invalid_token\""));
    // The ci client is known, and may not use treasury: 403, and no challenge.
    let (status, challenge, answer) = post(port, "/sign/treasury", Some(&format!("Bearer {token}")), &body);
    assert_eq!((status, challenge), (403, None), "{answer}");
    assert!(answer.contains("client ci may not use signer treasury"), "{answer}");
    // ... and may use ops.
    let (status, _, answer) = post(port, "/sign/ops", Some(&format!("bearer {token}")), &body);
    assert_eq!(status, 200, "{answer}");
    let v: serde_json::Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(v["address"].as_str().unwrap().to_lowercase(), address("ops_key"));
    let _ = child.kill();
    let _ = child.wait();

    // The audit log: each refusal with its status, how it authenticated, and why.
    let audit = std::fs::read_to_string(w.path().join("audit.jsonl")).unwrap();
    assert!(!audit.contains(token) && !audit.contains("not-the-token"), "a token reached the log: {audit}");
    let lines: Vec<serde_json::Value> = audit.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let rows: Vec<(u64, &str, &str, &str)> = lines
        .iter()
        .map(|l| {
            let s = |k: &str| l[k].as_str().unwrap_or("-");
            (l["status"].as_u64().unwrap(), s("client"), s("auth"), s("reason"))
        })
        .collect();
    let no_credentials = "no credentials: present a client certificate or a bearer token";
    assert_eq!(
        rows,
        [
            (401, "127.0.0.1", "none", no_credentials),
            (401, "127.0.0.1", "none", no_credentials),
            (401, "127.0.0.1", "none", "the bearer token matches no client of the access list"),
            (401, "127.0.0.1", "none", "the Authorization header is not `Bearer <token>`"),
            (403, "ci", "bearer", "client ci may not use signer treasury"),
            (200, "ci", "bearer", "-"),
        ],
        "{audit}"
    );
}

//! Signing through KMS on the local emulator: `sign`, `sig`, the live self-test (direct and
//! through `keyrite serve`), and a faulty KMS (moto) that the self-test must catch.

use crate::common;
#[path = "serve/auth.rs"]
mod auth;
#[path = "serve/tls.rs"]
mod tls;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};

use common::{Emulator, Moto, Workdir, free_port, wait_for_port};
use k256::ecdsa::{RecoveryId, Signature, VerifyingKey};
use serde_json::json;
use sha3::{Digest, Keccak256};

/// The EVM address of a public key, computed here with k256 and sha3 directly.
fn address_of(key: &VerifyingKey) -> String {
    let point = key.to_encoded_point(false);
    let hash = Keccak256::digest(&point.as_bytes()[1..]);
    format!("0x{}", hex::encode(&hash[12..]))
}

/// Recovers the signer of an r‖s‖v signature over a 32-byte prehash, independently of
/// keyrite's own crypto module.
fn recover(prehash: &[u8; 32], sig: &[u8]) -> String {
    assert_eq!(sig.len(), 65);
    let signature = Signature::from_slice(&sig[..64]).unwrap();
    assert!(signature.normalize_s().is_none(), "high-s signature");
    assert!(sig[64] == 27 || sig[64] == 28, "v = {}", sig[64]);
    let key =
        VerifyingKey::recover_from_prehash(prehash, &signature, RecoveryId::from_byte(sig[64] - 27).unwrap()).unwrap();
    address_of(&key)
}

fn eip191(digest: &[u8; 32]) -> [u8; 32] {
    let mut h = Keccak256::new();
    h.update(b"\x19Ethereum Signed Message:\n32");
    h.update(digest);
    h.finalize().into()
}

fn evm_address(w: &Workdir, emu: &Emulator) -> String {
    let out = w.keyrite(emu, &["addresses", "--format", "json"]).expect(0).json();
    out["keys"][0]["evm_address"].as_str().unwrap().to_owned()
}

#[test]
fn sign_produces_signatures_that_recover_to_the_derived_address_in_both_modes() {
    let emu = Emulator::start();
    let w = Workdir::with_example("treasury.yaml");
    w.keyrite(&emu, &["apply", "--auto-approve"]).expect(0);
    let address = evm_address(&w, &emu);
    for i in 0..8u8 {
        let digest = [i.wrapping_mul(37).wrapping_add(1); 32];
        let hash = format!("0x{}", hex::encode(digest));
        let eip = w.keyrite(&emu, &["sign", "--hash", &hash]).expect(0);
        let sig = hex::decode(eip.stdout.trim().trim_start_matches("0x")).unwrap();
        assert_eq!(recover(&eip191(&digest), &sig).to_lowercase(), address.to_lowercase());
        let raw = w.keyrite(&emu, &["sign", "--hash", &hash, "--mode", "digest"]).expect(0);
        let sig = hex::decode(raw.stdout.trim().trim_start_matches("0x")).unwrap();
        assert_eq!(recover(&digest, &sig).to_lowercase(), address.to_lowercase());
        let recovered =
            w.keyrite(&emu, &["sig", "recover", "--digest", &hash, "--signature", raw.stdout.trim()]).expect(0);
        assert_eq!(recovered.stdout.trim(), address, "EIP-55 form");
    }
}

#[test]
fn selftest_passes_directly_and_through_serve_and_names_each_failure() {
    let emu = Emulator::start();
    let port = free_port();
    let text = std::fs::read_to_string(common::repo_root().join("manifests/treasury.yaml")).unwrap()
        + &format!(
            "    endpoints:\n      - url: http://127.0.0.1:{port}/sign\n        bearer_token_env: SIGNER_TOKEN\n"
        );
    let w = Workdir::with_text(&text);
    w.keyrite(&emu, &["apply", "--auto-approve"]).expect(0);
    let address = evm_address(&w, &emu);

    let mut server = Server::start(&w, &emu, port, "s3cret-token");
    let report = selftest(&w, &emu, "s3cret-token").expect(0).json();
    let checks = report["signers"][0]["checks"].as_array().unwrap();
    assert_eq!(checks.len(), 3, "{checks:#?}");
    assert!(checks.iter().all(|c| c["passed"] == true), "{checks:#?}");
    assert_eq!(checks[1]["target"], "kms-direct");
    assert!(checks[2]["latency_ms"].as_f64().unwrap() > 0.0);
    // Verify the endpoint's signature independently.
    let digest: [u8; 32] =
        hex::decode(checks[2]["digest"].as_str().unwrap().trim_start_matches("0x")).unwrap().try_into().unwrap();
    let sig = hex::decode(checks[2]["signature"].as_str().unwrap().trim_start_matches("0x")).unwrap();
    assert_eq!(recover(&eip191(&digest), &sig).to_lowercase(), address.to_lowercase());

    // Wrong token: the endpoint check fails with the HTTP status as its cause.
    let report = selftest(&w, &emu, "wrong").expect(1).json();
    let endpoint = &report["signers"][0]["checks"][2];
    assert_eq!((endpoint["passed"].as_bool(), endpoint["cause"].as_str()), (Some(false), Some("http_status")));
    assert!(endpoint["message"].as_str().unwrap().contains("401"));

    // The contract, spoken directly.
    let hash = format!("0x{}", "11".repeat(32));
    let (status, body) =
        post(port, "s3cret-token", &json!({"userOpHash": hash, "signerAddress": address.to_lowercase()}).to_string());
    assert_eq!(status, 200, "{body}");
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    for field in ["signature", "r", "s", "recid", "v", "address"] {
        assert!(body.get(field).is_some(), "missing {field}: {body}");
    }
    let (status, body) = post(
        port,
        "s3cret-token",
        &json!({"hash": hash, "signerAddress": "0x0000000000000000000000000000000000000001"}).to_string(),
    );
    assert_eq!(status, 400);
    assert!(body.contains("is not this signer"), "{body}");
    let (status, body) = post(port, "s3cret-token", r#"{"hash": "0x1234"}"#);
    assert_eq!(status, 400);
    assert!(body.contains("hash:"), "{body}");

    // The audit log: a line per signing request, with the documented fields, and no token.
    let log = std::fs::read_to_string(w.path().join("audit.jsonl")).unwrap();
    assert!(!log.contains("s3cret-token") && !log.contains("wrong"), "{log}");
    let lines: Vec<serde_json::Value> = log.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let outcomes: Vec<&str> = lines.iter().map(|l| l["outcome"].as_str().unwrap()).collect();
    assert_eq!(outcomes, ["signed", "unauthorized", "signed", "bad_request", "bad_request"], "{log}");
    let signed = &lines[2];
    for field in
        ["time", "client", "auth", "signer", "digest", "mode", "address", "status", "kms_request_id", "latency_ms"]
    {
        assert!(signed.get(field).is_some(), "no {field}: {signed}");
    }
    assert_eq!(signed["digest"], hash.as_str());
    assert_eq!(
        (signed["signer"].as_str(), signed["mode"].as_str(), signed["auth"].as_str()),
        (Some("treasury"), Some("eip191"), Some("bearer"))
    );
    assert_eq!(signed["address"].as_str().unwrap().to_lowercase(), address.to_lowercase());
    assert!(!signed["kms_request_id"].as_str().unwrap().is_empty(), "{signed}");
    assert_eq!(lines[1]["status"], 401);

    // The endpoint gone: a transport failure, reported, not a hang.
    server.stop();
    let report = selftest(&w, &emu, "s3cret-token").expect(1).json();
    assert_eq!(report["signers"][0]["checks"][2]["cause"], "transport");
}

#[test]
fn selftest_fails_against_moto_whose_kms_signs_the_wrong_bytes() {
    let moto = Moto::start();
    let w = Workdir::with_example("treasury.yaml");
    w.keyrite(&moto, &["apply", "--auto-approve"]).expect(0);
    let out = w.keyrite(&moto, &["selftest", "--format", "json"]).expect(1).json();
    let direct = &out["signers"][0]["checks"][1];
    assert_eq!(direct["target"], "kms-direct");
    assert_eq!(
        (direct["passed"].as_bool(), direct["cause"].as_str()),
        (Some(false), Some("wrong_address")),
        "{direct:#}"
    );
    let human = w.keyrite(&moto, &["selftest"]).expect(1);
    assert!(human.stdout.contains("✗ kms-direct") && human.stdout.contains("[wrong_address]"), "{}", human.stdout);
    assert!(human.stdout.contains("Self-test FAILED."));
    // keyrite sign refuses to hand out what moto produced.
    let refused = w.keyrite(&moto, &["sign", "--hash", &format!("0x{}", "22".repeat(32))]).expect(1);
    assert!(refused.stderr.contains("error:"), "{}", refused.stderr);
}

fn selftest(w: &Workdir, emu: &Emulator, token: &str) -> common::Run {
    let output = Command::new(env!("CARGO_BIN_EXE_keyrite"))
        .args(["selftest", "--format", "json", "--timeout", "5"])
        .current_dir(w.path())
        .envs(emu.env())
        .env("SIGNER_TOKEN", token)
        .output()
        .unwrap();
    common::Run::from(output)
}

/// `keyrite serve` in the background.
struct Server(Child);

impl Server {
    fn start(w: &Workdir, emu: &Emulator, port: u16, token: &str) -> Server {
        let child = Command::new(env!("CARGO_BIN_EXE_keyrite"))
            .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--token-env", "SIGNER_TOKEN"])
            .args(["--audit-log", "audit.jsonl"])
            .current_dir(w.path())
            .envs(emu.env())
            .env("SIGNER_TOKEN", token)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        wait_for_port(port, "keyrite serve");
        Server(child)
    }

    fn stop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A minimal HTTP/1.1 exchange over a plain socket: the whole response, headers included.
fn exchange(port: u16, method: &str, path: &str, headers: &str, body: &str) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{headers}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

/// `(status, body)` of a response.
fn split(response: &str) -> (u16, String) {
    let status = response.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, response.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned())
}

/// POST /sign with a bearer token.
fn post(port: u16, token: &str, body: &str) -> (u16, String) {
    split(&exchange(port, "POST", "/sign", &format!("Authorization: Bearer {token}\r\n"), body))
}

/// A request without credentials: (status, body).
fn request(port: u16, method: &str, path: &str, body: &str) -> (u16, String) {
    split(&exchange(port, method, path, "", body))
}

/// Polls /healthcheck until its status is `want`, for at most 20 s.
fn health_until(port: u16, want: u16) -> serde_json::Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let (status, body) = request(port, "GET", "/healthcheck", "");
        if status == want {
            return serde_json::from_str(&body).unwrap();
        }
        assert!(std::time::Instant::now() < deadline, "healthcheck still {status}: {body}");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// The treasury example with a second key and signer, `ops`, in digest mode.
fn two_signers() -> String {
    std::fs::read_to_string(common::repo_root().join("manifests/treasury.yaml"))
        .unwrap()
        .replace("signers:\n", "  ops_key:\n    type: aws_kms_key\n    policy:\n      generated:\n        signers: [\"${signer_role.arn}\"]\n\nsigners:\n  ops:\n    key: ops_key\n    mode: digest\n")
}

/// Each key's EVM address, lowercase, by its address in the manifest.
fn addresses(w: &Workdir, emu: &Emulator) -> impl Fn(&str) -> String {
    let addresses = w.keyrite(emu, &["addresses", "--format", "json"]).expect(0).json();
    move |key: &str| {
        addresses["keys"].as_array().unwrap().iter().find(|k| k["address"] == key).unwrap()["evm_address"]
            .as_str()
            .unwrap()
            .to_lowercase()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_holds_several_signers_reports_health_and_drains_on_sigterm() {
    let emu = Emulator::start();
    let w = Workdir::with_text(&two_signers());
    w.keyrite(&emu, &["apply", "--auto-approve"]).expect(0);
    let address = addresses(&w, &emu);
    let (port, metrics_port) = (free_port(), free_port());
    let mut child = Command::new(env!("CARGO_BIN_EXE_keyrite"))
        .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--health-interval", "1"])
        .args(["--metrics-listen", &format!("127.0.0.1:{metrics_port}")])
        .current_dir(w.path())
        .envs(emu.env())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_port(port, "keyrite serve");

    // Each signer at its own path, in its own mode; the signatures recover independently.
    let digest = [0x42u8; 32];
    let hash = format!("0x{}", hex::encode(digest));
    let signature = |body: &str| -> Vec<u8> {
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        hex::decode(v["signature"].as_str().unwrap().trim_start_matches("0x")).unwrap()
    };
    let (status, body) = request(port, "POST", "/sign/treasury", &json!({"userOpHash": hash}).to_string());
    assert_eq!(status, 200, "{body}");
    assert_eq!(recover(&eip191(&digest), &signature(&body)), address("treasury_key"));
    let (status, body) = request(port, "POST", "/sign/ops", &json!({"hash": hash}).to_string());
    assert_eq!(status, 200, "{body}");
    assert_eq!(recover(&digest, &signature(&body)), address("ops_key"));
    // Another signer's address is refused; POST / needs a name when there are several.
    let other = json!({"hash": hash, "signerAddress": address("treasury_key")}).to_string();
    let (status, body) = request(port, "POST", "/sign/ops", &other);
    assert_eq!(status, 400, "{body}");
    let (status, body) = request(port, "POST", "/", &json!({"hash": hash}).to_string());
    assert!(status == 404 && body.contains("POST /sign/<signer>, one of ops, treasury"), "{status} {body}");
    assert_eq!(request(port, "POST", "/sign/nobody", "{}").0, 404);

    // Metrics, parsed by the Prometheus project's own Python parser: the counters match the
    // requests sent, and a client's path never becomes a label.
    let (status, text) = request(metrics_port, "GET", "/metrics", "");
    assert_eq!(status, 200, "{text}");
    let mut parser = Command::new(common::repo_root().join(".venv/prom/bin/python"))
        .arg(common::repo_root().join("tests/serve/parse_metrics.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("the prometheus-client venv: run scripts/install-emulator.sh");
    parser.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let parsed = parser.wait_with_output().unwrap();
    assert!(parsed.status.success(), "the Prometheus parser refused:\n{text}");
    let samples: Vec<(String, std::collections::BTreeMap<String, String>, f64)> =
        serde_json::from_slice(&parsed.stdout).unwrap();
    let value = |name: &str, labels: &[(&str, &str)]| -> f64 {
        samples
            .iter()
            .filter(|(n, l, _)| n == name && labels.iter().all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v)))
            .map(|(_, _, v)| *v)
            .sum()
    };
    assert_eq!(value("keyrite_sign_requests_total", &[("signer", "treasury"), ("outcome", "signed")]), 1.0, "{text}");
    assert_eq!(value("keyrite_sign_requests_total", &[("signer", "ops"), ("outcome", "signed")]), 1.0, "{text}");
    assert_eq!(value("keyrite_sign_requests_total", &[("signer", "ops"), ("outcome", "bad_request")]), 1.0, "{text}");
    assert_eq!(value("keyrite_sign_requests_total", &[("signer", "-"), ("outcome", "not_found")]), 2.0, "{text}");
    assert_eq!(value("keyrite_kms_sign_seconds_count", &[("signer", "treasury")]), 1.0, "{text}");
    assert_eq!(value("keyrite_request_seconds_count", &[("signer", "ops")]), 2.0, "{text}");
    assert!(!text.contains("nobody"), "{text}");

    // Health: up, then down when a key is disabled out of band, then up again.
    assert_eq!(request(port, "GET", "/upcheck", ""), (200, "OK".to_owned()));
    let up = health_until(port, 200);
    assert_eq!(up["status"], "UP");
    assert_eq!(up["checks"].as_array().unwrap().len(), 2, "{up:#}");
    let kms = emu.kms().await;
    let ops = w.id("ops_key");
    kms.disable_key().key_id(&ops).send().await.unwrap();
    let down = health_until(port, 503);
    let ops_check = down["checks"].as_array().unwrap().iter().find(|c| c["id"] == "signer:ops").unwrap().clone();
    assert_eq!(
        (ops_check["status"].as_str(), ops_check["key_enabled"].as_bool()),
        (Some("DOWN"), Some(false)),
        "{down:#}"
    );
    assert!(ops_check["error"].as_str().unwrap().contains("Disabled"), "{down:#}");
    let treasury_check =
        down["checks"].as_array().unwrap().iter().find(|c| c["id"] == "signer:treasury").unwrap().clone();
    assert_eq!(treasury_check["status"], "UP", "{down:#}");
    let (_, text) = request(metrics_port, "GET", "/metrics", "");
    assert!(text.contains("keyrite_signer_healthy{signer=\"ops\"} 0"), "{text}");
    kms.enable_key().key_id(&ops).send().await.unwrap();
    health_until(port, 200);

    // SIGTERM: it stops accepting and exits 0.
    let pid = child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(std::time::Instant::now() < deadline, "keyrite serve did not stop after SIGTERM");
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    let mut stderr = String::new();
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    assert!(status.success(), "{status}: {stderr}");
    assert!(stderr.contains("keyrite serve: stopped"), "{stderr}");
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err(), "no longer listening");
}

#[test]
fn a_kms_throttle_answers_429_with_retry_after_never_500() {
    let emu = Emulator::start();
    let w = Workdir::with_example("treasury.yaml");
    w.keyrite(&emu, &["apply", "--auto-approve"]).expect(0);
    // Every kms:Sign through the proxy is throttled (the SDK's retries included); the public
    // key loads.
    let proxy = common::fault_proxy::FaultProxy::start(
        &emu.endpoint,
        common::fault_proxy::Faults { throttle_only: Some("Sign"), ..Default::default() },
        1,
    );
    let port = free_port();
    let mut child = w
        .command(&proxy.endpoint, &["serve", "--listen", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_port(port, "keyrite serve");
    let body = json!({"hash": format!("0x{}", "22".repeat(32))}).to_string();
    let response = exchange(port, "POST", "/sign/treasury", "", &body);
    let _ = child.kill();
    let _ = child.wait();
    assert!(response.starts_with("HTTP/1.1 429"), "{response}");
    assert!(response.to_ascii_lowercase().contains("retry-after: 1"), "{response}");
    // The proxy throttled every Sign it saw (the SDK retried), and nothing else.
    let signs = proxy.counts.operations().iter().filter(|o| *o == "Sign").count() as u64;
    assert!(signs >= 1);
    assert_eq!(proxy.counts.throttle.load(std::sync::atomic::Ordering::Relaxed), signs);
}

#[test]
fn sigterm_lets_a_slow_request_finish_refuses_new_connections_and_a_burst_gets_429() {
    let emu = Emulator::start();
    let w = Workdir::with_example("treasury.yaml");
    w.keyrite(&emu, &["apply", "--auto-approve"]).expect(0);
    let address = addresses(&w, &emu)("treasury_key");
    // KMS answers every Sign after 4 s.
    let proxy = common::fault_proxy::FaultProxy::start(
        &emu.endpoint,
        common::fault_proxy::Faults { slow: Some(("Sign", 4000)), ..Default::default() },
        1,
    );
    let (port, metrics_port) = (free_port(), free_port());
    let mut child = w
        .command(&proxy.endpoint, &["serve", "--listen", &format!("127.0.0.1:{port}")])
        .args(["--rate", "0.01", "--burst", "2", "--drain-seconds", "20"])
        // Metrics for one private network only: this loopback client is refused.
        .args(["--metrics-listen", &format!("127.0.0.1:{metrics_port}"), "--metrics-allow", "10.0.0.0/8"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_port(port, "keyrite serve");
    let (status, body) = request(metrics_port, "GET", "/metrics", "");
    assert!(status == 403 && body.contains("--metrics-allow"), "{status} {body}");
    let digest = [0x33u8; 32];
    let body = json!({"hash": format!("0x{}", hex::encode(digest))}).to_string();
    let slow = std::thread::spawn(move || split(&exchange(port, "POST", "/sign/treasury", "", &body)));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !proxy.counts.operations().iter().any(|o| o == "Sign") {
        assert!(std::time::Instant::now() < deadline, "the signing request never reached KMS");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // The signer's bucket holds 2: the slow request took one, a bad request the other.
    assert_eq!(request(port, "POST", "/sign/treasury", "{}").0, 400);
    let refused = exchange(port, "POST", "/sign/treasury", "", "{}");
    assert!(refused.starts_with("HTTP/1.1 429"), "{refused}");
    assert!(refused.to_ascii_lowercase().contains("retry-after: "), "{refused}");

    // SIGTERM while the slow request is in flight: new connections are refused...
    assert!(Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap().success());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    while TcpStream::connect(("127.0.0.1", port)).is_ok() {
        assert!(std::time::Instant::now() < deadline, "still accepting connections after SIGTERM");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(!slow.is_finished(), "the slow request ended before the listener closed");
    // ... and the request in flight completes with its signature.
    let (status, answer) = slow.join().unwrap();
    assert_eq!(status, 200, "{answer}");
    let v: serde_json::Value = serde_json::from_str(&answer).unwrap();
    let signature = hex::decode(v["signature"].as_str().unwrap().trim_start_matches("0x")).unwrap();
    assert_eq!(recover(&eip191(&digest), &signature), address);
    let exit = child.wait().unwrap();
    let mut stderr = String::new();
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    assert!(exit.success(), "{exit}: {stderr}");
    assert!(stderr.contains("keyrite serve: stopped"), "{stderr}");
}

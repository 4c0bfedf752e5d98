//! `keyrite serve` over real TLS and mTLS, with certificates made in the test (rcgen) and a
//! rustls client: which client may use which signer, bearer tokens mapped to signers, the
//! per-client token bucket, and a certificate reloaded on SIGHUP while connections stay open.

use std::process::{Command, Stdio};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use rcgen::{CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair};
use serde_json::json;
use sha2::Digest;

use super::common::{Emulator, Workdir, free_port, wait_for_port};

type Ca = CertifiedIssuer<'static, KeyPair>;

fn ca(name: &str) -> Ca {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign, rcgen::KeyUsagePurpose::DigitalSignature];
    CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
}

/// A certificate for `sans`, with subject `CN=cn`, issued by `ca`.
fn leaf(ca: &Ca, sans: &[&str], cn: &str, purpose: ExtendedKeyUsagePurpose) -> (rcgen::Certificate, KeyPair) {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, cn);
    params.extended_key_usages = vec![purpose];
    (params.signed_by(&key, ca).unwrap(), key)
}

/// A rustls client that trusts `ca` and presents `identity`, if any.
fn client(ca: &Ca, identity: Option<&(rcgen::Certificate, KeyPair)>) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.der().clone()).unwrap();
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    Arc::new(match identity {
        Some((cert, key)) => builder
            .with_client_auth_cert(
                vec![cert.der().clone()],
                rustls_pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap(),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    })
}

/// One HTTP/1.1 connection over TLS, kept open between requests.
struct Conn {
    sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    /// The certificate the server presented.
    server_cert: Vec<u8>,
}

async fn connect(port: u16, config: Arc<rustls::ClientConfig>) -> Result<Conn, String> {
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.map_err(|e| e.to_string())?;
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    let tls = tokio_rustls::TlsConnector::from(config).connect(name, tcp).await.map_err(|e| e.to_string())?;
    let server_cert = tls.get_ref().1.peer_certificates().unwrap()[0].to_vec();
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await.map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    Ok(Conn { sender, server_cert })
}

/// POSTs `body` to `path`: (status, Retry-After, body), or the error that ended the exchange.
async fn post(
    conn: &mut Conn,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> Result<(u16, Option<u64>, String), String> {
    let mut request = http::Request::post(path).header("host", "localhost").header("content-type", "application/json");
    if let Some(t) = token {
        request = request.header("authorization", format!("Bearer {t}"));
    }
    conn.sender.ready().await.map_err(|e| e.to_string())?;
    let response = conn
        .sender
        .send_request(request.body(Full::new(Bytes::from(body.to_owned()))).unwrap())
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let retry = response.headers().get("retry-after").and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok());
    let body = response.into_body().collect().await.map_err(|e| e.to_string())?.to_bytes();
    Ok((status, retry, String::from_utf8_lossy(&body).into_owned()))
}

/// Connects and POSTs once: what a client with this configuration gets.
async fn attempt(port: u16, config: Arc<rustls::ClientConfig>, path: &str, body: &str) -> Result<u16, String> {
    let mut conn = connect(port, config).await?;
    post(&mut conn, path, None, body).await.map(|(status, _, _)| status)
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_over_mtls_lets_each_client_use_only_its_signers_and_reloads_its_certificate_on_sighup() {
    let emu = Emulator::start();
    let w = Workdir::with_text(&super::two_signers());
    w.keyrite(&emu, &["apply", "--auto-approve"]).expect(0);
    let address = super::addresses(&w, &emu);

    let authority = ca("keyrite test CA");
    let rogue_authority = ca("rogue CA");
    let server = leaf(&authority, &["localhost", "127.0.0.1"], "keyrite serve", ExtendedKeyUsagePurpose::ServerAuth);
    let bundler = leaf(&authority, &["bundler.internal"], "bundler", ExtendedKeyUsagePurpose::ClientAuth);
    let stranger = leaf(&authority, &["stranger.internal"], "stranger", ExtendedKeyUsagePurpose::ClientAuth);
    // The same name as the bundler's, from a CA the server does not trust.
    let rogue = leaf(&rogue_authority, &["bundler.internal"], "bundler", ExtendedKeyUsagePurpose::ClientAuth);
    let write = |name: &str, text: &str| std::fs::write(w.path().join(name), text).unwrap();
    write("ca.pem", &authority.pem());
    write("server.pem", &server.0.pem());
    write("server.key", &server.1.serialize_pem());
    let token = "ci-token-7f3a9c";
    let token_sha256 = hex::encode(sha2::Sha256::digest(token.as_bytes()));
    write(
        "access.yaml",
        &format!(
            "clients:\n  bundler:\n    certificate:\n      san: dns:bundler.internal\n    signers: [treasury]\n  \
             ci:\n    token_sha256: {token_sha256}\n    signers: [ops]\n"
        ),
    );
    let (port, metrics_port) = (free_port(), free_port());
    let log = std::fs::File::create(w.path().join("serve.log")).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_keyrite"))
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--metrics-listen",
            &format!("127.0.0.1:{metrics_port}"),
        ])
        .args([
            "--tls-cert",
            "server.pem",
            "--tls-key",
            "server.key",
            "--client-ca",
            "ca.pem",
            "--access",
            "access.yaml",
        ])
        .args(["--audit-log", "audit.jsonl", "--client-rate", "0.01", "--client-burst", "3"])
        .current_dir(w.path())
        .envs(emu.env())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    wait_for_port(port, "keyrite serve");

    let digest = [0x5au8; 32];
    let body = json!({"userOpHash": format!("0x{}", hex::encode(digest))}).to_string();
    let digest_body = json!({"hash": format!("0x{}", hex::encode(digest))}).to_string();
    // The bundler's certificate may use treasury, and the signature recovers to its address.
    let mut as_bundler = connect(port, client(&authority, Some(&bundler))).await.unwrap();
    assert_eq!(as_bundler.server_cert, server.0.der().to_vec());
    let (status, _, answer) = post(&mut as_bundler, "/sign/treasury", None, &body).await.unwrap();
    assert_eq!(status, 200, "{answer}");
    let v: serde_json::Value = serde_json::from_str(&answer).unwrap();
    let signature = hex::decode(v["signature"].as_str().unwrap().trim_start_matches("0x")).unwrap();
    assert_eq!(super::recover(&super::eip191(&digest), &signature), address("treasury_key"));
    // ... and not ops.
    let (status, _, answer) = post(&mut as_bundler, "/sign/ops", None, &body).await.unwrap();
    assert!(status == 403 && answer.contains("client bundler may not use signer ops"), "{status} {answer}");

    // A certificate the CA issued but the access list does not name: 403, with its subject
    // and fingerprint; with a token that matches no client as well, 401 (the token is wrong).
    let stranger_sha256 = hex::encode(sha2::Sha256::digest(stranger.0.der()));
    let mut as_stranger = connect(port, client(&authority, Some(&stranger))).await.unwrap();
    let (status, _, answer) = post(&mut as_stranger, "/sign/treasury", None, &body).await.unwrap();
    let refused = format!("client certificate CN=stranger (SHA-256 {stranger_sha256}) is not in the access list");
    assert!(status == 403 && answer.contains(&refused), "{status} {answer}");
    let (status, _, answer) = post(&mut as_stranger, "/sign/ops", Some("not-the-token"), &body).await.unwrap();
    assert!(status == 401 && answer.contains("matches no client"), "{status} {answer}");
    // The ci token may use ops, and only ops.
    let (status, _, answer) = post(&mut as_stranger, "/sign/ops", Some(token), &digest_body).await.unwrap();
    assert_eq!(status, 200, "{answer}");
    let v: serde_json::Value = serde_json::from_str(&answer).unwrap();
    let signature = hex::decode(v["signature"].as_str().unwrap().trim_start_matches("0x")).unwrap();
    assert_eq!(super::recover(&digest, &signature), address("ops_key"));
    let (status, _, answer) = post(&mut as_stranger, "/sign/treasury", Some(token), &body).await.unwrap();
    assert!(status == 403 && answer.contains("may not use signer treasury"), "{status} {answer}");

    // A certificate from another CA, and no certificate at all, are refused in the handshake.
    let rogue_result = attempt(port, client(&authority, Some(&rogue)), "/sign/treasury", &body).await;
    assert!(rogue_result.is_err(), "a certificate from an unknown CA got {rogue_result:?}");
    let anonymous = attempt(port, client(&authority, None), "/sign/treasury", &body).await;
    assert!(anonymous.is_err(), "a client without a certificate got {anonymous:?}");

    // The bundler's bucket holds 3 and refills once in 100 s: two more signatures, then 429.
    for _ in 0..2 {
        let (status, _, answer) = post(&mut as_bundler, "/sign/treasury", None, &body).await.unwrap();
        assert_eq!(status, 200, "{answer}");
    }
    let (status, retry, answer) = post(&mut as_bundler, "/sign/treasury", None, &body).await.unwrap();
    assert_eq!(status, 429, "{answer}");
    assert!(retry.is_some_and(|s| (1..=100).contains(&s)), "Retry-After: {retry:?}");

    // Only the four signatures reached KMS; every refusal was answered before it.
    let (_, metrics) = super::request(metrics_port, "GET", "/metrics", "");
    let kms_calls: f64 = metrics
        .lines()
        .filter(|l| l.starts_with("keyrite_kms_sign_seconds_count"))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .sum();
    assert_eq!(kms_calls, 4.0, "{metrics}");
    assert!(metrics.contains("keyrite_rate_limited_total{signer=\"treasury\"} 1"), "{metrics}");

    // SIGHUP: a new certificate for new connections; the open connection keeps working.
    let renewed =
        leaf(&authority, &["localhost", "127.0.0.1"], "keyrite serve (renewed)", ExtendedKeyUsagePurpose::ServerAuth);
    write("server.pem", &renewed.0.pem());
    write("server.key", &renewed.1.serialize_pem());
    assert!(Command::new("kill").args(["-HUP", &child.id().to_string()]).status().unwrap().success());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let conn = connect(port, client(&authority, Some(&bundler))).await.unwrap();
        if conn.server_cert == renewed.0.der().to_vec() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the renewed certificate was not served after SIGHUP");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let (status, _, answer) = post(&mut as_stranger, "/sign/ops", Some(token), &digest_body).await.unwrap();
    assert_eq!(status, 200, "the connection opened before SIGHUP: {answer}");
    let _ = child.kill();
    let _ = child.wait();
    let stderr = std::fs::read_to_string(w.path().join("serve.log")).unwrap();
    assert!(stderr.contains("TLS certificate reloaded"), "{stderr}");
    assert!(stderr.contains("ready on https://"), "{stderr}");

    // The audit log: one line per request, the documented fields, the client names, no token.
    let audit = std::fs::read_to_string(w.path().join("audit.jsonl")).unwrap();
    assert!(!audit.contains(token) && !stderr.contains(token), "a token reached the logs");
    let lines: Vec<serde_json::Value> = audit.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 10, "{audit}");
    for line in &lines {
        for field in ["time", "client", "peer", "auth", "signer", "outcome", "status", "latency_ms"] {
            assert!(line.get(field).is_some(), "{field} missing: {line}");
        }
        assert_eq!(line["kms_request_id"].is_string(), line["outcome"] == "signed", "{line}");
    }
    let summary: Vec<(String, String, String, String)> = lines
        .iter()
        .map(|l| {
            let s = |k: &str| l[k].as_str().unwrap_or_default().to_owned();
            (s("client"), s("auth"), s("signer"), s("outcome"))
        })
        .collect();
    let row = |c: &str, a: &str, s: &str, o: &str| (c.to_owned(), a.to_owned(), s.to_owned(), o.to_owned());
    assert_eq!(
        summary,
        [
            row("bundler", "mtls", "treasury", "signed"),
            row("bundler", "mtls", "ops", "forbidden"),
            row("CN=stranger", "mtls", "treasury", "forbidden"),
            row("CN=stranger", "mtls", "ops", "unauthorized"),
            row("ci", "bearer", "ops", "signed"),
            row("ci", "bearer", "treasury", "forbidden"),
            row("bundler", "mtls", "treasury", "signed"),
            row("bundler", "mtls", "treasury", "signed"),
            row("bundler", "mtls", "treasury", "rate_limited"),
            row("ci", "bearer", "ops", "signed"),
        ]
    );
    // A refused certificate is in the log with its subject, its fingerprint and the reason,
    // as is every certificate that verified; a request that was let through has no reason.
    let refused_line = &lines[2];
    assert_eq!(
        (refused_line["cert_subject"].as_str(), refused_line["cert_sha256"].as_str(), refused_line["reason"].as_str()),
        (Some("CN=stranger"), Some(stranger_sha256.as_str()), Some(refused.as_str())),
        "{refused_line}"
    );
    assert_eq!(lines[3]["reason"], "the bearer token matches no client of the access list", "{}", lines[3]);
    let bundler_sha256 = hex::encode(sha2::Sha256::digest(bundler.0.der()));
    assert_eq!(
        (lines[0]["cert_subject"].as_str(), lines[0]["cert_sha256"].as_str(), lines[0].get("reason")),
        (Some("CN=bundler"), Some(bundler_sha256.as_str()), None),
        "{}",
        lines[0]
    );
    assert_eq!(lines[1]["reason"], "client bundler may not use signer ops", "{}", lines[1]);
}

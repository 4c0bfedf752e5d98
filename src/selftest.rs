//! The live sign-and-recover self-test: proof that every endpoint signs for the address on
//! record.
//!
//! For a signer it checks, in order: that the key's live public key is still the one
//! recorded at apply; that KMS itself signs a fresh random digest correctly (direct
//! `kms:Sign`); and that every declared endpoint, given another fresh digest, answers with a
//! 65-byte low-s signature with v ∈ {27, 28} that recovers to the expected address. Each
//! failure names its cause — HTTP status, malformed response, high-s, wrong v, wrong
//! address, timeout — and each check reports its latency.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use serde::Serialize;
use serde_json::json;

use crate::crypto::Address;
use crate::manifest::{Endpoint, EndpointAuth, SignerSpec};
use crate::signer::{KmsSigner, SignatureFault, check_der, check_rsv, parse_hex, prehash};

/// One check's result.
#[derive(Clone, Debug, Serialize)]
pub struct Check {
    /// What was checked: `public-key`, `kms-direct`, or the endpoint URL.
    pub target: String,
    pub passed: bool,
    /// Machine-readable cause of failure: `http_status`, `bad_response`, `malformed`,
    /// `high_s`, `wrong_v`, `wrong_address`, `timeout`, `transport`, `kms`, `public_key`.
    pub cause: Option<&'static str>,
    pub message: String,
    pub latency_ms: f64,
    pub digest: Option<String>,
    pub signature: Option<String>,
}

/// The self-test of one signer.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub signer: String,
    pub address: String,
    pub mode: crate::manifest::SigningMode,
    pub checks: Vec<Check>,
}

impl Report {
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.passed)
    }
}

/// A fresh random 32-byte digest.
pub fn random_digest() -> [u8; 32] {
    let mut d = [0u8; 32];
    getrandom::fill(&mut d).expect("the operating system's random source failed");
    d
}

type HttpClient = hyper_util::client::legacy::Client<hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>, Full<Bytes>>;

/// An HTTP(S) client using the system's trust roots.
pub fn http_client() -> anyhow::Result<HttpClient> {
    let connector = hyper_rustls::HttpsConnectorBuilder::new().with_native_roots()?.https_or_http().enable_http1().build();
    Ok(hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build(connector))
}

/// Runs every check for `spec`. `recorded_spki` is the public key recorded at apply.
pub async fn run(spec: &SignerSpec, signer: &KmsSigner, recorded_spki: Option<&[u8]>, timeout: Duration) -> anyhow::Result<Report> {
    let mut checks = Vec::new();
    let address = signer.address;
    checks.push(match recorded_spki {
        Some(spki) if spki != signer.spki.as_slice() => fail("public-key", "public_key", "the key's public key differs from the one recorded at apply".into(), 0.0),
        _ => pass("public-key", format!("public key matches the record; address {address}"), 0.0, None, None),
    });
    checks.push(kms_direct(spec, signer, timeout).await);
    let http = http_client()?;
    for endpoint in &spec.endpoints {
        checks.push(endpoint_check(spec, &address, endpoint, &http, timeout).await);
    }
    Ok(Report { signer: spec.name.clone(), address: address.to_string(), mode: spec.mode, checks })
}

async fn kms_direct(spec: &SignerSpec, signer: &KmsSigner, timeout: Duration) -> Check {
    let digest = random_digest();
    let prehash = prehash(spec.mode, &digest);
    let start = Instant::now();
    let der = match tokio::time::timeout(timeout, signer.sign_der(&prehash)).await {
        Err(_) => return fail("kms-direct", "timeout", format!("no answer within {}s", timeout.as_secs_f64()), ms(start)),
        Ok(Err(e)) => return fail("kms-direct", "kms", e.to_string(), ms(start)),
        Ok(Ok(der)) => der,
    };
    let latency = ms(start);
    let mut check = match check_der(&signer.address, &prehash, &der) {
        Ok(()) => pass("kms-direct", "KMS signed the digest; signature recovers to the key's address".into(), latency, None, None),
        Err(fault) => fault_check("kms-direct", &fault, latency),
    };
    check.digest = Some(format!("0x{}", hex::encode(digest)));
    check.signature = Some(format!("0x{}", hex::encode(&der)));
    check
}

async fn endpoint_check(spec: &SignerSpec, expected: &Address, endpoint: &Endpoint, http: &HttpClient, timeout: Duration) -> Check {
    let Endpoint::Url { url, auth } = endpoint;
    let digest = random_digest();
    let body = json!({"hash": format!("0x{}", hex::encode(digest)), "signerAddress": expected.to_string()}).to_string();
    let mut request = http::Request::post(url.as_str()).header("content-type", "application/json");
    if let EndpointAuth::BearerEnv(var) = auth {
        match std::env::var(var) {
            Ok(token) => request = request.header("authorization", format!("Bearer {}", token.trim())),
            Err(_) => return fail(url, "transport", format!("environment variable {var} (the endpoint's bearer token) is not set"), 0.0),
        }
    }
    let request = match request.body(Full::new(Bytes::from(body))) {
        Ok(r) => r,
        Err(e) => return fail(url, "transport", format!("cannot build request: {e}"), 0.0),
    };
    let start = Instant::now();
    let exchange = async {
        let response = http.request(request).await.map_err(|e| format!("{e}"))?;
        let status = response.status();
        let bytes = response.into_body().collect().await.map_err(|e| format!("{e}"))?.to_bytes();
        Ok::<_, String>((status, bytes))
    };
    let (status, bytes) = match tokio::time::timeout(timeout, exchange).await {
        Err(_) => return fail(url, "timeout", format!("no answer within {}s", timeout.as_secs_f64()), ms(start)),
        Ok(Err(e)) => return fail(url, "transport", e, ms(start)),
        Ok(Ok(r)) => r,
    };
    let latency = ms(start);
    let text = String::from_utf8_lossy(&bytes);
    if !status.is_success() {
        return fail(url, "http_status", format!("HTTP {status}: {}", text.chars().take(200).collect::<String>()), latency);
    }
    let signature = serde_json::from_slice::<serde_json::Value>(&bytes).ok().and_then(|v| v.get("signature")?.as_str().map(str::to_owned));
    let Some(signature) = signature else {
        return fail(url, "bad_response", format!("response has no \"signature\" string: {}", text.chars().take(200).collect::<String>()), latency);
    };
    let mut check = match parse_hex(&signature) {
        Err(e) => fail(url, "malformed", format!("signature {e}"), latency),
        Ok(sig) => match check_rsv(expected, &prehash(spec.mode, &digest), &sig) {
            Ok(()) => pass(url, "signature is 65 bytes, low-s, v ∈ {27, 28}, and recovers to the expected address".into(), latency, None, None),
            Err(fault) => fault_check(url, &fault, latency),
        },
    };
    check.digest = Some(format!("0x{}", hex::encode(digest)));
    check.signature = Some(signature);
    check
}

fn fault_check(target: &str, fault: &SignatureFault, latency: f64) -> Check {
    let cause = match fault {
        SignatureFault::Malformed { .. } => "malformed",
        SignatureFault::HighS => "high_s",
        SignatureFault::WrongV { .. } => "wrong_v",
        SignatureFault::WrongAddress { .. } => "wrong_address",
    };
    fail(target, cause, fault.to_string(), latency)
}

fn pass(target: &str, message: String, latency_ms: f64, digest: Option<String>, signature: Option<String>) -> Check {
    Check { target: target.to_owned(), passed: true, cause: None, message, latency_ms, digest, signature }
}

fn fail(target: &str, cause: &'static str, message: String, latency_ms: f64) -> Check {
    Check { target: target.to_owned(), passed: false, cause: Some(cause), message, latency_ms, digest: None, signature: None }
}

fn ms(start: Instant) -> f64 {
    (start.elapsed().as_secs_f64() * 1e4).round() / 10.0
}

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
use crate::state::State;

/// One check's result.
#[derive(Clone, Debug, Serialize)]
pub struct Check {
    /// What was checked: `public-key`, `kms-direct`, or the endpoint URL.
    pub target: String,
    pub passed: bool,
    /// Machine-readable cause of failure: `http_status`, `bad_response`, `malformed`,
    /// `high_s`, `wrong_v`, `wrong_address`, `timeout`, `transport`, `auth`, `kms`, `public_key`.
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

type HttpClient = hyper_util::client::legacy::Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    Full<Bytes>,
>;

/// An HTTP(S) client using the system's trust roots, on keyrite's one TLS backend (aws-lc-rs).
pub fn http_client() -> anyhow::Result<HttpClient> {
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_native_roots(rustls::crypto::aws_lc_rs::default_provider())?
        .https_or_http()
        .enable_http1()
        .build();
    Ok(hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build(connector))
}

/// Where and how to call one endpoint.
#[derive(Clone, Debug)]
pub struct Target {
    /// What the report calls it: the endpoint's public URL.
    pub label: String,
    /// Where the request is sent.
    pub send_url: String,
    /// The URL whose host and path are signed (differs from `send_url` through an emulator).
    pub sign_url: String,
    /// A `Host` header to send, when the request goes somewhere else than `sign_url`.
    pub host: Option<String>,
    /// SigV4 service name, when the endpoint requires AWS_IAM auth.
    pub sigv4: Option<&'static str>,
    pub bearer: Option<String>,
    /// The audience of a Google ID token to send, for Cloud Run services that require
    /// authentication.
    pub google_audience: Option<String>,
    /// Set when the endpoint could not even be resolved (not applied yet, token missing).
    pub problem: Option<String>,
}

/// Resolves a signer's endpoints against the state. With `via` (an emulator's base URL),
/// Function URLs are sent to `via` with their real `Host` header, and API stages to
/// `via/_aws/execute-api/<api-id>/<stage>/<path>`, the local emulators' convention.
pub fn targets(spec: &SignerSpec, state: &State, via: Option<&str>) -> Vec<Target> {
    spec.endpoints.iter().map(|e| target(e, state, via.map(|v| v.trim_end_matches('/')))).collect()
}

fn target(endpoint: &Endpoint, state: &State, via: Option<&str>) -> Target {
    let blank = |label: &str| Target {
        label: label.to_owned(),
        send_url: label.to_owned(),
        sign_url: label.to_owned(),
        host: None,
        sigv4: None,
        bearer: None,
        google_audience: None,
        problem: None,
    };
    let output = |resource: &str, key: &str| {
        state.resources.get(resource).and_then(|r| r.outputs.get(key)).and_then(|v| v.as_str()).map(str::to_owned)
    };
    match endpoint {
        Endpoint::Url { url, auth } => {
            let mut t = blank(url);
            match auth {
                EndpointAuth::BearerEnv(var) => match std::env::var(var) {
                    Ok(token) => t.bearer = Some(token.trim().to_owned()),
                    Err(_) => {
                        t.problem = Some(format!("environment variable {var} (the endpoint's bearer token) is not set"))
                    }
                },
                EndpointAuth::GoogleIdToken { audience } => t.google_audience = Some(audience.clone()),
                EndpointAuth::None => {}
            }
            t
        }
        Endpoint::FunctionUrl { resource } => {
            let Some(url) = output(resource, "url") else {
                let mut t = blank(resource);
                t.problem = Some(format!("{resource} is not in the state; run `keyrite apply` first"));
                return t;
            };
            let mut t = blank(&url);
            let iam = state.resources.get(resource).and_then(|r| r.attrs.get("auth_type")).and_then(|v| v.as_str())
                != Some("NONE");
            t.sigv4 = iam.then_some("lambda");
            if let (Some(via), Ok(parsed)) = (via, url.parse::<http::Uri>()) {
                t.send_url = format!("{via}{}", parsed.path());
                t.host = parsed.host().map(str::to_owned);
            }
            t
        }
        #[cfg(not(feature = "aws"))]
        Endpoint::Api { resource } => {
            let mut t = blank(resource);
            t.problem =
                Some(format!("{resource} is an API Gateway stage, and this keyrite was built without --features aws"));
            t
        }
        #[cfg(feature = "aws")]
        Endpoint::Api { resource } => {
            let (Some(url), Some(id), Some(stage), Some(path)) = (
                output(resource, "stage_url"),
                output(resource, "api_id"),
                output(resource, "stage"),
                output(resource, "path"),
            ) else {
                let mut t = blank(resource);
                t.problem = Some(format!("{resource} is not in the state; run `keyrite apply` first"));
                return t;
            };
            let mut t = blank(&url);
            t.sigv4 = Some("execute-api");
            if let Some(via) = via {
                let path = crate::provider::aws::api_gateway::url_suffix(&path);
                t.send_url = format!("{via}/_aws/execute-api/{id}/{stage}/{path}");
                t.sign_url = t.send_url.clone();
            }
            t
        }
    }
}

/// Credentials and region for SigV4-signing endpoint requests (AWS_IAM Function URLs and
/// API Gateway stages); in a build without AWS there are none.
#[cfg(feature = "aws")]
pub use crate::provider::aws::sigv4::SigV4;
#[cfg(not(feature = "aws"))]
pub enum SigV4 {}
#[cfg(not(feature = "aws"))]
impl SigV4 {
    fn headers(&self, _: &str, _: Option<&str>, _: &[u8], _: &str) -> Result<Vec<(String, String)>, String> {
        match *self {}
    }
}

/// Runs every check for `spec`. `recorded_spki` is the public key recorded at apply.
pub async fn run(
    spec: &SignerSpec,
    signer: &KmsSigner,
    recorded_spki: Option<&[u8]>,
    targets: &[Target],
    sigv4: Option<&SigV4>,
    timeout: Duration,
    direct: Direct,
) -> anyhow::Result<Report> {
    let mut checks = Vec::new();
    let address = signer.address;
    checks.push(match recorded_spki {
        Some(spki) if spki != signer.spki.as_slice() => {
            fail("public-key", "public_key", "the key's public key differs from the one recorded at apply".into(), 0.0)
        }
        _ => pass("public-key", format!("public key matches the record; address {address}"), 0.0),
    });
    // A key its quorum gate alone signs with is never asked to sign directly: the gate is
    // probed instead.
    match direct {
        Direct::Kms => checks.push(kms_direct(spec, signer, timeout).await),
        Direct::Gate(check) => checks.push(check),
        Direct::None => {}
    }
    let http = http_client()?;
    for target in targets {
        checks.push(endpoint_check(spec, &address, target, sigv4, &http, timeout).await);
    }
    Ok(Report { signer: spec.name.clone(), address: address.to_string(), mode: spec.mode, checks })
}

/// How a signer's key is tested besides its endpoints.
pub enum Direct {
    /// A KMS sign call, as the caller.
    Kms,
    /// The key signs only through its quorum gate: the gate's probe, in place of a sign call.
    Gate(Check),
    /// The key signs only through a quorum gate this self-test cannot reach (one on Cloud
    /// Run): no sign call; its public key is still checked.
    None,
}

/// The live check of a quorum gate: asked to sign a raw digest for the key's address, it must
/// refuse (400, "never a raw digest") without signing; anything else fails the self-test.
#[cfg(feature = "aws")]
pub async fn gate_probe(aws: &keyrite_aws::Aws, function: &str, address: &str, timeout: Duration) -> Check {
    let target = format!("gate {function}");
    let body = serde_json::json!({"hash": format!("0x{}", hex::encode(random_digest())), "signerAddress": address});
    let start = Instant::now();
    let answer = tokio::time::timeout(timeout, keyrite_aws::invoke::post(aws, function, &body.to_string())).await;
    let latency = ms(start);
    match answer {
        Err(_) => fail(&target, "timeout", format!("no answer within {}s", timeout.as_secs_f64()), latency),
        Ok(Err(e)) => fail(&target, "transport", e, latency),
        Ok(Ok((400, answer)))
            if answer.get("signature").is_none()
                && answer["error"].as_str().is_some_and(|e| e.contains("never a raw digest")) =>
        {
            pass(
                &target,
                "the quorum gate refused to sign a raw digest, as it must; the key signs only through it".into(),
                latency,
            )
        }
        Ok(Ok((status, answer))) => fail(
            &target,
            "gate",
            format!(
                "the quorum gate answered a raw digest with {status} {answer}: it must refuse it (400) and sign nothing"
            ),
            latency,
        ),
    }
}

async fn kms_direct(spec: &SignerSpec, signer: &KmsSigner, timeout: Duration) -> Check {
    let digest = random_digest();
    let prehash = prehash(spec.mode, &digest);
    let start = Instant::now();
    let der = match tokio::time::timeout(timeout, signer.sign_der(&prehash)).await {
        Err(_) => {
            return fail("kms-direct", "timeout", format!("no answer within {}s", timeout.as_secs_f64()), ms(start));
        }
        Ok(Err(e)) => return fail("kms-direct", "kms", e.to_string(), ms(start)),
        Ok(Ok(der)) => der,
    };
    let latency = ms(start);
    let mut check = match check_der(&signer.address, &prehash, &der) {
        Ok(()) => pass("kms-direct", "KMS signed the digest; signature recovers to the key's address".into(), latency),
        Err(fault) => fault_check("kms-direct", &fault, latency),
    };
    check.digest = Some(format!("0x{}", hex::encode(digest)));
    check.signature = Some(format!("0x{}", hex::encode(&der)));
    check
}

async fn endpoint_check(
    spec: &SignerSpec,
    expected: &Address,
    target: &Target,
    sigv4: Option<&SigV4>,
    http: &HttpClient,
    timeout: Duration,
) -> Check {
    let url = target.label.as_str();
    if let Some(problem) = &target.problem {
        return fail(url, "transport", problem.clone(), 0.0);
    }
    let digest = random_digest();
    let body = json!({"hash": format!("0x{}", hex::encode(digest)), "signerAddress": expected.to_string()}).to_string();
    let mut request = http::Request::post(target.send_url.as_str()).header("content-type", "application/json");
    if let Some(host) = &target.host {
        request = request.header("host", host);
    }
    if let Some(token) = &target.bearer {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    if let Some(audience) = &target.google_audience {
        #[cfg(feature = "gcp")]
        match crate::provider::gcp::credentials::google_id_token(audience).await {
            Ok(token) => request = request.header("authorization", format!("Bearer {token}")),
            Err(e) => return fail(url, "auth", format!("cannot get a Google ID token for {audience}: {e}"), 0.0),
        }
        #[cfg(not(feature = "gcp"))]
        return fail(
            url,
            "auth",
            format!(
                "the endpoint needs a Google ID token for {audience}, and this keyrite was built without --features gcp"
            ),
            0.0,
        );
    }
    if let Some(service) = target.sigv4 {
        let Some(auth) = sigv4 else {
            return fail(
                url,
                "transport",
                "the endpoint needs SigV4 (AWS_IAM) but no AWS credentials are available".into(),
                0.0,
            );
        };
        match auth.headers(&target.sign_url, target.host.as_deref(), body.as_bytes(), service) {
            Ok(headers) => {
                for (k, v) in headers {
                    request = request.header(k, v);
                }
            }
            Err(e) => return fail(url, "transport", format!("cannot SigV4-sign the request: {e}"), 0.0),
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
        return fail(
            url,
            "http_status",
            format!("HTTP {status}: {}", text.chars().take(200).collect::<String>()),
            latency,
        );
    }
    let Some(signature) = crate::contract::parse_response(&bytes) else {
        return fail(
            url,
            "bad_response",
            format!("response has no \"signature\" string: {}", text.chars().take(200).collect::<String>()),
            latency,
        );
    };
    let mut check = match parse_hex(&signature) {
        Err(e) => fail(url, "malformed", format!("signature {e}"), latency),
        Ok(sig) => match check_rsv(expected, &prehash(spec.mode, &digest), &sig) {
            Ok(()) => pass(
                url,
                "signature is 65 bytes, low-s, v ∈ {27, 28}, and recovers to the expected address".into(),
                latency,
            ),
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

fn pass(target: &str, message: String, latency_ms: f64) -> Check {
    Check { target: target.to_owned(), passed: true, cause: None, message, latency_ms, digest: None, signature: None }
}

fn fail(target: &str, cause: &'static str, message: String, latency_ms: f64) -> Check {
    Check {
        target: target.to_owned(),
        passed: false,
        cause: Some(cause),
        message,
        latency_ms,
        digest: None,
        signature: None,
    }
}

fn ms(start: Instant) -> f64 {
    (start.elapsed().as_secs_f64() * 1e4).round() / 10.0
}

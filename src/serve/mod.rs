//! `keyrite serve`: the signer contract over HTTP, backed by KMS, for teams that run the
//! signer on EC2, ECS, Kubernetes or Cloud Run instead of Lambda.
//!
//! Routes:
//! - `POST /sign/<signer>`: sign with the named signer; `POST /` (or `/sign`) when the
//!   process serves one signer.
//! - `GET /upcheck`: 200 while the process runs.
//! - `GET /healthcheck`: each signer's last background check (key reachable, enabled, public
//!   key as recorded); 503 when any fails. It never waits on KMS ([`health`]).
//!
//! Contract (drop-in for wallet platforms): POST JSON with the 32-byte hash in `userOpHash`,
//! `useropHash`, `hash` or `digest` (0x-hex or base64), and `signerAddress`; the answer is
//! `{"signature": "0x" r‖s‖v, "r", "s", "recid", "v", "address"}` with low-s and v ∈ {27, 28}.
//! The expected address comes from the key, never from the request: a request naming
//! another `signerAddress` is refused with 400. Internal faults answer 500 with no detail
//! (the detail goes to stderr). Listens on loopback unless told otherwise; an optional
//! bearer token is compared in constant time.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};

pub mod audit;
pub mod health;
pub mod metrics;

use crate::crypto::{self, Address};
use crate::manifest::SigningMode;
use crate::signer::KmsSigner;

/// Largest request body accepted.
pub const MAX_BODY: usize = 64 * 1024;

/// Field names that may carry the hash, in order of precedence.
pub const HASH_FIELDS: [&str; 4] = ["userOpHash", "useropHash", "hash", "digest"];

/// One signer the process serves.
pub struct Signer {
    pub name: String,
    pub signer: KmsSigner,
    pub mode: SigningMode,
}

/// What the server needs to answer requests.
pub struct Service {
    /// In the manifest's order; names are unique.
    pub signers: Vec<Signer>,
    pub token: Option<String>,
    pub health: health::Board,
    pub metrics: metrics::Metrics,
    pub audit: audit::Audit,
}

impl Service {
    pub fn new(signers: Vec<Signer>, token: Option<String>, audit: audit::Audit) -> Service {
        let health = health::Board::new(signers.iter().map(|s| s.name.clone()));
        Service { signers, token, health, metrics: metrics::Metrics::default(), audit }
    }

    fn signer(&self, name: &str) -> Option<&Signer> {
        self.signers.iter().find(|s| s.name == name)
    }
}

/// Serves until `shutdown` completes, then stops accepting and lets requests in flight
/// finish for up to `drain`; connections still open after that are dropped.
pub async fn run(
    listener: tokio::net::TcpListener,
    service: Arc<Service>,
    shutdown: impl std::future::Future<Output = ()>,
    drain: std::time::Duration,
) -> std::io::Result<()> {
    tokio::pin!(shutdown);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => accepted?,
            () = &mut shutdown => break,
        };
        let service = service.clone();
        let mut stopped = stopped.clone();
        connections.spawn(async move {
            let handler = hyper::service::service_fn(move |req| {
                let service = service.clone();
                async move { Ok::<_, Infallible>(handle(&service, req, peer).await) }
            });
            let conn = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), handler);
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                _ = stopped.changed() => {
                    // Finish the request in flight, then close.
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
        });
        while connections.try_join_next().is_some() {}
    }
    drop(listener);
    let _ = stop.send(true);
    let _ = tokio::time::timeout(drain, async { while connections.join_next().await.is_some() {} }).await;
    Ok(())
}

async fn handle(service: &Service, req: http::Request<Incoming>, peer: SocketAddr) -> Response<Full<Bytes>> {
    let path = req.uri().path().trim_end_matches('/').to_owned();
    match (req.method(), path.as_str()) {
        (&Method::GET, "/upcheck") => return text(StatusCode::OK, "OK"),
        (&Method::GET, "/healthcheck") => {
            let (healthy, body) = service.health.report();
            return reply(if healthy { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE }, body);
        }
        (&Method::POST, _) => {}
        _ => return reply(StatusCode::METHOD_NOT_ALLOWED, json!({"error": "use POST with a JSON body"})),
    }
    let started = std::time::Instant::now();
    // The signer asked for; metrics and the audit log name requests by a signer this server
    // holds, never by what a client sent.
    let target = match path.as_str() {
        "" | "/sign" if service.signers.len() == 1 => service.signers.first(),
        other => other.strip_prefix("/sign/").and_then(|n| service.signer(n)),
    };
    let label = target.map_or("-", |s| s.name.as_str()).to_owned();
    let auth = if service.token.is_some() { "bearer" } else { "none" };
    let mut trace = Trace::default();
    let done = |outcome: &'static str, response: Response<Full<Bytes>>, trace: &Trace| {
        let elapsed = started.elapsed();
        service.metrics.request(&label, outcome, elapsed);
        service.audit.record(&audit::Entry {
            time: crate::state::now(),
            client: peer.to_string(),
            auth,
            signer: label.clone(),
            digest: trace.digest.clone(),
            mode: trace.mode,
            address: trace.address.clone(),
            outcome,
            status: response.status().as_u16(),
            kms_request_id: trace.kms_request_id.clone(),
            latency_ms: elapsed.as_secs_f64() * 1000.0,
        });
        response
    };
    if let Some(token) = &service.token {
        let given = req
            .headers()
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if !constant_time_eq(given.as_bytes(), token.as_bytes()) {
            return done(
                "unauthorized",
                reply(StatusCode::UNAUTHORIZED, json!({"error": "missing or wrong bearer token"})),
                &trace,
            );
        }
    }
    let Some(signer) = target else {
        let error = if matches!(path.as_str(), "" | "/sign") {
            let names: Vec<&str> = service.signers.iter().map(|s| s.name.as_str()).collect();
            format!("this server has several signers: POST /sign/<signer>, one of {}", names.join(", "))
        } else {
            format!("no signer at {path}")
        };
        return done("not_found", reply(StatusCode::NOT_FOUND, json!({"error": error})), &trace);
    };
    trace.mode = Some(match signer.mode {
        SigningMode::Eip191 => "eip191",
        SigningMode::Digest => "digest",
    });
    trace.address = Some(signer.signer.address.to_string());
    let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            return done(
                "bad_request",
                reply(StatusCode::PAYLOAD_TOO_LARGE, json!({"error": format!("request body over {MAX_BODY} bytes")})),
                &trace,
            );
        }
    };
    let digest = match parse_request(&body, &signer.signer.address) {
        Ok(d) => d,
        Err(msg) => return done("bad_request", reply(StatusCode::BAD_REQUEST, json!({"error": msg})), &trace),
    };
    trace.digest = Some(format!("0x{}", hex::encode(digest)));
    let kms_started = std::time::Instant::now();
    let (signed, request_id) = signer.signer.sign_traced(&digest, signer.mode).await;
    service.metrics.kms_sign(&signer.name, kms_started.elapsed());
    trace.kms_request_id = request_id;
    match signed {
        Ok(sig) => done("signed", reply(StatusCode::OK, response_body(&sig, &signer.signer.address)), &trace),
        Err(e) if throttled(&e.to_string()) => {
            // KMS is at its quota: tell the client when to come back, never a 500.
            service.metrics.throttled(&signer.name);
            eprintln!("keyrite serve: signer {}: KMS throttled the request from {peer}", signer.name);
            let mut response = reply(
                StatusCode::TOO_MANY_REQUESTS,
                json!({"error": "KMS is throttling signing requests; retry after a second"}),
            );
            response.headers_mut().insert(http::header::RETRY_AFTER, http::HeaderValue::from_static("1"));
            done("throttled", response, &trace)
        }
        Err(e) => {
            eprintln!("keyrite serve: signer {} failed for {peer}: {e}", signer.name);
            done("kms_error", reply(StatusCode::INTERNAL_SERVER_ERROR, json!({"error": "internal error"})), &trace)
        }
    }
}

/// What the audit log says of a request, filled in as it is handled.
#[derive(Default)]
struct Trace {
    digest: Option<String>,
    mode: Option<&'static str>,
    address: Option<String>,
    kms_request_id: Option<String>,
}

/// A KMS answer that means "over the request quota": AWS `ThrottlingException`, Cloud KMS
/// `RESOURCE_EXHAUSTED`.
fn throttled(error: &str) -> bool {
    ["ThrottlingException", "RESOURCE_EXHAUSTED", "TooManyRequestsException"].iter().any(|t| error.contains(t))
}

/// Answers `GET /metrics` on the metrics listener until `shutdown` completes.
pub async fn serve_metrics(
    listener: tokio::net::TcpListener,
    service: Arc<Service>,
    shutdown: impl std::future::Future<Output = ()>,
) -> std::io::Result<()> {
    tokio::pin!(shutdown);
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => accepted?,
            () = &mut shutdown => return Ok(()),
        };
        let service = service.clone();
        tokio::spawn(async move {
            let handler = hyper::service::service_fn(move |req: http::Request<Incoming>| {
                let service = service.clone();
                async move {
                    let response = if req.method() == Method::GET && req.uri().path() == "/metrics" {
                        let mut r = Response::new(Full::new(Bytes::from(service.metrics.encode())));
                        r.headers_mut().insert(
                            http::header::CONTENT_TYPE,
                            http::HeaderValue::from_static(
                                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                            ),
                        );
                        r
                    } else {
                        reply(StatusCode::NOT_FOUND, json!({"error": "GET /metrics"}))
                    };
                    Ok::<_, Infallible>(response)
                }
            });
            let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), handler).await;
        });
    }
}

/// Extracts the 32-byte hash from a request body, refusing another signer's address.
pub fn parse_request(body: &[u8], expected: &Address) -> Result<[u8; 32], String> {
    let value: Value = serde_json::from_slice(body).map_err(|e| format!("body is not valid JSON: {e}"))?;
    let object = value.as_object().ok_or("body must be a JSON object")?;
    let (field, raw) = HASH_FIELDS
        .iter()
        .find_map(|f| object.get(*f).map(|v| (*f, v)))
        .ok_or_else(|| format!("missing hash: send the 32-byte hash in one of {}", HASH_FIELDS.join(", ")))?;
    let text = raw.as_str().ok_or_else(|| format!("{field} must be a string (0x-hex or base64)"))?;
    let digest = crypto::parse_digest(text).map_err(|e| format!("{field}: {e}"))?;
    if let Some(addr) = object.get("signerAddress") {
        let addr = addr.as_str().ok_or("signerAddress must be a string")?;
        if !addr.eq_ignore_ascii_case(&expected.to_string()) {
            return Err(format!("signerAddress {addr} is not this signer ({expected})"));
        }
    }
    Ok(digest)
}

/// The contract's success body.
pub fn response_body(sig: &[u8; 65], address: &Address) -> Value {
    json!({
        "signature": format!("0x{}", hex::encode(sig)),
        "r": format!("0x{}", hex::encode(&sig[..32])),
        "s": format!("0x{}", hex::encode(&sig[32..64])),
        "recid": sig[64] - 27,
        "v": sig[64],
        "address": address.to_string(),
    })
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    response.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("text/plain"));
    response
}

fn reply(status: StatusCode, body: Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
    response
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr() -> Address {
        "0x2c7536E3605D9C16a7a3D7b1898e529396a65c23".parse().unwrap()
    }

    #[test]
    fn accepts_every_hash_field_in_hex_and_base64() {
        let hex = format!("0x{}", "ab".repeat(32));
        for field in HASH_FIELDS {
            let body = json!({field: hex, "signerAddress": "0x2c7536e3605d9c16a7a3d7b1898e529396a65c23"}).to_string();
            assert_eq!(parse_request(body.as_bytes(), &addr()).unwrap(), [0xab; 32], "{field}");
        }
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD.encode([0xab; 32]);
        assert_eq!(parse_request(json!({"digest": b64}).to_string().as_bytes(), &addr()).unwrap(), [0xab; 32]);
    }

    #[test]
    fn refuses_bad_requests_with_clear_messages() {
        let err = |body: &str| parse_request(body.as_bytes(), &addr()).unwrap_err();
        assert!(err("{").contains("not valid JSON"));
        assert!(err("[]").contains("JSON object"));
        assert!(err("{}").contains("missing hash"));
        assert!(err(r#"{"hash": 5}"#).contains("hash must be a string"));
        assert!(err(&json!({"hash": format!("0x{}", "ab".repeat(31))}).to_string()).starts_with("hash:"));
        let other = json!({"hash": format!("0x{}", "ab".repeat(32)), "signerAddress": "0x0000000000000000000000000000000000000001"}).to_string();
        assert!(err(&other).contains("is not this signer"));
    }

    #[test]
    fn response_has_the_contract_fields() {
        let mut sig = [1u8; 65];
        sig[64] = 28;
        let body = response_body(&sig, &addr());
        assert_eq!(body["signature"].as_str().unwrap().len(), 2 + 130);
        assert_eq!((body["v"].as_u64(), body["recid"].as_u64()), (Some(28), Some(1)));
        assert!(
            constant_time_eq(b"abc", b"abc") && !constant_time_eq(b"abc", b"abd") && !constant_time_eq(b"abc", b"ab")
        );
    }
}

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
//! Contract ([`crate::contract`], drop-in for wallet platforms): POST JSON with the 32-byte hash in `userOpHash`,
//! `useropHash`, `hash` or `digest` (0x-hex or base64), and `signerAddress`; the answer is
//! `{"signature": "0x" r‖s‖v, "r", "s", "recid", "v", "address"}` with low-s and v ∈ {27, 28}.
//! The expected address comes from the key, never from the request: a request naming
//! another `signerAddress` is refused with 400. Internal faults answer 500 with no detail
//! (the detail goes to stderr). Listens on loopback unless told otherwise.
//!
//! A recovery signer with a `gate:` is served as its quorum gate: its route takes only an
//! enrolment with its approvals, decided by [`keyrite_core::gate`] before any KMS call
//! (400 or 403 with the reason otherwise), and answers the signature of its EIP-712 digest
//! with the digest, the approvers counted and the gate's configuration hash.
//!
//! Who may sign: an optional bearer token for every signer, TLS with optional client
//! certificates ([`tls`]), and an access list mapping certificates and tokens to signers
//! ([`access`]). A request without a credential the server recognises answers 401 with a
//! `WWW-Authenticate: Bearer` challenge, one from an identity that may not use the signer it
//! asks for answers 403 ([`auth`]), both before any KMS call. Token buckets per signer and per client ([`limit`]) answer 429 with
//! `Retry-After`, as does a KMS throttling error.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};

pub mod access;
pub mod audit;
pub mod auth;
pub mod health;
pub mod limit;
pub mod metrics;
pub mod tls;

use crate::contract::{parse_request, response_body};
use crate::manifest::SigningMode;
use crate::signer::KmsSigner;
use auth::{Bearer, Denied};

/// Largest request body accepted.
pub const MAX_BODY: usize = 64 * 1024;

/// One signer the process serves.
pub struct Signer {
    pub name: String,
    pub signer: KmsSigner,
    pub mode: SigningMode,
    /// A recovery signer's quorum gate: it signs only approved enrolments, never a
    /// request's digest ([`keyrite_core::gate`]).
    pub gate: Option<keyrite_core::gate::Gate>,
}

/// What the server needs to answer requests.
pub struct Service {
    /// In the manifest's order; names are unique.
    pub signers: Vec<Signer>,
    /// A bearer token that may use every signer.
    pub token: Option<String>,
    pub access: Option<access::Access>,
    pub health: health::Board,
    pub metrics: metrics::Metrics,
    pub audit: audit::Audit,
    per_signer: limit::Buckets,
    per_client: limit::Buckets,
}

/// Who may call, and how often.
#[derive(Default)]
pub struct Policy {
    pub token: Option<String>,
    pub access: Option<access::Access>,
    /// Per signer; `None` is no limit.
    pub signer_rate: Option<limit::Rate>,
    /// Per client; `None` is no limit.
    pub client_rate: Option<limit::Rate>,
}

impl Service {
    pub fn new(signers: Vec<Signer>, policy: Policy, audit: audit::Audit) -> Service {
        let health = health::Board::new(signers.iter().map(|s| s.name.clone()));
        let off = limit::Rate { per_second: 0.0, burst: 0.0 };
        Service {
            signers,
            token: policy.token,
            access: policy.access,
            health,
            metrics: metrics::Metrics::default(),
            audit,
            per_signer: limit::Buckets::new(policy.signer_rate.unwrap_or(off)),
            per_client: limit::Buckets::new(policy.client_rate.unwrap_or(off)),
        }
    }

    /// True when a request must present a credential.
    pub fn authenticates(&self) -> bool {
        self.token.is_some() || self.access.is_some()
    }

    fn signer(&self, name: &str) -> Option<&Signer> {
        self.signers.iter().find(|s| s.name == name)
    }
}

/// The other end of a connection.
#[derive(Clone, Debug)]
pub struct Peer {
    pub addr: SocketAddr,
    /// The client certificate, verified against `--client-ca`.
    pub cert: Option<Arc<tls::ClientCert>>,
}

impl Peer {
    /// How the audit log and the per-client limit name a peer no access-list client names:
    /// its certificate subject, else its IP address.
    pub(crate) fn name(&self) -> String {
        self.cert.as_ref().map_or_else(|| self.addr.ip().to_string(), |c| c.subject.clone())
    }
}

/// How long a client has to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Serves until `shutdown` completes, then stops accepting and lets requests in flight
/// finish for up to `drain`; connections still open after that are dropped. With `tls`,
/// every connection is TLS, with the configuration current when it was accepted.
pub async fn run(
    listener: tokio::net::TcpListener,
    service: Arc<Service>,
    tls: Option<Arc<tls::Tls>>,
    shutdown: impl std::future::Future<Output = ()>,
    drain: std::time::Duration,
) -> std::io::Result<()> {
    tokio::pin!(shutdown);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let (stream, addr) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                // Out of file descriptors and the like: keep serving the connections open.
                Err(e) => {
                    eprintln!("keyrite serve: accept failed: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let service = service.clone();
        let stopped = stopped.clone();
        let acceptor = tls.as_ref().map(|t| t.acceptor());
        connections.spawn(async move {
            let Some(acceptor) = acceptor else {
                return connection(TokioIo::new(stream), service, Peer { addr, cert: None }, stopped).await;
            };
            let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(s)) => s,
                // A TCP probe (a load balancer's, Kubernetes') closes before a ClientHello.
                Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => return,
                Ok(Err(e)) => return eprintln!("keyrite serve: TLS handshake with {addr} failed: {e}"),
                Err(_) => return eprintln!("keyrite serve: TLS handshake with {addr} timed out"),
            };
            let cert = match stream.get_ref().1.peer_certificates().and_then(|c| c.first()) {
                Some(der) => match tls::ClientCert::from_der(der) {
                    Ok(c) => Some(Arc::new(c)),
                    Err(e) => return eprintln!("keyrite serve: client certificate of {addr}: {e:#}"),
                },
                None => None,
            };
            connection(TokioIo::new(stream), service, Peer { addr, cert }, stopped).await
        });
        while connections.try_join_next().is_some() {}
    }
    drop(listener);
    let _ = stop.send(true);
    let _ = tokio::time::timeout(drain, async { while connections.join_next().await.is_some() {} }).await;
    Ok(())
}

/// Serves HTTP/1.1 on one connection until it closes or the server stops.
async fn connection<I>(io: I, service: Arc<Service>, peer: Peer, mut stopped: tokio::sync::watch::Receiver<bool>)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let handler = hyper::service::service_fn(move |req| {
        let service = service.clone();
        let peer = peer.clone();
        async move { Ok::<_, Infallible>(handle(&service, req, &peer).await) }
    });
    // A client has 10 s to send a request's headers (slow-loris connections are closed).
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(HANDSHAKE_TIMEOUT)
        .serve_connection(io, handler);
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => {}
        _ = stopped.changed() => {
            // Finish the request in flight, then close.
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}

async fn handle(service: &Service, req: http::Request<Incoming>, peer: &Peer) -> Response<Full<Bytes>> {
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
    let label = target.map_or("-", |s| s.name.as_str());
    let mut trace = Trace::default();
    let bearer = Bearer::parse(req.headers().get(http::header::AUTHORIZATION));
    let caller = service.authorize(peer, bearer, target.map(|s| s.name.as_str()));
    let anonymous;
    let (client, auth) = match &caller {
        Ok(c) | Err(Denied { caller: Some(c), .. }) => (c.client.as_str(), c.auth),
        Err(_) => {
            anonymous = peer.name();
            (anonymous.as_str(), "none")
        }
    };
    let reason = caller.as_ref().err().map(|d| d.message.as_str());
    let done = |outcome: &'static str, response: Response<Full<Bytes>>, trace: &Trace| {
        let elapsed = started.elapsed();
        service.metrics.request(label, outcome, elapsed);
        service.audit.record(&audit::Entry {
            time: crate::state::now(),
            client,
            peer: peer.addr,
            auth,
            cert_subject: peer.cert.as_ref().map(|c| c.subject.as_str()),
            cert_sha256: peer.cert.as_ref().map(|c| c.sha256.as_str()),
            signer: label,
            digest: trace.digest.as_deref(),
            mode: trace.mode,
            address: trace.address,
            outcome,
            status: response.status().as_u16(),
            kms_request_id: trace.kms_request_id.as_deref(),
            latency_ms: elapsed.as_secs_f64() * 1000.0,
            reason,
        });
        response
    };
    if let Err(denied) = &caller {
        let mut response = reply(denied.status, json!({"error": denied.message}));
        if let Some(challenge) = denied.challenge.as_deref().and_then(|c| http::HeaderValue::from_str(c).ok()) {
            response.headers_mut().insert(http::header::WWW_AUTHENTICATE, challenge);
        }
        return done(denied.outcome, response, &trace);
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
    trace.mode = Some(signer.mode.as_str());
    trace.address = Some(signer.signer.address_text());
    // The client's bucket, then the signer's: a client over its share is refused before it
    // takes from what the signer's other clients share.
    if let Err(wait) = service.per_client.take(client).and_then(|()| service.per_signer.take(&signer.name)) {
        service.metrics.rate_limited(&signer.name);
        let mut response = reply(StatusCode::TOO_MANY_REQUESTS, json!({"error": "rate limit reached; retry later"}));
        response.headers_mut().insert(http::header::RETRY_AFTER, http::HeaderValue::from(limit::retry_after(wait)));
        return done("rate_limited", response, &trace);
    }
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
    // A quorum gate decides before any KMS call, and signs an approved enrolment's EIP-712
    // digest as it is; anything else is refused with its reason.
    let (digest, mode, enrolment) = match &signer.gate {
        Some(gate) => match gate.authorize(&body, keyrite_core::ceremony::unix_now()) {
            Ok(authorized) => {
                (authorized.digest, SigningMode::Digest, Some((authorized.approvers, gate.fingerprint())))
            }
            Err(refusal) => {
                eprintln!("keyrite serve: gate {}: refused: {refusal}", signer.name);
                let status = StatusCode::from_u16(refusal.status()).unwrap_or(StatusCode::FORBIDDEN);
                return done("refused", reply(status, json!({"error": refusal.to_string()})), &trace);
            }
        },
        None => match parse_request(&body, &signer.signer.address) {
            Ok(d) => (d, signer.mode, None),
            Err(msg) => return done("bad_request", reply(StatusCode::BAD_REQUEST, json!({"error": msg})), &trace),
        },
    };
    trace.digest = Some(format!("0x{}", hex::encode(digest)));
    let kms_started = std::time::Instant::now();
    let (signed, request_id) = signer.signer.sign_traced(&digest, mode).await;
    service.metrics.kms_sign(&signer.name, kms_started.elapsed());
    trace.kms_request_id = request_id;
    match signed {
        Ok(sig) => {
            let mut body = response_body(&sig, &signer.signer.address);
            if let Some((approvers, fingerprint)) = enrolment {
                eprintln!(
                    "keyrite serve: gate {}: signed enrolment {}, approved by {}",
                    signer.name,
                    trace.digest.as_deref().unwrap_or_default(),
                    approvers.join(", ")
                );
                body["digest"] = json!(trace.digest);
                body["approvers"] = json!(approvers);
                body["gate"] = json!(fingerprint);
            }
            done("signed", reply(StatusCode::OK, body), &trace)
        }
        Err(e) if throttled(&e.to_string()) => {
            // KMS is at its quota: tell the client when to come back, never a 500.
            service.metrics.throttled(&signer.name);
            eprintln!("keyrite serve: signer {}: KMS throttled the request from {client}", signer.name);
            let mut response = reply(
                StatusCode::TOO_MANY_REQUESTS,
                json!({"error": "KMS is throttling signing requests; retry after a second"}),
            );
            response.headers_mut().insert(http::header::RETRY_AFTER, http::HeaderValue::from_static("1"));
            done("throttled", response, &trace)
        }
        Err(e) => {
            eprintln!("keyrite serve: signer {} failed for {client}: {e}", signer.name);
            done("kms_error", reply(StatusCode::INTERNAL_SERVER_ERROR, json!({"error": "internal error"})), &trace)
        }
    }
}

/// What the audit log says of a request, filled in as it is handled.
#[derive(Default)]
struct Trace<'a> {
    digest: Option<String>,
    mode: Option<&'static str>,
    address: Option<&'a str>,
    kms_request_id: Option<String>,
}

/// A KMS answer that means "over the request quota": AWS `ThrottlingException`, Cloud KMS
/// `RESOURCE_EXHAUSTED`.
fn throttled(error: &str) -> bool {
    ["ThrottlingException", "RESOURCE_EXHAUSTED", "TooManyRequestsException"].iter().any(|t| error.contains(t))
}

/// Answers `GET /metrics` on the metrics listener until `shutdown` completes, to the peers
/// `allowed` admits; others get 403.
pub async fn serve_metrics(
    listener: tokio::net::TcpListener,
    service: Arc<Service>,
    allowed: metrics::Allowed,
    shutdown: impl std::future::Future<Output = ()>,
) -> std::io::Result<()> {
    tokio::pin!(shutdown);
    let allowed = Arc::new(allowed);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => accepted?,
            () = &mut shutdown => return Ok(()),
        };
        let admitted = allowed.admits(peer.ip());
        let service = service.clone();
        tokio::spawn(async move {
            let handler = hyper::service::service_fn(move |req: http::Request<Incoming>| {
                let service = service.clone();
                async move {
                    let response = if !admitted {
                        reply(
                            StatusCode::FORBIDDEN,
                            json!({"error": "this address may not read the metrics (--metrics-allow)"}),
                        )
                    } else if req.method() == Method::GET && req.uri().path() == "/metrics" {
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

    #[test]
    fn tokens_compare_in_full() {
        assert!(
            constant_time_eq(b"abc", b"abc") && !constant_time_eq(b"abc", b"abd") && !constant_time_eq(b"abc", b"ab")
        );
    }
}

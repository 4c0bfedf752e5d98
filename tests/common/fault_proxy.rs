//! A fault-injecting HTTP proxy between keyrite and the local emulator.
//!
//! Each request draws one fate: forwarded untouched, answered 503, answered with the
//! service's own throttling error, connection reset before forwarding, connection reset
//! *after* forwarding (the cloud acted, the client never heard: the case that would
//! duplicate a KMS key if a create were retried blindly), or delayed. Rates are per fault.
//! It listens on loopback only and stops when dropped.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;

/// Probabilities of each fault, per request.
#[derive(Clone, Copy, Debug, Default)]
pub struct Faults {
    pub server_error: f64,
    pub throttle: f64,
    pub reset_before: f64,
    pub reset_after: f64,
    pub delay: f64,
    /// Forward at once, then hold the response: the cloud has acted, the client waits.
    pub delay_after: f64,
    pub max_delay_ms: u64,
    /// Reset after forwarding the first request for this `X-Amz-Target` operation (e.g.
    /// `TrentService.CreateKey`): the targeted version of `reset_after`.
    pub lose_first_response_of: Option<&'static str>,
    /// Answer this operation (its name, e.g. `CreateAlias`) with the service's AccessDenied
    /// error, as IAM does for a caller that lacks the permission.
    pub deny: Option<&'static str>,
    /// Answer every request with the service's expired-token error.
    pub expired_token: bool,
    /// Throttle every request for this operation (its name, e.g. `Sign`), and nothing else.
    pub throttle_only: Option<&'static str>,
    /// Hold the answer to every request for this operation for this many milliseconds
    /// (forwarded at once): a slow KMS.
    pub slow: Option<(&'static str, u64)>,
}

/// How often each fate was drawn.
#[derive(Debug, Default)]
pub struct Counts {
    pub forwarded: AtomicU64,
    pub server_error: AtomicU64,
    pub throttle: AtomicU64,
    pub reset_before: AtomicU64,
    pub reset_after: AtomicU64,
    pub delay: AtomicU64,
    pub delay_after: AtomicU64,
    pub targeted_fired: std::sync::atomic::AtomicBool,
    /// The operation of every request, in order: `CreateKey`, `GetRole`, `POST /2015-03-31/functions`…
    pub operations: std::sync::Mutex<Vec<String>>,
}

impl Counts {
    pub fn operations(&self) -> Vec<String> {
        self.operations.lock().unwrap().clone()
    }
}

impl std::fmt::Display for Counts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        write!(
            f,
            "{} requests: {} forwarded clean, {} 5xx, {} throttled, {} reset before forwarding, {} reset after forwarding, {} delayed, {} answered late",
            g(&self.forwarded)
                + g(&self.server_error)
                + g(&self.throttle)
                + g(&self.reset_before)
                + g(&self.reset_after)
                + g(&self.delay)
                + g(&self.delay_after),
            g(&self.forwarded),
            g(&self.server_error),
            g(&self.throttle),
            g(&self.reset_before),
            g(&self.reset_after),
            g(&self.delay),
            g(&self.delay_after)
        )
    }
}

pub struct FaultProxy {
    pub endpoint: String,
    pub counts: Arc<Counts>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

/// A small deterministic generator (xorshift), seeded per proxy.
struct Dice(std::sync::Mutex<u64>);

impl Dice {
    fn roll(&self) -> f64 {
        let mut s = self.0.lock().unwrap();
        *s ^= *s << 13;
        *s ^= *s >> 7;
        *s ^= *s << 17;
        (*s >> 11) as f64 / (1u64 << 53) as f64
    }
}

impl FaultProxy {
    /// Starts a proxy to `upstream` on its own runtime thread.
    pub fn start(upstream: &str, faults: Faults, seed: u64) -> FaultProxy {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        std_listener.set_nonblocking(true).unwrap();
        let endpoint = format!("http://{}", std_listener.local_addr().unwrap());
        let counts = Arc::new(Counts::default());
        let state = Arc::new((upstream.to_owned(), faults, Dice(std::sync::Mutex::new(seed | 1)), counts.clone()));
        let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build_http::<Full<Bytes>>();
        runtime.spawn(async move {
            let listener = tokio::net::TcpListener::from_std(std_listener).unwrap();
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                let (state, client) = (state.clone(), client.clone());
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
                        let (state, client) = (state.clone(), client.clone());
                        async move { handle(req, &state.0, &state.1, &state.2, &state.3, &client).await }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        FaultProxy { endpoint, counts, runtime: Some(runtime) }
    }
}

type Client = hyper_util::client::legacy::Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

/// Returning `Err` makes hyper drop the connection: the client sees a reset.
async fn handle(
    req: hyper::Request<Incoming>,
    upstream: &str,
    faults: &Faults,
    dice: &Dice,
    counts: &Counts,
    client: &Client,
) -> Result<hyper::Response<Full<Bytes>>, std::io::Error> {
    let roll = dice.roll();
    let mut edge = 0.0;
    let mut next = |p: f64| {
        edge += p;
        roll < edge
    };
    let (parts, body) = req.into_parts();
    let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let protocol = Protocol::of(&parts.headers);
    let operation = protocol.operation(&parts, &body);
    counts.operations.lock().unwrap().push(operation.clone());
    if faults.expired_token {
        let code = if matches!(protocol, Protocol::Query) { "ExpiredToken" } else { "ExpiredTokenException" };
        return Ok(respond(
            403,
            protocol.error_body(code, "The security token included in the request is expired"),
            protocol,
            code,
        ));
    }
    if faults.deny.is_some_and(|d| d == operation) {
        let code = if matches!(protocol, Protocol::Query) { "AccessDenied" } else { "AccessDeniedException" };
        let message = format!(
            "User: arn:aws:iam::000000000000:user/deployer is not authorized to perform: {operation} because no identity-based policy allows the {operation} action"
        );
        return Ok(respond(400, protocol.error_body(code, &message), protocol, code));
    }
    let targeted =
        faults.lose_first_response_of.is_some_and(|t| parts.headers.get("x-amz-target").is_some_and(|v| v == t))
            && !counts.targeted_fired.swap(true, Ordering::Relaxed);
    if !targeted && next(faults.server_error) {
        counts.server_error.fetch_add(1, Ordering::Relaxed);
        return Ok(respond(
            503,
            protocol.error_body("ServiceUnavailable", "injected 503"),
            protocol,
            "ServiceUnavailable",
        ));
    }
    if !targeted && (next(faults.throttle) || faults.throttle_only.is_some_and(|t| t == operation)) {
        counts.throttle.fetch_add(1, Ordering::Relaxed);
        let (status, code) = protocol.throttle();
        return Ok(respond(status, protocol.error_body(code, "Rate exceeded (injected)"), protocol, code));
    }
    if !targeted && next(faults.reset_before) {
        counts.reset_before.fetch_add(1, Ordering::Relaxed);
        return Err(std::io::Error::other("injected reset before forwarding"));
    }
    let reset_after = targeted || next(faults.reset_after);
    let late = !reset_after && next(faults.delay_after);
    if !reset_after && !late && next(faults.delay) {
        counts.delay.fetch_add(1, Ordering::Relaxed);
        let ms = (dice.roll() * faults.max_delay_ms as f64) as u64;
        tokio::time::sleep(Duration::from_millis(ms)).await;
    } else if !reset_after && !late {
        counts.forwarded.fetch_add(1, Ordering::Relaxed);
    }
    let uri = format!("{upstream}{}", parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/"));
    let mut forward = hyper::Request::builder().method(parts.method.clone()).uri(uri);
    for (k, v) in &parts.headers {
        forward = forward.header(k, v);
    }
    let response = client.request(forward.body(Full::new(body)).unwrap()).await.map_err(std::io::Error::other)?;
    let (rparts, rbody) = response.into_parts();
    let rbody = rbody.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    if reset_after {
        counts.reset_after.fetch_add(1, Ordering::Relaxed);
        return Err(std::io::Error::other("injected reset after forwarding"));
    }
    if late {
        counts.delay_after.fetch_add(1, Ordering::Relaxed);
        let ms = (dice.roll() * faults.max_delay_ms as f64) as u64;
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    if let Some((_, ms)) = faults.slow.filter(|(op, _)| *op == operation) {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    Ok(hyper::Response::from_parts(rparts, Full::new(rbody)))
}

/// The three wire protocols keyrite's services use, for well-formed error answers.
#[derive(Clone, Copy)]
enum Protocol {
    /// KMS, STS (JSON 1.1 / JSON 1.0 with `X-Amz-Target`).
    AwsJson,
    /// IAM (and query-protocol STS): form-encoded requests, XML errors.
    Query,
    /// Lambda, API Gateway, S3: REST with JSON errors.
    RestJson,
}

impl Protocol {
    fn of(headers: &http::HeaderMap) -> Protocol {
        if headers.contains_key("x-amz-target") {
            Protocol::AwsJson
        } else if headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"))
        {
            Protocol::Query
        } else {
            Protocol::RestJson
        }
    }

    /// The operation a request asks for.
    fn operation(self, parts: &http::request::Parts, body: &[u8]) -> String {
        match self {
            Protocol::AwsJson => parts
                .headers
                .get("x-amz-target")
                .and_then(|v| v.to_str().ok())
                .and_then(|t| t.rsplit('.').next())
                .unwrap_or_default()
                .to_owned(),
            Protocol::Query => String::from_utf8_lossy(body)
                .split('&')
                .find_map(|kv| kv.strip_prefix("Action="))
                .unwrap_or_default()
                .to_owned(),
            Protocol::RestJson => format!("{} {}", parts.method, parts.uri.path()),
        }
    }

    fn throttle(self) -> (u16, &'static str) {
        match self {
            Protocol::AwsJson => (400, "ThrottlingException"),
            Protocol::Query => (400, "Throttling"),
            Protocol::RestJson => (429, "TooManyRequestsException"),
        }
    }

    fn error_body(self, code: &str, message: &str) -> String {
        match self {
            Protocol::Query => format!(
                "<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error><RequestId>injected</RequestId></ErrorResponse>"
            ),
            _ => format!(r#"{{"__type":"{code}","message":"{message}"}}"#),
        }
    }
}

fn respond(status: u16, body: String, protocol: Protocol, code: &str) -> hyper::Response<Full<Bytes>> {
    let content_type = match protocol {
        Protocol::Query => "text/xml",
        Protocol::AwsJson => "application/x-amz-json-1.1",
        Protocol::RestJson => "application/json",
    };
    hyper::Response::builder()
        .status(status)
        .header("content-type", content_type)
        .header("x-amzn-errortype", code)
        .header("x-amzn-requestid", "injected")
        .body(Full::new(Bytes::from(body)))
        .unwrap()
}

//! A local stand-in for the parts of the Cloud KMS v1 REST API that keyrite uses.
//!
//! No Cloud KMS emulator exists, so this one is written from Google's published REST
//! reference (https://cloud.google.com/kms/docs/reference/rest). It is not a mock of keyrite's
//! expectations: `tests/gcp_standin_conformance.rs` drives it with Google's own Python client
//! (`google-cloud-kms`, `transport="rest"`), so the wire format is judged by code nobody here
//! wrote.
//!
//! What it implements, with the service's semantics where keyrite depends on them:
//! - key rings: create (409 on a duplicate id), get, list (paged);
//! - crypto keys: create (version 1 made unless `skipInitialVersionCreation`), get, list,
//!   patch (`updateMask`: `labels`);
//! - versions: create, get, list, patch (`state` ENABLED/DISABLED), `:destroy` (state
//!   DESTROY_SCHEDULED, `destroyTime` = now + the key's `destroyScheduledDuration`),
//!   `:restore`. New asymmetric versions sit in PENDING_GENERATION for a moment, as on GCP;
//! - `publicKey`: SPKI PEM with `pemCrc32c`;
//! - `:asymmetricSign`: a real secp256k1 ECDSA signature over the given SHA-256 digest
//!   (high-s half of the time, as an HSM returns), `digestCrc32c` checked,
//!   `verifiedDigestCrc32c` and `signatureCrc32c` returned; only ENABLED versions sign;
//! - `:getIamPolicy` / `:setIamPolicy` on key rings and keys, with etags (409 ABORTED on a
//!   stale etag), and `:testIamPermissions` (every Cloud KMS permission is held but those a
//!   test denies);
//! - for credentials: a GCE metadata server (access and ID tokens, for `GCE_METADATA_HOST`)
//!   and an OAuth token endpoint (`/token`, refresh-token grants of `authorized_user` files).
//!
//! Enums are written as integers when the client asks with `$alt=json;enum-encoding=int`
//! (both Google clients do) and as names otherwise; both are accepted on input. Unknown
//! request fields are refused, as the real API does. Faults for tests (a corrupted
//! checksum, say) are set through [`Faults`].

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use k256::ecdsa::SigningKey;
use k256::pkcs8::{EncodePublicKey, LineEnding};
use serde_json::{Map, Value as Json, json};

/// Faults to inject, each applied to every matching response until cleared.
#[derive(Clone, Debug, Default)]
pub struct Faults {
    /// Return a `signatureCrc32c` that does not match the signature.
    pub bad_signature_crc: bool,
    /// Return a `pemCrc32c` that does not match the PEM.
    pub bad_pem_crc: bool,
    /// Claim the digest checksum was not verified even when one was sent.
    pub unverified_digest: bool,
    /// Flip a bit of the returned signature (and compute its checksum over the flipped bytes).
    pub wrong_signature: bool,
    /// Carry out this many key ring / crypto key creates, then answer each with 503
    /// UNAVAILABLE, as when a connection drops after the service acted.
    pub lose_create_responses: u32,
    /// Permissions `testIamPermissions` leaves out of its answer, as if the caller lacked them
    /// (e.g. `cloudkms.cryptoKeys.create`). Only the test answers; other calls still act.
    pub denied_permissions: Vec<String>,
    /// Answer API requests 401 UNAUTHENTICATED, as Google does for an expired or revoked
    /// token.
    pub unauthenticated: bool,
    /// Answer this share (0–100 %) of API requests with 503 UNAVAILABLE before acting on
    /// them. Which ones is a fixed scatter over the request count (a multiplicative hash), so
    /// runs are reproducible but failures do not fall into lockstep with retries.
    pub unavailable_percent: u32,
}

struct Version {
    state: &'static str,
    key: SigningKey,
    create_time: SystemTime,
    ready_at: Instant,
    destroy_time: Option<SystemTime>,
}

struct CryptoKey {
    purpose: &'static str,
    algorithm: &'static str,
    protection_level: &'static str,
    labels: Map<String, Json>,
    create_time: SystemTime,
    destroy_scheduled_secs: u64,
    versions: Vec<Version>,
}

#[derive(Default)]
struct Policy {
    etag_serial: u64,
    bindings: Vec<Json>,
}

#[derive(Default)]
struct Store {
    rings: BTreeMap<String, SystemTime>,
    keys: BTreeMap<String, CryptoKey>,
    policies: BTreeMap<String, Policy>,
    faults: Faults,
    calls: Vec<String>,
    signs: u64,
    /// `Authorization` headers of API requests, in order.
    authorizations: Vec<String>,
    /// Audiences of the ID tokens the metadata server minted.
    audiences: Vec<String>,
    /// Requests answered UNAVAILABLE by [`Faults::unavailable_percent`].
    unavailable: u64,
    /// Refresh-token grants served by the OAuth endpoint.
    user_refreshes: u64,
}

/// How long a new asymmetric version stays PENDING_GENERATION.
const GENERATION_DELAY: Duration = Duration::from_millis(300);
/// Cloud KMS's default `destroyScheduledDuration`: 30 days.
const DEFAULT_DESTROY_SECS: u64 = 30 * 24 * 3600;

/// A running stand-in, serving on a loopback port until dropped.
pub struct GcpKms {
    pub endpoint: String,
    pub port: u16,
    store: Arc<Mutex<Store>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl GcpKms {
    /// Starts on a free loopback port, on a thread of its own.
    pub fn start() -> GcpKms {
        GcpKms::start_on("127.0.0.1:0".parse().expect("address"))
    }

    pub fn start_on(addr: SocketAddr) -> GcpKms {
        let listener = std::net::TcpListener::bind(addr).expect("bind the Cloud KMS stand-in");
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().expect("local address").port();
        let store = Arc::new(Mutex::new(Store::default()));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let shared = store.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            rt.block_on(serve(listener, shared, stopped));
        });
        GcpKms { endpoint: format!("http://127.0.0.1:{port}"), port, store, stop: Some(stop), thread: Some(thread) }
    }

    /// Sets the faults to inject from now on.
    pub fn set_faults(&self, faults: Faults) {
        self.store.lock().unwrap().faults = faults;
    }

    /// `METHOD path` of every request so far.
    pub fn calls(&self) -> Vec<String> {
        self.store.lock().unwrap().calls.clone()
    }

    /// Requests so far that could change something (not GET, not a permission test).
    pub fn mutating_calls(&self) -> Vec<String> {
        self.calls().into_iter().filter(|c| !c.starts_with("GET ") && !c.ends_with(":testIamPermissions")).collect()
    }

    /// POSTs `body` to `/v1/{path_and_query}` as a person with gcloud would, through the REST
    /// API (not into the store), and panics unless it succeeds.
    pub fn create_by_hand(&self, path_and_query: &str, body: &str) {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", self.port)).expect("connect to the stand-in");
        let request = format!(
            "POST /v1/{path_and_query} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(request.as_bytes()).expect("send");
        let mut answer = String::new();
        stream.read_to_string(&mut answer).expect("read");
        assert!(answer.starts_with("HTTP/1.1 200"), "POST {path_and_query} failed: {answer}");
    }

    /// `Authorization` headers the API requests carried.
    pub fn authorizations(&self) -> Vec<String> {
        self.store.lock().unwrap().authorizations.clone()
    }

    /// Audiences the metadata server minted ID tokens for.
    pub fn id_token_audiences(&self) -> Vec<String> {
        self.store.lock().unwrap().audiences.clone()
    }

    /// Requests answered 503 UNAVAILABLE by the `unavailable_percent` fault.
    pub fn unavailable_answers(&self) -> u64 {
        self.store.lock().unwrap().unavailable
    }

    /// Refresh-token grants the OAuth endpoint served (user credentials).
    pub fn user_refreshes(&self) -> u64 {
        self.store.lock().unwrap().user_refreshes
    }

    /// Signatures made so far.
    pub fn signs(&self) -> u64 {
        self.store.lock().unwrap().signs
    }

    /// Blocks until stopped from outside (for the standalone binary).
    pub fn wait(mut self) {
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for GcpKms {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn serve(
    listener: std::net::TcpListener,
    store: Arc<Mutex<Store>>,
    mut stopped: tokio::sync::oneshot::Receiver<()>,
) {
    let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
    loop {
        let conn = tokio::select! {
            _ = &mut stopped => return,
            conn = listener.accept() => conn,
        };
        let Ok((stream, _)) = conn else { continue };
        let store = store.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| handle(store.clone(), req));
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await;
        });
    }
}

/// The access token the metadata server hands out.
pub const ACCESS_TOKEN: &str = "standin-access-token";
/// The service account the metadata server speaks for.
pub const SERVICE_ACCOUNT: &str = "signer@standin-project.iam.gserviceaccount.com";

/// A minimal GCE metadata server, so that Application Default Credentials work unchanged
/// when `GCE_METADATA_HOST` points here: access tokens, ID tokens, the account's email and
/// the project id. Requests without `Metadata-Flavor: Google` are refused, as on GCE.
fn metadata(store: &Mutex<Store>, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    let reply = |status: StatusCode, body: String| {
        Response::builder()
            .status(status)
            .header("metadata-flavor", "Google")
            .header("content-type", "application/text")
            .body(Full::new(Bytes::from(body)))
            .expect("response")
    };
    if req.headers().get("metadata-flavor").and_then(|v| v.to_str().ok()) != Some("Google") {
        return reply(StatusCode::FORBIDDEN, "Missing Metadata-Flavor:Google header.".into());
    }
    let query: BTreeMap<String, String> = req
        .uri()
        .query()
        .unwrap_or_default()
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (decode(k), decode(v)))
        .collect();
    let account = "/computeMetadata/v1/instance/service-accounts/default";
    match req.uri().path().trim_end_matches('/') {
        p if p == format!("{account}/token") => reply(
            StatusCode::OK,
            json!({"access_token": ACCESS_TOKEN, "expires_in": 3599, "token_type": "Bearer"}).to_string(),
        ),
        p if p == format!("{account}/identity") => {
            let Some(audience) = query.get("audience") else {
                return reply(StatusCode::BAD_REQUEST, "non-empty audience parameter required".into());
            };
            store.lock().unwrap().audiences.push(audience.clone());
            reply(StatusCode::OK, id_token(audience))
        }
        p if p == format!("{account}/email") => reply(StatusCode::OK, SERVICE_ACCOUNT.into()),
        "/computeMetadata/v1/project/project-id" => reply(StatusCode::OK, "standin-project".into()),
        "/computeMetadata/v1/universe/universe-domain" => reply(StatusCode::OK, "googleapis.com".into()),
        p if p.starts_with("/computeMetadata/v1/instance") => reply(StatusCode::OK, String::new()),
        _ => reply(StatusCode::NOT_FOUND, "not found".into()),
    }
}

/// The access token the OAuth endpoint hands out for a user's refresh token.
pub const USER_ACCESS_TOKEN: &str = "standin-user-access-token";
/// The user the OAuth endpoint speaks for.
pub const USER_EMAIL: &str = "ceremony-admin@example.com";

/// A minimal OAuth 2.0 token endpoint for `authorized_user` credentials (what `gcloud auth
/// application-default login` writes, with `token_uri` pointed here): a refresh-token grant
/// returns an access token and an ID token whose audience is the OAuth client, as Google's
/// does for users.
fn oauth_token(store: &Mutex<Store>, body: &[u8]) -> Response<Full<Bytes>> {
    let fields: BTreeMap<String, String> = match serde_json::from_slice::<Map<String, Json>>(body) {
        Ok(m) => m.into_iter().map(|(k, v)| (k, v.as_str().unwrap_or_default().to_owned())).collect(),
        Err(_) => String::from_utf8_lossy(body)
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (decode(k), decode(v)))
            .collect(),
    };
    let field = |k: &str| fields.get(k).map(String::as_str).unwrap_or_default();
    let (status, json) = if field("grant_type") != "refresh_token" || field("refresh_token").is_empty() {
        (
            StatusCode::BAD_REQUEST,
            json!({"error": "invalid_grant", "error_description": "refresh_token grant expected"}),
        )
    } else {
        store.lock().unwrap().user_refreshes += 1;
        let id_token = jwt(field("client_id"), USER_EMAIL);
        (
            StatusCode::OK,
            json!({"access_token": USER_ACCESS_TOKEN, "id_token": id_token, "expires_in": 3599, "token_type": "Bearer"}),
        )
    };
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(json.to_string())))
        .expect("response")
}

/// A JWT shaped like Google's ID tokens (RS256 header, `aud`, `iss`, `exp`, `email`). Its
/// signature is random: no one outside Google can mint a verifiable one, and the endpoints
/// under test check the claims, not Google's signature.
pub fn id_token(audience: &str) -> String {
    jwt(audience, SERVICE_ACCOUNT)
}

fn jwt(audience: &str, email: &str) -> String {
    use base64::Engine;
    let b64 = |v: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
    let now = SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_secs();
    let header = json!({"alg": "RS256", "typ": "JWT", "kid": "standin"});
    let claims = json!({
        "aud": audience, "azp": email, "email": email, "email_verified": true,
        "iss": "https://accounts.google.com", "sub": "100000000000000000000", "iat": now, "exp": now + 3600,
    });
    let mut sig = [0u8; 256];
    getrandom::fill(&mut sig).expect("random");
    format!("{}.{}.{}", b64(header.to_string().as_bytes()), b64(claims.to_string().as_bytes()), b64(&sig))
}

/// A Google API error: HTTP status, canonical code name, message.
struct ApiError(StatusCode, &'static str, String);

type Reply = Result<Json, ApiError>;

fn invalid(msg: impl Into<String>) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, "INVALID_ARGUMENT", msg.into())
}
fn not_found(name: &str) -> ApiError {
    ApiError(StatusCode::NOT_FOUND, "NOT_FOUND", format!("{name} not found."))
}
fn precondition(msg: impl Into<String>) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, "FAILED_PRECONDITION", msg.into())
}

async fn handle(store: Arc<Mutex<Store>>, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    if path.starts_with("/computeMetadata/") {
        return Ok(metadata(&store, &req));
    }
    if path == "/token" {
        let body = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
        return Ok(oauth_token(&store, &body));
    }
    if let Some(auth) = req.headers().get("authorization").and_then(|v| v.to_str().ok()) {
        store.lock().unwrap().authorizations.push(auth.to_owned());
    }
    let query: BTreeMap<String, String> = req
        .uri()
        .query()
        .map(|q| {
            q.split('&')
                .filter_map(|kv| kv.split_once('=').or(Some((kv, ""))))
                .map(|(k, v)| (decode(k), decode(v)))
                .collect()
        })
        .unwrap_or_default();
    let enum_ints = query.get("$alt").is_some_and(|a| a.contains("enum-encoding=int"));
    let body = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let reply = match parse_body(&body) {
        Ok(body) => {
            let mut store = store.lock().unwrap();
            store.calls.push(format!("{method} {path}"));
            let scatter = (store.calls.len() as u64).wrapping_mul(2_654_435_761) % 4_294_967_296 % 100;
            let reply = if store.faults.unauthenticated {
                Err(ApiError(
                    StatusCode::UNAUTHORIZED,
                    "UNAUTHENTICATED",
                    "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.".into(),
                ))
            } else if scatter < u64::from(store.faults.unavailable_percent) {
                store.unavailable += 1;
                Err(ApiError(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "UNAVAILABLE",
                    "The service is currently unavailable.".into(),
                ))
            } else {
                route(&mut store, &method, &path, &query, body)
            };
            let create = method == Method::POST && (path.ends_with("/keyRings") || path.ends_with("/cryptoKeys"));
            if create && reply.is_ok() && store.faults.lose_create_responses > 0 {
                store.faults.lose_create_responses -= 1;
                Err(ApiError(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "UNAVAILABLE",
                    "The service is currently unavailable.".into(),
                ))
            } else {
                reply
            }
        }
        Err(e) => Err(e),
    };
    let (status, json) = match reply {
        Ok(mut json) => {
            if !enum_ints {
                enums_to_names(&mut json);
            }
            (StatusCode::OK, json)
        }
        Err(ApiError(status, code, message)) => {
            (status, json!({"error": {"code": status.as_u16(), "message": message, "status": code}}))
        }
    };
    let response = Response::builder()
        .status(status)
        .header("content-type", "application/json; charset=UTF-8")
        .body(Full::new(Bytes::from(json.to_string())))
        .expect("response");
    Ok(response)
}

fn decode(s: &str) -> String {
    percent_encoding::percent_decode_str(&s.replace('+', " ")).decode_utf8_lossy().into_owned()
}

fn parse_body(body: &[u8]) -> Result<Map<String, Json>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice(body) {
        Ok(Json::Object(m)) => Ok(m),
        Ok(_) => Err(invalid("Invalid JSON payload received. Expected an object.")),
        Err(e) => Err(invalid(format!("Invalid JSON payload received. {e}"))),
    }
}

/// Refuses request fields the API does not define, as the real service does.
fn only_fields(body: &Map<String, Json>, allowed: &[&str]) -> Result<(), ApiError> {
    match body.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(invalid(format!("Invalid JSON payload received. Unknown name \"{k}\": Cannot find field."))),
        None => Ok(()),
    }
}

fn route(
    store: &mut Store,
    method: &Method,
    path: &str,
    q: &BTreeMap<String, String>,
    body: Map<String, Json>,
) -> Reply {
    let Some(rest) = path.strip_prefix("/v1/") else { return Err(not_found(path)) };
    let (name, verb) = match rest.rsplit_once(':') {
        Some((n, v)) if !v.contains('/') => (n, Some(v)),
        _ => (rest, None),
    };
    let parts: Vec<&str> = name.split('/').collect();
    let shape: Vec<&str> = parts.iter().step_by(2).copied().collect();
    let shape = shape.join("/");
    // For a collection (`…/keyRings`), the resource that owns it.
    let owner = name.rsplit_once('/').map(|(p, _)| p).unwrap_or_default();
    match (method.as_str(), shape.as_str(), verb) {
        ("GET" | "POST", _, Some("getIamPolicy")) => get_iam_policy(store, name),
        ("POST", _, Some("setIamPolicy")) => set_iam_policy(store, name, body),
        ("POST", _, Some("testIamPermissions")) => test_iam_permissions(store, name, body),
        ("POST", "projects/locations/keyRings", None) if parts.len() == 5 => create_ring(store, owner, q, body),
        ("GET", "projects/locations/keyRings", None) if parts.len() == 5 => {
            let items = store.rings.iter().filter(|(n, _)| parent_of(n) == owner).map(|(n, t)| ring_json(n, *t));
            page(items.collect(), q, "keyRings")
        }
        ("GET", "projects/locations/keyRings", None) => {
            store.rings.get(name).map(|t| ring_json(name, *t)).ok_or_else(|| not_found(name))
        }
        ("POST", "projects/locations/keyRings/cryptoKeys", None) if parts.len() == 7 => {
            create_key(store, owner, q, body)
        }
        ("GET", "projects/locations/keyRings/cryptoKeys", None) if parts.len() == 7 => {
            ring(store, owner)?;
            let items = store.keys.iter().filter(|(n, _)| parent_of(n) == owner).map(|(n, k)| key_json(n, k));
            page(items.collect(), q, "cryptoKeys")
        }
        ("GET", "projects/locations/keyRings/cryptoKeys", None) => Ok(key_json(name, key(store, name)?)),
        ("PATCH", "projects/locations/keyRings/cryptoKeys", None) => patch_key(store, name, q, body),
        ("POST", "projects/locations/keyRings/cryptoKeys/cryptoKeyVersions", None) if parts.len() == 9 => {
            only_fields(&body, &["protectionLevel", "algorithm"])?;
            let key = key_mut(store, owner)?;
            key.versions.push(new_version());
            let n = key.versions.len();
            Ok(version_json(owner, n, key))
        }
        ("GET", "projects/locations/keyRings/cryptoKeys/cryptoKeyVersions", None) if parts.len() == 9 => {
            let key = key(store, owner)?;
            let items = (1..=key.versions.len()).map(|n| version_json(owner, n, key)).collect();
            page(items, q, "cryptoKeyVersions")
        }
        ("GET", "projects/locations/keyRings/cryptoKeys/cryptoKeyVersions", None) => {
            let (key, n) = version(store, name)?;
            Ok(version_json(parent_of(name), n, key))
        }
        ("GET", "projects/locations/keyRings/cryptoKeys/cryptoKeyVersions/publicKey", None) => {
            public_key(store, owner, q)
        }
        ("PATCH", "projects/locations/keyRings/cryptoKeys/cryptoKeyVersions", None) => {
            patch_version(store, name, q, body)
        }
        ("POST", "projects/locations/keyRings/cryptoKeys/cryptoKeyVersions", Some("asymmetricSign")) => {
            asymmetric_sign(store, name, body)
        }
        ("POST", "projects/locations/keyRings/cryptoKeys/cryptoKeyVersions", Some("destroy")) => {
            only_fields(&body, &["name"])?;
            let now = SystemTime::now();
            let (key, n) = version_mut(store, name)?;
            let window = key.destroy_scheduled_secs;
            let v = &mut key.versions[n - 1];
            match v.state {
                "ENABLED" | "DISABLED" => {
                    v.state = "DESTROY_SCHEDULED";
                    v.destroy_time = Some(now + Duration::from_secs(window));
                }
                other => return Err(precondition(format!("{name} is not ENABLED or DISABLED (state {other})."))),
            }
            Ok(version_json(parent_of(name), n, key))
        }
        ("POST", "projects/locations/keyRings/cryptoKeys/cryptoKeyVersions", Some("restore")) => {
            only_fields(&body, &["name"])?;
            let (key, n) = version_mut(store, name)?;
            let v = &mut key.versions[n - 1];
            if v.state != "DESTROY_SCHEDULED" {
                return Err(precondition(format!("{name} is not DESTROY_SCHEDULED (state {}).", v.state)));
            }
            v.state = "DISABLED";
            v.destroy_time = None;
            Ok(version_json(parent_of(name), n, key))
        }
        _ => Err(ApiError(StatusCode::NOT_FOUND, "NOT_FOUND", format!("{method} {path}: no such method"))),
    }
}

fn parent_of(name: &str) -> &str {
    let mut cut = name;
    for _ in 0..2 {
        cut = cut.rsplit_once('/').map(|(p, _)| p).unwrap_or("");
    }
    cut
}

fn ring<'a>(store: &'a Store, name: &str) -> Result<&'a SystemTime, ApiError> {
    store.rings.get(name).ok_or_else(|| not_found(name))
}
fn key<'a>(store: &'a Store, name: &str) -> Result<&'a CryptoKey, ApiError> {
    store.keys.get(name).ok_or_else(|| not_found(name))
}
fn key_mut<'a>(store: &'a mut Store, name: &str) -> Result<&'a mut CryptoKey, ApiError> {
    store.keys.get_mut(name).ok_or_else(|| not_found(name))
}
fn version_number(name: &str) -> Result<usize, ApiError> {
    name.rsplit('/').next().and_then(|n| n.parse().ok()).filter(|n| *n > 0).ok_or_else(|| not_found(name))
}
fn version<'a>(store: &'a Store, name: &str) -> Result<(&'a CryptoKey, usize), ApiError> {
    let n = version_number(name)?;
    let key = key(store, parent_of(name)).map_err(|_| not_found(name))?;
    if n > key.versions.len() {
        return Err(not_found(name));
    }
    Ok((key, n))
}
fn version_mut<'a>(store: &'a mut Store, name: &str) -> Result<(&'a mut CryptoKey, usize), ApiError> {
    let n = version_number(name)?;
    let key = key_mut(store, parent_of(name)).map_err(|_| not_found(name))?;
    if n > key.versions.len() {
        return Err(not_found(name));
    }
    settle(&mut key.versions[n - 1]);
    Ok((key, n))
}

/// A version whose generation time has passed becomes ENABLED.
fn settle(v: &mut Version) {
    if v.state == "PENDING_GENERATION" && Instant::now() >= v.ready_at {
        v.state = "ENABLED";
    }
}

fn new_version() -> Version {
    let key = loop {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).expect("random");
        if let Ok(k) = SigningKey::from_slice(&bytes) {
            break k;
        }
    };
    Version {
        state: "PENDING_GENERATION",
        key,
        create_time: SystemTime::now(),
        ready_at: Instant::now() + GENERATION_DELAY,
        destroy_time: None,
    }
}

fn check_id(id: &str, what: &str) -> Result<(), ApiError> {
    let ok =
        !id.is_empty() && id.len() <= 63 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok { Ok(()) } else { Err(invalid(format!("{what} {id:?} must match [a-zA-Z0-9_-]{{1,63}}."))) }
}

fn create_ring(store: &mut Store, parent: &str, q: &BTreeMap<String, String>, body: Map<String, Json>) -> Reply {
    only_fields(&body, &["name"])?;
    let id = q.get("keyRingId").map(String::as_str).unwrap_or_default();
    check_id(id, "keyRingId")?;
    let name = format!("{parent}/keyRings/{id}");
    if store.rings.contains_key(&name) {
        return Err(ApiError(StatusCode::CONFLICT, "ALREADY_EXISTS", format!("KeyRing {name} already exists.")));
    }
    let now = SystemTime::now();
    store.rings.insert(name.clone(), now);
    Ok(ring_json(&name, now))
}

fn ring_json(name: &str, created: SystemTime) -> Json {
    json!({"name": name, "createTime": rfc3339(created)})
}

/// Reads an enum given by name or number.
fn enum_value(v: Option<&Json>, table: &[(&'static str, i64)], field: &str) -> Result<Option<&'static str>, ApiError> {
    let Some(v) = v else { return Ok(None) };
    let found = match v {
        Json::String(s) => table.iter().find(|(n, _)| n == s),
        Json::Number(n) => table.iter().find(|(_, i)| n.as_i64() == Some(*i)),
        _ => None,
    };
    match found {
        Some((name, _)) => Ok(Some(name)),
        None => Err(invalid(format!("Invalid value at '{field}': {v}"))),
    }
}

const PURPOSES: &[(&str, i64)] = &[
    ("CRYPTO_KEY_PURPOSE_UNSPECIFIED", 0),
    ("ENCRYPT_DECRYPT", 1),
    ("ASYMMETRIC_SIGN", 5),
    ("ASYMMETRIC_DECRYPT", 6),
    ("RAW_ENCRYPT_DECRYPT", 7),
    ("MAC", 9),
];
const PROTECTION: &[(&str, i64)] =
    &[("PROTECTION_LEVEL_UNSPECIFIED", 0), ("SOFTWARE", 1), ("HSM", 2), ("EXTERNAL", 3), ("EXTERNAL_VPC", 4)];
const ALGORITHMS: &[(&str, i64)] =
    &[("CRYPTO_KEY_VERSION_ALGORITHM_UNSPECIFIED", 0), ("EC_SIGN_P256_SHA256", 12), ("EC_SIGN_SECP256K1_SHA256", 31)];
const STATES: &[(&str, i64)] = &[
    ("CRYPTO_KEY_VERSION_STATE_UNSPECIFIED", 0),
    ("ENABLED", 1),
    ("DISABLED", 2),
    ("DESTROYED", 3),
    ("DESTROY_SCHEDULED", 4),
    ("PENDING_GENERATION", 5),
];

/// Which enum table a response field uses, for writing names instead of numbers.
fn enum_table(field: &str) -> Option<&'static [(&'static str, i64)]> {
    match field {
        "purpose" => Some(PURPOSES),
        "protectionLevel" => Some(PROTECTION),
        "algorithm" => Some(ALGORITHMS),
        "state" => Some(STATES),
        "publicKeyFormat" => Some(&[("PUBLIC_KEY_FORMAT_UNSPECIFIED", 0), ("PEM", 1), ("DER", 2)]),
        _ => None,
    }
}

fn enums_to_names(v: &mut Json) {
    match v {
        Json::Object(m) => {
            for (k, v) in m.iter_mut() {
                if let (Some(table), Some(n)) = (enum_table(k), v.as_i64())
                    && let Some((name, _)) = table.iter().find(|(_, i)| *i == n)
                {
                    *v = Json::String((*name).to_owned());
                } else {
                    enums_to_names(v);
                }
            }
        }
        Json::Array(items) => items.iter_mut().for_each(enums_to_names),
        _ => {}
    }
}

fn number(table: &[(&str, i64)], name: &str) -> i64 {
    table.iter().find(|(n, _)| *n == name).map(|(_, i)| *i).unwrap_or(0)
}

fn check_labels(labels: &Map<String, Json>) -> Result<(), ApiError> {
    let ok_chars = |s: &str| s.chars().all(|c| c.is_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    for (k, v) in labels {
        let Some(v) = v.as_str() else { return Err(invalid(format!("label {k}: value must be a string"))) };
        let key_ok = k.len() <= 63 && k.chars().next().is_some_and(char::is_lowercase) && ok_chars(k);
        if !key_ok || v.len() > 63 || !ok_chars(v) {
            return Err(invalid(format!(
                "Invalid label {k:?}: {v:?}. Keys and values may hold lowercase letters, digits, '_' and '-' (keys start with a letter), at most 63 characters."
            )));
        }
    }
    Ok(())
}

fn parse_duration_secs(v: &Json) -> Result<u64, ApiError> {
    v.as_str()
        .and_then(|s| s.strip_suffix('s'))
        .and_then(|s| s.split('.').next())
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| invalid(format!("Invalid value at 'crypto_key.destroy_scheduled_duration' ({v})")))
}

fn create_key(store: &mut Store, parent: &str, q: &BTreeMap<String, String>, body: Map<String, Json>) -> Reply {
    only_fields(&body, &["name", "purpose", "versionTemplate", "labels", "destroyScheduledDuration"])?;
    ring(store, parent)?;
    let id = q.get("cryptoKeyId").map(String::as_str).unwrap_or_default();
    check_id(id, "cryptoKeyId")?;
    let name = format!("{parent}/cryptoKeys/{id}");
    if store.keys.contains_key(&name) {
        return Err(ApiError(StatusCode::CONFLICT, "ALREADY_EXISTS", format!("CryptoKey {name} already exists.")));
    }
    let purpose = enum_value(body.get("purpose"), PURPOSES, "crypto_key.purpose")?.unwrap_or("");
    if purpose != "ASYMMETRIC_SIGN" {
        return Err(invalid(format!(
            "this stand-in implements only ASYMMETRIC_SIGN keys (purpose {})",
            if purpose.is_empty() { "unspecified" } else { purpose }
        )));
    }
    let empty = Map::new();
    let template = body.get("versionTemplate").and_then(Json::as_object).unwrap_or(&empty);
    only_fields(template, &["protectionLevel", "algorithm"])?;
    let algorithm = enum_value(template.get("algorithm"), ALGORITHMS, "crypto_key.version_template.algorithm")?
        .filter(|a| !a.ends_with("UNSPECIFIED"))
        .ok_or_else(|| invalid("crypto_key.version_template.algorithm is required for ASYMMETRIC_SIGN keys."))?;
    if algorithm != "EC_SIGN_SECP256K1_SHA256" {
        return Err(invalid(format!("this stand-in implements only EC_SIGN_SECP256K1_SHA256 (got {algorithm})")));
    }
    let protection_level =
        enum_value(template.get("protectionLevel"), PROTECTION, "crypto_key.version_template.protection_level")?
            .filter(|p| !p.ends_with("UNSPECIFIED"))
            .unwrap_or("SOFTWARE");
    if !matches!(protection_level, "SOFTWARE" | "HSM") {
        return Err(invalid(format!("protection level {protection_level} is not implemented by this stand-in")));
    }
    let labels = body.get("labels").and_then(Json::as_object).cloned().unwrap_or_default();
    check_labels(&labels)?;
    let destroy_scheduled_secs = match body.get("destroyScheduledDuration") {
        Some(v) => parse_duration_secs(v)?,
        None => DEFAULT_DESTROY_SECS,
    };
    let skip = q.get("skipInitialVersionCreation").is_some_and(|v| v == "true");
    let key = CryptoKey {
        purpose,
        algorithm,
        protection_level,
        labels,
        create_time: SystemTime::now(),
        destroy_scheduled_secs,
        versions: if skip { Vec::new() } else { vec![new_version()] },
    };
    let out = key_json(&name, &key);
    store.keys.insert(name, key);
    Ok(out)
}

fn key_json(name: &str, key: &CryptoKey) -> Json {
    let mut out = json!({
        "name": name,
        "purpose": number(PURPOSES, key.purpose),
        "createTime": rfc3339(key.create_time),
        "versionTemplate": {
            "protectionLevel": number(PROTECTION, key.protection_level),
            "algorithm": number(ALGORITHMS, key.algorithm),
        },
        "destroyScheduledDuration": format!("{}s", key.destroy_scheduled_secs),
    });
    if !key.labels.is_empty() {
        out["labels"] = Json::Object(key.labels.clone());
    }
    out
}

fn patch_key(store: &mut Store, name: &str, q: &BTreeMap<String, String>, body: Map<String, Json>) -> Reply {
    only_fields(&body, &["name", "purpose", "versionTemplate", "labels", "destroyScheduledDuration", "createTime"])?;
    let mask = q.get("updateMask").cloned().unwrap_or_default();
    if mask.is_empty() {
        return Err(invalid("update_mask is required."));
    }
    let key = key_mut(store, name)?;
    for field in mask.split(',') {
        match field {
            "labels" => {
                let labels = body.get("labels").and_then(Json::as_object).cloned().unwrap_or_default();
                check_labels(&labels)?;
                key.labels = labels;
            }
            other => return Err(invalid(format!("update_mask path {other:?} is not supported for CryptoKey."))),
        }
    }
    Ok(key_json(name, key))
}

fn version_json(key_name: &str, n: usize, key: &CryptoKey) -> Json {
    let v = &key.versions[n - 1];
    let state = if v.state == "PENDING_GENERATION" && Instant::now() >= v.ready_at { "ENABLED" } else { v.state };
    let mut out = json!({
        "name": format!("{key_name}/cryptoKeyVersions/{n}"),
        "state": number(STATES, state),
        "protectionLevel": number(PROTECTION, key.protection_level),
        "algorithm": number(ALGORITHMS, key.algorithm),
        "createTime": rfc3339(v.create_time),
    });
    if state != "PENDING_GENERATION" {
        out["generateTime"] = json!(rfc3339(v.create_time + GENERATION_DELAY));
    }
    if let Some(t) = v.destroy_time {
        out["destroyTime"] = json!(rfc3339(t));
    }
    out
}

fn patch_version(store: &mut Store, name: &str, q: &BTreeMap<String, String>, body: Map<String, Json>) -> Reply {
    only_fields(&body, &["name", "state"])?;
    if q.get("updateMask").map(String::as_str) != Some("state") {
        return Err(invalid("update_mask must be \"state\" for CryptoKeyVersion."));
    }
    let want = enum_value(body.get("state"), STATES, "crypto_key_version.state")?.unwrap_or("");
    let (key, n) = version_mut(store, name)?;
    let v = &mut key.versions[n - 1];
    match (v.state, want) {
        ("ENABLED" | "DISABLED", "ENABLED" | "DISABLED") => v.state = want,
        (from, to) => return Err(precondition(format!("cannot change {name} from {from} to {to}."))),
    }
    Ok(version_json(parent_of(name), n, key))
}

/// A signing version, or why it cannot sign.
fn usable<'a>(store: &'a mut Store, name: &str) -> Result<(&'a mut CryptoKey, usize), ApiError> {
    let (key, n) = version_mut(store, name)?;
    let state = key.versions[n - 1].state;
    if state != "ENABLED" {
        return Err(precondition(format!("{name} is not enabled, current state is: {state}.")));
    }
    Ok((key, n))
}

fn public_key(store: &mut Store, name: &str, q: &BTreeMap<String, String>) -> Reply {
    if let Some(f) = q.get("publicKeyFormat")
        && !matches!(f.as_str(), "PEM" | "1" | "0" | "PUBLIC_KEY_FORMAT_UNSPECIFIED")
    {
        return Err(invalid(format!("publicKeyFormat {f} is not supported for EC keys")));
    }
    let bad_crc = store.faults.bad_pem_crc;
    let (key, n) = usable(store, name)?;
    let pem = key.versions[n - 1]
        .key
        .verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL", e.to_string()))?;
    let crc = crc32c::crc32c(pem.as_bytes()) ^ u32::from(bad_crc);
    Ok(json!({
        "pem": pem,
        "algorithm": number(ALGORITHMS, key.algorithm),
        "pemCrc32c": crc.to_string(),
        "name": name,
        "protectionLevel": number(PROTECTION, key.protection_level),
    }))
}

fn asymmetric_sign(store: &mut Store, name: &str, body: Map<String, Json>) -> Reply {
    only_fields(&body, &["name", "digest", "digestCrc32c", "data", "dataCrc32c"])?;
    let faults = store.faults.clone();
    let (key, n) = usable(store, name)?;
    let digest = body
        .get("digest")
        .and_then(Json::as_object)
        .ok_or_else(|| invalid("digest is required for EC_SIGN_SECP256K1_SHA256."))?;
    only_fields(digest, &["sha256", "sha384", "sha512"])?;
    let b64 = digest.get("sha256").and_then(Json::as_str).ok_or_else(|| {
        invalid("The requested algorithm EC_SIGN_SECP256K1_SHA256 requires a SHA-256 digest (digest.sha256).")
    })?;
    let bytes = base64_decode(b64).ok_or_else(|| invalid("Invalid value at 'digest.sha256': not base64"))?;
    if bytes.len() != 32 {
        return Err(invalid(format!("Digest is {} bytes; a SHA-256 digest is 32 bytes.", bytes.len())));
    }
    let sent_crc = match body.get("digestCrc32c") {
        None => None,
        Some(v) => Some(int64(v).ok_or_else(|| invalid(format!("Invalid value at 'digest_crc32c' ({v})")))?),
    };
    if let Some(crc) = sent_crc
        && crc != i64::from(crc32c::crc32c(&bytes))
    {
        return Err(invalid("The checksum in field digest_crc32c did not match the data in field digest."));
    }
    let (sig, _) = key.versions[n - 1]
        .key
        .sign_prehash_recoverable(&bytes)
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL", e.to_string()))?;
    // An HSM does not normalise s: give the high-s twin half of the time.
    let mut coin = [0u8; 1];
    getrandom::fill(&mut coin).expect("random");
    let sig =
        if coin[0] & 1 == 1 { k256::ecdsa::Signature::from_scalars(sig.r(), -*sig.s()).unwrap_or(sig) } else { sig };
    let mut der = sig.to_der().as_bytes().to_vec();
    if faults.wrong_signature {
        let last = der.len() - 1;
        der[last] ^= 1;
    }
    let crc = crc32c::crc32c(&der) ^ u32::from(faults.bad_signature_crc);
    let protection = key.protection_level;
    store.signs += 1;
    Ok(json!({
        "signature": base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &der),
        "signatureCrc32c": crc.to_string(),
        "verifiedDigestCrc32c": sent_crc.is_some() && !faults.unverified_digest,
        "name": name,
        "protectionLevel": number(PROTECTION, protection),
    }))
}

fn int64(v: &Json) -> Option<i64> {
    match v {
        Json::String(s) => s.parse().ok(),
        Json::Number(n) => n.as_i64(),
        _ => None,
    }
}

fn base64_decode(s: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    let e = base64::engine::general_purpose::STANDARD;
    e.decode(s).ok().or_else(|| base64::engine::general_purpose::URL_SAFE.decode(s).ok())
}

fn iam_target_exists(store: &Store, resource: &str) -> bool {
    store.rings.contains_key(resource) || store.keys.contains_key(resource)
}

fn policy_json(p: &Policy) -> Json {
    let etag = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, p.etag_serial.to_be_bytes());
    let mut out = json!({"version": 1, "etag": etag});
    if !p.bindings.is_empty() {
        out["bindings"] = Json::Array(p.bindings.clone());
        if p.bindings.iter().any(|b| b.get("condition").is_some()) {
            out["version"] = json!(3);
        }
    }
    out
}

/// `testIamPermissions`: the subset of the asked permissions the caller holds on the
/// resource. The stand-in's caller holds every Cloud KMS permission except those denied by
/// [`Faults::denied_permissions`]. Like Google's, it needs no permission of its own, refuses
/// permissions of other services, and answers NOT_FOUND for a missing resource.
fn test_iam_permissions(store: &mut Store, resource: &str, body: Map<String, Json>) -> Reply {
    only_fields(&body, &["permissions"])?;
    if !iam_target_exists(store, resource) {
        return Err(not_found(resource));
    }
    let asked: Vec<&str> =
        body.get("permissions").and_then(Json::as_array).into_iter().flatten().filter_map(Json::as_str).collect();
    if let Some(bad) = asked.iter().find(|p| !p.starts_with("cloudkms.")) {
        return Err(invalid(format!("Permission {bad} is not valid for this resource.")));
    }
    let granted: Vec<&str> =
        asked.into_iter().filter(|p| !store.faults.denied_permissions.iter().any(|d| d == p)).collect();
    Ok(if granted.is_empty() { json!({}) } else { json!({"permissions": granted}) })
}

fn get_iam_policy(store: &mut Store, resource: &str) -> Reply {
    if !iam_target_exists(store, resource) {
        return Err(not_found(resource));
    }
    Ok(policy_json(store.policies.entry(resource.to_owned()).or_default()))
}

fn set_iam_policy(store: &mut Store, resource: &str, body: Map<String, Json>) -> Reply {
    only_fields(&body, &["policy", "updateMask"])?;
    if !iam_target_exists(store, resource) {
        return Err(not_found(resource));
    }
    let new = body.get("policy").and_then(Json::as_object).ok_or_else(|| invalid("policy is required."))?;
    only_fields(new, &["version", "bindings", "etag", "auditConfigs"])?;
    let mut bindings = Vec::new();
    for b in new.get("bindings").and_then(Json::as_array).into_iter().flatten() {
        let Some(obj) = b.as_object() else { return Err(invalid("bindings: expected objects")) };
        only_fields(obj, &["role", "members", "condition"])?;
        let role = obj.get("role").and_then(Json::as_str).unwrap_or_default();
        if !role.starts_with("roles/") {
            return Err(invalid(format!("Role {role:?} is not a valid role name.")));
        }
        let members: Vec<&str> =
            obj.get("members").and_then(Json::as_array).into_iter().flatten().filter_map(Json::as_str).collect();
        for m in &members {
            let ok = matches!(*m, "allUsers" | "allAuthenticatedUsers")
                || ["user:", "serviceAccount:", "group:", "domain:", "principal:", "principalSet:"]
                    .iter()
                    .any(|p| m.strip_prefix(p).is_some_and(|rest| !rest.is_empty()));
            if !ok {
                return Err(invalid(format!("Invalid member {m:?}.")));
            }
        }
        if !members.is_empty() {
            bindings.push(b.clone());
        }
    }
    let policy = store.policies.entry(resource.to_owned()).or_default();
    if let Some(etag) = new.get("etag").and_then(Json::as_str)
        && etag != policy_json(policy)["etag"].as_str().unwrap_or_default()
    {
        return Err(ApiError(
            StatusCode::CONFLICT,
            "ABORTED",
            "There were concurrent policy changes. Please retry the whole read-modify-write with exponential backoff."
                .into(),
        ));
    }
    policy.bindings = bindings;
    policy.etag_serial += 1;
    Ok(policy_json(policy))
}

fn page(items: Vec<Json>, q: &BTreeMap<String, String>, field: &str) -> Reply {
    let size = q.get("pageSize").and_then(|s| s.parse::<usize>().ok()).filter(|s| *s > 0).unwrap_or(100).min(1000);
    let start = match q.get("pageToken").filter(|t| !t.is_empty()) {
        Some(t) => t.parse::<usize>().map_err(|_| invalid("Invalid page token."))?,
        None => 0,
    };
    let total = items.len();
    let page: Vec<Json> = items.into_iter().skip(start).take(size).collect();
    let mut out = json!({"totalSize": total});
    if !page.is_empty() {
        out[field] = Json::Array(page);
    }
    if start + size < total {
        out["nextPageToken"] = json!((start + size).to_string());
    }
    Ok(out)
}

/// RFC 3339 UTC, as Google's APIs write timestamps.
pub fn rfc3339(t: SystemTime) -> String {
    aws_smithy_types::DateTime::from(t)
        .fmt(aws_smithy_types::date_time::Format::DateTime)
        .expect("a timestamp after 1970 formats")
}

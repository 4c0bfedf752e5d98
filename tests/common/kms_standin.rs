//! A KMS that answers at once, on loopback: `GetPublicKey`, `DescribeKey` and `Sign` over
//! AWS's JSON 1.1 protocol, with the public key and the `Sign` answers the caller chooses
//! (real signatures, high-s ones, malformed DER). For handler tests that must control what
//! "KMS" returns, and for the serve benchmark, where KMS must cost nothing. It serves on its
//! own thread and runtime until the process ends.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};

pub const KEY_ID: &str = "0b5e1c1a-5e7e-4b1e-9a1e-000000000001";
const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// The DER `Sign` answers for a digest, or `None` for a ValidationException.
pub type SignFn = dyn Fn(&[u8; 32]) -> Option<Vec<u8>> + Send + Sync;

pub struct KmsStandIn {
    pub url: String,
    /// `Sign` requests answered so far.
    pub signs: Arc<AtomicUsize>,
    /// `GetPublicKey` requests answered so far.
    pub public_keys: Arc<AtomicUsize>,
}

impl KmsStandIn {
    /// A key whose public key is `spki` (DER) of spec `key_spec`, signing with `sign`.
    pub fn start(spki: &[u8], key_spec: &'static str, sign: Arc<SignFn>) -> KmsStandIn {
        KmsStandIn::start_on(std::net::TcpListener::bind("127.0.0.1:0").unwrap(), spki, key_spec, sign)
    }

    /// [`KmsStandIn::start`] on a listener the caller bound (a port a client already knows).
    pub fn start_on(
        listener: std::net::TcpListener,
        spki: &[u8],
        key_spec: &'static str,
        sign: Arc<SignFn>,
    ) -> KmsStandIn {
        let spki = B64.encode(spki);
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let signs = Arc::new(AtomicUsize::new(0));
        let counter = signs.clone();
        let public_keys = Arc::new(AtomicUsize::new(0));
        let pk_counter = public_keys.clone();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                loop {
                    let Ok((stream, _)) = listener.accept().await else { continue };
                    let _ = stream.set_nodelay(true);
                    let (spki, sign, counter, pk_counter) =
                        (spki.clone(), sign.clone(), counter.clone(), pk_counter.clone());
                    tokio::spawn(async move {
                        let service = hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                            let (spki, sign, counter, pk_counter) =
                                (spki.clone(), sign.clone(), counter.clone(), pk_counter.clone());
                            async move {
                                let target = req
                                    .headers()
                                    .get("x-amz-target")
                                    .and_then(|v| v.to_str().ok())
                                    .unwrap_or_default()
                                    .to_owned();
                                let bytes = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                                let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                                if target == "TrentService.Sign" {
                                    counter.fetch_add(1, Ordering::Relaxed);
                                }
                                if target == "TrentService.GetPublicKey" {
                                    pk_counter.fetch_add(1, Ordering::Relaxed);
                                }
                                Ok::<_, Infallible>(answer(&target, &body, &spki, key_spec, &*sign))
                            }
                        });
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    });
                }
            });
        });
        KmsStandIn { url, signs, public_keys }
    }

    /// An SDK client for it, with static test credentials.
    pub async fn client(&self) -> aws_sdk_kms::Client {
        let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .endpoint_url(&self.url)
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(aws_credential_types::Credentials::new("test", "test", None, None, "standin"))
            .load()
            .await;
        aws_sdk_kms::Client::new(&config)
    }
}

fn answer(target: &str, body: &Value, spki: &str, key_spec: &str, sign: &SignFn) -> http::Response<Full<Bytes>> {
    let arn = format!("arn:aws:kms:us-east-1:000000000000:key/{KEY_ID}");
    let (status, value) = match target {
        "TrentService.GetPublicKey" => (
            200,
            json!({"KeyId": arn, "PublicKey": spki, "KeySpec": key_spec, "KeyUsage": "SIGN_VERIFY",
                   "SigningAlgorithms": ["ECDSA_SHA_256"]}),
        ),
        "TrentService.DescribeKey" => (
            200,
            json!({"KeyMetadata": {"KeyId": KEY_ID, "Arn": arn, "KeyState": "Enabled", "Enabled": true,
                   "KeySpec": key_spec, "KeyUsage": "SIGN_VERIFY", "AWSAccountId": "000000000000"}}),
        ),
        "TrentService.Sign" => {
            let message = body["Message"].as_str().and_then(|m| B64.decode(m).ok()).unwrap_or_default();
            match <[u8; 32]>::try_from(message.as_slice()).ok().and_then(|d| sign(&d)) {
                Some(der) => {
                    (200, json!({"KeyId": arn, "Signature": B64.encode(der), "SigningAlgorithm": "ECDSA_SHA_256"}))
                }
                None => (
                    400,
                    json!({"__type": "ValidationException", "message": "the stand-in has no answer for this digest"}),
                ),
            }
        }
        _ => (400, json!({"__type": "UnsupportedOperationException", "message": target})),
    };
    let mut response = http::Response::new(Full::new(Bytes::from(value.to_string())));
    *response.status_mut() = http::StatusCode::from_u16(status).unwrap();
    response.headers_mut().insert("content-type", http::HeaderValue::from_static("application/x-amz-json-1.1"));
    response.headers_mut().insert("x-amzn-requestid", http::HeaderValue::from_static("standin-request"));
    response
}

//! CPU per request of the Rust Lambda signer, in process (`cargo bench --bench
//! lambda_signer [-- requests]`; scripts/bench-lambda.sh runs it beside the Node template's
//! `npm run bench:signer`, whose method it follows).
//!
//! The handler ([`keyrite::lambda::Container`], what the bootstrap's runtime loop calls) runs
//! against a KMS stand-in inside the AWS SDK: an HTTP connector that answers GetPublicKey and
//! Sign from precomputed DER signatures (half of them high-s) without a socket. So KMS costs
//! ~0, and a request is: the event's JSON as the runtime receives it, its base64 body, the
//! contract, EIP-191, the SDK's Sign request (endpoint, SigV4, JSON) and response, DER,
//! low-s, recovery id and the check against the key, and the response's JSON. CPU is the
//! process's user + system time (`CLOCK_PROCESS_CPUTIME_ID`): the mean from one reading around
//! a whole run, p50/p99 from a reading around each request. The signer core alone (DER →
//! r‖s‖v, as `keyrite serve` runs it) is measured too, to show what the SDK's share is.

use std::collections::HashMap;
use std::time::Instant;

use aws_sdk_kms::config::{BehaviorVersion, Credentials, Region};
use aws_smithy_runtime_api::client::http::{HttpConnector, HttpConnectorFuture, SharedHttpConnector, http_client_fn};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_types::body::SdkBody;
use base64::Engine;
use k256::ecdsa::SigningKey;
use k256::pkcs8::EncodePublicKey;
use serde_json::{Value, json};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;
const DISTINCT: usize = 512;
const KEY_ARN: &str = "arn:aws:kms:us-east-1:111122223333:key/0b5e1c1a-5e7e-4b1e-9a1e-000000000001";

/// KMS in process: GetPublicKey, and Sign answered from a table of DER signatures.
#[derive(Debug)]
struct KmsTable {
    spki: String,
    signatures: HashMap<Vec<u8>, String>,
}

impl HttpConnector for KmsTable {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let target = request.headers().get("x-amz-target").unwrap_or_default();
        let body = if target.ends_with(".GetPublicKey") {
            json!({"KeyId": KEY_ARN, "PublicKey": self.spki, "KeySpec": "ECC_SECG_P256K1", "KeyUsage": "SIGN_VERIFY", "SigningAlgorithms": ["ECDSA_SHA_256"]})
        } else {
            let sent: Value = serde_json::from_slice(request.body().bytes().unwrap_or_default()).unwrap();
            let message = B64.decode(sent["Message"].as_str().unwrap()).unwrap();
            json!({"KeyId": KEY_ARN, "Signature": self.signatures[&message], "SigningAlgorithm": "ECDSA_SHA_256"})
        };
        let mut response = HttpResponse::new(200.try_into().unwrap(), SdkBody::from(body.to_string()));
        response.headers_mut().insert("content-type", "application/x-amz-json-1.1");
        HttpConnectorFuture::ready(Ok(response))
    }
}

/// The process's CPU time (user + system), in microseconds.
fn cpu_micros() -> f64 {
    let mut t = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes one timespec through a valid pointer.
    assert_eq!(unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut t) }, 0);
    t.tv_sec as f64 * 1e6 + t.tv_nsec as f64 / 1e3
}

/// Mean, p50 and p99 CPU (µs) of `f(i)` for i < count, after a warm-up, as the Node bench
/// measures: p50/p99 from a reading around each call, the mean from one around a whole run.
async fn measure<F, Fut>(name: &str, count: usize, f: F)
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    for i in 0..count.min(2000) {
        f(i).await;
    }
    let mut samples = Vec::with_capacity(count);
    for i in 0..count {
        let start = cpu_micros();
        f(i).await;
        samples.push(cpu_micros() - start);
    }
    let start = cpu_micros();
    for i in 0..count {
        f(i).await;
    }
    let mean = (cpu_micros() - start) / count as f64;
    samples.sort_by(f64::total_cmp);
    let at = |q: f64| samples[((q * count as f64) as usize).min(count - 1)];
    println!("{name:<52} n={count:<6} mean {mean:>7.1} µs   p50 {:>6.1} µs   p99 {:>6.1} µs", at(0.5), at(0.99));
}

/// One invocation as the runtime loop makes it: the payload's JSON, the handler, the
/// response's JSON.
async fn answer(container: &keyrite::lambda::Container, payload: &[u8]) {
    let event: Value = serde_json::from_slice(payload).unwrap();
    let response = container.handle(&event).await;
    let bytes = serde_json::to_vec(&response).unwrap();
    assert!(response["statusCode"] == 200, "{}", String::from_utf8_lossy(&bytes));
}

fn main() {
    let requests: usize = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(5000);
    let key = SigningKey::from_slice(&[0x42; 32]).unwrap();
    let public = k256::PublicKey::from(key.verifying_key());
    let spki = public.to_public_key_der().unwrap();
    let address = keyrite::crypto::evm_address(&public);
    let digests: Vec<[u8; 32]> = (0..DISTINCT).map(|i| keyrite::crypto::keccak256(&(i as u64).to_be_bytes())).collect();
    let mut signatures = HashMap::new();
    let mut ders: Vec<(Vec<u8>, Vec<u8>)> = Vec::new(); // eip191, digest
    for (i, d) in digests.iter().enumerate() {
        let mut der_of = |prehash: [u8; 32]| {
            let (sig, _) = key.sign_prehash_recoverable(&prehash).unwrap();
            let (r, s) = sig.split_scalars();
            // Half the answers high-s, as KMS gives about half the time.
            let sig = if i % 2 == 0 {
                sig
            } else {
                k256::ecdsa::Signature::from_scalars(r.to_bytes(), (-*s).to_bytes()).unwrap()
            };
            let der = sig.to_der().as_bytes().to_vec();
            signatures.insert(prehash.to_vec(), B64.encode(&der));
            der
        };
        ders.push((der_of(keyrite::crypto::eip191_hash(d)), der_of(*d)));
    }
    let connector = SharedHttpConnector::new(KmsTable { spki: B64.encode(spki.as_bytes()), signatures });
    let conf = aws_sdk_kms::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("AKIDBENCHMARK", "bench-secret", None, None, "bench"))
        .http_client(http_client_fn(move |_, _| connector.clone()))
        .build();
    let kms = aws_sdk_kms::Client::from_conf(conf);
    let payloads = |mode: &str| -> Vec<Vec<u8>> {
        digests
            .iter()
            .map(|d| {
                let body = json!({"userOpHash": format!("0x{}", hex::encode(d)), "signerAddress": address.to_string()});
                let event = match mode {
                    "rest" => json!({"httpMethod": "POST", "resource": "/sign", "body": body.to_string(), "isBase64Encoded": false}),
                    _ => json!({"version": "2.0", "requestContext": {"http": {"method": "POST"}}, "body": B64.encode(body.to_string()), "isBase64Encoded": true}),
                };
                event.to_string().into_bytes()
            })
            .collect()
    };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let containers: Vec<(&str, keyrite::lambda::Container)> = ["eip191", "digest"]
            .into_iter()
            .map(|mode| {
                let config = keyrite::lambda::Config::from_env(|name| match name {
                    "KMS_KEY_ID" => Some("alias/bench".to_owned()),
                    "EXPECTED_ADDRESS" => Some(address.to_string()),
                    "SIGNING_MODE" => Some(mode.to_owned()),
                    _ => None,
                });
                (mode, keyrite::lambda::Container::new(config, kms.clone()))
            })
            .collect();
        for (mode, container) in &containers {
            let (cpu, wall) = (cpu_micros(), Instant::now());
            container.handler().await.unwrap();
            println!(
                "{:<52} cold-start check (GetPublicKey in process): {:.0} µs CPU, {:.0} µs wall",
                format!("rust handler, {mode}"),
                cpu_micros() - cpu,
                wall.elapsed().as_secs_f64() * 1e6
            );
        }
        let (url, rest) = (&payloads("url"), &payloads("rest"));
        let (eip, digest) = (&containers[0].1, &containers[1].1);
        measure("rust handler, eip191, Function URL event (base64)", requests, move |i| {
            answer(eip, &url[i % DISTINCT])
        })
        .await;
        measure("rust handler, eip191, REST event", requests, move |i| answer(eip, &rest[i % DISTINCT])).await;
        measure("rust handler, digest mode, Function URL event", requests, move |i| answer(digest, &url[i % DISTINCT]))
            .await;
        let prepared = &keyrite::crypto::PreparedKey::new(&public);
        let eip191_der: &HashMap<[u8; 32], &[u8]> =
            &digests.iter().zip(&ders).map(|(d, (der, _))| (*d, der.as_slice())).collect();
        let (digests, ders, public, address) = (&digests, &ders, &public, &address);
        // The Node bench's boundary: its KMS stand-in replaces the SDK's `send`, so no request
        // is built or signed. The same here: event, contract, EIP-191, the DER KMS would send
        // (looked up as the stand-in does), the check, the response.
        measure("rust handler without the SDK (the Node bench's boundary)", requests, move |i| async move {
            let event: Value = serde_json::from_slice(&url[i % DISTINCT]).unwrap();
            let body = B64.decode(event["body"].as_str().unwrap()).unwrap();
            let digest = keyrite::contract::parse_request(&body, address).unwrap();
            let prehash = keyrite::crypto::eip191_hash(&digest);
            let sig = prepared.signature_rsv(&prehash, eip191_der[&digest]).unwrap();
            let response = json!({"statusCode": 200, "headers": {"content-type": "application/json"},
                "body": keyrite::contract::response_body(&sig, address).to_string()});
            std::hint::black_box(serde_json::to_vec(&response).unwrap());
        })
        .await;
        measure("rust core: DER -> low-s r||s||v, checked (PreparedKey)", requests, move |i| async move {
            let prehash = keyrite::crypto::eip191_hash(&digests[i % DISTINCT]);
            prepared.signature_rsv(&prehash, &ders[i % DISTINCT].0).unwrap();
        })
        .await;
        measure("rust core: the same with k256's lincomb (signature_rsv)", requests, move |i| async move {
            let prehash = keyrite::crypto::eip191_hash(&digests[i % DISTINCT]);
            keyrite::crypto::signature_rsv(public, &prehash, &ders[i % DISTINCT].0).unwrap();
        })
        .await;
    });
}

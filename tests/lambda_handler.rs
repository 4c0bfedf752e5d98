//! The Rust Lambda signer's handler (`keyrite::lambda`), in process, against a KMS stand-in
//! that answers what each test chooses: real signatures, their high-s twins, signatures
//! whose r or s is short in DER, malformed DER, another key, another curve. Every signature
//! that comes back is recovered here with k256, apart from keyrite's own code.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use base64::Engine;
use k256::ecdsa::{RecoveryId, Signature, SigningKey, VerifyingKey};
use k256::pkcs8::EncodePublicKey;
use keyrite::lambda::{Config, Container, Handler};
use serde_json::{Value, json};
use sha3::{Digest, Keccak256};

use crate::common::kms_standin::{KEY_ID, KmsStandIn, SignFn};

fn address_of(key: &VerifyingKey) -> String {
    let point = key.to_encoded_point(false);
    format!("0x{}", hex::encode(&Keccak256::digest(&point.as_bytes()[1..])[12..]))
}

/// True when a scalar's minimal DER INTEGER is shorter than 32 bytes.
fn short(bytes: k256::FieldBytes) -> bool {
    bytes[0] == 0 && bytes[1] < 0x80
}

fn key(seed: u8) -> SigningKey {
    SigningKey::from_slice(&[seed; 32]).unwrap()
}

fn spki(key: &SigningKey) -> Vec<u8> {
    k256::PublicKey::from(key.verifying_key()).to_public_key_der().unwrap().as_bytes().to_vec()
}

fn eip191(digest: &[u8; 32]) -> [u8; 32] {
    let mut h = Keccak256::new();
    h.update(b"\x19Ethereum Signed Message:\n32");
    h.update(digest);
    h.finalize().into()
}

/// `(r, s)` as DER, each INTEGER minimal (a leading 0x00 only before a high bit).
fn der(r: &[u8; 32], s: &[u8; 32]) -> Vec<u8> {
    let int = |v: &[u8; 32]| {
        let mut bytes: Vec<u8> = v.iter().copied().skip_while(|b| *b == 0).collect();
        if bytes.first().is_none_or(|b| b & 0x80 != 0) {
            bytes.insert(0, 0);
        }
        let mut out = vec![0x02, bytes.len() as u8];
        out.extend(bytes);
        out
    };
    let body = [int(r), int(s)].concat();
    [vec![0x30, body.len() as u8], body].concat()
}

/// KMS signing with `key`, its signature passed through `shape` on the way out.
fn kms_of(key: &SigningKey, shape: fn(Signature) -> Vec<u8>) -> Arc<SignFn> {
    let key = key.clone();
    Arc::new(move |d: &[u8; 32]| Some(shape(key.sign_prehash_recoverable(d).unwrap().0)))
}

fn high_s(sig: Signature) -> Vec<u8> {
    let (r, s) = sig.split_scalars();
    der(&r.to_bytes().into(), &(-*s).to_bytes().into())
}

fn url_event(body: &Value) -> Value {
    let b64 = base64::engine::general_purpose::STANDARD.encode(body.to_string());
    json!({"version": "2.0", "requestContext": {"http": {"method": "POST"}}, "body": b64, "isBase64Encoded": true})
}

fn rest_event(body: &Value) -> Value {
    json!({"httpMethod": "POST", "resource": "/sign", "body": body.to_string(), "isBase64Encoded": false})
}

fn config(address: &str, mode: &str) -> anyhow::Result<Config> {
    Config::from_env(|name| match name {
        "KMS_KEY_ID" => Some(KEY_ID.to_owned()),
        "EXPECTED_ADDRESS" => Some(address.to_owned()),
        "SIGNING_MODE" => Some(mode.to_owned()),
        _ => None,
    })
}

async fn handler(kms: &KmsStandIn, address: &str, mode: &str) -> anyhow::Result<Handler> {
    Handler::init(kms.client().await, &config(address, mode)?).await
}

/// (status, body) of an answer.
fn answer(response: &Value) -> (u64, Value) {
    assert_eq!(response["headers"]["content-type"], "application/json");
    (response["statusCode"].as_u64().unwrap(), serde_json::from_str(response["body"].as_str().unwrap()).unwrap())
}

/// The address a 200 answer's signature recovers to over `prehash`, requiring low-s and
/// v ∈ {27, 28}.
fn recovered(body: &Value, prehash: &[u8; 32]) -> String {
    let sig = hex::decode(body["signature"].as_str().unwrap().trim_start_matches("0x")).unwrap();
    assert_eq!(sig.len(), 65);
    let signature = Signature::from_slice(&sig[..64]).unwrap();
    assert!(signature.normalize_s().is_none(), "high-s signature returned");
    assert!(matches!(sig[64], 27 | 28));
    let id = RecoveryId::from_byte(sig[64] - 27).unwrap();
    address_of(&VerifyingKey::recover_from_prehash(prehash, &signature, id).unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn signs_url_and_rest_events_in_both_modes_and_refuses_bad_requests_before_kms() {
    let key = key(7);
    let address = address_of(key.verifying_key());
    let kms = KmsStandIn::start(&spki(&key), "ECC_SECG_P256K1", kms_of(&key, |s| s.to_der().as_bytes().to_vec()));
    let eip = handler(&kms, &address, "eip191").await.unwrap();
    let digest = [0x42u8; 32];
    let hash = format!("0x{}", hex::encode(digest));
    for event in [url_event(&json!({"userOpHash": hash})), rest_event(&json!({"hash": hash, "signerAddress": address}))]
    {
        let (status, body) = answer(&eip.handle(&event).await);
        assert_eq!(status, 200, "{body}");
        assert_eq!(recovered(&body, &eip191(&digest)), address);
        assert_eq!(body["address"].as_str().unwrap().to_lowercase(), address);
    }
    let raw = handler(&kms, &address, "digest").await.unwrap();
    let (status, body) = answer(&raw.handle(&url_event(&json!({"digest": hash}))).await);
    assert_eq!(status, 200, "{body}");
    assert_eq!(recovered(&body, &digest), address, "digest mode signs the 32 bytes as given");

    // Bad requests get 400 or 405 with the reason, and never reach KMS.
    let signs = kms.signs.load(Ordering::Relaxed);
    let other = json!({"hash": hash, "signerAddress": "0x0000000000000000000000000000000000000001"});
    let cases = [
        (rest_event(&other), 400, "is not this signer"),
        (json!({"httpMethod": "POST", "body": "{not json"}), 400, "not valid JSON"),
        (json!({"httpMethod": "POST", "body": "[1]"}), 400, "JSON object"),
        (rest_event(&json!({"hash": "0x1234"})), 400, "hash:"),
        (json!({"requestContext": {"http": {"method": "GET"}}}), 405, "method not allowed"),
    ];
    for (event, want, message) in cases {
        let (status, body) = answer(&eip.handle(&event).await);
        assert_eq!(status, want, "{event}: {body}");
        assert!(body["error"].as_str().unwrap().contains(message), "{body}");
    }
    assert_eq!(kms.signs.load(Ordering::Relaxed), signs);
}

#[tokio::test(flavor = "multi_thread")]
async fn high_s_short_r_and_short_s_der_give_low_s_signatures_that_recover() {
    let key = key(9);
    let address = address_of(key.verifying_key());
    // Digests whose signature has r, and then s, under 2^248: one DER INTEGER byte shorter.
    let find = |short: fn(&Signature) -> bool| -> [u8; 32] {
        (0u32..20_000)
            .map(|i| <[u8; 32]>::from(Keccak256::digest(i.to_be_bytes())))
            .find(|d| short(&key.sign_prehash_recoverable(d).unwrap().0))
            .expect("a short component within 20,000 signatures")
    };
    let short_r = find(|s| short(s.r().to_bytes()));
    let short_s = find(|s| short(s.s().to_bytes()));
    for (shape, name) in
        [(high_s as fn(Signature) -> Vec<u8>, "high-s"), (|s: Signature| s.to_der().as_bytes().to_vec(), "minimal")]
    {
        let kms = KmsStandIn::start(&spki(&key), "ECC_SECG_P256K1", kms_of(&key, shape));
        let handler = handler(&kms, &address, "digest").await.unwrap();
        for digest in [short_r, short_s, [0x01; 32]] {
            let (status, body) =
                answer(&handler.handle(&url_event(&json!({"hash": format!("0x{}", hex::encode(digest))}))).await);
            assert_eq!(status, 200, "{name}: {body}");
            assert_eq!(recovered(&body, &digest), address, "{name}");
        }
    }
    // The short components really are short in the DER KMS sends.
    assert_eq!(key.sign_prehash_recoverable(&short_r).unwrap().0.to_der().as_bytes()[3], 31);
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_der_or_another_keys_signature_is_a_500_with_no_signature() {
    let key = key(11);
    let address = address_of(key.verifying_key());
    let stranger = self::key(12);
    let cases: [(Arc<SignFn>, &str); 3] = [
        (Arc::new(|_: &[u8; 32]| Some(vec![0x30, 0x03, 0x02, 0x01])), "truncated DER"),
        (Arc::new(|_: &[u8; 32]| Some(b"not a signature".to_vec())), "not DER at all"),
        (kms_of(&stranger, |s| s.to_der().as_bytes().to_vec()), "another key's signature"),
    ];
    for (sign, name) in cases {
        let kms = KmsStandIn::start(&spki(&key), "ECC_SECG_P256K1", sign);
        let handler = handler(&kms, &address, "eip191").await.unwrap();
        let (status, body) =
            answer(&handler.handle(&url_event(&json!({"hash": format!("0x{}", "ab".repeat(32))}))).await);
        assert_eq!(status, 500, "{name}: {body}");
        assert_eq!(body, json!({"error": "internal error"}), "{name}: no signature and no internals");
        assert_eq!(kms.signs.load(Ordering::Relaxed), 1, "{name}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_key_that_is_not_the_expected_address_or_not_secp256k1_signs_nothing() {
    let key = key(13);
    let expected = address_of(self::key(14).verifying_key());
    let kms = KmsStandIn::start(&spki(&key), "ECC_SECG_P256K1", kms_of(&key, |s| s.to_der().as_bytes().to_vec()));
    let err = handler(&kms, &expected, "eip191").await.err().expect("init must fail").to_string();
    assert!(err.contains("refusing to sign") && err.to_lowercase().contains(&expected[2..10]), "{err}");
    // A NIST P-256 key, as KMS describes one.
    let p256 = p256::SecretKey::from_slice(&[5; 32]).unwrap().public_key();
    let der = {
        use p256::pkcs8::EncodePublicKey;
        p256.to_public_key_der().unwrap().as_bytes().to_vec()
    };
    let nist = KmsStandIn::start(&der, "ECC_NIST_P256", kms_of(&key, |s| s.to_der().as_bytes().to_vec()));
    let err = handler(&nist, &expected, "eip191").await.err().expect("init must fail").to_string();
    assert!(err.contains("ECC_NIST_P256, not ECC_SECG_P256K1"), "{err}");
    assert_eq!(kms.signs.load(Ordering::Relaxed) + nist.signs.load(Ordering::Relaxed), 0, "nothing was signed");
}

/// A KMS client for `url` that tries once: a fault is the container's to handle.
async fn one_try_client(url: &str) -> aws_sdk_kms::Client {
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(url)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_credential_types::Credentials::new("test", "test", None, None, "standin"))
        .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(1))
        .load()
        .await;
    aws_sdk_kms::Client::new(&config)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_container_signs_nothing_until_its_key_checks_out_and_recovers_from_a_kms_fault_at_cold_start() {
    let key = key(15);
    let address = address_of(key.verifying_key());
    let request = url_event(&json!({"hash": format!("0x{}", "cd".repeat(32))}));
    let internal = (500, json!({"error": "internal error"}));

    // KMS is unreachable at cold start: 500, and the next event checks the key again.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let container = Container::new(config(&address, "eip191"), one_try_client(&url).await);
    assert!(container.handler().await.is_err(), "nothing listens at {url}");
    assert_eq!(answer(&container.handle(&request).await), internal);
    let listener = std::net::TcpListener::bind(url.trim_start_matches("http://")).unwrap();
    let kms = KmsStandIn::start_on(
        listener,
        &spki(&key),
        "ECC_SECG_P256K1",
        kms_of(&key, |s| s.to_der().as_bytes().to_vec()),
    );
    let (status, body) = answer(&container.handle(&request).await);
    assert_eq!(status, 200, "{body}");
    assert_eq!(recovered(&body, &eip191(&[0xcd; 32])), address);
    assert_eq!(kms.signs.load(Ordering::Relaxed), 1);

    // A key for another address, or no configuration: 500 for every event, and no Sign.
    let other = address_of(self::key(16).verifying_key());
    let wrong = Container::new(config(&other, "eip191"), kms.client().await);
    let unset = Container::new(Config::from_env(|_| None), kms.client().await);
    for container in [&wrong, &unset] {
        for _ in 0..2 {
            assert_eq!(answer(&container.handle(&request).await), internal);
        }
    }
    assert!(wrong.handler().await.err().unwrap().to_string().contains("refusing to sign"));
    // The mismatch was learnt from one GetPublicKey; the container remembers it, so more
    // events (and the unset container) make no further KMS call.
    let before = kms.public_keys.load(Ordering::Relaxed);
    for _ in 0..5 {
        assert_eq!(answer(&wrong.handle(&request).await), internal);
    }
    assert_eq!(kms.public_keys.load(Ordering::Relaxed), before, "GetPublicKey again after a mismatch");
    let fresh = Container::new(config(&other, "eip191"), kms.client().await);
    for _ in 0..3 {
        assert_eq!(answer(&fresh.handle(&request).await), internal);
    }
    assert_eq!(kms.public_keys.load(Ordering::Relaxed), before + 1, "one GetPublicKey per container");
    assert!(unset.handler().await.err().unwrap().to_string().contains("KMS_KEY_ID is not set"));
    assert_eq!(kms.signs.load(Ordering::Relaxed), 1, "nothing signed for a key that did not check out");
}

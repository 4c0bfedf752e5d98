//! keyrite's Lambda signer: the `bootstrap` of a `provided.al2023` function that answers a
//! Function URL (payload 2.0) or API Gateway REST (`AWS_PROXY`) event, and the AWS KMS key
//! every keyrite signer on AWS signs with ([`kms`]; `keyrite serve` and `keyrite sign` use
//! it too). The request is read by the core's [`keyrite_core::contract`], as `keyrite
//! serve` reads it, and a signature goes through [`kms::KmsKey`]: DER → low-s → recovery
//! id, checked to be the configured address's.
//!
//! Owns: the handler, its configuration, the runtime loop (feature `runtime`, on by default:
//! the official `lambda_runtime` crate). Must not import: keyrite's CLI, manifest or
//! providers, or any SDK but KMS's; it is deployed, so it stays small (README, "Packaging").
//!
//! Configuration is the Node template's (`templates/aws-lambda-signer`): `KMS_KEY_ID` (key
//! id, ARN or alias), `EXPECTED_ADDRESS` (EIP-55 checked when mixed-case) and
//! `SIGNING_MODE` (`eip191`, the default, or `digest`). With `SIGNING_MODE=gate` the function
//! is a recovery key's quorum gate ([`keyrite_core::gate`], configured by
//! `GATE_ALLOWED_SIGNERS`, `GATE_THRESHOLD` and `GATE_ENROLMENT`): it signs an enrolment's
//! EIP-712 digest once k approvers have approved it, refuses everything else before any KMS
//! call, and never signs a request's digest. At cold start [`Handler::init`]
//! fetches the public key once, refuses a key that is not secp256k1 or whose address is not
//! `EXPECTED_ADDRESS` (the function then signs nothing), and keeps one KMS client for the
//! container's life.
//!
//! Answers: 200 with the contract's body; 400 (or 405 for another method) with
//! `{"error": what is wrong with the request}`; 500 with `{"error": "internal error"}` for a
//! KMS fault or a signature that does not check out, the detail on stderr (CloudWatch).
//!
//! [`run`] is the bootstrap's life (`keyrite-lambda-signer`): the configuration and one KMS
//! client at cold start, the key checked before the first event, then the Lambda Runtime
//! API loop. A cold-start check that failed on a KMS fault is tried again at the next
//! event, as the Node template does; a bad configuration or a key for another address signs
//! nothing, and the key's mismatch is remembered, so later events make no further
//! `GetPublicKey` call.

pub mod kms;

use base64::Engine;
use serde_json::{Value, json};
use tokio::sync::OnceCell;

use keyrite_core::crypto::Address;
use keyrite_core::gate::{self, Gate};
use keyrite_core::signing::SigningMode;

use crate::kms::KmsKey;

/// The function's configuration, from its environment.
#[derive(Clone, Debug)]
pub struct Config {
    pub key_id: String,
    pub address: Address,
    pub mode: SigningMode,
    /// `SIGNING_MODE=gate`: a recovery key's quorum gate, which signs only approved
    /// enrolments ([`keyrite_core::gate`]) and never a request's digest.
    pub gate: Option<Gate>,
}

impl Config {
    /// Reads `KMS_KEY_ID`, `EXPECTED_ADDRESS` and `SIGNING_MODE` through `var`.
    pub fn from_env(var: impl Fn(&str) -> Option<String>) -> anyhow::Result<Config> {
        let get = |name: &str| var(name).map(|v| v.trim().to_owned()).unwrap_or_default();
        let key_id = get("KMS_KEY_ID");
        anyhow::ensure!(!key_id.is_empty(), "KMS_KEY_ID is not set");
        let text = get("EXPECTED_ADDRESS");
        let address: Address = text.parse().map_err(|e| {
            anyhow::anyhow!("EXPECTED_ADDRESS is not a 0x-prefixed 20-byte hex address: {text:?} ({e})")
        })?;
        let digits = &text[2..];
        let mixed = digits != digits.to_lowercase() && digits != digits.to_uppercase();
        anyhow::ensure!(!mixed || address.to_string() == text, "EXPECTED_ADDRESS fails its EIP-55 checksum: {text}");
        let (mode, gate) = match get("SIGNING_MODE").to_lowercase().as_str() {
            "" | "eip191" => (SigningMode::Eip191, None),
            "digest" => (SigningMode::Digest, None),
            // EIP-712 digests are signed as they are.
            "gate" => (SigningMode::Digest, Some(Gate::from_env(&var).map_err(anyhow::Error::msg)?)),
            other => anyhow::bail!("SIGNING_MODE must be one of eip191, digest, gate: {other:?}"),
        };
        // A gate's configuration on a plain signer would be a recovery key's policy trusting a
        // function that does not check approvals: refused, rather than ignored.
        if gate.is_none()
            && let Some(name) = [gate::ENV_ALLOWED_SIGNERS, gate::ENV_THRESHOLD, gate::ENV_ENROLMENT]
                .into_iter()
                .find(|n| var(n).is_some())
        {
            anyhow::bail!("{name} is set, but SIGNING_MODE is not gate");
        }
        Ok(Config { key_id, address, mode, gate })
    }
}

/// One container's signer: the key, checked once, and its KMS client.
pub struct Handler {
    signer: KmsKey,
    mode: SigningMode,
    gate: Option<Gate>,
}

impl Handler {
    /// Cold start: GetPublicKey, the key's spec and curve, and its address against
    /// `EXPECTED_ADDRESS`. An error here means the function signs nothing.
    pub async fn init(kms: aws_sdk_kms::Client, config: &Config) -> anyhow::Result<Handler> {
        Handler::init_checked(kms, config).await.map_err(InitError::into_anyhow)
    }

    async fn init_checked(kms: aws_sdk_kms::Client, config: &Config) -> Result<Handler, InitError> {
        let signer = KmsKey::connect(kms, &config.key_id).await.map_err(|e| InitError::Fault(e.into()))?;
        if *signer.address() != config.address {
            return Err(InitError::WrongAddress(format!(
                "KMS key {} signs for {}, not EXPECTED_ADDRESS {}; refusing to sign",
                config.key_id,
                signer.address(),
                config.address
            )));
        }
        Ok(Handler { signer, mode: config.mode, gate: config.gate.clone() })
    }

    /// The address the key signs for (checked against `EXPECTED_ADDRESS`).
    pub fn address(&self) -> &Address {
        self.signer.address()
    }

    pub fn mode(&self) -> SigningMode {
        self.mode
    }

    /// The quorum gate this function is, if it is one.
    pub fn gate(&self) -> Option<&Gate> {
        self.gate.as_ref()
    }

    /// Answers one event with the API Gateway / Function URL response object.
    pub async fn handle(&self, event: &Value) -> Value {
        if let Some(gate) = &self.gate {
            return self.authorize(gate, event, keyrite_core::ceremony::unix_now()).await;
        }
        let digest = match request(event)
            .and_then(|body| keyrite_core::contract::parse_request(&body, self.signer.address()).map_err(|m| (400, m)))
        {
            Ok(d) => d,
            Err((status, message)) => return reply(status, &json!({ "error": message })),
        };
        match self.signer.sign(&digest, self.mode).await {
            Ok(sig) => reply(200, &keyrite_core::contract::response_body(&sig, self.signer.address())),
            Err(e) => {
                eprintln!("keyrite signer: internal error: {e}");
                reply(500, &json!({"error": "internal error"}))
            }
        }
    }
}

impl Handler {
    /// A gate's answer at `now`: a refusal makes no KMS call; an authorized enrolment's
    /// EIP-712 digest is signed as it is. Every decision leaves one line on stderr
    /// (CloudWatch): what was asked, who approved, and the outcome.
    pub async fn authorize(&self, gate: &Gate, event: &Value, now: u64) -> Value {
        let body = match request(event) {
            Ok(body) => body,
            Err((status, message)) => return reply(status, &json!({ "error": message })),
        };
        let ok = match gate.authorize(&body, now) {
            Ok(ok) => ok,
            Err(refusal) => {
                eprintln!("keyrite gate: refused: {refusal}");
                return reply(refusal.status(), &json!({ "error": refusal.to_string() }));
            }
        };
        let m = &ok.enrolment.message;
        let digest = format!("0x{}", hex::encode(ok.digest));
        match self.signer.sign(&ok.digest, SigningMode::Digest).await {
            Ok(sig) => {
                eprintln!(
                    "keyrite gate: signed enrolment {digest} of {} replacing {} (nonce {}, deadline {}), approved by {}",
                    m.new_signer,
                    m.replaces,
                    m.nonce,
                    m.deadline,
                    ok.approvers.join(", ")
                );
                let mut body = keyrite_core::contract::response_body(&sig, self.signer.address());
                body["digest"] = json!(digest);
                body["approvers"] = json!(ok.approvers);
                body["gate"] = json!(gate.fingerprint());
                reply(200, &body)
            }
            Err(e) => {
                eprintln!("keyrite gate: internal error signing enrolment {digest}: {e}");
                reply(500, &json!({"error": "internal error"}))
            }
        }
    }
}

/// Why a key did not check out.
#[derive(Debug, thiserror::Error)]
enum InitError {
    /// KMS did not answer as it should (unreachable, throttled): worth asking again.
    #[error(transparent)]
    Fault(anyhow::Error),
    /// The key is not `EXPECTED_ADDRESS`'s: asking again gives the same answer.
    #[error("{0}")]
    WrongAddress(String),
}

impl InitError {
    fn into_anyhow(self) -> anyhow::Error {
        match self {
            InitError::Fault(e) => e,
            other => anyhow::anyhow!("{other}"),
        }
    }
}

/// A container's signer as the runtime loop holds it: the configuration read at cold start,
/// one KMS client, and the [`Handler`] once its key has checked out. A key for another
/// address is remembered as such, once per container: a misconfigured function answers 500
/// to every event without calling `GetPublicKey` again, so its callers cannot multiply KMS
/// calls; only a KMS fault is retried.
pub struct Container {
    config: Result<Config, String>,
    kms: aws_sdk_kms::Client,
    ready: OnceCell<Handler>,
    refused: std::sync::OnceLock<String>,
}

impl Container {
    pub fn new(config: anyhow::Result<Config>, kms: aws_sdk_kms::Client) -> Container {
        Container {
            config: config.map_err(|e| format!("{e:#}")),
            kms,
            ready: OnceCell::new(),
            refused: std::sync::OnceLock::new(),
        }
    }

    /// The checked key's handler: [`Handler::init`] the first time, and again after a
    /// failure (a KMS fault at cold start must not leave the container refusing forever).
    pub async fn handler(&self) -> anyhow::Result<&Handler> {
        let config = self.config.as_ref().map_err(|e| anyhow::anyhow!("misconfigured: {e}"))?;
        if let Some(refusal) = self.refused.get() {
            anyhow::bail!("{refusal} (checked once at cold start)");
        }
        match self.ready.get_or_try_init(|| Handler::init_checked(self.kms.clone(), config)).await {
            Ok(handler) => Ok(handler),
            Err(InitError::WrongAddress(refusal)) => {
                let refusal = self.refused.get_or_init(|| refusal);
                anyhow::bail!("{refusal}")
            }
            Err(e) => Err(e.into_anyhow()),
        }
    }

    /// Answers one event: 500 `internal error` while the key has not checked out (the
    /// cause on stderr), else [`Handler::handle`].
    pub async fn handle(&self, event: &Value) -> Value {
        match self.handler().await {
            Ok(handler) => handler.handle(event).await,
            Err(e) => {
                eprintln!("keyrite signer: signing nothing: {e:#}");
                reply(500, &json!({"error": "internal error"}))
            }
        }
    }
}

/// The bootstrap's life, from `started` (the process's start): configuration, the SDK's
/// configuration and KMS client, the key's check, one log line with the timings, then the
/// runtime loop until Lambda ends the container.
#[cfg(feature = "runtime")]
pub async fn run(started: std::time::Instant) -> anyhow::Result<()> {
    let config = Config::from_env(|name| std::env::var(name).ok());
    // The SDK's HTTPS client on rustls with ring: the same TLS stack and native roots as its
    // default client, without aws-lc's build.
    let https = aws_smithy_http_client::Builder::new()
        .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
            aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https();
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest()).http_client(https).load().await;
    let container = Container::new(config, aws_sdk_kms::Client::new(&sdk));
    let setup = started.elapsed();
    let checked = std::time::Instant::now();
    match container.handler().await {
        Ok(h) => eprintln!(
            "keyrite signer: ready in {} ms (setup {} ms, key check {} ms: GetPublicKey and the key's tables), \
             signing for {} ({})",
            millis(started.elapsed()),
            millis(setup),
            millis(checked.elapsed()),
            h.address(),
            h.gate().map_or_else(
                || h.mode().as_str().to_owned(),
                |g| format!("quorum gate, {} approvals, configuration {}", g.threshold(), g.fingerprint())
            )
        ),
        Err(e) => eprintln!("keyrite signer: not ready after {} ms, signing nothing: {e:#}", millis(setup)),
    }
    let (container, first) = (&container, &std::sync::Once::new());
    lambda_runtime::run(lambda_runtime::service_fn(move |event: lambda_runtime::LambdaEvent<Value>| async move {
        let response = container.handle(&event.payload).await;
        first.call_once(|| eprintln!("keyrite signer: first answer {} ms after start", millis(started.elapsed())));
        Ok::<Value, lambda_runtime::Error>(response)
    }))
    .await
    .map_err(|e| anyhow::anyhow!("the Lambda runtime loop ended: {e}"))
}

#[cfg(feature = "runtime")]
fn millis(d: std::time::Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

/// The body of a POST event: Function URL / HTTP API (`requestContext.http.method`) or REST
/// API (`httpMethod`), base64 when `isBase64Encoded`.
fn request(event: &Value) -> Result<Vec<u8>, (u16, String)> {
    let method = event
        .pointer("/requestContext/http/method")
        .or_else(|| event.get("httpMethod"))
        .and_then(Value::as_str)
        .unwrap_or_default();
    if method != "POST" {
        return Err((405, "method not allowed: send a POST with a JSON body".into()));
    }
    let body = event.get("body").and_then(Value::as_str).unwrap_or_default();
    if event.get("isBase64Encoded").and_then(Value::as_bool).unwrap_or(false) {
        base64::engine::general_purpose::STANDARD
            .decode(body)
            .map_err(|_| (400, "the request body is marked base64 but is not base64".into()))
    } else {
        Ok(body.as_bytes().to_vec())
    }
}

fn reply(status: u16, body: &Value) -> Value {
    json!({"statusCode": status, "headers": {"content-type": "application/json"}, "body": body.to_string()})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let pairs: Vec<(String, String)> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |name| pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    }

    #[test]
    fn reads_the_node_templates_configuration() {
        let address = "0x2c7536E3605D9C16a7a3D7b1898e529396a65c23";
        let config =
            Config::from_env(env(&[("KMS_KEY_ID", " alias/treasury "), ("EXPECTED_ADDRESS", address)])).unwrap();
        assert_eq!(
            (config.key_id.as_str(), config.address.to_string(), config.mode),
            ("alias/treasury", address.to_owned(), SigningMode::Eip191)
        );
        let lower = address.to_lowercase();
        let digest =
            Config::from_env(env(&[("KMS_KEY_ID", "k"), ("EXPECTED_ADDRESS", &lower), ("SIGNING_MODE", "DIGEST")]));
        assert_eq!(digest.unwrap().mode, SigningMode::Digest);
        let err = |pairs: &[(&str, &str)]| Config::from_env(env(pairs)).unwrap_err().to_string();
        assert_eq!(err(&[("EXPECTED_ADDRESS", address)]), "KMS_KEY_ID is not set");
        assert!(err(&[("KMS_KEY_ID", "k"), ("EXPECTED_ADDRESS", "0x12")]).starts_with("EXPECTED_ADDRESS is not"));
        let bad_case = address.replace('E', "e").replacen('c', "C", 1);
        assert!(err(&[("KMS_KEY_ID", "k"), ("EXPECTED_ADDRESS", &bad_case)]).contains("EIP-55"));
        assert!(
            err(&[("KMS_KEY_ID", "k"), ("EXPECTED_ADDRESS", address), ("SIGNING_MODE", "raw")])
                .contains("SIGNING_MODE")
        );
    }

    #[test]
    fn a_gate_is_configured_whole_or_not_at_all() {
        let address = "0x2c7536E3605D9C16a7a3D7b1898e529396a65c23";
        let signers = "alice ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFGl23c1u8L8EtLZ1JOGIDxsYnjzd9qFlNHOPrKQdkYi\n";
        let scope = format!(
            r#"{{"domain": {{"name": "T", "version": "1", "chainId": 1, "verifyingContract": "{address}"}}, "wallet": "{address}"}}"#
        );
        let gate = [
            ("KMS_KEY_ID", "k"),
            ("EXPECTED_ADDRESS", address),
            ("SIGNING_MODE", "gate"),
            ("GATE_ALLOWED_SIGNERS", signers),
            ("GATE_THRESHOLD", "1"),
            ("GATE_ENROLMENT", &scope),
        ];
        let config = Config::from_env(env(&gate)).unwrap();
        assert_eq!((config.mode, config.gate.map(|g| g.threshold())), (SigningMode::Digest, Some(1)));
        let err = |pairs: &[(&str, &str)]| Config::from_env(env(pairs)).unwrap_err().to_string();
        assert!(err(&gate[..5]).contains("GATE_ENROLMENT is not set"));
        let mut two = gate;
        two[4] = ("GATE_THRESHOLD", "2");
        assert!(err(&two).contains("GATE_THRESHOLD must be from 1 to the 1 principal"));
        let mut plain = gate;
        plain[2] = ("SIGNING_MODE", "digest");
        assert_eq!(err(&plain), "GATE_ALLOWED_SIGNERS is set, but SIGNING_MODE is not gate");
    }

    #[test]
    fn reads_function_url_and_rest_events_with_base64_bodies() {
        let body = r#"{"hash":"0x11"}"#;
        let b64 = base64::engine::general_purpose::STANDARD.encode(body);
        let url = json!({"requestContext": {"http": {"method": "POST"}}, "body": b64, "isBase64Encoded": true});
        assert_eq!(request(&url).unwrap(), body.as_bytes());
        let rest = json!({"httpMethod": "POST", "body": body, "isBase64Encoded": false});
        assert_eq!(request(&rest).unwrap(), body.as_bytes());
        let get = json!({"requestContext": {"http": {"method": "GET"}}});
        assert_eq!(request(&get).unwrap_err().0, 405);
        let broken = json!({"httpMethod": "POST", "body": "***", "isBase64Encoded": true});
        assert_eq!(request(&broken).unwrap_err().0, 400);
    }
}

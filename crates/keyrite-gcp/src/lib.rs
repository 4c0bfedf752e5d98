//! The Google Cloud connection: the official Cloud KMS client (`google-cloud-kms-v1`, HTTP and
//! JSON), built on first use from Application Default Credentials and the manifest's
//! `provider.gcp` block.
//!
//! Credentials come from ADC (`GOOGLE_APPLICATION_CREDENTIALS`, gcloud's application-default
//! file, or the metadata server, whose address `GCE_METADATA_HOST` overrides), or are
//! anonymous when `credentials: anonymous` is chosen for a local stand-in. The endpoint is
//! `provider.gcp.endpoint`, else `KEYRITE_GCP_KMS_ENDPOINT`, else Google's.
//!
//! Every call goes through [`Gcp::call`], which counts it in the shared call log and turns
//! the client's error into a [`ProviderError`] carrying the canonical status code
//! (`NOT_FOUND`, `ABORTED`, …).
//!
//! The crate is keyrite's Google Cloud provider: the connection, and the Cloud KMS kinds
//! ([`KINDS`]), each implementing the core's `Schema` and `Kind<Gcp>`. It builds on
//! `keyrite-core` alone; it must not import another provider or the CLI.

pub mod cloud_run;
pub mod credentials;
pub mod crypto_key;
pub mod iam_binding;
pub mod key_ring;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use google_cloud_gax::retry_policy::{Aip194Strict, RetryPolicyExt};
use google_cloud_kms_v1::client::KeyManagementService;
use google_cloud_kms_v1::model::crypto_key_version::CryptoKeyVersionState;
use tokio::sync::OnceCell;

use crate::manifest::GcpConfig;
use crate::provider::{CallLog, Kind, ProviderError, Result, TRANSPORT};

// The core's layers under the names this crate's modules use.
pub(crate) use keyrite_core::{crypto, manifest};
pub(crate) mod provider {
    pub use keyrite_core::provider::*;
    pub use keyrite_core::schema::*;
}

/// Every Google Cloud kind, in the order `keyrite` lists kinds.
pub static KINDS: &[&dyn Kind<Gcp>] = &[&key_ring::KeyRing, &crypto_key::CryptoKey, &iam_binding::CryptoKeyIamBinding];

/// The longest one call may take, its retries included.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(90);

/// The environment variable that points keyrite at another Cloud KMS endpoint.
pub const ENDPOINT_ENV: &str = "KEYRITE_GCP_KMS_ENDPOINT";

/// The Cloud KMS client, built on first use.
#[derive(Debug)]
pub struct Gcp {
    settings: GcpConfig,
    client: OnceCell<KeyManagementService>,
    calls: Arc<CallLog>,
}

impl Gcp {
    pub fn new(settings: GcpConfig, calls: Arc<CallLog>) -> Gcp {
        Gcp { settings, client: OnceCell::new(), calls }
    }

    /// True when the manifest chose no credentials (a local stand-in).
    pub fn anonymous(&self) -> bool {
        self.settings.anonymous
    }

    /// The client; the first call loads credentials.
    pub async fn kms(&self) -> Result<&KeyManagementService> {
        self.client
            .get_or_try_init(|| async {
                let mut builder = KeyManagementService::builder()
                    // Retries only what AIP-194 says is safe (UNAVAILABLE on idempotent calls),
                    // bounded in attempts and time.
                    .with_retry_policy(Aip194Strict.with_attempt_limit(5).with_time_limit(Duration::from_secs(60)));
                let endpoint = self.settings.endpoint.clone().or_else(|| std::env::var(ENDPOINT_ENV).ok());
                if let Some(endpoint) = endpoint {
                    builder = builder.with_endpoint(endpoint);
                }
                if self.settings.anonymous {
                    builder =
                        builder.with_credentials(google_cloud_auth::credentials::anonymous::Builder::new().build());
                }
                builder.build().await.map_err(|e| {
                    ProviderError::Refused(format!(
                        "cannot set up the Cloud KMS client: {}; {}",
                        crate::provider::error_chain(&e),
                        credentials::LOGIN_HINT
                    ))
                })
            })
            .await
    }

    /// Runs one API call: counts it as `cloudkms.<operation>`, maps its error, and gives up
    /// after [`CALL_TIMEOUT`] (retries included), so a hung connection is an error, not a hang.
    pub async fn call<T, F>(&self, operation: &'static str, call: F) -> Result<T>
    where
        F: Future<Output = std::result::Result<T, google_cloud_gax::error::Error>>,
    {
        self.calls.record(format!("cloudkms.{operation}"));
        match tokio::time::timeout(CALL_TIMEOUT, call).await {
            Ok(result) => result.map_err(|e| gcp_error(operation, e)),
            Err(_) => Err(ProviderError::Api {
                operation,
                code: TRANSPORT.into(),
                message: format!("no answer within {} s", CALL_TIMEOUT.as_secs()),
            }),
        }
    }
}

/// The permissions of `asked` that the caller has on `resource` or, while it does not exist
/// yet, on the nearest existing resource above it (a key's ring): that resource's name and
/// its answer. `Ok(None)` when neither exists.
pub async fn granted_nearest(gcp: &Gcp, resource: &str, asked: &[&str]) -> Result<Option<(String, Vec<String>)>> {
    let mut target = Some(resource);
    while let Some(name) = target {
        if let Some(granted) = granted(gcp, name, asked).await? {
            return Ok(Some((name.to_owned(), granted)));
        }
        target = ring_of(name);
    }
    Ok(None)
}

/// The key ring of a Cloud KMS key name.
pub fn ring_of(key: &str) -> Option<&str> {
    key.rfind("/cryptoKeys/").map(|cut| &key[..cut])
}

/// The permissions of `asked` that the caller has on `resource` (a key ring or key), by
/// Cloud KMS's `testIamPermissions`, which needs no permission of its own. `Ok(None)` when
/// the resource does not exist.
pub async fn granted(gcp: &Gcp, resource: &str, asked: &[&str]) -> Result<Option<Vec<String>>> {
    let kms = gcp.kms().await?;
    let call = kms.test_iam_permissions().set_resource(resource).set_permissions(asked.iter().copied()).send();
    Ok(crate::provider::unless_gone(gcp.call("TestIamPermissions", call).await)?.map(|r| r.permissions))
}

/// Turns a client error into a [`ProviderError`] with the canonical status code.
pub fn gcp_error(operation: &'static str, e: google_cloud_gax::error::Error) -> ProviderError {
    if let Some(status) = e.status() {
        return ProviderError::Api { operation, code: status.code.name().to_owned(), message: status.message.clone() };
    }
    let code = if e.is_timeout() || e.is_io() || e.is_connect() || e.is_transport() {
        TRANSPORT
    } else if e.is_authentication() {
        "UNAUTHENTICATED"
    } else {
        "Error"
    };
    ProviderError::Api { operation, code: code.into(), message: crate::provider::error_chain(&e) }
}

/// The CRC32C Cloud KMS uses to protect data in transit, as its JSON carries it.
pub fn crc32c(data: &[u8]) -> i64 {
    i64::from(crc32c::crc32c(data))
}

/// Checks a checksum the service returned. A missing or wrong one is an error: the data may
/// have been corrupted on the way, and nothing derived from it can be trusted.
pub fn check_crc(operation: &'static str, what: &str, data: &[u8], given: Option<i64>) -> Result<()> {
    match given {
        Some(crc) if crc == crc32c(data) => Ok(()),
        Some(crc) => Err(ProviderError::Unexpected {
            operation,
            message: format!("{what} failed its integrity check: CRC32C {crc} given, {} computed", crc32c(data)),
        }),
        None => Err(ProviderError::Unexpected { operation, message: format!("{what} came without its CRC32C") }),
    }
}

/// Reads a version's public key: PEM checked against `pemCrc32c`, returned as SPKI DER.
pub async fn public_key(gcp: &Gcp, version: &str) -> Result<Vec<u8>> {
    let kms = gcp.kms().await?;
    let out = gcp.call("GetPublicKey", kms.get_public_key().set_name(version).send()).await?;
    check_crc("cloudkms.GetPublicKey", "the public key PEM", out.pem.as_bytes(), out.pem_crc32c)?;
    let key = crate::crypto::public_key_from_pem(&out.pem).map_err(|e| ProviderError::Unexpected {
        operation: "cloudkms.GetPublicKey",
        message: format!("{version}: {e}"),
    })?;
    Ok(crate::crypto::spki_der(&key))
}

/// Waits for a new version to leave PENDING_GENERATION (HSM keys take a few seconds), with
/// bounded backoff: 0.2 s doubling to 3 s, at most about 2 minutes.
pub async fn until_generated(gcp: &Gcp, version: &str) -> Result<CryptoKeyVersionState> {
    let kms = gcp.kms().await?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    let mut delay = Duration::from_millis(200);
    loop {
        let v = gcp.call("GetCryptoKeyVersion", kms.get_crypto_key_version().set_name(version).send()).await?;
        if v.state != CryptoKeyVersionState::PendingGeneration {
            return Ok(v.state);
        }
        if tokio::time::Instant::now() + delay > deadline {
            return Err(ProviderError::Refused(format!("{version} is still PENDING_GENERATION after 2 minutes")));
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(3));
    }
}

/// An enum's canonical name (`ENABLED`, `HSM`…) from its generated `name()`, as the API
/// documents it.
pub fn enum_name(name: Option<&str>) -> String {
    name.unwrap_or("UNKNOWN").to_owned()
}

/// Checks a key ring or key id: 1–63 of letters, digits, `_` and `-`.
pub fn check_id(id: &str) -> std::result::Result<(), String> {
    let ok = !id.is_empty() && id.len() <= 63 && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if ok || id.contains("${") {
        Ok(())
    } else {
        Err(format!("{id:?} may only use letters, digits, '_' and '-' (1–63 characters)"))
    }
}

/// Checks a label key or value the way Cloud KMS does: lowercase letters, digits, `_` and
/// `-`, at most 63 characters; keys start with a letter.
pub fn check_label(key: &str, value: &str) -> std::result::Result<(), String> {
    let chars = |s: &str| s.chars().all(|c| c.is_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    if key.is_empty() || key.len() > 63 || !key.starts_with(char::is_lowercase) || !chars(key) {
        return Err(format!(
            "label key {key:?} must be 1–63 lowercase letters, digits, '_' or '-', starting with a letter"
        ));
    }
    if value.len() > 63 || !chars(value) {
        return Err(format!("label {key}: value {value:?} must be at most 63 lowercase letters, digits, '_' or '-'"));
    }
    Ok(())
}

/// A manifest address as a label value: lowercased, other characters as `-`, at most 63.
pub fn label_value(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == '-' { c.to_ascii_lowercase() } else { '-' })
        .take(63)
        .collect()
}

/// The default id for a resource named in the manifest: `hot_key` → `hot-key`.
pub fn default_id(manifest_name: &str) -> String {
    manifest_name.replace('_', "-")
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_ring_of_a_key() {
        let key = "projects/p/locations/l/keyRings/r/cryptoKeys/k";
        assert_eq!(super::ring_of(key), Some("projects/p/locations/l/keyRings/r"));
        assert_eq!(super::ring_of("projects/p/locations/l/keyRings/r"), None);
    }

    use super::*;

    #[test]
    fn checksums_must_be_present_and_right() {
        let data = b"-----BEGIN PUBLIC KEY-----";
        assert!(check_crc("op", "pem", data, Some(crc32c(data))).is_ok());
        let wrong = check_crc("op", "pem", data, Some(crc32c(data) ^ 1)).unwrap_err().to_string();
        assert!(wrong.contains("failed its integrity check"), "{wrong}");
        assert!(check_crc("op", "pem", data, None).unwrap_err().to_string().contains("without its CRC32C"));
        // RFC 3720's check value for CRC32C.
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
    }

    #[test]
    fn ids_and_labels_follow_cloud_kms_rules() {
        assert!(check_id("treasury-ring_1").is_ok());
        assert!(check_id("with space").is_err());
        assert!(check_id(&"a".repeat(64)).is_err());
        assert!(check_label("team", "treasury-ops").is_ok());
        assert!(check_label("Team", "x").is_err());
        assert!(check_label("1team", "x").is_err());
        assert!(check_label("team", "Ops").is_err());
        assert_eq!(label_value("Hot.Key/v2"), "hot-key-v2");
        assert_eq!(default_id("hot_key"), "hot-key");
    }
}

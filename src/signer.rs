//! Signing with a KMS key, and checking a signature the way a wallet platform will.
//!
//! KMS returns an ASN.1 DER ECDSA signature over the digest it was given and nothing else;
//! Ethereum wants r‖s‖v with s in the lower half of the curve order (EIP-2) and v ∈ {27, 28}
//! naming which of the two candidate public keys signed. This module turns one into the
//! other and verifies the result recovers to the key's address before anyone sees it.

#[cfg(feature = "aws")]
use keyrite_lambda_signer::kms::{KmsError, KmsKey};

use crate::crypto::{self, Address};
use crate::manifest::SigningMode;

#[derive(Debug, thiserror::Error)]
pub enum SignError {
    #[error("{operation} failed for key {key}: {message}")]
    Kms { operation: &'static str, key: String, message: String },
    #[error(transparent)]
    Crypto(#[from] crypto::CryptoError),
}

/// Where the key lives.
#[derive(Clone, Debug)]
enum Backend {
    #[cfg(feature = "aws")]
    Aws(KmsKey),
    /// A pinned Cloud KMS key version (`…/cryptoKeyVersions/N`).
    #[cfg(feature = "gcp")]
    Gcp { kms: google_cloud_kms_v1::client::KeyManagementService, version: String },
}

/// A KMS key with its public key and address, fetched once.
#[derive(Clone, Debug)]
pub struct KmsSigner {
    backend: Backend,
    /// The key, with the table its signatures are checked with.
    key: crypto::PreparedKey,
    pub spki: Vec<u8>,
    pub address: Address,
    /// `address` in EIP-55 form, made once: its checksum is a Keccak-256 hash.
    address_text: String,
}

impl KmsSigner {
    /// Fetches an AWS KMS key's public key. `kms:GetPublicKey`.
    #[cfg(feature = "aws")]
    pub async fn connect(kms: aws_sdk_kms::Client, key_id: &str) -> Result<KmsSigner, SignError> {
        let key = KmsKey::connect(kms, key_id).await.map_err(aws_sign_error)?;
        Ok(KmsSigner {
            key: key.prepared().clone(),
            spki: key.spki().to_vec(),
            address: *key.address(),
            address_text: key.address().to_string(),
            backend: Backend::Aws(key),
        })
    }

    /// Fetches a Cloud KMS key version's public key, checking its CRC32C. Permission
    /// `cloudkms.cryptoKeyVersions.viewPublicKey`.
    #[cfg(feature = "gcp")]
    pub async fn connect_gcp(gcp: &crate::provider::gcp::Gcp, version: &str) -> Result<KmsSigner, SignError> {
        let failed = |operation: &'static str, e: crate::provider::ProviderError| SignError::Kms {
            operation,
            key: version.to_owned(),
            message: e.to_string(),
        };
        let spki =
            crate::provider::gcp::public_key(gcp, version).await.map_err(|e| failed("cloudkms.GetPublicKey", e))?;
        let kms = gcp.kms().await.map_err(|e| failed("cloudkms.GetPublicKey", e))?.clone();
        KmsSigner::new(Backend::Gcp { kms, version: version.to_owned() }, spki)
    }

    #[cfg(feature = "gcp")]
    fn new(backend: Backend, spki: Vec<u8>) -> Result<KmsSigner, SignError> {
        let public_key = crypto::public_key_from_spki_der(&spki)?;
        let address = crypto::evm_address(&public_key);
        Ok(KmsSigner {
            backend,
            address,
            address_text: address.to_string(),
            key: crypto::PreparedKey::new(&public_key),
            spki,
        })
    }

    /// The address in EIP-55 form, as `address.to_string()` gives it.
    pub fn address_text(&self) -> &str {
        &self.address_text
    }

    /// Asks KMS to sign `prehash` as a digest: AWS `kms:Sign` with `ECDSA_SHA_256`, or Cloud
    /// KMS `asymmetricSign` with the digest's CRC32C, whose echo and the signature's own
    /// CRC32C are checked (a mismatch is an error, never a silent pass). Permission
    /// `cloudkms.cryptoKeyVersions.useToSign` on GCP.
    pub async fn sign_der(&self, prehash: &[u8; 32]) -> Result<Vec<u8>, SignError> {
        self.sign_der_traced(prehash).await.0
    }

    /// [`KmsSigner::sign_der`], with the KMS request id when KMS gives one (AWS does, in
    /// answers and in errors).
    pub async fn sign_der_traced(&self, prehash: &[u8; 32]) -> (Result<Vec<u8>, SignError>, Option<String>) {
        match &self.backend {
            #[cfg(feature = "aws")]
            Backend::Aws(key) => {
                let (der, id) = key.sign_der_traced(prehash).await;
                (der.map_err(aws_sign_error), id)
            }
            #[cfg(feature = "gcp")]
            Backend::Gcp { kms, version } => (Self::sign_der_gcp(kms, version, prehash).await, None),
        }
    }

    #[cfg(feature = "gcp")]
    async fn sign_der_gcp(
        kms: &google_cloud_kms_v1::client::KeyManagementService,
        version: &str,
        prehash: &[u8; 32],
    ) -> Result<Vec<u8>, SignError> {
        use crate::provider::gcp::{check_crc, crc32c};
        let failed =
            |message: String| SignError::Kms { operation: "cloudkms.AsymmetricSign", key: version.to_owned(), message };
        let out = kms
            .asymmetric_sign()
            .set_name(version)
            .set_digest(google_cloud_kms_v1::model::Digest::new().set_sha256(bytes::Bytes::copy_from_slice(prehash)))
            .set_digest_crc32c(crc32c(prehash))
            .send()
            .await
            .map_err(|e| failed(crate::provider::gcp::gcp_error("cloudkms.AsymmetricSign", e).to_string()))?;
        if !out.verified_digest_crc32c {
            return Err(failed(
                "Cloud KMS did not confirm the digest's CRC32C, so it may have signed other bytes".into(),
            ));
        }
        if out.name != version {
            return Err(failed(format!("Cloud KMS answered for {}, not the pinned version", out.name)));
        }
        check_crc("cloudkms.AsymmetricSign", "the signature", &out.signature, out.signature_crc32c)
            .map_err(|e| failed(e.to_string()))?;
        Ok(out.signature.to_vec())
    }

    /// Signs `prehash` as given: the DER KMS returned and its r‖s‖v form, verified to recover
    /// to the key's address.
    pub async fn sign_prehash(&self, prehash: &[u8; 32]) -> Result<(Vec<u8>, [u8; 65]), SignError> {
        let der = self.sign_der(prehash).await?;
        let rsv = self.key.signature_rsv(prehash, &der)?;
        Ok((der, rsv))
    }

    /// Signs a request digest: r‖s‖v, low-s, v ∈ {27, 28}, verified to recover to the key's
    /// address. A KMS that signed anything but `prehash` fails here, never downstream.
    pub async fn sign(&self, digest: &[u8; 32], mode: SigningMode) -> Result<[u8; 65], SignError> {
        self.sign_traced(digest, mode).await.0
    }

    /// [`KmsSigner::sign`], with the KMS request id when KMS gives one.
    pub async fn sign_traced(
        &self,
        digest: &[u8; 32],
        mode: SigningMode,
    ) -> (Result<[u8; 65], SignError>, Option<String>) {
        let prehash = prehash(mode, digest);
        let (der, id) = self.sign_der_traced(&prehash).await;
        (der.and_then(|der| Ok(self.key.signature_rsv(&prehash, &der)?)), id)
    }
}

/// What a health check of a signer's key found.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct KeyHealth {
    /// KMS answered.
    pub reachable: bool,
    /// The key (AWS) or the pinned version (Cloud KMS) can sign.
    pub enabled: bool,
    /// KMS gives the public key this signer started with, which matched the state's record.
    pub public_key_matches: bool,
    /// What went wrong, in one line; never a credential.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl KeyHealth {
    pub fn ok(&self) -> bool {
        self.reachable && self.enabled && self.public_key_matches
    }
}

impl KmsSigner {
    /// Reads the key's state and public key, without signing: `kms:DescribeKey` and
    /// `kms:GetPublicKey`, or Cloud KMS `GetCryptoKeyVersion` and `GetPublicKey`.
    pub async fn health(&self) -> KeyHealth {
        let down = |error: String| KeyHealth {
            reachable: false,
            enabled: false,
            public_key_matches: false,
            error: Some(error),
        };
        match &self.backend {
            #[cfg(feature = "aws")]
            Backend::Aws(key) => {
                let (kms, key_id) = (key.client(), key.key_id());
                let described = match kms.describe_key().key_id(key_id).send().await {
                    Ok(d) => d,
                    Err(e) => return down(kms_error("kms:DescribeKey", key_id, e).to_string()),
                };
                let state = described.key_metadata().and_then(|m| m.key_state()).map(|s| s.as_str().to_owned());
                let enabled = state.as_deref() == Some("Enabled");
                let matches = match kms.get_public_key().key_id(key_id).send().await {
                    Ok(out) => out.public_key().map(|b| b.as_ref()) == Some(self.spki.as_slice()),
                    // A disabled key refuses GetPublicKey; that is the state, not a mismatch.
                    Err(_) if !enabled => true,
                    Err(e) => return down(kms_error("kms:GetPublicKey", key_id, e).to_string()),
                };
                let error = (!enabled)
                    .then(|| format!("key {key_id} is {}", state.unwrap_or_else(|| "in an unknown state".into())))
                    .or_else(|| (!matches).then(|| format!("key {key_id} now gives another public key")));
                KeyHealth { reachable: true, enabled, public_key_matches: matches, error }
            }
            #[cfg(feature = "gcp")]
            Backend::Gcp { kms, version } => {
                let v = match kms.get_crypto_key_version().set_name(version).send().await {
                    Ok(v) => v,
                    Err(e) => {
                        return down(crate::provider::gcp::gcp_error("cloudkms.GetCryptoKeyVersion", e).to_string());
                    }
                };
                let state = crate::provider::gcp::enum_name(v.state.name());
                let enabled = state == "ENABLED";
                let matches = match kms.get_public_key().set_name(version).send().await {
                    Ok(out) => crypto::public_key_from_pem(&out.pem).is_ok_and(|k| k == *self.key.public_key()),
                    Err(_) if !enabled => true,
                    Err(e) => return down(crate::provider::gcp::gcp_error("cloudkms.GetPublicKey", e).to_string()),
                };
                let error = (!enabled)
                    .then(|| format!("{version} is {state}"))
                    .or_else(|| (!matches).then(|| format!("{version} now gives another public key")));
                KeyHealth { reachable: true, enabled, public_key_matches: matches, error }
            }
        }
    }
}

/// A [`KmsError`] in keyrite's words, with the hints keyrite gives for every AWS error.
#[cfg(feature = "aws")]
fn aws_sign_error(e: KmsError) -> SignError {
    match e {
        KmsError::GetPublicKey { key, source } => kms_error("kms:GetPublicKey", &key, source),
        KmsError::Sign { key, source } => kms_error("kms:Sign", &key, source),
        KmsError::NotSecp256k1 { key, spec } => SignError::Kms {
            operation: "kms:GetPublicKey",
            key,
            message: format!("the key is {spec}, not ECC_SECG_P256K1 (secp256k1)"),
        },
        KmsError::Crypto(e) => SignError::Crypto(e),
    }
}

#[cfg(feature = "aws")]
fn kms_error<E, R>(operation: &'static str, key: &str, e: aws_sdk_kms::error::SdkError<E, R>) -> SignError
where
    E: aws_smithy_types::error::metadata::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug + 'static,
{
    let message = match crate::provider::aws::api_error(operation, e) {
        crate::provider::ProviderError::Api { code, message, .. } => format!("{code}: {message}"),
        other => other.to_string(),
    };
    SignError::Kms { operation, key: key.to_owned(), message }
}

pub use keyrite_core::signing::{SignatureFault, check_der, check_rsv, parse_hex, prehash};

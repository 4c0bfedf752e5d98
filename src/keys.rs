//! A signing key keyrite deployed, read from its cloud by the kind the state (or a ceremony
//! record) gives it: a signer over it, the facts a ceremony records about it, and whether it
//! can still sign. Each cloud's reads sit behind its cargo feature; a key of a cloud this
//! build leaves out is an error that names the feature.

use anyhow::{Context as _, bail};
use serde_json::Value as Json;

use crate::provider::Cloud;
use crate::signer::KmsSigner;
use crate::state::ResourceState;

/// The quorum gate that alone signs with the key at `address`, as the state records it: the
/// name of a function in gate mode whose key it is. Nobody else may sign with such a key, so
/// keyrite never asks it to sign directly (no proof of possession, no direct self-test).
pub fn gate_of<'s>(state: &'s crate::state::State, address: &str) -> Option<&'s str> {
    let key = state.resources.get(address)?;
    state
        .resources
        .values()
        .find(|r| {
            keyrite_core::lint::gate_role(&r.kind, &r.attrs).is_some()
                && r.attrs.get("environment").and_then(|e| e.get("KMS_KEY_ID")).and_then(Json::as_str)
                    == Some(key.id.as_str())
        })
        .map(|r| r.id.as_str())
}

/// The state kinds that are signing keys.
pub const KEY_KINDS: &[&str] = &["aws_kms_key", "gcp_kms_crypto_key"];

/// A signer over the key the state records as `r`: AWS the key id, Cloud KMS the pinned
/// version. Reads the public key (`kms:GetPublicKey`, `cloudkms.cryptoKeyVersions.viewPublicKey`).
pub async fn signer(cloud: &Cloud, r: &ResourceState) -> anyhow::Result<KmsSigner> {
    match r.kind.as_str() {
        #[cfg(feature = "aws")]
        "aws_kms_key" => Ok(KmsSigner::connect(cloud.aws.kms.clone(), &r.id).await?),
        #[cfg(feature = "gcp")]
        "gcp_kms_crypto_key" => Ok(KmsSigner::connect_gcp(&cloud.gcp, gcp::pinned(r)?).await?),
        other => Err(not_a_key(other)),
    }
}

/// The key's id as a ceremony records it, and what its cloud says about it: AWS
/// `kms:DescribeKey`; Cloud KMS the pinned version (`cloudkms.cryptoKeyVersions.get`), with
/// its HSM attestation when the API returns one.
pub async fn facts(cloud: &Cloud, r: &ResourceState) -> anyhow::Result<(String, Json)> {
    match r.kind.as_str() {
        #[cfg(feature = "aws")]
        "aws_kms_key" => aws::facts(cloud, &r.id).await,
        #[cfg(feature = "gcp")]
        "gcp_kms_crypto_key" => gcp::facts(cloud, gcp::pinned(r)?).await,
        other => Err(not_a_key(other)),
    }
}

/// A signer over the key a ceremony recorded (`kind`, `id`), once its cloud says the key (or
/// the pinned version) is enabled. Read-only calls.
pub async fn enabled_signer(cloud: &Cloud, kind: &str, id: &str) -> anyhow::Result<KmsSigner> {
    match kind {
        #[cfg(feature = "aws")]
        "aws_kms_key" => {
            aws::check_enabled(cloud, id).await?;
            Ok(KmsSigner::connect(cloud.aws.kms.clone(), id).await?)
        }
        #[cfg(feature = "gcp")]
        "gcp_kms_crypto_key" => {
            gcp::check_enabled(cloud, id).await?;
            Ok(KmsSigner::connect_gcp(&cloud.gcp, id).await?)
        }
        other => Err(not_a_key(other)),
    }
}

fn not_a_key(kind: &str) -> anyhow::Error {
    match crate::provider::schemas().feature_left_out(kind) {
        Some(feature) => {
            anyhow::anyhow!("`{kind}` is a key of a cloud this keyrite was built without (--features {feature})")
        }
        None => anyhow::anyhow!("`{kind}` is not a signing key (expected one of {})", KEY_KINDS.join(", ")),
    }
}

#[cfg(feature = "aws")]
mod aws {
    use super::*;
    use crate::provider::aws::api_error;

    /// `kms:DescribeKey`'s metadata of the key.
    async fn describe(cloud: &Cloud, key_id: &str) -> anyhow::Result<aws_sdk_kms::types::KeyMetadata> {
        let out =
            cloud.aws.kms.describe_key().key_id(key_id).send().await.map_err(|e| api_error("kms:DescribeKey", e))?;
        out.key_metadata.context("kms:DescribeKey returned no metadata")
    }

    pub async fn facts(cloud: &Cloud, key_id: &str) -> anyhow::Result<(String, Json)> {
        let m = describe(cloud, key_id).await?;
        Ok((
            key_id.to_owned(),
            serde_json::json!({
                "arn": m.arn(),
                "key_spec": m.key_spec().map(|s| s.as_str()),
                "key_usage": m.key_usage().map(|s| s.as_str()),
                "origin": m.origin().map(|s| s.as_str()),
                "key_manager": m.key_manager().map(|s| s.as_str()),
                "custom_key_store_id": m.custom_key_store_id(),
                "key_state": m.key_state().map(|s| s.as_str()),
                "multi_region": m.multi_region(),
            }),
        ))
    }

    pub async fn check_enabled(cloud: &Cloud, key_id: &str) -> anyhow::Result<()> {
        let m = describe(cloud, key_id).await?;
        let state = m.key_state().map(|s| s.as_str().to_owned()).unwrap_or_default();
        if state != "Enabled" {
            bail!("key {key_id} is {state}");
        }
        Ok(())
    }
}

#[cfg(feature = "gcp")]
mod gcp {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD as B64;

    use super::*;

    /// The key version apply pinned, which is what signs.
    pub fn pinned(r: &ResourceState) -> anyhow::Result<&str> {
        r.outputs
            .get("version_id")
            .and_then(|v| v.as_str())
            .context("no pinned key version in the state; run `keyrite apply`")
    }

    /// The pinned version as Cloud KMS holds it (`cloudkms.cryptoKeyVersions.get`).
    async fn get_version(cloud: &Cloud, version: &str) -> anyhow::Result<google_cloud_kms_v1::model::CryptoKeyVersion> {
        let kms = cloud.gcp.kms().await?;
        Ok(cloud.gcp.call("GetCryptoKeyVersion", kms.get_crypto_key_version().set_name(version).send()).await?)
    }

    pub async fn facts(cloud: &Cloud, version: &str) -> anyhow::Result<(String, Json)> {
        let v = get_version(cloud, version).await?;
        let attestation = v.attestation.as_ref().map(|a| {
            serde_json::json!({
                "format": a.format.name(),
                "content": B64.encode(&a.content),
                "cert_chains": a.cert_chains.as_ref().map(|c| serde_json::json!({
                    "cavium_certs": c.cavium_certs.len(),
                    "google_card_certs": c.google_card_certs.len(),
                    "google_partition_certs": c.google_partition_certs.len(),
                })),
            })
        });
        Ok((
            version.to_owned(),
            serde_json::json!({
                "protection_level": v.protection_level.name(),
                "algorithm": v.algorithm.name(),
                "version": version,
                "state": v.state.name(),
                "attestation": attestation,
            }),
        ))
    }

    pub async fn check_enabled(cloud: &Cloud, version: &str) -> anyhow::Result<()> {
        let v = get_version(cloud, version).await?;
        let state = v.state.name().unwrap_or("UNKNOWN");
        if state != "ENABLED" {
            bail!("version {version} is {state}");
        }
        Ok(())
    }
}

//! The Cloud KMS signer stack of a project and location: key rings, their secp256k1 signing
//! keys (each read at its newest enabled version, which is what it signs with), and each
//! key's IAM policy as a `gcp_kms_crypto_key_iam_binding` for `roles/cloudkms.signerVerifier`.
//!
//! Calls, all reads: `ListKeyRings`, `ListCryptoKeys` per ring, `ListCryptoKeyVersions` per
//! secp256k1 key, then the kinds' reads (`GetKeyRing`, `GetCryptoKey`, versions and public
//! key, `GetIamPolicy`).

use google_cloud_kms_v1::model::crypto_key_version::CryptoKeyVersionState;
use serde_json::{Value as Json, json};

use super::{Found, Scan, Skipped, read};
use crate::manifest::Attrs;
use crate::provider::gcp::iam_binding::SIGNER_ROLE;
use crate::provider::{Cloud, Result};

const SECP256K1: &str = "EC_SIGN_SECP256K1_SHA256";

/// Scans `projects/{project}/locations/{location}`, or only `ring` when given.
pub async fn scan(cloud: &Cloud, project: &str, location: &str, ring: Option<&str>) -> Result<Scan> {
    let gcp = &cloud.gcp;
    let kms = gcp.kms().await?;
    let parent = format!("projects/{project}/locations/{location}");
    let mut rings = Vec::new();
    match ring {
        Some(r) => rings.push(format!("{parent}/keyRings/{r}")),
        None => {
            let mut token = String::new();
            loop {
                let page = gcp
                    .call(
                        "ListKeyRings",
                        kms.list_key_rings().set_parent(&parent).set_page_size(100).set_page_token(&token).send(),
                    )
                    .await?;
                rings.extend(page.key_rings.into_iter().map(|r| r.name));
                if page.next_page_token.is_empty() {
                    break;
                }
                token = page.next_page_token;
            }
        }
    }
    let mut scan = Scan::default();
    for ring in rings {
        let mut keys = Vec::new();
        let mut token = String::new();
        loop {
            let page = gcp
                .call(
                    "ListCryptoKeys",
                    kms.list_crypto_keys().set_parent(&ring).set_page_size(100).set_page_token(&token).send(),
                )
                .await?;
            keys.extend(page.crypto_keys);
            if page.next_page_token.is_empty() {
                break;
            }
            token = page.next_page_token;
        }
        let mut taken = Vec::new();
        for key in keys {
            let algorithm = key
                .version_template
                .as_ref()
                .map(|t| crate::provider::gcp::enum_name(t.algorithm.name()))
                .unwrap_or_default();
            if algorithm != SECP256K1 {
                scan.skipped
                    .push(Skipped { name: key.name, reason: format!("algorithm {algorithm}, not {SECP256K1}") });
                continue;
            }
            let version = newest_enabled(cloud, &key.name).await?;
            let Some(version) = version else {
                scan.skipped.push(Skipped { name: key.name, reason: "no enabled version: it cannot sign".into() });
                continue;
            };
            let reference: Attrs = [("version".to_owned(), json!(version))].into_iter().collect();
            let Some(live) = read(cloud, "gcp_kms_crypto_key", &key.name, &reference).await? else { continue };
            taken.push((key.name, live, version));
        }
        if taken.is_empty() {
            continue;
        }
        if let Some(live) = read(cloud, "gcp_kms_key_ring", &ring, &Attrs::new()).await? {
            let why = format!("the key ring of {} secp256k1 key(s)", taken.len());
            scan.found.push(Found { kind: "gcp_kms_key_ring", id: ring.clone(), name: ring.clone(), live, why });
        }
        for (name, live, version) in taken {
            let why = format!("a secp256k1 signing key in {ring}, signing with version {version}");
            scan.found.push(Found { kind: "gcp_kms_crypto_key", id: name.clone(), name: name.clone(), live, why });
            let reference: Attrs = [("iam_role".to_owned(), json!(SIGNER_ROLE))].into_iter().collect();
            if let Some(policy) = read(cloud, "gcp_kms_crypto_key_iam_binding", &name, &reference).await? {
                let granted = policy.attrs.get("members").and_then(Json::as_array).is_some_and(|m| !m.is_empty())
                    || policy.attrs.get("other_bindings").and_then(Json::as_object).is_some_and(|o| !o.is_empty());
                if granted {
                    let why = format!("the IAM policy of {name}");
                    scan.found.push(Found {
                        kind: "gcp_kms_crypto_key_iam_binding",
                        id: name.clone(),
                        name: name.clone(),
                        live: policy,
                        why,
                    });
                }
            }
        }
    }
    Ok(scan)
}

/// The number of the key's newest enabled version.
async fn newest_enabled(cloud: &Cloud, key: &str) -> Result<Option<u64>> {
    let versions = crate::provider::gcp::crypto_key::list_versions(&cloud.gcp, key).await?;
    // A version still being generated will be enabled; the key's read waits for it.
    Ok(versions
        .iter()
        .filter(|(_, v)| matches!(v.state, CryptoKeyVersionState::Enabled | CryptoKeyVersionState::PendingGeneration))
        .map(|(n, _)| *n)
        .max())
}

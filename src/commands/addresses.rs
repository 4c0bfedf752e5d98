//! `keyrite addresses`: what each key signs as, derived offline from the recorded public key.

use anyhow::{Context, bail};
use base64::Engine;
use serde_json::json;

use super::{Status, load};
use crate::cli::ManifestArg;
use crate::crypto;
use crate::render::Format;

pub async fn run(arg: &ManifestArg, format: Format) -> anyhow::Result<Status> {
    let (manifest, store) = load(arg).await?;
    let Some(state) = super::read_state(&store).await? else { bail!("no state at {}: apply first", store.describe()) };
    let region = manifest.aws.region.clone().or_else(|| std::env::var("AWS_REGION").ok()).unwrap_or_default();
    let mut rows = Vec::new();
    let keys = state.resources.iter().filter(|(_, r)| matches!(r.kind.as_str(), "aws_kms_key" | "gcp_kms_crypto_key"));
    for (address, r) in keys {
        let spki_b64 = r
            .outputs
            .get("public_key")
            .and_then(|v| v.as_str())
            .with_context(|| format!("{address}: no public key recorded"))?;
        let spki = base64::engine::general_purpose::STANDARD
            .decode(spki_b64)
            .with_context(|| format!("{address}: public key is not base64"))?;
        let key = crypto::public_key_from_spki_der(&spki)
            .with_context(|| format!("{address}: cannot read the public key"))?;
        let alias = state
            .resources
            .values()
            .find(|a| {
                a.kind == "aws_kms_alias"
                    && a.attrs.get("target_key_id").and_then(|v| v.as_str()) == Some(r.id.as_str())
            })
            .map(|a| a.id.clone());
        let hedera = crypto::hedera_key(&key);
        // Cloud KMS signs with a pinned version, so that is the key's identity here.
        let gcp = r.kind == "gcp_kms_crypto_key";
        let key_id = match r.outputs.get("version_id").and_then(|v| v.as_str()) {
            Some(version) if gcp => version.to_owned(),
            _ => r.id.clone(),
        };
        let history: Vec<serde_json::Value> = state
            .rotations
            .iter()
            .filter(|x| x.key == *address)
            .map(|x| {
                json!({
                    "generation": x.generation - 1,
                    "key_id": x.old.id,
                    "evm_address": x.old_address,
                    "replaced_by": x.new_address,
                    "started_at": x.started_at,
                    "rotated_at": x.rotated_at,
                    "phase": x.phase,
                    "grace_until": x.grace_until,
                    "disabled_at": x.finished_at,
                })
            })
            .collect();
        let keystore_uri = (!gcp).then(|| format!("awskms:{region}:{}", alias.as_deref().unwrap_or(&r.id)));
        rows.push(json!({
            "address": address,
            "provider": if gcp { "gcp" } else { "aws" },
            "key_id": key_id,
            "slot": crate::manifest::Slot::of(&r.attrs).as_str(),
            "evm_address": crypto::evm_address(&key).to_string(),
            "hedera": {"public_key_compressed": hedera.compressed_hex, "public_key_der": hedera.der_hex, "evm_alias": hedera.evm_alias},
            "keystore_uri": keystore_uri,
            "spki_sha256": crypto::spki_fingerprint_sha256(&spki),
            "generation": crate::plan::generation(Some(&state), address),
            "history": history,
        }));
    }
    match format {
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(&json!({"format_version": 1, "kind": "addresses", "keys": rows}))?
        ),
        Format::Human => {
            for row in &rows {
                println!(
                    "{} ({}, {} slot)",
                    row["address"].as_str().unwrap_or_default(),
                    row["key_id"].as_str().unwrap_or_default(),
                    row["slot"].as_str().unwrap_or_default()
                );
                println!("  EVM address:          {}", row["evm_address"].as_str().unwrap_or_default());
                println!(
                    "  Hedera key (compr.):  {}",
                    row["hedera"]["public_key_compressed"].as_str().unwrap_or_default()
                );
                println!("  Hedera key (DER):     {}", row["hedera"]["public_key_der"].as_str().unwrap_or_default());
                println!("  Hedera EVM alias:     {}", row["hedera"]["evm_alias"].as_str().unwrap_or_default());
                if let Some(uri) = row["keystore_uri"].as_str() {
                    println!("  keystore URI:         {uri}");
                }
                println!("  SPKI SHA-256:         {}", row["spki_sha256"].as_str().unwrap_or_default());
                for old in row["history"].as_array().into_iter().flatten() {
                    let text = |k: &str| old[k].as_str().unwrap_or("-").to_owned();
                    let now = match old["phase"].as_str() {
                        Some("finished") => format!("disabled {}", text("disabled_at")),
                        Some("applying") => "rotation being applied".to_owned(),
                        _ => format!("still enabled, grace until {}", text("grace_until")),
                    };
                    println!(
                        "  rotated:              {} (generation {}, {}) → {} on {}; {now}",
                        text("evm_address"),
                        old["generation"],
                        text("key_id"),
                        text("replaced_by"),
                        old["rotated_at"].as_str().unwrap_or_else(|| old["started_at"].as_str().unwrap_or("-")),
                    );
                }
            }
        }
    }
    Ok(Status::Ok)
}

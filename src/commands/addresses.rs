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
    let Some(state) = store.read().await? else { bail!("no state at {}: apply first", store.describe()) };
    let region = manifest.aws.region.clone().or_else(|| std::env::var("AWS_REGION").ok()).unwrap_or_default();
    let mut rows = Vec::new();
    for (address, r) in state.resources.iter().filter(|(_, r)| r.kind == "aws_kms_key") {
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
        rows.push(json!({
            "address": address,
            "key_id": r.id,
            "evm_address": crypto::evm_address(&key).to_string(),
            "hedera": {"public_key_compressed": hedera.compressed_hex, "public_key_der": hedera.der_hex, "evm_alias": hedera.evm_alias},
            "keystore_uri": format!("awskms:{region}:{}", alias.as_deref().unwrap_or(&r.id)),
            "spki_sha256": crypto::spki_fingerprint_sha256(&spki),
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
                    "{} ({})",
                    row["address"].as_str().unwrap_or_default(),
                    row["key_id"].as_str().unwrap_or_default()
                );
                println!("  EVM address:          {}", row["evm_address"].as_str().unwrap_or_default());
                println!(
                    "  Hedera key (compr.):  {}",
                    row["hedera"]["public_key_compressed"].as_str().unwrap_or_default()
                );
                println!("  Hedera key (DER):     {}", row["hedera"]["public_key_der"].as_str().unwrap_or_default());
                println!("  Hedera EVM alias:     {}", row["hedera"]["evm_alias"].as_str().unwrap_or_default());
                println!("  keystore URI:         {}", row["keystore_uri"].as_str().unwrap_or_default());
                println!("  SPKI SHA-256:         {}", row["spki_sha256"].as_str().unwrap_or_default());
            }
        }
    }
    Ok(Status::Ok)
}

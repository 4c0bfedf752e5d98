//! `keyrite render-signer`: the Cloud Run `signDigest` function for a Cloud KMS signer,
//! written to a directory, and the `gcloud` command that deploys it.
//!
//! Everything comes from the state, offline: the pinned key version, the address it signs
//! for (the function refuses to sign if its key's public key says otherwise), and the
//! service account bound to the key. Deploying Cloud Run is left to `gcloud`.

use std::path::Path;

use anyhow::{Context, bail};

use super::{Status, load};
use crate::cli::ManifestArg;
use crate::manifest::SigningMode;

pub async fn run(arg: &ManifestArg, signer: Option<&str>, out: &Path) -> anyhow::Result<Status> {
    let (manifest, store) = load(arg).await?;
    let spec = manifest.signer(signer)?;
    if spec.slot == crate::manifest::Slot::Recovery {
        bail!("signer {} uses {}, a recovery key: recovery keys get no Cloud Run function", spec.name, spec.key);
    }
    let Some(state) = store.read().await? else { bail!("no state at {}: run `keyrite apply` first", store.describe()) };
    let key = state.resources.get(&spec.key).with_context(|| {
        format!("signer {}: key {} is not in the state; run `keyrite apply` first", spec.name, spec.key)
    })?;
    if key.kind != "gcp_kms_crypto_key" {
        bail!(
            "signer {} uses {} ({}): only Cloud KMS signers get a Cloud Run function; AWS signers are deployed by \
             `keyrite apply` (aws_lambda_function)",
            spec.name,
            spec.key,
            key.kind
        );
    }
    let output = |name: &str| key.outputs.get(name).and_then(|v| v.as_str()).unwrap_or_default().to_owned();
    let (version, address) = (output("version_id"), output("address"));
    if version.is_empty() || address.is_empty() {
        bail!("signer {}: no key version or address recorded for {}; run `keyrite apply`", spec.name, spec.key);
    }

    let files = crate::package::template_files("gcp-cloud-run-signer", Path::new("."))?;
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    for (name, bytes) in &files {
        let path = out.join(name);
        std::fs::write(&path, bytes).with_context(|| format!("cannot write {}", path.display()))?;
    }

    let parts: Vec<&str> = version.split('/').collect();
    let (project, location) = (parts.get(1).copied().unwrap_or_default(), parts.get(3).copied().unwrap_or_default());
    // Cloud Run needs a region; a global or multi-region key ring gives none.
    let region = if location.contains('-') { location.to_owned() } else { "REGION".to_owned() };
    let accounts: Vec<String> = state
        .resources
        .values()
        .filter(|r| r.kind == "gcp_kms_crypto_key_iam_binding" && r.id == key.id)
        .flat_map(|r| r.attrs.get("members").and_then(|m| m.as_array()).cloned().unwrap_or_default())
        .filter_map(|m| m.as_str().and_then(|m| m.strip_prefix("serviceAccount:")).map(str::to_owned))
        .collect();
    let account = match accounts.as_slice() {
        [one] => one.clone(),
        _ => "SERVICE_ACCOUNT".to_owned(),
    };
    let mode = match spec.mode {
        SigningMode::Eip191 => "eip191",
        SigningMode::Digest => "digest",
    };
    let name = format!("keyrite-{}", spec.name.replace('_', "-"));

    println!("Wrote the Cloud Run signer for {} ({address}) to {}:", spec.name, out.display());
    for (file, _) in &files {
        println!("  {file}");
    }
    println!("\nDeploy it (entry point signDigest, callers must present a Google ID token):\n");
    println!(
        "  gcloud functions deploy {name} \\\n    --gen2 --runtime=nodejs20 --project={project} --region={region} \\\n    \
         --source={} --entry-point=signDigest --trigger-http --no-allow-unauthenticated \\\n    \
         --service-account={account} \\\n    \
         --set-env-vars=KMS_KEY_VERSION={version},EXPECTED_ADDRESS={address},SIGNING_MODE={mode}",
        out.display()
    );
    if region == "REGION" {
        println!("\nThe key ring is in {location:?}, which is not a region: choose the region to run in.");
    }
    if account == "SERVICE_ACCOUNT" {
        println!(
            "\nNo single service account is bound to {} in the state: name the one that holds \
             roles/cloudkms.signerVerifier on the key.",
            spec.key
        );
    }
    println!(
        "\nThen grant callers roles/run.invoker, add the function's URL to signers.{}.endpoints with \
         `google_id_token: true`, and run `keyrite selftest`.",
        spec.name
    );
    Ok(Status::Ok)
}

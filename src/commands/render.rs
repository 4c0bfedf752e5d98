//! `keyrite render-signer`: what runs a Cloud KMS signer on Cloud Run, written to a
//! directory, and the `gcloud` command that deploys it. Either the `signDigest` function
//! (Node.js), or with `--serve` a container recipe for `keyrite serve` itself: this keyrite
//! binary, the manifest and its state, and a Dockerfile that `gcloud run deploy --source`
//! builds.
//!
//! Everything comes from the state, offline: the pinned key version, the address it signs
//! for (the signer refuses to sign if its key's public key says otherwise), and the
//! service account bound to the key. Deploying Cloud Run is left to `gcloud`.

use std::path::Path;

use anyhow::{Context, bail};

use super::{Status, load};
use crate::cli::ManifestArg;

/// Cloud Run gives a container 10 s between SIGTERM and SIGKILL; serve drains within that.
const CLOUD_RUN_DRAIN_SECONDS: u64 = 8;

pub async fn run(arg: &ManifestArg, signer: Option<&str>, out: &Path, serve: bool) -> anyhow::Result<Status> {
    let (manifest, store) = load(arg).await?;
    let spec = manifest.signer(signer)?;
    // A recovery signer runs on Cloud Run only as its quorum gate, which is `keyrite serve`.
    match (&spec.gate, serve) {
        (None, _) if spec.slot == crate::manifest::Slot::Recovery => {
            bail!("signer {} uses {}, a recovery key: recovery keys get no Cloud Run function", spec.name, spec.key)
        }
        (Some(_), false) => {
            bail!("signer {} is a quorum gate, which runs as `keyrite serve`: render it with --serve", spec.name)
        }
        _ => {}
    }
    let Some(state) = super::read_state(&store).await? else {
        bail!("no state at {}: run `keyrite apply` first", store.describe())
    };
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
    let account = match (&spec.gate, accounts.as_slice()) {
        // The gate's identity is declared: the one member its key's binding lets sign.
        (Some(gate), _) => gate.service_account.clone(),
        (None, [one]) => one.clone(),
        _ => "SERVICE_ACCOUNT".to_owned(),
    };
    let mode = spec.mode.as_str();
    let name = format!("keyrite-{}", spec.name.replace('_', "-"));
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    if serve {
        let files = container(&manifest, &spec.name, out)?;
        println!("Wrote a container for `keyrite serve` with signer {} ({address}) to {}:", spec.name, out.display());
        for file in &files {
            println!("  {file}");
        }
        println!("\nDeploy it (Cloud Build builds the Dockerfile; callers must present a Google ID token):\n");
        println!(
            "  gcloud run deploy {name} \\\n    --project={project} --region={region} --source={} \\\n    \
             --service-account={account} --no-allow-unauthenticated \\\n    \
             --cpu=1 --memory=256Mi --min-instances=1 --concurrency=80",
            out.display()
        );
        println!(
            "\nCloud Run sets PORT, which `keyrite serve` listens on; it terminates TLS in front of the \
             container and checks the caller's ID token (roles/run.invoker) before a request arrives. \
             The image runs as a non-root user on distroless/cc (glibc 2.36): build keyrite on a system \
             with glibc 2.36 or older."
        );
    } else {
        let files = crate::provider::gcp::cloud_run::files();
        for (name, bytes) in &files {
            let path = out.join(name);
            std::fs::write(&path, bytes).with_context(|| format!("cannot write {}", path.display()))?;
        }
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
    }
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
    if spec.gate.is_some() {
        println!(
            "\nThe service is signer {}'s quorum gate: it signs only an enrolment its approvers approved, \
             and {account} must be the only member of {}'s binding that may sign. Grant the operators who \
             submit enrolments roles/run.invoker.",
            spec.name, spec.key
        );
        return Ok(Status::Ok);
    }
    println!(
        "\nThen grant callers roles/run.invoker, add the {}'s URL to signers.{}.endpoints with \
         `google_id_token: true`, and run `keyrite selftest`.",
        if serve { "service" } else { "function" },
        spec.name
    );
    Ok(Status::Ok)
}

/// Writes the container recipe: this binary, the manifest, its local state and a Dockerfile.
/// Returns the files written, relative to `out`.
fn container(manifest: &crate::manifest::Manifest, signer: &str, out: &Path) -> anyhow::Result<Vec<String>> {
    let crate::manifest::StateConfig::Local { path: state } = &manifest.state else {
        bail!(
            "--serve copies the state into the image, and this manifest keeps its state in S3: use a local \
             state, or run `keyrite serve` where it can read the bucket"
        );
    };
    let base = manifest.path.parent().unwrap_or(Path::new("."));
    let manifest_name =
        manifest.path.file_name().context("the manifest path names no file")?.to_string_lossy().into_owned();
    let state_rel = state
        .strip_prefix(base)
        .ok()
        .filter(|p| p.components().all(|c| matches!(c, std::path::Component::Normal(_))))
        .with_context(|| {
            format!(
                "the state {} is not beside the manifest: --serve needs it in the manifest's directory",
                state.display()
            )
        })?
        .to_path_buf();
    let exe = std::env::current_exe().context("cannot find the keyrite binary to copy")?;
    let copy = |from: &Path, to: &Path| -> anyhow::Result<()> {
        if let Some(dir) = to.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        }
        std::fs::copy(from, to).with_context(|| format!("cannot copy {} to {}", from.display(), to.display()))?;
        Ok(())
    };
    copy(&exe, &out.join("keyrite"))?;
    copy(&manifest.path, &out.join(&manifest_name))?;
    copy(state, &out.join(&state_rel))?;
    let state_name = state_rel.to_string_lossy().into_owned();
    // The allowed_signers files the manifest reads (a ceremony's approvers, a gate's), so
    // that `keyrite serve` loads it in the image as it does here.
    let mut read: Vec<&Path> = manifest.ceremony.iter().map(|c| c.approvers.as_path()).collect();
    read.extend(manifest.signers.iter().filter_map(|s| s.gate.as_ref()).map(|g| g.spec.file.as_path()));
    let mut extra = Vec::new();
    for file in read {
        // Beside the manifest: below its directory, `./` parts aside.
        let beside = |p: &Path| -> Option<std::path::PathBuf> {
            let rel = p.strip_prefix(base).ok()?;
            let parts: Vec<_> = rel.components().filter(|c| *c != std::path::Component::CurDir).collect();
            parts.iter().all(|c| matches!(c, std::path::Component::Normal(_))).then(|| parts.iter().collect())
        };
        let rel = beside(file).with_context(|| {
            format!("{} is not beside the manifest: --serve needs it in the manifest's directory", file.display())
        })?;
        copy(file, &out.join(&rel))?;
        extra.push(rel.to_string_lossy().into_owned());
    }
    extra.sort();
    extra.dedup();
    let copies: String = extra.iter().map(|f| format!("COPY {f} ./{f}\n")).collect();
    let entrypoint = serde_json::json!([
        "/srv/keyrite/keyrite",
        "serve",
        "--file",
        manifest_name,
        "--signer",
        signer,
        "--drain-seconds",
        CLOUD_RUN_DRAIN_SECONDS.to_string(),
    ]);
    let dockerfile = format!(
        "# `keyrite serve` for signer {signer}, rendered by keyrite {version}.\n\
         # The keyrite binary beside this file is the one that rendered it. The state holds no\n\
         # secret: key names, public keys and addresses.\n\
         FROM gcr.io/distroless/cc-debian12:nonroot\n\
         WORKDIR /srv/keyrite\n\
         COPY keyrite {manifest_name} ./\n\
         COPY {state_name} ./{state_name}\n\
         {copies}\
         USER nonroot\n\
         # Listens on 0.0.0.0:$PORT (Cloud Run sets PORT) and drains within Cloud Run's 10 s on SIGTERM.\n\
         ENTRYPOINT {entrypoint}\n",
        version = env!("CARGO_PKG_VERSION"),
    );
    std::fs::write(out.join("Dockerfile"), dockerfile).context("cannot write the Dockerfile")?;
    // Cloud Build uploads the directory: only what the image needs.
    let kept: String = extra.iter().map(|f| format!("!{f}\n")).collect();
    let ignore = format!("*\n!Dockerfile\n!keyrite\n!{manifest_name}\n!{state_name}\n{kept}");
    std::fs::write(out.join(".gcloudignore"), ignore).context("cannot write .gcloudignore")?;
    let mut files = vec!["Dockerfile".into(), ".gcloudignore".into(), "keyrite".into(), manifest_name, state_name];
    files.extend(extra);
    Ok(files)
}

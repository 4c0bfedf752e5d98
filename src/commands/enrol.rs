//! `keyrite enrol`: the enrolment of a new operational signer, authorized by the recovery
//! key through its quorum gate.
//!
//! - `enrol prepare` writes the enrolment (EIP-712, `eth_signTypedData_v4` JSON) for the
//!   gate's wallet and domain, as the manifest fixes them, and its 32-byte digest beside it
//!   (`FILE.digest`), which each approver signs with `ssh-keygen -Y sign -n
//!   keyrite-enrolment@v1 -f KEY FILE.digest` (or reads aloud as PGP words first). No cloud
//!   call.
//! - `enrol submit` collects the approvals beside the file (`FILE.digest.sig`,
//!   `FILE.digest.<name>.sig`), checks them with the gate's own rules and configuration
//!   first (a refused enrolment makes no call at all), invokes the gate
//!   (`lambda:InvokeFunction`), checks that the signature recovers to the recovery key's
//!   address, and writes `FILE.signature.json`.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use base64::Engine;
use serde_json::{Value, json};

use super::{Status, load};
use crate::cli::ManifestArg;
use crate::crypto::{self, Address};
use crate::manifest::{Manifest, ResourceSpec};
use crate::provider::Cloud;
use keyrite_core::ceremony::enrolment::{Enrolment, NAMESPACE, TypedEnrolment};
use keyrite_core::ceremony::{self, words};
use keyrite_core::gate::{self, Gate};

/// Where a recovery signer's quorum gate runs.
pub(super) enum Site<'m> {
    /// The `aws_lambda_function` whose `gate:` guards the key.
    Lambda(&'m ResourceSpec),
    /// `keyrite serve` on Cloud Run, as the signer's `gate:` declares it.
    CloudRun(&'m crate::manifest::SignerGate),
}

impl Site<'_> {
    /// How messages name the gate.
    pub(super) fn name(&self) -> String {
        match self {
            Site::Lambda(function) => function.name.clone(),
            Site::CloudRun(g) => format!("on Cloud Run as {}", g.service_account),
        }
    }

    /// The approvers' allowed_signers text the gate holds.
    fn allowed_signers(&self) -> String {
        match self {
            Site::Lambda(function) => function
                .desired
                .get("environment")
                .and_then(|e| e.get(gate::ENV_ALLOWED_SIGNERS))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            Site::CloudRun(g) => g.spec.allowed_signers.clone(),
        }
    }
}

/// The signer's quorum gate in the manifest: its own `gate:` (Cloud Run), or the function
/// whose `gate:` guards its key (AWS).
pub(super) fn gate_of<'m>(manifest: &'m Manifest, signer: &str) -> anyhow::Result<(Site<'m>, Gate)> {
    let spec = manifest.signer(Some(signer))?;
    if let Some(g) = &spec.gate {
        let gate = g.spec.gate().map_err(anyhow::Error::msg).with_context(|| format!("signers.{signer}.gate"))?;
        return Ok((Site::CloudRun(g), gate));
    }
    let key = format!("${{{}.", spec.key);
    let function = manifest
        .resources
        .iter()
        .filter(|r| keyrite_core::lint::gate_role(&r.kind, &r.desired).is_some())
        .find(|r| {
            r.desired
                .get("environment")
                .and_then(|e| e.get("KMS_KEY_ID"))
                .and_then(Value::as_str)
                .is_some_and(|k| k.starts_with(&key))
        })
        .with_context(|| {
            format!(
                "signer {signer}: no quorum gate guards its key {} (an aws_lambda_function with a `gate:` block, see \
                 manifests/recovery-gate.yaml; or the signer's own `gate:` on Cloud KMS, see manifests/gcp-recovery-gate.yaml)",
                spec.key
            )
        })?;
    let env = function.desired.get("environment").cloned().unwrap_or_default();
    let gate = Gate::from_env(|name| env.get(name).and_then(Value::as_str).map(str::to_owned))
        .map_err(anyhow::Error::msg)
        .with_context(|| format!("resources.{}: the gate's configuration", function.name))?;
    Ok((Site::Lambda(function), gate))
}

/// POSTs `body` to a gate served over HTTP (`keyrite serve`, on Cloud Run), with a Google ID
/// token for the URL's origin when asked: the answer's status and JSON body.
async fn post(url: &str, body: &str, google_id_token: bool) -> anyhow::Result<(u16, Value)> {
    use http_body_util::BodyExt;
    let mut request = http::Request::post(url).header("content-type", "application/json");
    if google_id_token {
        let uri: http::Uri = url.parse().with_context(|| format!("--url {url:?} is not a URL"))?;
        let audience =
            format!("{}://{}", uri.scheme_str().unwrap_or("https"), uri.authority().map_or("", |a| a.as_str()));
        #[cfg(feature = "gcp")]
        {
            let token = crate::provider::gcp::credentials::google_id_token(&audience)
                .await
                .map_err(|e| anyhow::anyhow!("cannot get a Google ID token for {audience}: {e}"))?;
            request = request.header("authorization", format!("Bearer {token}"));
        }
        #[cfg(not(feature = "gcp"))]
        bail!("a Google ID token for {audience} needs a keyrite built with --features gcp");
    }
    let request = request.body(http_body_util::Full::new(bytes::Bytes::from(body.to_owned())))?;
    let response = crate::selftest::http_client()?.request(request).await.with_context(|| format!("POST {url}"))?;
    let status = response.status().as_u16();
    let bytes = response.into_body().collect().await.with_context(|| format!("POST {url}"))?.to_bytes();
    Ok((status, serde_json::from_slice(&bytes).unwrap_or(Value::Null)))
}

pub(super) fn digest_path(file: &Path) -> PathBuf {
    let mut name = file.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".digest");
    file.with_file_name(name)
}

/// `enrol prepare`.
pub fn prepare(
    arg: &ManifestArg,
    signer: &str,
    new_signer: &str,
    replaces: &str,
    nonce: u64,
    valid_for: &str,
    out: &Path,
) -> anyhow::Result<Status> {
    let manifest = crate::manifest::load(&arg.file)?;
    let (function, gate) = gate_of(&manifest, signer)?;
    let parse = |flag: &str, text: &str| -> anyhow::Result<Address> {
        text.parse().map_err(|e| anyhow::anyhow!("{flag}: {text:?} is not an address: {e}"))
    };
    let seconds = keyrite_core::rotation::duration_seconds(valid_for)
        .filter(|s| (1..=gate::MAX_VALIDITY_SECONDS).contains(s))
        .with_context(|| {
            format!(
                "--valid-for: {valid_for:?} is not a duration from 1s to the gate's {} days (30m, 24h, 7d)",
                gate::MAX_VALIDITY_SECONDS / 86400
            )
        })?;
    let scope = gate.scope();
    let enrolment = TypedEnrolment {
        domain: scope.domain.clone(),
        message: Enrolment {
            wallet: scope.wallet,
            new_signer: parse("--new-signer", new_signer)?,
            replaces: parse("--replaces", replaces)?,
            nonce,
            deadline: ceremony::unix_now() + seconds,
        },
    };
    if enrolment.message.new_signer == enrolment.message.replaces {
        bail!("--new-signer and --replaces are the same address");
    }
    let then = format!("`keyrite enrol submit {}`", out.display());
    write(out, &enrolment, &function.name(), gate.threshold(), &then)?;
    Ok(Status::Ok)
}

/// Writes the enrolment to `out` and its digest beside it, and tells the approvers what to
/// run; `then` is the command that follows their approvals.
pub(super) fn write(
    out: &Path,
    enrolment: &TypedEnrolment,
    function: &str,
    threshold: usize,
    then: &str,
) -> anyhow::Result<()> {
    let digest = enrolment.digest();
    std::fs::write(out, serde_json::to_string_pretty(&enrolment.to_json())? + "\n")
        .with_context(|| format!("cannot write {}", out.display()))?;
    let digest_file = digest_path(out);
    std::fs::write(&digest_file, digest).with_context(|| format!("cannot write {}", digest_file.display()))?;
    let m = &enrolment.message;
    let now = ceremony::unix_now();
    println!("Enrolment for {} ({}, chain {}):", m.wallet, enrolment.domain.name, enrolment.domain.chain_id);
    println!("  new signer:  {}\n  replaces:    {}\n  nonce:       {}", m.new_signer, m.replaces, m.nonce);
    println!("  deadline:    {} (unix seconds, {} s from now)", m.deadline, m.deadline.saturating_sub(now));
    println!("  digest:      0x{}", hex::encode(digest));
    println!("\n{}\n", words::format_words(&digest, 8));
    println!(
        "Wrote {} and {}. The gate {function} needs {threshold} approvals; each approver runs:\n  \
         ssh-keygen -Y sign -n {NAMESPACE} -f KEY {}\n(several approvers in one directory: rename each .sig to {}.<name>.sig)\nthen {then}.",
        out.display(),
        digest_file.display(),
        digest_file.display(),
        digest_file.display(),
    );
    Ok(())
}

/// `enrol submit`.
pub async fn submit(
    arg: &ManifestArg,
    signer: &str,
    file: &Path,
    url: Option<&str>,
    google_id_token: bool,
) -> anyhow::Result<Status> {
    let (manifest, store) = load(arg).await?;
    let Some(state) = super::read_state(&store).await? else {
        bail!("no state at {}: run `keyrite apply` first", store.describe())
    };
    let cloud = Cloud::connect(&manifest.aws, &manifest.gcp).await;
    let signed = sign(&manifest, &state, &cloud, signer, file, url.map(|u| (u, google_id_token))).await?;
    let record = json!({
        "format_version": 1,
        "kind": "enrolment_signature",
        "enrolment": signed.typed.to_json(),
        "digest": format!("0x{}", hex::encode(signed.digest)),
        "signature": signed.signature,
        "signer": signed.address.to_string(),
        "approvers": signed.approvers,
        "gate": {"function": signed.function, "configuration_sha256": signed.gate.fingerprint()},
    });
    let mut name = file.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".signature.json");
    let written = file.with_file_name(name);
    std::fs::write(&written, serde_json::to_string_pretty(&record)? + "\n")
        .with_context(|| format!("cannot write {}", written.display()))?;
    println!("  wrote {}", written.display());
    Ok(Status::Ok)
}

/// An enrolment the recovery key signed through its gate.
pub(super) struct Signed {
    pub typed: TypedEnrolment,
    pub digest: [u8; 32],
    /// 0x r‖s‖v, checked to recover to `address`.
    pub signature: String,
    /// The recovery key's address.
    pub address: Address,
    /// The principals whose approvals the gate counted, and every approval sent.
    pub approvers: Vec<String>,
    pub approvals: Vec<String>,
    /// The gate's function name as deployed, its configuration, and its approvers' file.
    pub function: String,
    pub gate: Gate,
    pub allowed_signers: String,
}

/// Reads the enrolment `file` and the approvals beside it, checks them with the gate's own
/// rules and configuration (a refused enrolment makes no call at all), asks the gate of
/// `signer` to sign, and checks that the signature recovers to the recovery key's address.
pub(super) async fn sign(
    manifest: &Manifest,
    state: &crate::state::State,
    cloud: &Cloud,
    signer: &str,
    file: &Path,
    url: Option<(&str, bool)>,
) -> anyhow::Result<Signed> {
    let (function, gate) = gate_of(manifest, signer)?;
    let text = std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let typed = serde_json::from_str::<Value>(&text)
        .map_err(|e| anyhow::anyhow!("{e}"))
        .and_then(|v| TypedEnrolment::from_json(&v).map_err(anyhow::Error::msg))
        .with_context(|| format!("{} is not an enrolment", file.display()))?;
    let digest_file = digest_path(file);
    let mut approvals = Vec::new();
    for path in ceremony::approval_files(&digest_file)? {
        approvals.push(std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?);
    }
    let body = json!({"enrolment": typed.to_json(), "approvals": approvals}).to_string();
    // The gate's own decision, with its deployed configuration, before anything is sent.
    let authorized = gate.authorize(body.as_bytes(), ceremony::unix_now()).map_err(|refusal| {
        anyhow::anyhow!("the gate {} would refuse this enrolment: {refusal} (nothing was sent)", function.name())
    })?;
    let spec = manifest.signer(Some(signer))?;
    let address = recorded_address(state, &spec.key)?;
    let (reached, (status, answer)) = match (&function, url) {
        (Site::Lambda(f), _) => {
            let deployed = state
                .resources
                .get(&f.name)
                .with_context(|| format!("the gate {} is not in the state; run `keyrite apply` first", f.name))?;
            (
                deployed.id.clone(),
                keyrite_aws::invoke::post(&cloud.aws, &deployed.id, &body).await.map_err(anyhow::Error::msg)?,
            )
        }
        (Site::CloudRun(_), Some((url, token))) => (url.to_owned(), post(url, &body, token).await?),
        (Site::CloudRun(_), None) => {
            bail!(
                "the gate of {signer} runs on Cloud Run: pass its --url (and --google-id-token for Cloud Run's check)"
            )
        }
    };
    if status != 200 {
        bail!("the gate {reached} refused ({status}): {}", answer["error"].as_str().unwrap_or("no reason given"));
    }
    let signature = keyrite_core::contract::parse_response(answer.to_string().as_bytes())
        .context("the gate's answer has no signature")?;
    let bytes = keyrite_core::signing::parse_hex(&signature).map_err(anyhow::Error::msg)?;
    keyrite_core::signing::check_rsv(&address, &authorized.digest, &bytes)
        .with_context(|| format!("the gate's signature is not the recovery key's ({address})"))?;
    println!(
        "The recovery key ({address}) signed the enrolment of {} in place of {}, approved by {}.\n  signature: {signature}",
        typed.message.new_signer,
        typed.message.replaces,
        authorized.approvers.join(", "),
    );
    let allowed_signers = function.allowed_signers();
    Ok(Signed {
        typed,
        digest: authorized.digest,
        signature,
        address,
        approvers: authorized.approvers,
        approvals,
        function: reached,
        gate,
        allowed_signers,
    })
}

pub(super) fn recorded_address(state: &crate::state::State, key: &str) -> anyhow::Result<Address> {
    let r = state.resources.get(key).with_context(|| format!("key {key} is not in the state; apply first"))?;
    let spki = r
        .outputs
        .get("public_key")
        .and_then(Value::as_str)
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .with_context(|| format!("key {key}: no public key recorded"))?;
    Ok(crypto::evm_address(&crypto::public_key_from_spki_der(&spki)?))
}

//! The steps of a rotation that talk to the cloud: the plan, the enrolment through the
//! quorum gate, and the finish (AWS: the gate is a Lambda, the old key a KMS key).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use keyrite_core::ceremony::enrolment::{Enrolment, NAMESPACE, TypedEnrolment};
use keyrite_core::ceremony::record;

use super::step_record;
use keyrite_core::rotation::{self as model, Phase, Rotation, RotationPlan};

use crate::cli::ManifestArg;
use crate::commands::{Reference, Status, call_summary, load, preflight, refresh};
use crate::manifest::Manifest;
use crate::plan::Plan;
use crate::provider::Cloud;
use crate::render::human;
use crate::state::{State, now};

/// `keyrite rotate SIGNER --out FILE`.
pub async fn plan(
    arg: &ManifestArg,
    signer: &str,
    out: &Path,
    nonce: Option<u64>,
    valid_for: &str,
) -> anyhow::Result<Status> {
    let (manifest, store) = load(arg).await?;
    let spec = manifest.signer(Some(signer))?;
    let Some(rotation) = &spec.rotation else {
        bail!(
            "signer {signer} has no `rotation:` block: declare its grace period (and its recovery signer) first, e.g.\n  \
             signers:\n    {signer}:\n      key: {}\n      rotation: {{grace: 7d, every: 90d}}",
            spec.key
        );
    };
    if manifest.ceremony.is_none() {
        bail!(
            "a rotation is a ceremony, and {} has no `ceremony:` block: declare the approvers who approve it",
            manifest.path.display()
        );
    }
    let kind = manifest.resource(&spec.key).map(|r| r.kind.as_str()).unwrap_or_default();
    if kind != "aws_kms_key" {
        bail!("signer {signer}: `keyrite rotate` rotates aws_kms_key keys; {} is a {kind}", spec.key);
    }
    // The enrolment's gate must exist before anything is planned.
    let (function, gate) = crate::commands::enrol::gate_of(&manifest, &rotation.recovery)?;
    let valid_for = model::duration_seconds(valid_for)
        .filter(|s| (60..=keyrite_core::gate::MAX_VALIDITY_SECONDS).contains(s))
        .with_context(|| {
            format!("--valid-for: {valid_for:?} is not a duration from 1m to the gate's 30 days (30m, 24h, 7d)")
        })?;
    let Some(state) = crate::commands::read_state(&store).await? else {
        bail!("no state at {}: apply the manifest before rotating its keys", store.describe());
    };
    let open = state.rotations.iter().rev().find(|r| r.key == spec.key && r.phase != Phase::Finished);
    let rotation_plan = match open {
        Some(r) if r.phase == Phase::Applying => {
            println!(
                "Continuing the rotation of {} to generation {} that an interrupted apply started on {}.",
                r.key, r.generation, r.started_at
            );
            RotationPlan {
                signer: r.signer.clone(),
                key: r.key.clone(),
                generation: r.generation,
                replaces_id: r.old.id.clone(),
                replaces_address: r.old_address.clone(),
                grace_seconds: r.grace_seconds,
                recovery: r.recovery.clone(),
                nonce: r.nonce,
                valid_for_seconds: r.valid_for_seconds,
                continuing: true,
            }
        }
        Some(r) => bail!(
            "signer {signer} is already rotating: generation {} is {}; {}",
            r.generation,
            describe(r.phase),
            next_step(r)
        ),
        None => {
            let current = state
                .resources
                .get(&spec.key)
                .with_context(|| format!("{} is not in the state: apply the manifest first", spec.key))?;
            let enrolled = state
                .rotations
                .iter()
                .filter(|r| r.recovery == rotation.recovery && matches!(r.phase, Phase::Enrolled | Phase::Finished))
                .count() as u64;
            RotationPlan {
                signer: signer.to_owned(),
                key: spec.key.clone(),
                generation: crate::plan::generation(Some(&state), &spec.key) + 1,
                replaces_id: current.id.clone(),
                replaces_address: crate::commands::enrol::recorded_address(&state, &spec.key)?.to_checksum_string(),
                grace_seconds: rotation.grace_seconds,
                recovery: rotation.recovery.clone(),
                nonce: nonce.unwrap_or(enrolled),
                valid_for_seconds: valid_for,
                continuing: false,
            }
        }
    };
    let cloud = Arc::new(Cloud::connect(&manifest.aws, &manifest.gcp).await);
    let observed = refresh(&cloud, &manifest, Some(&state), Reference::Manifest).await?;
    let mut plan = crate::plan::build_rotation(&manifest, &state, &observed, now(), rotation_plan);
    preflight::check_permissions(&cloud, &mut plan).await?;
    preflight::check_lint(&manifest, &mut plan);
    println!("{}\n{}", human::plan(&plan).trim_end(), call_summary(&cloud));
    if !plan.errors.is_empty() {
        println!("The plan was not saved.");
        return Ok(Status::Error);
    }
    std::fs::write(out, serde_json::to_vec_pretty(&plan)?)
        .with_context(|| format!("cannot write plan to {}", out.display()))?;
    let r = plan.rotation.as_ref().context("rotation")?;
    println!(
        "\nSaved the rotation plan to {file}. After the apply, the enrolment of the new key (nonce {}, valid {}) needs \
         {} approvals for the gate {}.\nNext:\n  1. each approver: keyrite approve {file} --key ~/.ssh/id_ed25519\n  \
         2. keyrite apply {file} --operator-key ~/.ssh/id_ed25519",
        r.nonce,
        model::format_duration(r.valid_for_seconds),
        gate.threshold(),
        function.name(),
        file = out.display()
    );
    Ok(Status::Ok)
}

/// `FILE.enrolment.json` beside the rotation plan: where the enrolment is written.
fn enrolment_path(plan_path: &Path) -> PathBuf {
    let mut name = plan_path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".enrolment.json");
    plan_path.with_file_name(name)
}

/// After the rotation's record: the enrolment of the new key for the gate's approvers.
pub(crate) fn write_enrolment(manifest: &Manifest, state: &State, plan: &Plan, plan_path: &Path) -> anyhow::Result<()> {
    let Some(r) = &plan.rotation else { return Ok(()) };
    let entry = open_rotation(state, &r.signer)?;
    let (function, gate) = crate::commands::enrol::gate_of(manifest, &r.recovery)?;
    let parse = |text: &str| text.parse().map_err(|e| anyhow::anyhow!("{text:?}: {e}"));
    let scope = gate.scope();
    let typed = TypedEnrolment {
        domain: scope.domain.clone(),
        message: Enrolment {
            wallet: scope.wallet,
            new_signer: parse(entry.new_address.as_deref().unwrap_or_default())?,
            replaces: parse(&entry.old_address)?,
            nonce: entry.nonce,
            deadline: keyrite_core::ceremony::unix_now() + entry.valid_for_seconds,
        },
    };
    let out = enrolment_path(plan_path);
    let then = format!("`keyrite rotate {} --enrol {} --operator-key KEY`", r.signer, out.display());
    println!();
    crate::commands::enrol::write(&out, &typed, &function.name(), gate.threshold(), &then)
}

/// `keyrite rotate SIGNER`: where the signer's rotations are, and what comes next.
pub async fn status(arg: &ManifestArg, signer: &str) -> anyhow::Result<Status> {
    let (manifest, store) = load(arg).await?;
    let spec = manifest.signer(Some(signer))?;
    let state = crate::commands::read_state(&store).await?;
    let rotations: Vec<&Rotation> = state.iter().flat_map(|s| &s.rotations).filter(|r| r.signer == signer).collect();
    match &spec.rotation {
        Some(r) => println!(
            "Signer {signer} ({}): grace period {}{}, enrolled by {}'s quorum gate.",
            spec.key,
            model::format_duration(r.grace_seconds),
            r.every_seconds.map(|e| format!(", rotated every {}", model::format_duration(e))).unwrap_or_default(),
            r.recovery
        ),
        None => println!("Signer {signer} ({}) has no `rotation:` block.", spec.key),
    }
    if let Some(due) =
        state.as_ref().map(|s| model::due(std::slice::from_ref(spec), s, &now())).unwrap_or_default().first()
    {
        println!("  {due}");
    }
    if rotations.is_empty() {
        println!("  never rotated");
    }
    for r in &rotations {
        println!(
            "  generation {}: {} → {}, {}; {}",
            r.generation,
            r.old_address,
            r.new_address.as_deref().unwrap_or("(not made yet)"),
            describe(r.phase),
            next_step(r)
        );
    }
    Ok(Status::Ok)
}

/// The signer's rotation that has not finished.
fn open_rotation<'s>(state: &'s State, signer: &str) -> anyhow::Result<&'s Rotation> {
    state.rotations.iter().rev().find(|r| r.signer == signer && r.phase != Phase::Finished).with_context(|| {
        format!("signer {signer} is not rotating: start with `keyrite rotate {signer} --out rotation.plan`")
    })
}

fn describe(phase: Phase) -> &'static str {
    match phase {
        Phase::Applying => "being applied",
        Phase::Rotated => "live, waiting for its enrolment",
        Phase::Enrolled => "enrolled, waiting for the old key's grace period to end",
        Phase::Finished => "finished",
    }
}

fn next_step(r: &Rotation) -> String {
    match r.phase {
        Phase::Applying => format!("continue it with `keyrite rotate {} --out rotation.plan`", r.signer),
        Phase::Rotated => format!("its enrolment is next: `keyrite rotate {} --enrol FILE.enrolment.json`", r.signer),
        Phase::Enrolled => format!(
            "`keyrite rotate {} --finish` disables the old key after {}",
            r.signer,
            r.grace_until.as_deref().unwrap_or("the grace period")
        ),
        Phase::Finished => "nothing is left to do".into(),
    }
}

/// What a rotation's later steps carry over from its first record: the approved plan and its
/// approvals, so that each record verifies on its own.
struct First {
    plan_path: String,
    plan_bytes: Vec<u8>,
    plan: Plan,
    approvals: record::Approvals,
}

fn first_record(records: &Path, state: &State, entry: &Rotation) -> anyhow::Result<First> {
    let id = entry.records.first().context("the rotation has no record")?;
    let found = record::records_in(records, Some(&state.lineage))?
        .into_iter()
        .find(|f| f.statement.predicate.record_id == *id)
        .with_context(|| format!("the rotation's record {id} is not in {}", records.display()))?;
    let p = found.statement.predicate;
    let plan_bytes = B64.decode(&p.plan.content)?;
    let plan: Plan = serde_json::from_slice(&plan_bytes)?;
    Ok(First { plan_path: p.plan.path, plan_bytes, plan, approvals: p.approvals })
}

/// What the enrol and finish steps start from: the manifest, its state's backend, its
/// ceremony, and the operator's key for the step's record.
async fn prologue(
    arg: &ManifestArg,
    operator_key: Option<&Path>,
) -> anyhow::Result<(Manifest, crate::state::Backend, crate::manifest::CeremonyConfig, ssh_key::PrivateKey)> {
    let (manifest, store) = load(arg).await?;
    let cfg = manifest.ceremony.clone().context("the manifest has no `ceremony:` block")?;
    let operator = operator(operator_key)?;
    Ok((manifest, store, cfg, operator))
}

/// The signer's open rotation, which must be in `phase` for the step; `why` prefixes the
/// refusal's advice.
fn in_phase(state: &State, signer: &str, phase: Phase, why: &str) -> anyhow::Result<Rotation> {
    let entry = open_rotation(state, signer)?;
    if entry.phase != phase {
        bail!("signer {signer}'s rotation is {}: {why}{}", describe(entry.phase), next_step(entry));
    }
    Ok(entry.clone())
}

/// The operator's Ed25519 key, for a step's record.
fn operator(key: Option<&Path>) -> anyhow::Result<ssh_key::PrivateKey> {
    let path = key.context("a rotation step signs its record: pass --operator-key (or set KEYRITE_OPERATOR_KEY)")?;
    let key = crate::commands::ceremony::load_key(path)?;
    if key.algorithm() != ssh_key::Algorithm::Ed25519 {
        bail!("the operator key {} is {}; ceremony records are signed with Ed25519", path.display(), key.algorithm());
    }
    Ok(key)
}

async fn identity(cloud: &Cloud) -> crate::plan::Identity {
    crate::plan::Identity { aws: cloud.aws.identity().await.ok().map(|i| i.arn.clone()), gcp: None }
}

/// `keyrite rotate SIGNER --enrol FILE`.
pub async fn enrol(
    arg: &ManifestArg,
    signer: &str,
    file: &Path,
    operator_key: Option<&Path>,
) -> anyhow::Result<Status> {
    let (manifest, store, cfg, operator) = prologue(arg, operator_key).await?;
    let lock = store.lock("rotate --enrol").await?;
    let result = async {
        let started_at = now();
        let mut state = crate::commands::read_state(&store).await?.context("no state")?;
        let entry = in_phase(&state, signer, Phase::Rotated, "")?;
        let typed = std::fs::read_to_string(file)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .and_then(|v| TypedEnrolment::from_json(&v).ok())
            .with_context(|| format!("{} is not an enrolment", file.display()))?;
        let new = entry.new_address.clone().unwrap_or_default();
        let m = &typed.message;
        if m.new_signer.to_checksum_string() != new || m.replaces.to_checksum_string() != entry.old_address || m.nonce != entry.nonce
        {
            bail!(
                "{} enrols {} in place of {} (nonce {}), but this rotation is from {} to {new} (nonce {}); nothing was sent",
                file.display(),
                m.new_signer,
                m.replaces,
                m.nonce,
                entry.old_address,
                entry.nonce
            );
        }
        let first = first_record(&cfg.records, &state, &entry)?;
        let cloud = Cloud::connect(&manifest.aws, &manifest.gcp).await;
        let signed = crate::commands::enrol::sign(&manifest, &state, &cloud, &entry.recovery, file, None).await?;
        let signers = keyrite_core::ceremony::allowed_signers::parse("the gate's approvers", &signed.allowed_signers)?;
        let at = keyrite_core::ceremony::unix_now();
        let approvals = signed
            .approvals
            .iter()
            .filter_map(|armored| {
                let v = keyrite_core::ceremony::approval::verify(armored, &signed.digest, NAMESPACE, &signers, at, None)
                    .ok()?;
                Some(record::ApprovalRecord {
                    principal: v.principals.join(","),
                    fingerprint: v.fingerprint,
                    key_type: v.key_type.to_string(),
                    signature: armored.clone(),
                })
            })
            .collect();
        let record_id = uuid::Uuid::new_v4().to_string();
        let rotation = step_record("enrol", &entry, None, None);
        let enrolment = record::EnrolmentRecord {
            typed_data: signed.typed.to_json(),
            digest: format!("0x{}", hex::encode(signed.digest)),
            namespace: NAMESPACE.into(),
            threshold: signed.gate.threshold(),
            allowed_signers_sha256: record::sha256_hex(signed.allowed_signers.as_bytes()),
            allowed_signers: signed.allowed_signers.clone(),
            approvals,
            gate: signed.function.clone(),
            gate_configuration_sha256: signed.gate.fingerprint().to_owned(),
            recovery_address: signed.address.to_checksum_string(),
            signature: signed.signature.clone(),
        };
        let bytes = serde_json::to_vec(&enrolment.typed_data)?;
        let parts = crate::commands::ceremony::Record {
            record_id: record_id.clone(),
            started_at,
            plan_path: first.plan_path,
            plan_bytes: first.plan_bytes,
            plan: &first.plan,
            approvals: first.approvals,
            identity: identity(&cloud).await,
            applied: Vec::new(),
            keys: Vec::new(),
            selftest: Vec::new(),
            subjects: vec![record::Subject::sha256(format!("enrolment:{}", entry.key), &bytes)],
            rotation: Some(rotation),
            enrolment: Some(enrolment),
        };
        let at = state.rotations.iter().rposition(|r| r.signer == signer && r.phase == Phase::Rotated).context("rotation")?;
        state.rotations[at].phase = Phase::Enrolled;
        state.rotations[at].records.push(record_id);
        crate::commands::ceremony::write_record(parts, &operator, &mut state, &store, &cfg.records).await?;
        println!(
            "Submit the enrolment and its signature to the wallet {}. The old key {} keeps signing until `keyrite rotate {signer} --finish`, after {}.",
            signed.typed.message.wallet,
            entry.old_address,
            entry.grace_until.as_deref().unwrap_or("the grace period")
        );
        Ok(Status::Ok)
    }
    .await;
    store.unlock(lock).await?;
    result
}

/// `keyrite rotate SIGNER --finish`.
pub async fn finish(arg: &ManifestArg, signer: &str, operator_key: Option<&Path>) -> anyhow::Result<Status> {
    let (manifest, store, cfg, operator) = prologue(arg, operator_key).await?;
    let lock = store.lock("rotate --finish").await?;
    let result = async {
        let started_at = now();
        let mut state = crate::commands::read_state(&store).await?.context("no state")?;
        let entry = in_phase(&state, signer, Phase::Enrolled, "the old key is disabled only once the new one is enrolled; ")?;
        let until = entry.grace_until.clone().unwrap_or_default();
        let left = model::seconds_between(&started_at, &until).unwrap_or(0);
        if left > 0 {
            bail!(
                "the old key {} ({}) is in its grace period until {until} ({} left): it keeps signing until then; nothing was changed",
                entry.old.id,
                entry.old_address,
                model::format_duration(u64::try_from(left).unwrap_or_default())
            );
        }
        let first = first_record(&cfg.records, &state, &entry)?;
        let cloud = Cloud::connect(&manifest.aws, &manifest.gcp).await;
        let after = keyrite_aws::kms_key::disable_key(&cloud.aws, &entry.old.id).await?;
        let disabled_at = now();
        let record_id = uuid::Uuid::new_v4().to_string();
        let at = state.rotations.iter().rposition(|r| r.signer == signer && r.phase == Phase::Enrolled).context("rotation")?;
        state.rotations[at].phase = Phase::Finished;
        state.rotations[at].finished_at = Some(disabled_at.clone());
        state.rotations[at].records.push(record_id.clone());
        let parts = crate::commands::ceremony::Record {
            record_id,
            started_at,
            plan_path: first.plan_path,
            plan_bytes: first.plan_bytes,
            plan: &first.plan,
            approvals: first.approvals,
            identity: identity(&cloud).await,
            applied: vec![record::Applied {
                address: format!("{} (generation {})", entry.key, entry.generation - 1),
                kind: entry.old.kind.clone(),
                action: "disable".into(),
            }],
            keys: Vec::new(),
            selftest: Vec::new(),
            subjects: Vec::new(),
            rotation: Some(step_record("finish", &entry, Some(disabled_at), Some(after.clone()))),
            enrolment: None,
        };
        crate::commands::ceremony::write_record(parts, &operator, &mut state, &store, &cfg.records).await?;
        println!(
            "Rotation of {signer} finished: the old key {} ({}) is {after}. keyrite keeps it, and never schedules its \
             deletion: do that by hand, with a window, once nothing will ever need its address again. {}",
            entry.old.id,
            entry.old_address,
            call_summary(&cloud)
        );
        Ok(Status::Ok)
    }
    .await;
    store.unlock(lock).await?;
    result
}

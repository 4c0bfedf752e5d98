//! `keyrite approve`, `keyrite ceremony verify|show|sign`, and the ceremony steps of
//! `keyrite apply PLANFILE` for a manifest with a `ceremony:` block.
//!
//! A ceremony apply checks, before any cloud call, that the manifest is the one planned and
//! that enough distinct approvers signed the exact plan bytes. After the changes it makes
//! every key it created or changed sign a statement naming the ceremony, asks the cloud
//! what each key is, runs the live self-test, and writes the record, signed by the
//! operator, chained to the lineage's previous record.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ssh_key::PrivateKey;

use super::{Status, confirm, interactive};
use crate::ceremony::record::{self, Statement, Subject};
use crate::ceremony::{allowed_signers, approval, dsse, keys, words};
use crate::manifest::Manifest;
use crate::plan::{Action, Plan};
use crate::provider::Cloud;
use crate::render::{Format, human};
use crate::state::{Backend, ChainHead, State, now};

/// The environment variable holding the passphrase of an encrypted key file, for runs
/// without a terminal to ask on.
pub const PASSPHRASE_ENV: &str = "KEYRITE_KEY_PASSPHRASE";

/// Loads an OpenSSH private key, asking for its passphrase on a terminal when it is
/// encrypted (or taking it from [`PASSPHRASE_ENV`]).
pub fn load_key(path: &Path) -> anyhow::Result<PrivateKey> {
    match keys::load_private_key(path, None) {
        Err(keys::Error::PassphraseNeeded { .. }) => {
            let passphrase = match std::env::var(PASSPHRASE_ENV) {
                Ok(p) => p,
                Err(_) if interactive() => {
                    dialoguer::Password::new().with_prompt(format!("Passphrase for {}", path.display())).interact()?
                }
                Err(_) => bail!(
                    "{} is encrypted and there is no terminal to ask for its passphrase: set {PASSPHRASE_ENV}, or run on a terminal",
                    path.display()
                ),
            };
            Ok(keys::load_private_key(path, Some(&passphrase))?)
        }
        other => Ok(other?),
    }
}

/// `keyrite approve PLANFILE --key KEY`.
pub fn approve(plan_path: &Path, key: &Path, principal: Option<&str>, yes: bool) -> anyhow::Result<Status> {
    let bytes = std::fs::read(plan_path).with_context(|| format!("cannot read plan {}", plan_path.display()))?;
    let plan = crate::plan::Plan::from_saved(plan_path, &bytes)?;
    let Some(cfg) = &plan.ceremony else {
        bail!("{} needs no approvals: its manifest has no `ceremony:` block", plan_path.display());
    };
    let signers = read_approvers(&cfg.approvers, &cfg.approvers_sha256)?;
    let private = load_key(key)?;
    let public = private.public_key();
    let fingerprint = public.fingerprint(ssh_key::HashAlg::Sha256).to_string();
    let theirs: Vec<&allowed_signers::AllowedSigner> =
        signers.iter().filter(|s| s.key.key_data() == public.key_data()).collect();
    if theirs.is_empty() {
        bail!("key {fingerprint} ({}) is not among the approvers in {}", key.display(), cfg.approvers.display());
    }
    let names: Vec<&str> = theirs.iter().flat_map(|s| s.literal_principals()).collect();
    let principal = match principal {
        Some(p) if theirs.iter().any(|s| s.matches_principal(p)) => p.to_owned(),
        Some(p) => bail!("key {fingerprint} is not listed for principal {p:?} (it is for: {})", names.join(", ")),
        None if names.len() == 1 => names[0].to_owned(),
        None => bail!(
            "key {fingerprint} is listed for several principals ({}); choose one with --principal",
            names.join(", ")
        ),
    };
    print!("{}", human::plan(&plan));
    let sha = record::sha256_hex(&bytes);
    println!(
        "\nPlan file: {}\nSHA-256:   {sha}\nAs words (compare them out of band before approving):\n{}",
        plan_path.display(),
        words::format_words(&hex::decode(&sha)?, 8)
    );
    if !yes {
        if !interactive() {
            bail!("no terminal to confirm on: read the plan and its SHA-256 above, then pass --yes");
        }
        if !confirm(&format!("Approve this plan as {principal}?"))? {
            println!("Not approved; nothing was written.");
            return Ok(Status::Error);
        }
    }
    let armored = approval::sign(&private, approval::PLAN_NAMESPACE, &bytes)?;
    approval::verify(
        &armored,
        &bytes,
        approval::PLAN_NAMESPACE,
        &signers,
        crate::ceremony::unix_now(),
        Some(&principal),
    )
    .context("the approval just made does not verify")?;
    let out = crate::ceremony::approval_path(plan_path, &principal);
    std::fs::write(&out, armored).with_context(|| format!("cannot write {}", out.display()))?;
    println!("Approved as {principal} ({fingerprint}); the approval is in {}.", out.display());
    Ok(Status::Ok)
}

/// Reads and parses the approvers file, refusing it if it changed since the plan.
fn read_approvers(path: &Path, planned_sha256: &str) -> anyhow::Result<Vec<allowed_signers::AllowedSigner>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read the approvers file {}", path.display()))?;
    let sha = record::sha256_hex(text.as_bytes());
    if sha != planned_sha256 {
        bail!(
            "the approvers file {} changed since the plan was made (SHA-256 {sha}, planned {planned_sha256}): plan again",
            path.display()
        );
    }
    Ok(allowed_signers::parse(&path.display().to_string(), &text)?)
}

/// What a ceremony apply has settled before its first cloud call.
pub struct Prepared {
    plan_path: PathBuf,
    plan_bytes: Vec<u8>,
    manifest: Manifest,
    allowed_signers: String,
    approvals: Vec<record::ApprovalRecord>,
    operator: PrivateKey,
    started_at: String,
}

/// The checks a saved plan passes before apply calls any cloud: for a ceremony plan, the
/// manifest is the one planned, and enough distinct approvers signed these exact bytes. A
/// plan without a ceremony is refused for a state that has had one.
pub fn prepare(
    plan_path: &Path,
    plan_bytes: &[u8],
    plan: &Plan,
    state: Option<&State>,
    operator_key: Option<&Path>,
) -> anyhow::Result<Option<Prepared>> {
    let Some(cfg) = &plan.ceremony else {
        if let Some(head) = state.and_then(|s| s.ceremony.as_ref()) {
            bail!(
                "this state's changes are made in ceremonies (last record {}, #{}), but the plan comes from a manifest without `ceremony:`; nothing was applied",
                head.record_id,
                head.sequence
            );
        }
        return Ok(None);
    };
    let started_at = now();
    let manifest = crate::manifest::load(Path::new(&plan.manifest_path)).with_context(|| {
        format!("a ceremony plan is applied with the manifest it was made from ({})", plan.manifest_path)
    })?;
    if manifest.sha256 != plan.manifest_sha256 {
        bail!("the manifest {} changed since the plan was made and approved: plan again", plan.manifest_path);
    }
    let signers = read_approvers(&cfg.approvers, &cfg.approvers_sha256)?;
    let checked = crate::ceremony::check_approvals(plan_path, plan_bytes, &signers, crate::ceremony::unix_now())?;
    let mut refused = Vec::new();
    let mut verified = Vec::new();
    let mut approvals = Vec::new();
    for c in &checked {
        match &c.result {
            Ok(v) => {
                verified.push(v.clone());
                approvals.push(record::ApprovalRecord {
                    principal: v.principals.join(","),
                    fingerprint: v.fingerprint.clone(),
                    key_type: v.key_type.to_string(),
                    signature: c.armored.clone(),
                });
            }
            Err(e) => refused.push(format!("  {}: {e}", c.file.display())),
        }
    }
    if !refused.is_empty() {
        bail!("approvals refused (nothing was applied):\n{}", refused.join("\n"));
    }
    let tally = approval::tally(cfg.threshold, &signers, &verified)?;
    let list = |s: &std::collections::BTreeSet<String>| {
        if s.is_empty() { "nobody".to_owned() } else { s.iter().cloned().collect::<Vec<_>>().join(", ") }
    };
    if !tally.met {
        bail!(
            "the plan needs approvals from {} distinct approvers and has {}: approved by {}; missing {} (each runs `keyrite approve {} --key …`); nothing was applied",
            cfg.threshold,
            tally.counted,
            list(&tally.approved),
            list(&tally.missing),
            plan_path.display()
        );
    }
    let operator_key = operator_key.context(
        "a ceremony apply signs its record: pass --operator-key with your Ed25519 OpenSSH key (or set KEYRITE_OPERATOR_KEY)",
    )?;
    let operator = load_key(operator_key)?;
    if operator.algorithm() != ssh_key::Algorithm::Ed25519 {
        bail!(
            "the operator key {} is {}; ceremony records are signed with Ed25519",
            operator_key.display(),
            operator.algorithm()
        );
    }
    println!(
        "Approvals: {} of {} required ({}), over plan SHA-256 {}.",
        tally.counted,
        cfg.threshold,
        list(&tally.approved),
        record::sha256_hex(plan_bytes)
    );
    if verified.len() > tally.counted {
        println!(
            "  ({} approvals came from principals already counted; each principal counts once.)",
            verified.len() - tally.counted
        );
    }
    let allowed_signers = std::fs::read_to_string(&cfg.approvers)?;
    Ok(Some(Prepared {
        plan_path: plan_path.to_owned(),
        plan_bytes: plan_bytes.to_vec(),
        manifest,
        allowed_signers,
        approvals,
        operator,
        started_at,
    }))
}

/// The ceremony's last steps, after the changes are applied: proofs of possession, the
/// cloud's account of each key, the self-test, and the signed record.
pub async fn finish(p: Prepared, plan: &Plan, cloud: &Cloud, store: &Backend) -> anyhow::Result<Status> {
    let cfg = plan.ceremony.as_ref().context("not a ceremony plan")?;
    let mut state = super::read_state(store).await?.context("the state is gone after apply")?;
    let record_id = uuid::Uuid::new_v4().to_string();
    let plan_sha = record::sha256_hex(&p.plan_bytes);
    let mut keys = Vec::new();
    // Beside the manifest and the plan: each key's public key.
    let mut subjects = Vec::new();
    for change in &plan.changes {
        let is_key = crate::keys::KEY_KINDS.contains(&change.kind.as_str());
        // A rotation proves its new key even when an interrupted apply already made it.
        let rotating = plan.rotation.as_ref().is_some_and(|r| r.key == change.address);
        if !is_key || change.action == Action::Delete || (change.action == Action::NoOp && !rotating) {
            continue;
        }
        let r =
            state.resources.get(&change.address).with_context(|| format!("{} is not in the state", change.address))?;
        let signer = super::signing::key_signer(cloud, &state, &change.address).await?;
        let evm = signer.address.to_checksum_string();
        // A key only its quorum gate may sign with cannot prove possession to the operator:
        // its gate's first enrolment will.
        let on_cloud_run = p.manifest.signers.iter().find(|s| s.key == change.address).and_then(|s| s.gate.as_ref());
        let gate = on_cloud_run
            .map(|g| g.member())
            .or_else(|| crate::keys::gate_of(&state, &change.address).map(str::to_owned));
        let proof = match gate {
            Some(_) => None,
            None => {
                let statement = record::pop_statement(&record_id, &plan_sha, &change.address, &evm);
                let prehash = crate::crypto::eip191_message_hash(statement.as_bytes());
                let (der, rsv) = signer.sign_prehash(&prehash).await?;
                Some(record::Proof {
                    statement,
                    digest: format!("0x{}", hex::encode(prehash)),
                    der: hex::encode(der),
                    signature: format!("0x{}", hex::encode(rsv)),
                })
            }
        };
        let (id, facts) = crate::keys::facts(cloud, r).await?;
        subjects.push(Subject::sha256(format!("spki:{}", change.address), &signer.spki));
        keys.push(record::KeyRecord {
            address: change.address.clone(),
            kind: change.kind.clone(),
            id,
            spki: B64.encode(&signer.spki),
            evm_address: evm,
            cloud: facts,
            proof,
            gate,
        });
    }
    let specs: Vec<&crate::manifest::SignerSpec> = p.manifest.signers.iter().collect();
    let via = std::env::var("KEYRITE_VIA_EMULATOR").ok();
    let reports = super::signing::run_selftests(cloud, &state, &specs, Duration::from_secs(30), via.as_deref()).await?;
    let selftest: Vec<record::SelfTestRecord> = reports
        .iter()
        .flat_map(|r| {
            r.checks.iter().map(|c| record::SelfTestRecord {
                signer: r.signer.clone(),
                target: c.target.clone(),
                passed: c.passed,
                cause: c.cause.map(str::to_owned),
                message: c.message.clone(),
                latency_ms: c.latency_ms,
                digest: c.digest.clone(),
                signature: c.signature.clone(),
                expected_address: r.address.clone(),
            })
        })
        .collect();
    let passed = reports.iter().all(|r| r.passed());
    let rotation = super::rotate::rotated(&mut state, plan, &keys, &record_id)?;
    let record = Record {
        record_id,
        started_at: p.started_at.clone(),
        plan_path: p.plan_path.display().to_string(),
        plan_bytes: p.plan_bytes.clone(),
        plan,
        approvals: record::Approvals {
            namespace: approval::PLAN_NAMESPACE.into(),
            threshold: cfg.threshold,
            allowed_signers_sha256: record::sha256_hex(p.allowed_signers.as_bytes()),
            allowed_signers: p.allowed_signers.clone(),
            signatures: p.approvals.clone(),
        },
        identity: plan.identity.clone(),
        applied: plan
            .changes
            .iter()
            .filter(|c| c.action != Action::NoOp)
            .map(|c| record::Applied {
                address: c.address.clone(),
                kind: c.kind.clone(),
                action: serde_json::to_value(c.action)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default(),
            })
            .collect(),
        keys,
        selftest,
        subjects,
        rotation,
        enrolment: None,
    };
    write_record(record, &p.operator, &mut state, store, &cfg.records).await?;
    #[cfg(feature = "aws")]
    if plan.rotation.is_some() {
        super::rotate::write_enrolment(&p.manifest, &state, plan, &p.plan_path)?;
    }
    if !passed {
        println!("The self-test FAILED (the record says which check); the ceremony is recorded as it happened.");
        return Ok(Status::Error);
    }
    Ok(Status::Ok)
}

/// A ceremony record's contents, before it is numbered, chained and signed.
pub struct Record<'a> {
    pub record_id: String,
    pub started_at: String,
    pub plan_path: String,
    pub plan_bytes: Vec<u8>,
    /// The plan the record's approvals approved (for a rotation's later steps, the rotation's).
    pub plan: &'a Plan,
    pub approvals: record::Approvals,
    pub identity: crate::plan::Identity,
    pub applied: Vec<record::Applied>,
    pub keys: Vec<record::KeyRecord>,
    pub selftest: Vec<record::SelfTestRecord>,
    /// Besides the manifest and the plan, which every record names.
    pub subjects: Vec<Subject>,
    pub rotation: Option<record::RotationRecord>,
    pub enrolment: Option<record::EnrolmentRecord>,
}

/// Numbers the record after the lineage's last one, chains it to that one, signs it as the
/// operator, writes it into `records` (never over an existing file), and moves the state's
/// chain head to it.
pub async fn write_record(
    r: Record<'_>,
    operator: &PrivateKey,
    state: &mut State,
    store: &Backend,
    records: &Path,
) -> anyhow::Result<PathBuf> {
    let sequence = state.ceremony.as_ref().map_or(1, |h| h.sequence + 1);
    let previous =
        state.ceremony.as_ref().map(|h| record::Previous { record_id: h.record_id.clone(), sha256: h.sha256.clone() });
    let public = operator.public_key();
    let plan_sha = record::sha256_hex(&r.plan_bytes);
    let mut subject = vec![
        Subject {
            name: format!("manifest:{}", r.plan.manifest_path),
            digest: [("sha256".to_owned(), r.plan.manifest_sha256.clone())].into(),
        },
        Subject::sha256(format!("plan:{}", r.plan_path), &r.plan_bytes),
    ];
    subject.extend(r.subjects);
    let predicate = record::Predicate {
        version: 1,
        record_id: r.record_id.clone(),
        lineage: state.lineage.clone(),
        sequence,
        previous,
        started_at: r.started_at,
        finished_at: now(),
        keyrite_version: env!("CARGO_PKG_VERSION").into(),
        operator: record::Operator {
            user: operator_user(
                |name| std::env::var(name).ok(),
                std::fs::read_to_string("/etc/passwd").ok().as_deref(),
                process_uid(),
            ),
            host: hostname(),
            aws: r.identity.aws,
            gcp: r.identity.gcp,
            public_key: public.to_openssh()?,
            keyid: dsse::keyid(public),
        },
        manifest: record::Artifact { path: r.plan.manifest_path.clone(), sha256: r.plan.manifest_sha256.clone() },
        plan: record::PlanRecord {
            path: r.plan_path,
            sha256: plan_sha.clone(),
            words: words::words(&hex::decode(&plan_sha)?).join(" "),
            content: B64.encode(&r.plan_bytes),
        },
        approvals: r.approvals,
        applied: r.applied,
        keys: r.keys,
        selftest: r.selftest,
        rotation: r.rotation,
        enrolment: r.enrolment,
    };
    let statement = Statement {
        statement_type: record::STATEMENT_TYPE.into(),
        subject,
        predicate_type: record::PREDICATE_TYPE.into(),
        predicate,
    };
    let mut envelope = dsse::Envelope::new(dsse::IN_TOTO_PAYLOAD_TYPE, &serde_json::to_vec(&statement)?);
    envelope.sign(operator)?;
    std::fs::create_dir_all(records).with_context(|| format!("cannot create {}", records.display()))?;
    let path = records.join(record::file_name(&statement.predicate));
    write_new(&path, envelope.to_json().as_bytes())?;
    // The chain links statements, not files: witnesses may add envelope signatures later.
    let payload = envelope.payload_bytes()?;
    state.ceremony = Some(ChainHead { sequence, record_id: r.record_id, sha256: record::sha256_hex(&payload) });
    store.write(state).await?;
    println!(
        "Ceremony record #{sequence} written to {}{}. Verify it offline with: keyrite ceremony verify {} --chain {}",
        path.display(),
        statement.predicate.previous.as_ref().map(|p| format!(" (chained to {})", p.record_id)).unwrap_or_default(),
        path.display(),
        records.display()
    );
    Ok(path)
}

/// Writes a file that must not exist yet, and syncs it.
fn write_new(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    Ok(())
}

/// Who ran the ceremony, as the record's `operator.user` names them. In order, the first that
/// is set and not empty:
/// 1. the CI's own identity of whoever started the job: GitHub Actions `GITHUB_ACTOR`
///    (`github:octocat`), GitLab `GITLAB_USER_LOGIN` (`gitlab:alice`). In a CI container the
///    OS user is the runner's (`root`, `runner`), so the CI's name is the meaningful one;
/// 2. `$USER`, then `$LOGNAME`;
/// 3. the name of the process's uid in `/etc/passwd` (what most CI containers have when
///    `USER` is unset);
/// 4. `uid:<n>`; `unknown` only when not even the uid can be read.
fn operator_user(var: impl Fn(&str) -> Option<String>, passwd: Option<&str>, uid: Option<u32>) -> String {
    let set = |name: &str| var(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
    if let Some(actor) = set("GITHUB_ACTOR") {
        return format!("github:{actor}");
    }
    if let Some(login) = set("GITLAB_USER_LOGIN") {
        return format!("gitlab:{login}");
    }
    if let Some(user) = set("USER").or_else(|| set("LOGNAME")) {
        return user;
    }
    let Some(uid) = uid else { return "unknown".into() };
    let uid_text = uid.to_string();
    passwd
        .and_then(|text| {
            text.lines().find_map(|line| {
                let mut fields = line.split(':');
                let name = fields.next()?;
                (fields.nth(1)? == uid_text && !name.is_empty()).then(|| name.to_owned())
            })
        })
        .unwrap_or_else(|| format!("uid:{uid}"))
}

/// The uid this process runs as: the owner of `/proc/self`.
fn process_uid() -> Option<u32> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").ok().map(|m| m.uid())
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|h| h.trim().to_owned())
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "unknown".into())
}

/// `keyrite ceremony verify RECORD`.
#[allow(clippy::too_many_arguments)]
pub async fn verify(
    record_path: &Path,
    chain: Option<&Path>,
    manifest: Option<&Path>,
    plan: Option<&Path>,
    trusted: Option<&Path>,
    require_witness: bool,
    live: bool,
    format: Format,
) -> anyhow::Result<Status> {
    let bytes = std::fs::read(record_path).with_context(|| format!("cannot read {}", record_path.display()))?;
    let read = |p: Option<&Path>| p.map(std::fs::read).transpose();
    let (manifest, plan) = (read(manifest)?, read(plan)?);
    let trusted: Vec<ssh_key::PublicKey> = match trusted {
        Some(p) => allowed_signers::parse(&p.display().to_string(), &std::fs::read_to_string(p)?)?
            .into_iter()
            .map(|s| s.key)
            .collect(),
        None => Vec::new(),
    };
    let inputs = crate::ceremony::verify::Inputs {
        manifest: manifest.as_deref(),
        plan: plan.as_deref(),
        trusted: &trusted,
        require_witness,
    };
    let mut report = VerifyReport { trusted: !trusted.is_empty(), ..VerifyReport::default() };
    match crate::ceremony::verify::verify_record(&bytes, &inputs) {
        Ok(verified) => {
            let p = &verified.statement.predicate;
            report.record = Some(serde_json::json!({
                "record_id": p.record_id, "sequence": p.sequence, "lineage": p.lineage,
                "operator": {"user": p.operator.user, "host": p.operator.host, "keyid": p.operator.keyid},
            }));
            report.header = format!(
                "Record {} (#{} of lineage {}), by {}@{}:",
                p.record_id, p.sequence, p.lineage, p.operator.user, p.operator.host
            );
            report.checks = verified.checks.clone();
            report.unchecked = verified.unchecked.clone();
            match after_record(&verified, record_path, chain, &trusted, live).await? {
                Ok(more) => report.checks.extend(more),
                Err(failure) => report.failure = Some(failure),
            }
        }
        Err(e) => report.failure = Some(format!("{}: {e}", record_path.display())),
    }
    report.print(format)?;
    Ok(if report.failure.is_some() { Status::Error } else { Status::Ok })
}

/// The chain and live checks of a record that verified: more checks, or the first failure.
async fn after_record(
    verified: &crate::ceremony::verify::Verified,
    record_path: &Path,
    chain: Option<&Path>,
    trusted: &[ssh_key::PublicKey],
    live: bool,
) -> anyhow::Result<Result<Vec<String>, String>> {
    let p = &verified.statement.predicate;
    let mut checks = Vec::new();
    if let Some(dir) = chain {
        let records = record::records_in(dir, Some(&p.lineage))?;
        if !records.iter().any(|r| r.statement.predicate.record_id == p.record_id) {
            return Ok(Err(format!(
                "chain: {} is not among the records of lineage {} in {}",
                record_path.display(),
                p.lineage,
                dir.display()
            )));
        }
        match crate::ceremony::verify::verify_chain(&records, trusted) {
            Ok(lines) => checks.push(format!(
                "chain of {} record(s) links back to the first: {}",
                lines.len(),
                lines.join(" → ")
            )),
            Err(e) => return Ok(Err(format!("chain: {e}"))),
        }
    }
    if live {
        let plan: Plan = serde_json::from_slice(&B64.decode(&p.plan.content)?)?;
        let cloud = Cloud::connect(&plan.aws, &plan.gcp).await;
        for k in &p.keys {
            match live_check(&cloud, k).await {
                Ok(()) => {
                    checks.push(format!("live: {} exists, is enabled, and has the recorded public key", k.address))
                }
                Err(e) => return Ok(Err(format!("live: {}: {e:#}", k.address))),
            }
        }
    }
    Ok(Ok(checks))
}

/// What `ceremony verify` found, for either format.
#[derive(Default)]
struct VerifyReport {
    header: String,
    record: Option<serde_json::Value>,
    checks: Vec<String>,
    unchecked: Vec<String>,
    trusted: bool,
    failure: Option<String>,
}

impl VerifyReport {
    const NOT_PINNED: &str = "not pinned: the operator's key is the one the record names; anyone with a new key can \
                              re-sign a record like this one. Pass --trusted-keys FILE with the operators' keys to pin them.";

    fn print(&self, format: Format) -> anyhow::Result<()> {
        if format == Format::Json {
            let out = serde_json::json!({
                "format_version": 1,
                "kind": "ceremony_verify",
                "verified": self.failure.is_none(),
                "trusted": self.trusted,
                "warnings": if self.trusted { vec![] } else { vec![Self::NOT_PINNED] },
                "record": self.record,
                "checks": self.checks,
                "witnesses_not_checked": self.unchecked,
                "failure": self.failure,
            });
            println!("{}", serde_json::to_string_pretty(&out)?);
            return Ok(());
        }
        if !self.header.is_empty() {
            println!("{}", self.header);
        }
        for c in &self.checks {
            println!("  ✓ {c}");
        }
        for id in &self.unchecked {
            println!("  - witness signature {id}: present, not checked: key not trusted (add it to --trusted-keys)");
        }
        if self.record.is_some() && !self.trusted {
            println!("  ! {}", Self::NOT_PINNED);
        }
        match &self.failure {
            Some(f) => println!("✗ {f}"),
            None => println!("The record verifies."),
        }
        Ok(())
    }
}

/// The key still exists, is enabled, and has the recorded public key (read-only calls).
async fn live_check(cloud: &Cloud, k: &record::KeyRecord) -> anyhow::Result<()> {
    let signer = crate::keys::enabled_signer(cloud, &k.kind, &k.id).await?;
    if B64.encode(&signer.spki) != k.spki {
        bail!("its public key is not the recorded one (address now {}, recorded {})", signer.address, k.evm_address);
    }
    Ok(())
}

/// `keyrite ceremony show RECORD`.
pub fn show(record_path: &Path, format: Format) -> anyhow::Result<Status> {
    let bytes = std::fs::read(record_path).with_context(|| format!("cannot read {}", record_path.display()))?;
    let statement = record::statement_of(&bytes)
        .with_context(|| format!("{} is not a keyrite ceremony record", record_path.display()))?;
    let p = &statement.predicate;
    if format == Format::Json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({"format_version": 1, "kind": "ceremony", "record": p}))?
        );
        return Ok(Status::Ok);
    }
    println!("Ceremony {} (#{} of lineage {})", p.record_id, p.sequence, p.lineage);
    println!(
        "  run by     {}@{} with keyrite {}, {} → {}",
        p.operator.user, p.operator.host, p.keyrite_version, p.started_at, p.finished_at
    );
    for (cloud, who) in [("AWS", &p.operator.aws), ("Google Cloud", &p.operator.gcp)] {
        if let Some(w) = who {
            println!("  acting on  {cloud} as {w}");
        }
    }
    println!("  signed by  {} (operator)", p.operator.keyid);
    println!("  plan       {} (SHA-256 {})", p.plan.path, p.plan.sha256);
    println!("  words      {}", p.plan.words);
    let names: std::collections::BTreeSet<&str> = p.approvals.signatures.iter().map(|a| a.principal.as_str()).collect();
    let names: Vec<&str> = names.into_iter().collect();
    println!(
        "  approved   by {} (threshold {}, {} signature{})",
        names.join(", "),
        p.approvals.threshold,
        p.approvals.signatures.len(),
        if p.approvals.signatures.len() == 1 { "" } else { "s" }
    );
    for a in &p.applied {
        println!("  applied    {} {} ({})", a.action, a.address, a.kind);
    }
    for k in &p.keys {
        let how = k.gate.as_ref().map(|g| format!(", signs only through its quorum gate {g}")).unwrap_or_default();
        println!("  key        {} {} ({}{how})", k.address, k.evm_address, k.id);
    }
    if let Some(r) = &p.rotation {
        println!(
            "  rotation   {} of signer {}: {} generation {}, {} → {} (old key enabled until {})",
            r.step, r.signer, r.key, r.generation, r.replaces.evm_address, r.new.evm_address, r.grace_until
        );
        if let Some(at) = &r.disabled_at {
            println!("  disabled   {} at {at}: {}", r.replaces.id, r.old_key_state.as_deref().unwrap_or("-"));
        }
    }
    if let Some(e) = &p.enrolment {
        let names: std::collections::BTreeSet<&str> = e.approvals.iter().map(|a| a.principal.as_str()).collect();
        println!(
            "  enrolment  digest {}, approved by {} (gate {}, threshold {}), signed by the recovery key {}",
            e.digest,
            names.into_iter().collect::<Vec<_>>().join(", "),
            e.gate,
            e.threshold,
            e.recovery_address
        );
    }
    for t in &p.selftest {
        let mark = if t.passed { "✓" } else { "✗" };
        println!("  self-test  {mark} {} {} ({} ms)", t.signer, t.target, t.latency_ms);
    }
    match &p.previous {
        Some(prev) => println!("  follows    {} (SHA-256 {})", prev.record_id, prev.sha256),
        None => println!("  follows    nothing: the first ceremony of this lineage"),
    }
    Ok(Status::Ok)
}

/// `keyrite ceremony sign RECORD --key KEY`: a witness or approver countersigns the record.
pub fn sign(record_path: &Path, key: &Path) -> anyhow::Result<Status> {
    let text =
        std::fs::read_to_string(record_path).with_context(|| format!("cannot read {}", record_path.display()))?;
    let mut envelope = dsse::Envelope::from_json(&text)
        .map_err(|e| anyhow::anyhow!("{}: not a DSSE envelope: {e}", record_path.display()))?;
    record::statement_of(text.as_bytes())
        .with_context(|| format!("{} is not a keyrite ceremony record", record_path.display()))?;
    let private = load_key(key)?;
    if private.algorithm() != ssh_key::Algorithm::Ed25519 {
        bail!("{} is {}; records are signed with Ed25519", key.display(), private.algorithm());
    }
    envelope.sign(&private)?;
    let tmp = record_path.with_extension("json.tmp");
    std::fs::write(&tmp, envelope.to_json())?;
    std::fs::rename(&tmp, record_path)?;
    println!("Signed {} as {}.", record_path.display(), dsse::keyid(private.public_key()));
    Ok(Status::Ok)
}

#[cfg(test)]
mod operator_tests {
    use super::operator_user;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/bash\nci:x:1001:1001::/home/ci:/bin/sh\n";

    fn user(vars: &[(&str, &str)], passwd: Option<&str>, uid: Option<u32>) -> String {
        operator_user(|name| vars.iter().find(|(k, _)| *k == name).map(|(_, v)| (*v).to_owned()), passwd, uid)
    }

    #[test]
    fn the_ci_identity_comes_first_then_the_environment_then_the_user_database_then_the_uid() {
        let all = [("GITHUB_ACTOR", "octocat"), ("GITLAB_USER_LOGIN", "alice"), ("USER", "runner")];
        assert_eq!(user(&all, Some(PASSWD), Some(0)), "github:octocat");
        assert_eq!(user(&all[1..], Some(PASSWD), Some(0)), "gitlab:alice");
        assert_eq!(user(&[("GITHUB_ACTOR", " "), ("USER", "runner")], None, None), "runner");
        assert_eq!(user(&[("LOGNAME", "lee")], None, None), "lee");
        assert_eq!(user(&[("USER", "")], Some(PASSWD), Some(1001)), "ci");
        assert_eq!(user(&[], Some(PASSWD), Some(0)), "root");
        assert_eq!(user(&[], Some(PASSWD), Some(4242)), "uid:4242");
        assert_eq!(user(&[], None, Some(7)), "uid:7");
        assert_eq!(user(&[], None, None), "unknown");
    }
}

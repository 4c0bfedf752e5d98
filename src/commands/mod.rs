//! Subcommands: each wires I/O (files, cloud, terminal) around the pure core.

mod addresses;
mod apply;
mod ceremony;
mod destroy;
mod discover;
mod drift;
#[cfg(feature = "aws")]
mod enrol;
pub mod lint;
mod plan;
mod policy;
mod preflight;
#[cfg(feature = "gcp")]
mod render;
mod rotate;
mod show;
mod sig;
mod signing;
mod ui;
mod validate;

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::Context;
use tokio::task::JoinSet;

#[cfg(feature = "aws")]
use crate::cli::EnrolCommand;
use crate::cli::{CeremonyCommand, Cli, Command, ManifestArg, PolicyCommand, SigCommand};
use crate::manifest::{Manifest, StateConfig};
use crate::plan::{Adopted, Conflict, Identity, Observed};
use crate::provider::{self, Cloud, Occupant};
use crate::state::{Backend, LocalBackend, State};

/// Process exit statuses. `Changes` means "plan has changes" or "drift found".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Status {
    Ok = 0,
    Error = 1,
    Changes = 2,
}

/// Runs one command.
pub async fn run(cli: Cli) -> anyhow::Result<Status> {
    match cli.command {
        Command::Validate { manifest } => validate::run(&manifest),
        Command::Lint { manifest, live, account, region, project, location, format, fail_on } => {
            let source = lint::Source::pick(live, account, lint::Scope { region, project, location })?;
            lint::run(&manifest, source, format, fail_on).await
        }
        Command::Plan { manifest, out, format, detailed_exitcode } => {
            plan::run(&manifest, out.as_deref(), format, detailed_exitcode).await
        }
        Command::Apply {
            manifest,
            plan,
            auto_approve,
            run,
            allow_key_replacement,
            allow_identity_change,
            operator_key,
        } => {
            let flags = apply::Flags { auto_approve, allow_key_replacement, allow_identity_change };
            apply::run(&manifest, plan.as_deref(), run, flags, operator_key.as_deref()).await
        }
        Command::Approve { plan, key, principal, yes } => ceremony::approve(&plan, &key, principal.as_deref(), yes),
        Command::Ceremony { command } => match command {
            CeremonyCommand::Verify { record, chain, manifest, plan, trusted_keys, require_witness, live, format } => {
                ceremony::verify(
                    &record,
                    chain.as_deref(),
                    manifest.as_deref(),
                    plan.as_deref(),
                    trusted_keys.as_deref(),
                    require_witness,
                    live,
                    format,
                )
                .await
            }
            CeremonyCommand::Show { record, format } => ceremony::show(&record, format),
            CeremonyCommand::Sign { record, key } => ceremony::sign(&record, &key),
        },
        #[cfg(feature = "aws")]
        Command::Enrol { command } => match command {
            EnrolCommand::Prepare { manifest, signer, new_signer, replaces, nonce, valid_for, out } => {
                enrol::prepare(&manifest, &signer, &new_signer, &replaces, nonce, &valid_for, &out)
            }
            EnrolCommand::Submit { manifest, signer, enrolment, url, google_id_token } => {
                enrol::submit(&manifest, &signer, &enrolment, url.as_deref(), google_id_token).await
            }
        },
        #[cfg(feature = "aws")]
        Command::Rotate { manifest, signer, out, enrol, finish, nonce, valid_for, operator_key } => {
            let key = operator_key.as_deref();
            match (out, enrol, finish) {
                (Some(out), None, false) => rotate::plan(&manifest, &signer, &out, nonce, &valid_for).await,
                (None, Some(file), false) => rotate::enrol(&manifest, &signer, &file, key).await,
                (None, None, true) => rotate::finish(&manifest, &signer, key).await,
                (None, None, false) => rotate::status(&manifest, &signer).await,
                _ => anyhow::bail!(
                    "rotate takes one of --out FILE (plan), --enrol FILE or --finish, or none to show where the rotation is"
                ),
            }
        }
        Command::Drift { manifest, format } => drift::run(&manifest, format).await,
        Command::Show { manifest, format } => show::run(&manifest, format).await,
        Command::Addresses { manifest, format } => addresses::run(&manifest, format).await,
        Command::Destroy { manifest, auto_approve, run } => destroy::run(&manifest, auto_approve, run).await,
        Command::Policy { command: PolicyCommand::Diff { a, b } } => policy::diff(&a, &b),
        Command::Sign { manifest, signer, hash, mode } => {
            signing::sign(&manifest, signer.as_deref(), &hash, mode).await
        }
        Command::Discover { cloud } => discover::run(cloud).await,
        #[cfg(feature = "gcp")]
        Command::RenderSigner { manifest, signer, out, serve } => {
            render::run(&manifest, signer.as_deref(), &out, serve).await
        }
        Command::Selftest { manifest, signer, format, timeout, via_emulator } => {
            signing::selftest(&manifest, signer.as_deref(), format, timeout, via_emulator.as_deref()).await
        }
        Command::Serve { manifest, options } => signing::serve(&manifest, *options).await,
        Command::Sig { command: SigCommand::FromDer { der, digest, address, pubkey } } => {
            sig::from_der(&der, &digest, address.as_deref(), pubkey.as_deref())
        }
        Command::Sig { command: SigCommand::Recover { digest, signature } } => sig::recover(&digest, &signature),
        Command::ForceUnlock { id, manifest } => {
            let manifest = crate::manifest::load(&manifest.file)?;
            println!("{}", backend(&manifest.state, &manifest.aws).await?.force_unlock(&id).await?);
            Ok(Status::Ok)
        }
    }
}

/// The state backend a manifest or plan names.
pub async fn backend(config: &StateConfig, aws: &crate::manifest::AwsConfig) -> anyhow::Result<Backend> {
    Ok(match config {
        StateConfig::Local { path } => Backend::Local(LocalBackend::new(path)),
        #[cfg(feature = "aws")]
        StateConfig::S3 { bucket, key, region, path_style } => {
            Backend::S3(crate::state::s3::S3Backend::connect(bucket, key, region.as_deref(), *path_style, aws).await)
        }
        #[cfg(not(feature = "aws"))]
        StateConfig::S3 { bucket, key, .. } => {
            let _ = aws;
            anyhow::bail!("the state is in s3://{bucket}/{key}, and this keyrite was built without --features aws")
        }
    })
}

/// Loads the manifest and its state backend.
async fn load(arg: &ManifestArg) -> anyhow::Result<(Manifest, Backend)> {
    let manifest = crate::manifest::load(&arg.file)?;
    let store = backend(&manifest.state, &manifest.aws).await?;
    Ok((manifest, store))
}

/// The state, with what an older keyrite recorded brought to the current shape.
async fn read_state(store: &Backend) -> anyhow::Result<Option<crate::state::State>> {
    let mut state = store.read().await?;
    if let Some(s) = state.as_mut() {
        provider::upgrade_recorded(s);
    }
    Ok(state)
}

/// Which attributes a read should treat as declared: the manifest's (for planning) or the
/// last applied (for drift).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Reference {
    Manifest,
    State,
}

/// Reads every resource in the state from the cloud, concurrently, plus `${aws.*}` and who
/// the caller is on each cloud the manifest uses. Planning against the manifest also looks
/// at every name the plan would create under (see [`look_before_creating`]).
async fn refresh(
    cloud: &Arc<Cloud>,
    manifest: &Manifest,
    state: Option<&State>,
    against: Reference,
) -> anyhow::Result<Observed> {
    // A manifest with no resources of one cloud needs no settings or credentials for it.
    let uses = |prefix: &str| {
        manifest.resources.iter().any(|r| r.kind.starts_with(prefix))
            || state.is_some_and(|s| s.resources.values().any(|r| r.kind.starts_with(prefix)))
    };
    let mut identity = Identity::default();
    #[cfg(feature = "aws")]
    let builtins = if uses("aws_") {
        let caller = cloud.aws.identity().await.context("cannot identify the AWS caller")?.clone();
        identity.aws = Some(caller.arn.clone());
        BTreeMap::from([
            ("account_id".to_owned(), caller.account_id),
            ("region".to_owned(), cloud.aws.region.clone()),
            ("partition".to_owned(), caller.partition),
        ])
    } else {
        BTreeMap::new()
    };
    #[cfg(not(feature = "aws"))]
    let builtins = BTreeMap::new();
    #[cfg(feature = "gcp")]
    if uses("gcp_") {
        let principal =
            provider::gcp::credentials::principal(&cloud.gcp).await.context("cannot identify the Google principal")?;
        identity.gcp = Some(principal);
    }
    let mut reads = JoinSet::new();
    for (address, prior) in state.map(|s| &s.resources).into_iter().flatten() {
        let Some(kind) = provider::kind(&prior.kind) else {
            anyhow::bail!("state entry {address} has unknown type {}; was it written by a newer keyrite?", prior.kind);
        };
        let reference = match (against, manifest.resource(address)) {
            (Reference::Manifest, Some(spec)) => spec.desired.clone(),
            _ => prior.attrs.clone(),
        };
        let (cloud, address, id) = (cloud.clone(), address.clone(), prior.id.clone());
        reads.spawn(async move {
            let live = kind.read(&cloud, &id, &reference).await;
            (address, live)
        });
    }
    let mut live = BTreeMap::new();
    while let Some(joined) = reads.join_next().await {
        let (address, result) = joined.context("refresh task failed")?;
        live.insert(address.clone(), result.with_context(|| format!("refreshing {address}"))?);
    }
    let lineage = state.map_or_else(|| uuid::Uuid::new_v4().to_string(), |s| s.lineage.clone());
    let mut observed = Observed { lineage, live, builtins, identity, ..Observed::default() };
    look_before_creating(cloud, manifest, state, &mut observed, against == Reference::Manifest).await?;
    if state.is_none() {
        continue_lineage(manifest, &mut observed);
    }
    Ok(observed)
}

/// Looks at the cloud where the plan would create something, in dependency order so that
/// references resolve:
/// - an address with a create intent left by an interrupted apply: the resource that create
///   may have made (by ownership tags or unique name) is adopted, never made twice;
/// - with `check_names`, every other resource the plan would create: if its unique name is
///   taken, a resource with this state's ownership marks is adopted, and anyone else's is a
///   conflict, which makes the plan fail before apply makes any call. Reads only.
async fn look_before_creating(
    cloud: &Cloud,
    manifest: &Manifest,
    state: Option<&State>,
    observed: &mut Observed,
    check_names: bool,
) -> anyhow::Result<()> {
    let mut known = crate::plan::Outputs::new(&observed.builtins);
    for (address, r) in state.map(|s| &s.resources).into_iter().flatten() {
        known.insert(address, r.outputs.clone());
    }
    let lineage = observed.lineage.clone();
    for spec in &manifest.resources {
        let Some(kind) = provider::kind(&spec.kind) else { continue };
        let recorded = state.and_then(|s| s.resources.get(&spec.name));
        let generation = crate::plan::generation(state, &spec.name);
        let template = crate::plan::with_ownership(kind.schema(), &spec.desired, &lineage, &spec.name, generation);
        let (desired, unknown) = crate::plan::resolve(&template, &known);
        if let Some(intent) = state.and_then(|s| s.pending.get(&spec.name)) {
            // A pending create for an address already in the state is an interrupted
            // replacement: look for the new resource, not the recorded one.
            let recorded = recorded.map(|r| r.id.as_str());
            if (recorded.is_some() && intent.replacing.as_deref() != recorded) || !unknown.is_empty() {
                continue;
            }
            if let Some(id) = kind
                .adopt(cloud, &desired, intent.replacing.as_deref())
                .await
                .with_context(|| format!("looking for {} left by an interrupted apply", spec.name))?
                && let Some(live) = kind.read(cloud, &id, &desired).await?
            {
                known.insert(&spec.name, live.outputs.clone());
                let why = format!(
                    "found in the cloud by its ownership tags: {id} was created by an interrupted apply and is adopted, not created again"
                );
                observed
                    .adopted
                    .insert(spec.name.clone(), Adopted { id, live, why, imported: false, at: String::new() });
            }
            continue;
        }
        if let (Some(given), None, true) = (&spec.import, recorded, check_names) {
            // A declared resource inside an imported one (an inline policy of an imported
            // role) is imported where it exists, and created where it does not.
            let inside = spec.name.contains('/');
            let at = spec.import_at.or_else(|| manifest.positions.get(&spec.name).copied());
            let at = at.map(|p| format!("{}:{p}: ", manifest.path.display())).unwrap_or_default();
            match import(cloud, kind, &spec.name, &at, given, &desired, state).await {
                Ok(adopted) => {
                    known.insert(&spec.name, adopted.live.outputs.clone());
                    observed.adopted.insert(spec.name.clone(), adopted);
                    continue;
                }
                Err(_) if inside => {}
                Err(e) => {
                    observed.import_errors.insert(spec.name.clone(), e);
                    continue;
                }
            }
        }
        let recorded_here = recorded.filter(|r| r.kind == spec.kind);
        let gone = matches!(observed.live.get(&spec.name), Some(None));
        if !check_names || (recorded_here.is_some() && !gone) {
            continue;
        }
        let occupant = kind
            .occupant(cloud, &desired, &lineage)
            .await
            .with_context(|| format!("checking whether the name of {} is taken", spec.name))?;
        match occupant {
            Occupant::Free => {}
            Occupant::Ours { id, why } => {
                if let Some(live) = kind.read(cloud, &id, &desired).await? {
                    known.insert(&spec.name, live.outputs.clone());
                    observed.adopted.insert(
                        spec.name.clone(),
                        Adopted {
                            id,
                            live,
                            why: format!("{why}: adopted, not created again"),
                            imported: false,
                            at: String::new(),
                        },
                    );
                }
            }
            Occupant::Foreign { id, what } => {
                observed.conflicts.insert(spec.name.clone(), Conflict { id, what });
            }
        }
    }
    Ok(())
}

/// A new state whose imports all carry one keyrite lineage (a stack keyrite made, whose state
/// was lost, brought back by `keyrite discover`) continues that lineage, so that the
/// resources' ownership marks stay as they are.
fn continue_lineage(manifest: &Manifest, observed: &mut Observed) {
    let mut lineages = std::collections::BTreeSet::new();
    let mut marked = Vec::new();
    for (address, a) in observed.adopted.iter().filter(|(_, a)| a.imported) {
        let Some(kind) = manifest.resource(address).and_then(|s| provider::kind(&s.kind)) else { continue };
        // Kinds without ownership marks (aliases, URLs) have no say.
        if kind.ownership("", "").is_none() {
            continue;
        }
        let lineage = provider::ownership_mark(kind.schema(), &a.live.attrs, provider::Mark::Lineage);
        lineages.insert(lineage.unwrap_or_default().to_owned());
        marked.push(address.clone());
    }
    if let [only] = lineages.into_iter().collect::<Vec<_>>().as_slice()
        && !only.is_empty()
    {
        observed.lineage = only.clone();
        for address in marked {
            if let Some(a) = observed.adopted.get_mut(&address) {
                a.why.push_str(&format!("; it carries keyrite lineage {only}, which the new state continues"));
            }
        }
    }
}

/// Reads what an `import:` names. Every way it can fail is a plan error naming the manifest
/// position (`at`, `file:line:col: `) and the cloud id, so that a plan reports them all, and
/// never shows the resource as one it would create: a failed read, nothing there, or an id
/// already in the state under another address.
async fn import(
    cloud: &Cloud,
    kind: provider::AnyKind,
    address: &str,
    at: &str,
    given: &str,
    desired: &crate::manifest::Attrs,
    state: Option<&State>,
) -> Result<Adopted, crate::plan::PlanError> {
    let refused = |message: String, hint: &str| crate::plan::PlanError {
        address: Some(address.to_owned()),
        message: format!("{at}{message}"),
        hint: Some(hint.to_owned()),
    };
    let lookup = kind.import_lookup(given);
    let found = match kind.read(cloud, &lookup, desired).await {
        Ok(found) => found,
        // A read that refuses (a Cloud KMS key that is not for signing, say) says why.
        Err(provider::ProviderError::Refused(why)) => {
            return Err(refused(format!("{address}: cannot import {given}: {why}"), "import a signing key"));
        }
        Err(e) => {
            return Err(refused(
                format!("{address}: cannot read {given} to import it: {}", provider::error_chain(&e)),
                "nothing was changed; fix the access or the id and plan again",
            ));
        }
    };
    let Some(live) = found else {
        return Err(refused(
            format!("{address}: import {given}: no {} with this id exists", kind.name()),
            "check the id, the account or project, and the region or location",
        ));
    };
    let id = kind.import_id(&lookup, &live);
    let taken = state
        .and_then(|s| s.resources.iter().find(|(a, r)| a.as_str() != address && r.kind == kind.name() && r.id == id));
    if let Some((other, _)) = taken {
        return Err(refused(
            format!("{address}: import {given}: {id} is already in the state as {other}"),
            "one resource has one address: remove the import, or the other declaration",
        ));
    }
    let why = if id == given { format!("import: {given}") } else { format!("import: {given} ({id})") };
    Ok(Adopted { id, live, why: format!("{why}: recorded as it is, not created"), imported: true, at: at.to_owned() })
}

/// Asks a yes/no question on the terminal.
fn confirm(question: &str) -> anyhow::Result<bool> {
    Ok(dialoguer::Confirm::new().with_prompt(question).default(false).interact()?)
}

/// True when both stdin and stderr are terminals: someone can answer a prompt.
fn interactive() -> bool {
    use std::io::IsTerminal;
    std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
}

/// A line about the API calls made, e.g. "API calls: 9 (0 mutating)".
fn call_summary(cloud: &Cloud) -> String {
    let total: u64 = cloud.calls.snapshot().values().sum();
    format!("API calls: {total} ({} mutating)", cloud.calls.mutating())
}

//! Apply: carry out a plan, in dependency order, independent resources concurrently.
//!
//! Apply reads only the plan. References are resolved from the outputs of resources as they
//! complete; the state is written after every successful change, so whatever happens next
//! (an API error, a crash, `kill -9`) the state names everything that exists. On the first
//! failure no new work starts; work already running is finished and recorded.
//!
//! Dangerous changes are refused before the first API call: replacing a key (a new address)
//! needs `allow_key_replacement`, and scheduling a key's deletion needs `allow_key_deletion`.
//!
//! Creates are crash-safe: a create intent is written to the state before the create call
//! and cleared when the result is recorded, and a failed create is followed by a search for
//! what it may have made ([`keyrite_core::provider::Kind::adopt`]) before any retry. See `provider::aws::kms_key`
//! for why this matters most for keys.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Instant;

use tokio::task::JoinSet;

use crate::plan::{Action, Outputs, Plan, ResourceChange, resolve};
use crate::provider::{AnyKind, Cloud, DeleteOptions, Deleted, ProviderError};
use crate::state::{Backend, Intent, ResourceState, State, StateError, now};

#[derive(Clone, Copy, Debug)]
pub struct Options {
    pub parallelism: usize,
    pub allow_key_replacement: bool,
    pub allow_key_deletion: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("{0}")]
    Refused(String),
    #[error("{address}: {source}")]
    Resource { address: String, source: ProviderError },
    #[error(transparent)]
    State(#[from] StateError),
    #[error("{} of the planned changes failed (state saved; re-run apply to converge):\n{}", .0.len(), .0.iter().map(|e| format!("  {e}")).collect::<Vec<_>>().join("\n"))]
    Failed(Vec<ApplyError>),
}

/// What happened to one resource.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Outcome {
    pub address: String,
    pub action: Action,
    pub id: String,
    pub message: String,
    pub seconds: f64,
}

/// Reports progress; the CLI draws spinners or plain lines.
pub trait Progress: Send + Sync {
    fn started(&self, change: &ResourceChange);
    fn finished(&self, outcome: &Outcome);
    fn failed(&self, address: &str, error: &str);
}

/// Refuses hazardous changes that lack their flag, before anything is called.
pub fn check_hazards(plan: &Plan, options: &Options) -> Result<(), ApplyError> {
    for c in plan.hazards() {
        let allowed = match c.action {
            Action::Replace => options.allow_key_replacement && options.allow_key_deletion,
            Action::Create => options.allow_key_replacement,
            Action::Delete => options.allow_key_deletion,
            _ => true,
        };
        if !allowed {
            let flag = match c.action {
                Action::Replace => "--allow-key-replacement --allow-key-deletion",
                Action::Create => "--allow-key-replacement",
                _ => "--allow-key-deletion",
            };
            return Err(ApplyError::Refused(format!(
                "refusing to {} {}: {}.\n  Nothing was changed. If this is intended, re-run with {flag}.",
                match c.action {
                    Action::Delete => "delete",
                    Action::Create => "re-create",
                    _ => "replace",
                },
                c.address,
                c.hazard.as_deref().unwrap_or_default()
            )));
        }
    }
    Ok(())
}

/// Applies `plan`, saving `state` through `store` after each change.
pub async fn run(
    plan: &Plan,
    cloud: Arc<Cloud>,
    store: &Backend,
    mut state: State,
    options: Options,
    progress: &dyn Progress,
) -> Result<Vec<Outcome>, ApplyError> {
    check_hazards(plan, &options)?;
    // The lineage must be on disk before anything is created under it: a crash before the
    // first record would otherwise leave resources tagged with a lineage nobody knows.
    if state.serial == 0 && state.resources.is_empty() {
        store.write(&state).await?;
    }
    // Intents for addresses this plan no longer touches are stale (the manifest dropped them).
    let planned: BTreeSet<&str> = plan.changes.iter().map(|c| c.address.as_str()).collect();
    state.pending.retain(|address, _| planned.contains(address.as_str()));
    let mut known = Outputs::new(&plan.builtins);
    for (address, r) in &state.resources {
        known.insert(address, r.outputs.clone());
    }
    let work: BTreeMap<&str, &ResourceChange> =
        plan.changes.iter().filter(|c| c.action != Action::NoOp).map(|c| (c.address.as_str(), c)).collect();
    let waits_for = dependencies(plan, &work);
    let mut started: BTreeSet<&str> = BTreeSet::new();
    let mut done: BTreeSet<&str> = BTreeSet::new();
    let mut running = JoinSet::new();
    let mut errors = Vec::new();
    let mut outcomes = Vec::new();
    let delete = DeleteOptions { allow_key_deletion: options.allow_key_deletion };
    loop {
        if errors.is_empty() {
            for (address, change) in &work {
                let ready = !started.contains(address) && waits_for[address].iter().all(|d| done.contains(d));
                if ready && running.len() < options.parallelism.max(1) {
                    started.insert(address);
                    progress.started(change);
                    let (desired, unknown) = change.desired.as_ref().map(|t| resolve(t, &known)).unwrap_or_default();
                    if !unknown.is_empty() {
                        errors.push(ApplyError::Refused(format!(
                            "{address}: unresolved references in {}",
                            unknown.into_iter().collect::<Vec<_>>().join(", ")
                        )));
                        break;
                    }
                    if matches!(change.action, Action::Create | Action::Replace) {
                        state.pending.insert(
                            change.address.clone(),
                            Intent {
                                kind: change.kind.clone(),
                                replacing: change.prior.as_ref().map(|p| p.id.clone()),
                                started_at: now(),
                            },
                        );
                        state.serial += 1;
                        store.write(&state).await?;
                    }
                    let (cloud, change) = (cloud.clone(), (*change).clone());
                    running.spawn(async move {
                        let start = Instant::now();
                        let result = execute(&cloud, &change, &desired, delete).await;
                        (change, desired, result, start.elapsed().as_secs_f64())
                    });
                }
            }
        }
        let Some(joined) = running.join_next().await else { break };
        let (change, desired, result, seconds) =
            joined.map_err(|e| ApplyError::Refused(format!("internal error: {e}")))?;
        let address = work.get_key_value(change.address.as_str()).map(|(k, _)| *k).unwrap_or_default();
        match result {
            Ok(step) => {
                let message = record(&mut state, &change, desired, &step);
                state.serial += 1;
                store.write(&state).await?;
                if let Some(r) = state.resources.get(&change.address) {
                    known.insert(&change.address, r.outputs.clone());
                }
                let outcome = Outcome {
                    address: change.address.clone(),
                    action: change.action,
                    id: step.id.clone(),
                    message,
                    seconds,
                };
                progress.finished(&outcome);
                outcomes.push(outcome);
                done.insert(address);
            }
            Err(source) => {
                progress.failed(&change.address, &source.to_string());
                errors.push(ApplyError::Resource { address: change.address.clone(), source });
            }
        }
    }
    if errors.is_empty() { Ok(outcomes) } else { Err(ApplyError::Failed(errors)) }
}

/// For each change, the other changes it must wait for: its dependencies for creates and
/// updates; for deletes, the deletes of everything that depended on it.
fn dependencies<'a>(plan: &'a Plan, work: &BTreeMap<&'a str, &'a ResourceChange>) -> BTreeMap<&'a str, Vec<&'a str>> {
    work.iter()
        .map(|(address, change)| {
            let waits: Vec<&str> = if change.action == Action::Delete {
                plan.changes
                    .iter()
                    .filter(|c| c.action == Action::Delete && c.depends_on.contains(*address))
                    .map(|c| c.address.as_str())
                    .collect()
            } else {
                change.depends_on.iter().filter_map(|d| work.get_key_value(d.as_str()).map(|(k, _)| *k)).collect()
            };
            (*address, waits)
        })
        .collect()
}

/// The result of one resource's API work.
struct Step {
    id: String,
    outputs: crate::manifest::Attrs,
    deleted: Option<Deleted>,
}

async fn execute(
    cloud: &Cloud,
    change: &ResourceChange,
    desired: &crate::manifest::Attrs,
    delete: DeleteOptions,
) -> Result<Step, ProviderError> {
    let kind: AnyKind = crate::provider::kind(&change.kind)
        .ok_or_else(|| ProviderError::Refused(format!("unknown resource type {}", change.kind)))?;
    let prior = change.prior.as_ref();
    match change.action {
        Action::Create => {
            let created = create(kind, cloud, desired, None).await?;
            Ok(Step { id: created.id, outputs: created.outputs, deleted: None })
        }
        Action::Adopt => Ok(Step {
            id: prior.map(|p| p.id.clone()).unwrap_or_default(),
            outputs: prior.map(|p| p.outputs.clone()).unwrap_or_default(),
            deleted: None,
        }),
        Action::Update => {
            let id = prior.map(|p| p.id.clone()).unwrap_or_default();
            let changed: Vec<String> = change.changes.iter().map(|c| c.name.clone()).collect();
            let outputs =
                kind.update(cloud, &id, desired, change.live.as_ref().unwrap_or(&Default::default()), &changed).await?;
            Ok(Step { id, outputs, deleted: None })
        }
        Action::Replace => {
            let old = prior
                .ok_or_else(|| ProviderError::Refused(format!("{}: nothing recorded to replace", change.address)))?;
            // Keys: create the new one first, so a failure leaves the old key untouched.
            // Everything else: names are unique, so the old one must go first.
            if kind.replacement_hazard().is_some() {
                let created = create(kind, cloud, desired, Some(&old.id)).await?;
                let deleted = kind.delete(cloud, &old.id, &old.attrs, delete).await?;
                Ok(Step { id: created.id, outputs: created.outputs, deleted: Some(deleted) })
            } else {
                kind.delete(cloud, &old.id, &old.attrs, delete).await?;
                let created = create(kind, cloud, desired, Some(&old.id)).await?;
                Ok(Step { id: created.id, outputs: created.outputs, deleted: None })
            }
        }
        Action::Delete => {
            let old = prior
                .ok_or_else(|| ProviderError::Refused(format!("{}: nothing recorded to delete", change.address)))?;
            let deleted = if change.live.is_some() {
                kind.delete(cloud, &old.id, &old.attrs, delete).await?
            } else {
                Deleted::Removed
            };
            Ok(Step { id: old.id.clone(), outputs: Default::default(), deleted: Some(deleted) })
        }
        Action::NoOp => {
            Ok(Step { id: prior.map(|p| p.id.clone()).unwrap_or_default(), outputs: Default::default(), deleted: None })
        }
    }
}

/// Creates, never blindly twice: when the call fails (its response may have been lost after
/// the cloud acted), first look for what it made; retry only transient failures, at most
/// four attempts with backoff.
async fn create(
    kind: AnyKind,
    cloud: &Cloud,
    desired: &crate::manifest::Attrs,
    exclude: Option<&str>,
) -> Result<crate::provider::Created, ProviderError> {
    let mut delay = std::time::Duration::from_millis(200);
    let mut attempt = 1;
    loop {
        let err = match kind.create(cloud, desired).await {
            Ok(created) => return Ok(created),
            Err(e) => e,
        };
        if let Some(id) = kind.adopt(cloud, desired, exclude).await?
            && let Some(live) = kind.read(cloud, &id, desired).await?
        {
            return Ok(crate::provider::Created { id, outputs: live.outputs });
        }
        if !err.is_transient() || attempt == 4 {
            return Err(err);
        }
        tokio::time::sleep(delay).await;
        delay *= 2;
        attempt += 1;
    }
}

/// Writes one step's result into the state; returns a line for the user.
fn record(state: &mut State, change: &ResourceChange, desired: crate::manifest::Attrs, step: &Step) -> String {
    let scheduled = |d: &Option<Deleted>| match d {
        Some(Deleted::Scheduled { note: Some(note), .. }) => format!("; {note}"),
        Some(Deleted::Scheduled { deletion_date, note: None }) => format!(
            "; old key {} scheduled for deletion on {deletion_date}",
            change.prior.as_ref().map(|p| p.id.as_str()).unwrap_or_default()
        ),
        _ => String::new(),
    };
    state.pending.remove(&change.address);
    match change.action {
        Action::Delete => {
            state.resources.remove(&change.address);
            match &step.deleted {
                Some(Deleted::Scheduled { note: Some(note), .. } | Deleted::Retained { note }) => note.clone(),
                Some(Deleted::Scheduled { deletion_date, note: None }) => {
                    format!("key {} scheduled for deletion on {deletion_date}", step.id)
                }
                _ => format!("deleted {}", step.id),
            }
        }
        _ => {
            let mut outputs = change
                .prior
                .as_ref()
                .filter(|_| change.action == Action::Update)
                .map(|p| p.outputs.clone())
                .unwrap_or_default();
            outputs.extend(step.outputs.clone());
            state.resources.insert(
                change.address.clone(),
                ResourceState {
                    kind: change.kind.clone(),
                    id: step.id.clone(),
                    attrs: desired,
                    outputs,
                    depends_on: change.depends_on.clone(),
                    updated_at: now(),
                },
            );
            let verb = match change.action {
                Action::Adopt => "adopted",
                Action::Create => "created",
                Action::Update => "updated",
                _ => "replaced",
            };
            format!("{verb} {}{}", step.id, scheduled(&step.deleted))
        }
    }
}

//! `keyrite apply`: plan (or load a saved plan), confirm, execute.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, bail};

use super::{Reference, Status, backend, call_summary, confirm, interactive, load, preflight, refresh, ui::Ui};
use crate::apply::{self as executor, Options};
use crate::cli::{ManifestArg, RunArgs};
use crate::plan::Plan;
use crate::provider::Cloud;
use crate::render::human;
use crate::state::Backend;
use crate::state::{State, now};

/// The flags of `keyrite apply` beyond the run arguments.
#[derive(Clone, Copy, Debug, Default)]
pub struct Flags {
    pub auto_approve: bool,
    pub allow_key_replacement: bool,
    pub allow_identity_change: bool,
}

pub async fn run(
    arg: &ManifestArg,
    saved: Option<&Path>,
    run: RunArgs,
    flags: Flags,
    operator_key: Option<&Path>,
) -> anyhow::Result<Status> {
    let options = Options {
        parallelism: run.parallelism.into(),
        allow_key_replacement: flags.allow_key_replacement,
        allow_key_deletion: run.allow_key_deletion,
    };
    let (store, plan, manifest) = match saved {
        Some(path) => {
            let bytes = std::fs::read(path).with_context(|| format!("cannot read plan {}", path.display()))?;
            let plan = Plan::from_saved(path, &bytes)?;
            (backend(&plan.state, &plan.aws).await?, Some((plan, path.to_owned(), bytes)), None)
        }
        None => {
            let (manifest, store) = load(arg).await?;
            (store, None, Some(manifest))
        }
    };
    let lock = store.lock("apply").await?;
    let result = locked(&store, plan, manifest.as_ref(), flags, options, operator_key).await;
    store.unlock(lock).await?;
    result
}

/// Everything apply does while it holds the state lock.
async fn locked(
    store: &Backend,
    saved: Option<(Plan, std::path::PathBuf, Vec<u8>)>,
    manifest: Option<&crate::manifest::Manifest>,
    flags: Flags,
    options: Options,
    operator_key: Option<&Path>,
) -> anyhow::Result<Status> {
    let state = super::read_state(store).await?;
    let from_file = saved.is_some();
    let mut ceremony = None;
    let (plan, cloud) = match (saved, manifest) {
        (Some((plan, path, bytes)), _) => {
            check_fresh(&plan, state.as_ref())?;
            if !plan.errors.is_empty() {
                bail!("the saved plan has errors and cannot be applied; nothing was changed");
            }
            // Approvals are checked before any cloud call.
            ceremony = super::ceremony::prepare(&path, &bytes, &plan, state.as_ref(), operator_key)?;
            let cloud = Arc::new(Cloud::connect(&plan.aws, &plan.gcp).await);
            check_identity(&plan, &cloud, flags.allow_identity_change).await?;
            (plan, cloud)
        }
        (None, Some(manifest)) => {
            if manifest.ceremony.is_some() || state.as_ref().is_some_and(|s| s.ceremony.is_some()) {
                bail!("{}", ceremony_refusal(&manifest.path));
            }
            let cloud = Arc::new(Cloud::connect(&manifest.aws, &manifest.gcp).await);
            let observed = refresh(&cloud, manifest, state.as_ref(), Reference::Manifest).await?;
            let mut plan = crate::plan::build(manifest, state.as_ref(), &observed, now());
            preflight::check_permissions(&cloud, &mut plan).await?;
            preflight::check_lint(manifest, &mut plan);
            (plan, cloud)
        }
        (None, None) => bail!("nothing to apply"),
    };
    print!("{}", human::plan(&plan));
    if !plan.errors.is_empty() {
        bail!("the plan has errors (above); nothing was applied. {}", call_summary(&cloud));
    }
    // A rotation an interrupted apply left with every change made still needs its record.
    if !plan.has_changes() && plan.rotation.is_none() {
        println!("Apply complete: nothing to do. {}", call_summary(&cloud));
        return Ok(Status::Ok);
    }
    executor::check_hazards(&plan, &options)?;
    if !from_file && !flags.auto_approve {
        if !interactive() {
            bail!(
                "no terminal to confirm on: pass --auto-approve, or save a plan with `keyrite plan --out FILE` and run `keyrite apply FILE`"
            );
        }
        if !confirm("Apply these changes?")? {
            println!("Apply cancelled; nothing was changed.");
            return Ok(Status::Error);
        }
    }
    let state = state.unwrap_or_else(|| State::new(Some(plan.lineage.clone())));
    let state = super::rotate::begin(store, state, &plan).await?;
    let outcomes = executor::run(&plan, cloud.clone(), store, state, options, &Ui::new()).await?;
    println!(
        "Apply complete: {} change{} applied. {}",
        outcomes.len(),
        if outcomes.len() == 1 { "" } else { "s" },
        call_summary(&cloud)
    );
    match ceremony {
        Some(prepared) => super::ceremony::finish(prepared, &plan, &cloud, store).await,
        None => Ok(Status::Ok),
    }
}

/// A saved plan was made, and approved, for the principals it names; applying it as anyone
/// else needs a flag.
async fn check_identity(plan: &Plan, cloud: &Cloud, allow_change: bool) -> anyhow::Result<()> {
    let mut now = crate::plan::Identity::default();
    #[cfg(feature = "aws")]
    if plan.identity.aws.is_some() {
        now.aws = Some(cloud.aws.identity().await.context("cannot identify the AWS caller")?.arn.clone());
    }
    #[cfg(feature = "gcp")]
    if plan.identity.gcp.is_some() {
        now.gcp = Some(
            crate::provider::gcp::credentials::principal(&cloud.gcp)
                .await
                .context("cannot identify the Google principal")?,
        );
    }
    let changed: Vec<String> = [("AWS", &plan.identity.aws, &now.aws), ("Google Cloud", &plan.identity.gcp, &now.gcp)]
        .into_iter()
        .filter(|(_, then, now)| then != now)
        .map(|(cloud, then, now)| {
            format!("{cloud}: planned as {}, now {}", then.as_deref().unwrap_or("-"), now.as_deref().unwrap_or("-"))
        })
        .collect();
    match (changed.is_empty(), allow_change) {
        (true, _) => Ok(()),
        (false, true) => {
            println!("Applying as another identity than planned (--allow-identity-change): {}", changed.join("; "));
            Ok(())
        }
        (false, false) => bail!(
            "the saved plan was made as another identity ({}); it was reviewed for that identity, so plan again as this one, or pass --allow-identity-change",
            changed.join("; ")
        ),
    }
}

/// A saved plan applies only to the exact state it was made against.
fn check_fresh(plan: &Plan, state: Option<&State>) -> anyhow::Result<()> {
    match (state, plan.base_serial) {
        (None, None) => Ok(()),
        (Some(s), Some(serial)) if s.lineage == plan.lineage && s.serial == serial => Ok(()),
        (Some(s), _) if s.lineage != plan.lineage => {
            bail!(
                "saved plan is for state lineage {}, but the state has lineage {}: it belongs to another state",
                plan.lineage,
                s.lineage
            )
        }
        (Some(s), _) => bail!(
            "saved plan is stale: it was made against state serial {}, the state is now at serial {}. Run `keyrite plan` again.",
            plan.base_serial.map_or("(none)".into(), |n| n.to_string()),
            s.serial
        ),
        (None, Some(_)) => bail!("saved plan expects an existing state, but there is none"),
    }
}

/// What to run instead of a direct `apply` on a manifest that runs ceremonies: the exact
/// commands, with this manifest's path, in the order the ceremony needs them.
fn ceremony_refusal(manifest: &Path) -> String {
    let file = manifest.display();
    format!(
        "this manifest runs ceremonies, so it is applied only from an approved plan; nothing was changed. Run instead:\n  \
         1. keyrite plan -f {file} --out ceremony.plan\n  \
         2. each approver: keyrite approve ceremony.plan --key ~/.ssh/id_ed25519\n     \
         (or: ssh-keygen -Y sign -n {ns} -f ~/.ssh/id_ed25519 ceremony.plan)\n  \
         3. keyrite apply ceremony.plan --operator-key ~/.ssh/id_ed25519",
        ns = crate::ceremony::approval::PLAN_NAMESPACE
    )
}

#[cfg(test)]
mod ceremony_refusal_tests {
    #[test]
    fn the_refusal_names_each_command_with_the_manifest() {
        let text = super::ceremony_refusal(std::path::Path::new("ops/treasury.yaml"));
        assert!(text.contains("keyrite plan -f ops/treasury.yaml --out ceremony.plan"), "{text}");
        assert!(text.contains("keyrite approve ceremony.plan --key"), "{text}");
        assert!(text.contains("keyrite apply ceremony.plan --operator-key"), "{text}");
    }
}

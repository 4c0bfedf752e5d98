//! `keyrite apply`: plan (or load a saved plan), confirm, execute.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, bail};

use super::{Reference, Status, backend, call_summary, confirm, interactive, load, refresh, ui::Ui};
use crate::apply::{self as executor, Options};
use crate::cli::{ManifestArg, RunArgs};
use crate::plan::{PLAN_FORMAT, Plan};
use crate::provider::Cloud;
use crate::render::human;
use crate::state::Backend;
use crate::state::{State, now};

pub async fn run(
    arg: &ManifestArg,
    saved: Option<&Path>,
    auto_approve: bool,
    run: RunArgs,
    allow_key_replacement: bool,
) -> anyhow::Result<Status> {
    let options = Options {
        parallelism: run.parallelism.into(),
        allow_key_replacement,
        allow_key_deletion: run.allow_key_deletion,
    };
    let (store, plan, manifest) = match saved {
        Some(path) => {
            let plan = read_plan(path)?;
            (backend(&plan.state, &plan.aws).await?, Some(plan), None)
        }
        None => {
            let (manifest, store) = load(arg).await?;
            (store, None, Some(manifest))
        }
    };
    let lock = store.lock("apply").await?;
    let result = locked(&store, plan, manifest.as_ref(), auto_approve, options).await;
    store.unlock(lock).await?;
    result
}

/// Everything apply does while it holds the state lock.
async fn locked(
    store: &Backend,
    saved: Option<Plan>,
    manifest: Option<&crate::manifest::Manifest>,
    auto_approve: bool,
    options: Options,
) -> anyhow::Result<Status> {
    let state = store.read().await?;
    let from_file = saved.is_some();
    let (plan, cloud) = match (saved, manifest) {
        (Some(plan), _) => {
            check_fresh(&plan, state.as_ref())?;
            let cloud = Arc::new(Cloud::connect(&plan.aws, &plan.gcp).await);
            (plan, cloud)
        }
        (None, Some(manifest)) => {
            let cloud = Arc::new(Cloud::connect(&manifest.aws, &manifest.gcp).await);
            let observed = refresh(&cloud, manifest, state.as_ref(), Reference::Manifest).await?;
            (crate::plan::build(manifest, state.as_ref(), &observed, now()), cloud)
        }
        (None, None) => bail!("nothing to apply"),
    };
    print!("{}", human::plan(&plan));
    if !plan.has_changes() {
        println!("Apply complete: nothing to do. {}", call_summary(&cloud));
        return Ok(Status::Ok);
    }
    executor::check_hazards(&plan, &options)?;
    if !from_file && !auto_approve {
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
    let outcomes = executor::run(&plan, cloud.clone(), store, state, options, &Ui::new()).await?;
    println!(
        "Apply complete: {} change{} applied. {}",
        outcomes.len(),
        if outcomes.len() == 1 { "" } else { "s" },
        call_summary(&cloud)
    );
    Ok(Status::Ok)
}

fn read_plan(path: &Path) -> anyhow::Result<Plan> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read plan {}", path.display()))?;
    let plan: Plan =
        serde_json::from_str(&text).with_context(|| format!("{} is not a keyrite plan", path.display()))?;
    if plan.format_version != PLAN_FORMAT {
        bail!(
            "plan {} has format version {}; this keyrite applies version {PLAN_FORMAT}",
            path.display(),
            plan.format_version
        );
    }
    Ok(plan)
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

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
use crate::state::{State, now};

pub async fn run(arg: &ManifestArg, saved: Option<&Path>, auto_approve: bool, run: RunArgs, allow_key_replacement: bool) -> anyhow::Result<Status> {
    let options = Options { parallelism: run.parallelism.into(), allow_key_replacement, allow_key_deletion: run.allow_key_deletion };
    let (plan, store, _lock, state, cloud) = match saved {
        Some(path) => {
            let plan = read_plan(path)?;
            let store = backend(&plan.state);
            let lock = store.lock("apply")?;
            let state = store.read()?;
            check_fresh(&plan, state.as_ref())?;
            let cloud = Arc::new(Cloud::connect(&plan.aws).await?);
            (plan, store, lock, state, cloud)
        }
        None => {
            let (manifest, store) = load(arg)?;
            let lock = store.lock("apply")?;
            let state = store.read()?;
            let cloud = Arc::new(Cloud::connect(&manifest.aws).await?);
            let observed = refresh(&cloud, &manifest, state.as_ref(), Reference::Manifest).await?;
            let plan = crate::plan::build(&manifest, state.as_ref(), &observed, now());
            (plan, store, lock, state, cloud)
        }
    };
    print!("{}", human::plan(&plan));
    if !plan.has_changes() {
        println!("Apply complete: nothing to do. {}", call_summary(&cloud));
        return Ok(Status::Ok);
    }
    executor::check_hazards(&plan, &options)?;
    if saved.is_none() && !auto_approve {
        if !interactive() {
            bail!("no terminal to confirm on: pass --auto-approve, or save a plan with `keyrite plan --out FILE` and run `keyrite apply FILE`");
        }
        if !confirm("Apply these changes?")? {
            println!("Apply cancelled; nothing was changed.");
            return Ok(Status::Error);
        }
    }
    let state = state.unwrap_or_else(|| State::new(Some(plan.lineage.clone())));
    let outcomes = executor::run(&plan, cloud.clone(), &store, state, options, &Ui::new()).await?;
    println!("Apply complete: {} change{} applied. {}", outcomes.len(), if outcomes.len() == 1 { "" } else { "s" }, call_summary(&cloud));
    Ok(Status::Ok)
}

fn read_plan(path: &Path) -> anyhow::Result<Plan> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read plan {}", path.display()))?;
    let plan: Plan = serde_json::from_str(&text).with_context(|| format!("{} is not a keyrite plan", path.display()))?;
    if plan.format_version != PLAN_FORMAT {
        bail!("plan {} has format version {}; this keyrite applies version {PLAN_FORMAT}", path.display(), plan.format_version);
    }
    Ok(plan)
}

/// A saved plan applies only to the exact state it was made against.
fn check_fresh(plan: &Plan, state: Option<&State>) -> anyhow::Result<()> {
    match (state, plan.base_serial) {
        (None, None) => Ok(()),
        (Some(s), Some(serial)) if s.lineage == plan.lineage && s.serial == serial => Ok(()),
        (Some(s), _) if s.lineage != plan.lineage => {
            bail!("saved plan is for state lineage {}, but the state has lineage {}: it belongs to another state", plan.lineage, s.lineage)
        }
        (Some(s), _) => bail!(
            "saved plan is stale: it was made against state serial {}, the state is now at serial {}. Run `keyrite plan` again.",
            plan.base_serial.map_or("(none)".into(), |n| n.to_string()),
            s.serial
        ),
        (None, Some(_)) => bail!("saved plan expects an existing state, but there is none"),
    }
}

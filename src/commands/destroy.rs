//! `keyrite destroy`: remove everything in the state; keys are only scheduled for deletion.

use std::sync::Arc;

use anyhow::bail;

use super::{Reference, Status, call_summary, confirm, interactive, load, refresh, ui::Ui};
use crate::apply::{self as executor, Options};
use crate::cli::{ManifestArg, RunArgs};
use crate::provider::Cloud;
use crate::render::human;
use crate::state::now;

pub async fn run(arg: &ManifestArg, auto_approve: bool, run: RunArgs) -> anyhow::Result<Status> {
    let (manifest, store) = load(arg).await?;
    let lock = store.lock("destroy").await?;
    let result = locked(&manifest, &store, auto_approve, run).await;
    store.unlock(lock).await?;
    result
}

async fn locked(
    manifest: &crate::manifest::Manifest,
    store: &crate::state::Backend,
    auto_approve: bool,
    run: RunArgs,
) -> anyhow::Result<Status> {
    let Some(state) = super::read_state(store).await? else {
        println!("Nothing to destroy: there is no state at {}.", store.describe());
        return Ok(Status::Ok);
    };
    if manifest.ceremony.is_some() || state.ceremony.is_some() {
        bail!(
            "this state's changes are made in ceremonies, and destroy bypasses approvals: remove the resources from the manifest, then plan, approve and apply the removal"
        );
    }
    let cloud = Arc::new(Cloud::connect(&manifest.aws, &manifest.gcp).await);
    let observed = refresh(&cloud, manifest, Some(&state), Reference::State).await?;
    let plan = crate::plan::build_destroy(manifest, &state, &observed, now());
    print!("{}", human::plan(&plan));
    if !plan.has_changes() {
        return Ok(Status::Ok);
    }
    let options = Options {
        parallelism: run.parallelism.into(),
        allow_key_replacement: false,
        allow_key_deletion: run.allow_key_deletion,
    };
    executor::check_hazards(&plan, &options)?;
    if !auto_approve {
        if !interactive() {
            bail!("no terminal to confirm on: pass --auto-approve");
        }
        if !confirm("Destroy these resources?")? {
            println!("Destroy cancelled; nothing was changed.");
            return Ok(Status::Error);
        }
    }
    let outcomes = executor::run(&plan, cloud.clone(), store, state, options, &Ui::new()).await?;
    println!(
        "Destroy complete: {} resource{} removed or scheduled. {}",
        outcomes.len(),
        if outcomes.len() == 1 { "" } else { "s" },
        call_summary(&cloud)
    );
    Ok(Status::Ok)
}

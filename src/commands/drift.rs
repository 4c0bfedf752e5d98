//! `keyrite drift`: live vs last applied (drift), and live vs manifest (pending changes).

use std::sync::Arc;

use anyhow::bail;

use super::{Reference, Status, load, refresh};
use crate::cli::ManifestArg;
use crate::provider::Cloud;
use crate::render::{ReportFormat, human, json, sarif};
use crate::state::now;

pub async fn run(arg: &ManifestArg, format: ReportFormat) -> anyhow::Result<Status> {
    let (manifest, store) = load(arg).await?;
    let Some(state) = super::read_state(&store).await? else {
        bail!("no state at {}: nothing has been applied yet, so there is nothing to drift from", store.describe());
    };
    let cloud = Arc::new(Cloud::connect(&manifest.aws, &manifest.gcp).await);
    let observed = refresh(&cloud, &manifest, Some(&state), Reference::State).await?;
    let items = crate::plan::drift::detect(&state, &observed, crate::provider::schemas());
    let pending = crate::plan::build(&manifest, Some(&state), &observed, now());
    match format {
        ReportFormat::Human => print!("{}", human::drift(&items, &pending)),
        ReportFormat::Json => println!("{}", serde_json::to_string_pretty(&json::drift(&items, &pending))?),
        ReportFormat::Sarif => println!("{}", serde_json::to_string_pretty(&sarif::drift(&items, &state))?),
    }
    Ok(if items.is_empty() && !pending.has_changes() { Status::Ok } else { Status::Changes })
}

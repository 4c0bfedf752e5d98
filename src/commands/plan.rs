//! `keyrite plan`: refresh, diff, render, optionally save.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;

use super::{Reference, Status, call_summary, load, preflight, refresh};
use crate::cli::ManifestArg;
use crate::provider::Cloud;
use crate::render::{Format, human, json};
use crate::state::now;

pub async fn run(arg: &ManifestArg, out: Option<&Path>, format: Format, detailed: bool) -> anyhow::Result<Status> {
    let (manifest, store) = load(arg).await?;
    let findings = crate::lint::manifest(&manifest);
    if !findings.is_empty() {
        eprint!("{}", crate::render::human::lint(&findings));
    }
    let state = super::read_state(&store).await?;
    let cloud = Arc::new(Cloud::connect(&manifest.aws, &manifest.gcp).await);
    let observed = refresh(&cloud, &manifest, state.as_ref(), Reference::Manifest).await?;
    let mut plan = crate::plan::build(&manifest, state.as_ref(), &observed, now());
    preflight::check_permissions(&cloud, &mut plan).await?;
    preflight::check_lint(&manifest, &mut plan);
    match format {
        Format::Human => println!("{}\n{}", human::plan(&plan).trim_end(), call_summary(&cloud)),
        Format::Json => println!("{}", serde_json::to_string_pretty(&json::plan(&plan))?),
    }
    if !plan.errors.is_empty() {
        if out.is_some() && format == Format::Human {
            println!("The plan was not saved.");
        }
        return Ok(Status::Error);
    }
    if let Some(out) = out {
        let body = serde_json::to_vec_pretty(&plan)?;
        std::fs::write(out, body).with_context(|| format!("cannot write plan to {}", out.display()))?;
        if format == Format::Human {
            println!(
                "\nSaved the plan to {}. Apply exactly this plan with: keyrite apply {}",
                out.display(),
                out.display()
            );
        }
    }
    Ok(if detailed && plan.has_changes() { Status::Changes } else { Status::Ok })
}

//! `keyrite lint`: the manifest against keyrite's security rules, as text, JSON or SARIF.

use super::Status;
use crate::cli::ManifestArg;
use crate::lint::{self, Level};
use crate::manifest::Manifest;
use crate::render::{ReportFormat, human, sarif};

pub fn run(arg: &ManifestArg, format: ReportFormat, fail_on: Level) -> anyhow::Result<Status> {
    let manifest = Manifest::load(&arg.file)?;
    let findings = lint::manifest(&manifest);
    match format {
        ReportFormat::Human => print!("{}", human::lint(&findings)),
        ReportFormat::Json => println!(
            "{}",
            serde_json::to_string_pretty(
                &serde_json::json!({"format_version": 1, "kind": "lint", "findings": findings})
            )?
        ),
        ReportFormat::Sarif => println!("{}", serde_json::to_string_pretty(&sarif::lint(&findings))?),
    }
    Ok(if findings.iter().any(|f| f.counts() && f.level >= fail_on) { Status::Changes } else { Status::Ok })
}

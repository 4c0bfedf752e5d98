//! Rendering: plans, drift and state as text for people and as versioned JSON for machines.
//!
//! Renderers take finished values (`&Plan`, drift items) and never look at the cloud or the
//! manifest. The JSON documents carry `format_version`; fields are only ever added within a
//! version (see docs/json-output.md).

pub mod human;
pub mod json;
pub mod sarif;
pub mod yaml;

/// Output format chosen with `--format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Human,
    Json,
}

/// Output format of reports that code-scanning tools also read (`lint`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportFormat {
    Human,
    Json,
    Sarif,
}

//! The manifest's `ceremony:` block: who approves plans (an OpenSSH allowed_signers file),
//! how many of them must, and where ceremony records go.
//!
//! The approvers file is read and checked at validation, so a malformed line is reported
//! with the file's own line and column before anything else happens; its SHA-256 goes into
//! every plan, so that apply can tell when the list of approvers changed after the plan.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::yaml::Pos;
use super::{Block, Diagnostic, StateConfig, Validation};
use crate::ceremony::allowed_signers;

/// How ceremonies are run for this manifest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CeremonyConfig {
    /// The OpenSSH allowed_signers file naming the approvers (resolved against the manifest's
    /// directory).
    pub approvers: PathBuf,
    /// SHA-256 of that file when the manifest was read.
    pub approvers_sha256: String,
    /// How many distinct principals must approve a plan.
    pub threshold: usize,
    /// The directory ceremony records are written to and read from.
    pub records: PathBuf,
}

impl Validation {
    /// Validates `ceremony:`: the approvers file exists and parses, and the threshold is
    /// between 1 and the number of principals it names.
    pub(super) fn ceremony(&mut self, mut b: Block<'_>, state: &StateConfig) -> Option<CeremonyConfig> {
        let approvers_pos = b.pos_of("approvers");
        let threshold_pos = b.pos_of("threshold");
        let approvers = b.required_string(self, "approvers");
        let threshold = b.integer(self, "threshold", 1..=100);
        if !b.has("threshold") {
            self.error(b.pos(), "missing", "ceremony: missing required field `threshold`");
        }
        let records = b.string(self, "records").map(|r| self.base_dir().join(r));
        b.finish(self);
        let (path, text, signers) =
            self.allowed_signers_file(approvers_pos, "ceremony", "ceremony.approvers", &approvers?)?;
        let principals = allowed_signers::distinct_principals(&signers).len();
        let threshold = usize::try_from(threshold?).ok()?;
        if principals == 0 {
            self.error(approvers_pos, "ceremony", format!("ceremony.approvers: {} names no principal", path.display()));
            return None;
        }
        if threshold > principals {
            self.error(
                threshold_pos,
                "ceremony",
                format!(
                    "ceremony.threshold: {threshold} approvals can never be met: {} names {principals} principal{}",
                    path.display(),
                    if principals == 1 { "" } else { "s" }
                ),
            );
            return None;
        }
        let records = records.unwrap_or_else(|| default_records(state, self.base_dir()));
        Some(CeremonyConfig {
            approvers: path,
            approvers_sha256: hex::encode(Sha256::digest(text.as_bytes())),
            threshold,
            records,
        })
    }
}

impl Validation {
    /// Reads and parses an OpenSSH allowed_signers file named at `pos` by the field `field`
    /// (an unreadable file is an error with `code`)
    /// (resolved against the manifest's directory): its path, text and lines. A file that
    /// cannot be read is an error at `pos`; a malformed line, one at the file's own line and
    /// column.
    pub fn allowed_signers_file(
        &mut self,
        pos: Pos,
        code: &'static str,
        field: &str,
        relative: &str,
    ) -> Option<(PathBuf, String, Vec<allowed_signers::AllowedSigner>)> {
        let path = self.base_dir().join(relative);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) => {
                self.error(pos, code, format!("{field}: cannot read {}: {e}", path.display()));
                return None;
            }
        };
        match allowed_signers::parse(&path.display().to_string(), &text) {
            Ok(signers) => Some((path, text, signers)),
            Err(e) => {
                for d in e.diagnostics {
                    self.diags.push(Diagnostic {
                        file: path.display().to_string(),
                        line: d.line,
                        column: d.column,
                        code: "allowed_signers",
                        message: d.error.to_string(),
                    });
                }
                None
            }
        }
    }
}

/// `ceremonies/` next to a local state file, else next to the manifest.
fn default_records(state: &StateConfig, base: &Path) -> PathBuf {
    match state {
        StateConfig::Local { path } => {
            path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(base).join("ceremonies")
        }
        StateConfig::S3 { .. } => base.join("ceremonies"),
    }
}

//! The manifest's `lint:` block: findings the manifest accepts on purpose, each with a
//! reason. An allowed error no longer stops a plan, but it is printed on every run, so that
//! it is never silent.
//!
//! ```yaml
//! lint:
//!   allow:
//!     KR301:                       # rule
//!       partner_url: "the partner's browser client calls it; rate-limited at the edge"
//! ```

use serde::{Deserialize, Serialize};

use super::{Block, Pos, Validation, Value};

/// One accepted finding: a rule on a resource, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Allowance {
    pub rule: String,
    pub resource: String,
    pub reason: String,
}

impl Validation {
    /// Validates `lint.allow`: rule ids shaped `KRnnn`, declared resources, non-empty reasons.
    pub(super) fn lint_allowances(&mut self, mut b: Block<'_>, declared: &[(String, Pos)]) -> Vec<Allowance> {
        let mut out = Vec::new();
        let allow = b.block(self, "allow");
        b.finish(self);
        let Some(allow) = allow else { return out };
        for (rule, per_resource) in allow.entries {
            let id = rule.as_scalar().unwrap_or_default();
            let shaped = id.len() == 5 && id.starts_with("KR") && id[2..].chars().all(|c| c.is_ascii_digit());
            if !shaped {
                self.error(
                    rule.pos,
                    "lint",
                    format!("lint.allow: {id:?} is not a rule id (KR101, KR301, … in docs/lint.md)"),
                );
                continue;
            }
            let Value::Map(entries) = &per_resource.value else {
                self.error(per_resource.pos, "type", format!("lint.allow.{id}: expected resource: reason entries"));
                continue;
            };
            for (resource, reason) in entries {
                let name = resource.as_scalar().unwrap_or_default();
                if !declared.iter().any(|(r, _)| r == name) {
                    self.error(resource.pos, "lint", format!("lint.allow.{id}: no resource named {name:?}"));
                    continue;
                }
                match reason.as_scalar().map(str::trim) {
                    Some(text) if !text.is_empty() && !reason.is_null() => {
                        out.push(Allowance { rule: id.to_owned(), resource: name.to_owned(), reason: text.to_owned() })
                    }
                    _ => self.error(
                        reason.pos,
                        "lint",
                        format!("lint.allow.{id}.{name}: say why the finding is accepted (a non-empty reason)"),
                    ),
                }
            }
        }
        out
    }
}

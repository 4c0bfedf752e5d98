//! Security lint: coded rules over what a manifest declares, each with a stable id, a level,
//! a rationale and a fix (docs/lint.md), so that a security engineer or a CI pipeline can
//! tell that a signer stack is unsafe before anything is applied.
//!
//! Rules read the validated manifest only (its desired attributes, with `${…}` references
//! left as written) and policies in their canonical form ([`crate::policy`]), so a rule
//! judges meaning, not spelling. Findings point at the resource's block in the manifest.
//! Rendering (human, JSON, SARIF) is the renderers' business.

mod rules;

pub use rules::{Context, check, gate_role};

use serde::Serialize;

use crate::manifest::{Manifest, Slot};

/// How serious a finding is. Ordered: `Note < Warning < Error`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    Note,
    Warning,
    Error,
}

impl std::str::FromStr for Level {
    type Err = String;

    fn from_str(s: &str) -> Result<Level, String> {
        match s {
            "note" => Ok(Level::Note),
            "warning" => Ok(Level::Warning),
            "error" => Ok(Level::Error),
            other => Err(format!("unknown level {other:?} (note, warning, error)")),
        }
    }
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Note => "note",
            Level::Warning => "warning",
            Level::Error => "error",
        }
    }
}

/// A rule: its identity and documentation. `KR1xx` keys, `KR2xx` IAM, `KR3xx` endpoints.
#[derive(Debug, Serialize)]
pub struct Rule {
    pub id: &'static str,
    /// A short kebab-case name (`sign-without-algorithm-condition`).
    pub name: &'static str,
    pub level: Level,
    /// GitHub code scanning's `security-severity`, "0.0"–"10.0".
    pub security_severity: &'static str,
    pub short: &'static str,
    pub full: &'static str,
    /// How to fix it.
    pub help: &'static str,
}

/// Every rule, in id order.
pub static RULES: &[Rule] = rules::RULES;

/// The rule with this id.
pub fn rule(id: &str) -> Option<&'static Rule> {
    RULES.iter().find(|r| r.id == id)
}

/// One finding.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub rule: &'static str,
    pub level: Level,
    /// The manifest address of the resource, or for a resource no manifest declares, its
    /// cloud name.
    pub resource: String,
    /// Live findings: the resource's cloud name (an ARN, or a Cloud KMS resource name).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub message: String,
    /// Manifest findings: the manifest file, and where the resource's block starts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<usize>,
    /// Set when the manifest accepts this finding (`lint.allow`): the reason it gives.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allowed: Option<String>,
}

impl Finding {
    /// True when the finding counts: not accepted by the manifest.
    pub fn counts(&self) -> bool {
        self.allowed.is_none()
    }

    /// A stable identity across runs: the rule, the resource and what was found, not where
    /// the block happens to sit in the file.
    pub fn fingerprint(&self) -> String {
        crate::crypto::sha256_hex(format!("{}\0{}\0{}", self.rule, self.resource, self.message).as_bytes())
    }
}

/// Lints a validated manifest. Findings are ordered by position, then rule.
pub fn manifest(m: &Manifest) -> Vec<Finding> {
    let file = m.path.display().to_string();
    let mut out = Vec::new();
    let cx = rules::Context {
        recovery: m
            .resources
            .iter()
            .filter(|r| Slot::of(&r.desired) == Slot::Recovery)
            .map(|r| r.name.clone())
            .collect(),
        account_id: None,
        gates: m
            .resources
            .iter()
            .filter_map(|r| rules::gate_role(&r.kind, &r.desired))
            .map(str::to_owned)
            .chain(m.signers.iter().filter_map(|s| s.gate.as_ref()).map(|g| g.member()))
            .collect(),
    };
    for spec in &m.resources {
        let pos = m.positions.get(spec.name.split('/').next().unwrap_or_default()).copied().unwrap_or_default();
        for (rule, message) in rules::check(&spec.kind, &spec.desired, &cx) {
            let level = self::rule(rule).map_or(Level::Warning, |r| r.level);
            let allowed =
                m.allowances.iter().find(|a| a.rule == rule && a.resource == spec.name).map(|a| a.reason.clone());
            out.push(Finding {
                allowed,
                rule,
                level,
                resource: spec.name.clone(),
                name: None,
                message,
                file: Some(file.clone()),
                line: Some(pos.line),
                column: Some(pos.col),
            });
        }
    }
    out.sort_by(|a, b| (a.line, a.column, a.rule, &a.resource).cmp(&(b.line, b.column, b.rule, &b.resource)));
    out
}

/// KR112 for each signer whose key is older than its `rotation.every` (see
/// [`crate::rotation::due`]), on the key.
pub fn rotations_due(
    due: &[crate::rotation::Due],
    state: &crate::state::State,
    allowances: &[crate::manifest::Allowance],
) -> Vec<Finding> {
    let rule = "KR112";
    due.iter()
        .map(|d| Finding {
            rule,
            level: self::rule(rule).map_or(Level::Warning, |r| r.level),
            resource: d.key.clone(),
            name: state.resources.get(&d.key).map(|r| r.id.clone()),
            message: d.to_string(),
            file: None,
            line: None,
            column: None,
            allowed: allowances.iter().find(|a| a.rule == rule && a.resource == d.key).map(|a| a.reason.clone()),
        })
        .collect()
}

/// A resource as deployed.
#[derive(Clone, Debug)]
pub struct Deployed {
    pub kind: String,
    /// The manifest address when a state records it, else the cloud name.
    pub resource: String,
    /// The cloud name: an ARN, or a resource name.
    pub name: String,
    /// What the cloud holds, plus what only the state knows (the slot, the deletion window).
    pub attrs: crate::manifest::Attrs,
}

/// Lints deployed resources. `allowances` are the manifest's, when there is one. Findings are
/// ordered by resource, then rule.
pub fn live(resources: &[Deployed], cx: &Context, allowances: &[crate::manifest::Allowance]) -> Vec<Finding> {
    let mut cx = cx.clone();
    cx.gates.extend(resources.iter().filter_map(|r| rules::gate_role(&r.kind, &r.attrs)).map(str::to_owned));
    let cx = &cx;
    let mut out = Vec::new();
    for r in resources {
        for (rule, message) in rules::check(&r.kind, &r.attrs, cx) {
            let level = self::rule(rule).map_or(Level::Warning, |r| r.level);
            let allowed =
                allowances.iter().find(|a| a.rule == rule && a.resource == r.resource).map(|a| a.reason.clone());
            out.push(Finding {
                rule,
                level,
                resource: r.resource.clone(),
                name: Some(r.name.clone()),
                message,
                file: None,
                line: None,
                column: None,
                allowed,
            });
        }
    }
    out.sort_by(|a, b| (&a.resource, a.rule, &a.message).cmp(&(&b.resource, b.rule, &b.message)));
    out
}

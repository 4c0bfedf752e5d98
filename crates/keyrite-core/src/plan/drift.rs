//! Drift: the cloud moved away from what keyrite last applied.
//!
//! Drift is its own type, separate from a plan: a plan compares the live cloud with the
//! manifest (what will change), drift compares it with the state (what someone changed).
//! An auditor wants the second: a loosened key policy, an inline policy nobody declared, a
//! disabled key, a key pending deletion, changed tags, a deleted resource. Policy drift
//! names the statement and field; broadening is flagged as a security finding.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value as Json;

use super::{Observed, compare};
use crate::schema::{Compare, Schemas};
use crate::state::State;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Grants more than was applied, or takes a signer out of service.
    Security,
    Change,
}

/// One way a resource differs from what was last applied.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DriftItem {
    pub address: String,
    #[serde(rename = "type")]
    pub kind: String,
    /// The attribute, or None when the whole resource is gone.
    pub attribute: Option<String>,
    pub severity: Severity,
    pub message: String,
    pub applied: Option<Json>,
    pub live: Option<Json>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub detail: Vec<String>,
}

/// Compares every state entry with what the refresh observed.
pub fn detect(state: &State, observed: &Observed, schemas: &Schemas) -> Vec<DriftItem> {
    let mut items = Vec::new();
    for (address, prior) in &state.resources {
        let Some(kind) = schemas.get(&prior.kind) else { continue };
        let Some(live) = observed.live.get(address) else { continue };
        let Some(live) = live else {
            items.push(DriftItem {
                address: address.clone(),
                kind: prior.kind.clone(),
                attribute: None,
                severity: Severity::Security,
                message: format!("{} {} was deleted outside keyrite", prior.kind, prior.id),
                applied: None,
                live: None,
                detail: Vec::new(),
            });
            continue;
        };
        for spec in kind.attrs().iter().filter(|s| s.compare != Compare::StateOnly) {
            let (applied, now) = (prior.attrs.get(spec.name), live.attrs.get(spec.name));
            let (same, detail) = compare(spec.compare, applied, now);
            if same {
                continue;
            }
            let (severity, message) = describe(spec.name, spec.compare, applied, now);
            items.push(DriftItem {
                address: address.clone(),
                kind: prior.kind.clone(),
                attribute: Some(spec.name.to_owned()),
                severity,
                message,
                applied: applied.cloned(),
                live: now.cloned(),
                detail,
            });
        }
    }
    items
}

/// A sentence for one drifted attribute, and how serious it is.
fn describe(attr: &str, mode: Compare, applied: Option<&Json>, live: Option<&Json>) -> (Severity, String) {
    let text = |v: Option<&Json>| {
        v.map(|v| v.as_str().map(str::to_owned).unwrap_or_else(|| v.to_string())).unwrap_or_else(|| "(none)".into())
    };
    match (attr, mode) {
        (_, Compare::Policy) => {
            let broadened = match (applied.map(crate::policy::Policy::parse), live.map(crate::policy::Policy::parse)) {
                (Some(Ok(a)), Some(Ok(l))) => crate::policy::diff(&a, &l).broadens(),
                _ => true,
            };
            if broadened {
                (Severity::Security, format!("{attr} was BROADENED outside keyrite"))
            } else {
                (Severity::Change, format!("{attr} was changed outside keyrite"))
            }
        }
        ("key_state", _) => {
            let now = text(live);
            let sentence = match now.as_str() {
                "PendingDeletion" => "key is PENDING DELETION".to_owned(),
                "Disabled" => "key was DISABLED: it cannot sign".to_owned(),
                other => format!("key state changed from {} to {other}", text(applied)),
            };
            (Severity::Security, sentence)
        }
        ("undeclared_inline_policies", _) => {
            let names: Vec<String> =
                live.and_then(Json::as_array).into_iter().flatten().map(|v| text(Some(v))).collect();
            (
                Severity::Security,
                format!(
                    "undeclared inline polic{} attached: {}",
                    if names.len() == 1 { "y" } else { "ies" },
                    names.join(", ")
                ),
            )
        }
        ("tags", _) => (Severity::Change, format!("tags changed: {}", tag_changes(applied, live))),
        ("labels", _) => (Severity::Change, format!("labels changed: {}", tag_changes(applied, live))),
        ("version_state", _) => (
            Severity::Security,
            match text(live).as_str() {
                "DISABLED" => "pinned key version was DISABLED: it cannot sign".to_owned(),
                "DESTROY_SCHEDULED" => "pinned key version is SCHEDULED FOR DESTRUCTION".to_owned(),
                "DOES_NOT_EXIST" | "DESTROYED" => {
                    "pinned key version is GONE: its address can never sign again".to_owned()
                }
                other => format!("pinned key version state changed from {} to {other}", text(applied)),
            },
        ),
        ("version", _) => (
            Severity::Security,
            format!("the key now signs with version {}, not the pinned version {}", text(live), text(applied)),
        ),
        ("other_enabled_versions", _) => (
            Severity::Security,
            format!("undeclared key version(s) {} are ENABLED and can sign", list_text(live).join(", ")),
        ),
        ("members", _) => {
            let (parts, added) = member_changes(applied, live);
            (
                if added { Severity::Security } else { Severity::Change },
                format!("members of the key's role changed outside keyrite: {}", parts.join(", ")),
            )
        }
        ("other_bindings", _) => {
            let roles = |v: Option<&Json>| v.and_then(Json::as_object).cloned().unwrap_or_default();
            let (applied, live) = (roles(applied), roles(live));
            let mut all: Vec<&String> = applied.keys().chain(live.keys()).collect();
            all.sort();
            all.dedup();
            let mut added = false;
            let changes: Vec<String> = all
                .into_iter()
                .filter_map(|role| {
                    let (parts, more) = member_changes(applied.get(role), live.get(role));
                    added |= more;
                    (!parts.is_empty()).then(|| format!("{role} {}", parts.join(", ")))
                })
                .collect();
            (
                if added { Severity::Security } else { Severity::Change },
                format!("bindings of other roles changed outside keyrite: {}", changes.join("; ")),
            )
        }
        ("iam_role", _) => (Severity::Security, format!("bound role changed from {} to {}", text(applied), text(live))),
        ("code_sha256", _) => (
            Severity::Security,
            format!("signer code replaced out of band (CodeSha256 {} → {})", text(applied), text(live)),
        ),
        ("auth_type", _) if text(live) == "NONE" => {
            (Severity::Security, "function URL auth type changed to NONE: anyone can invoke the signer".into())
        }
        ("auth_type", _) => {
            (Severity::Security, format!("function URL auth type changed from {} to {}", text(applied), text(live)))
        }
        ("environment", _) => {
            (Severity::Security, format!("function environment changed: {}", tag_changes(applied, live)))
        }
        ("role", _) => (Severity::Security, format!("function role changed from {} to {}", text(applied), text(live))),
        ("public_permissions", _) => {
            let (added, removed) = list_delta(applied, live);
            let mut parts: Vec<String> =
                added.iter().map(|a| format!("{a} granted to everyone (*) was ADDED")).collect();
            parts.extend(removed.iter().map(|a| format!("{a} for everyone (*) was removed")));
            (Severity::Security, format!("public invoke permissions changed: {}", parts.join("; ")))
        }
        ("managed_policies", _) => {
            let (added, removed) = list_delta(applied, live);
            let mut parts: Vec<String> = added.iter().map(|a| format!("{a} was ATTACHED")).collect();
            parts.extend(removed.iter().map(|a| format!("{a} was detached")));
            let severity = if added.is_empty() { Severity::Change } else { Severity::Security };
            (severity, format!("managed policies changed outside keyrite: {}", parts.join("; ")))
        }
        ("target_key_id", _) => {
            (Severity::Security, format!("alias now points at key {} (applied: {})", text(live), text(applied)))
        }
        _ => (Severity::Change, format!("{attr} changed from {} to {}", text(applied), text(live))),
    }
}

/// The strings of list `live` not in `applied`, and those of `applied` no longer in `live`.
fn list_delta(applied: Option<&Json>, live: Option<&Json>) -> (Vec<String>, Vec<String>) {
    let items = |v: Option<&Json>| -> Vec<String> {
        v.and_then(Json::as_array).into_iter().flatten().filter_map(Json::as_str).map(str::to_owned).collect()
    };
    let (a, l) = (items(applied), items(live));
    (l.iter().filter(|x| !a.contains(x)).cloned().collect(), a.iter().filter(|x| !l.contains(x)).cloned().collect())
}

/// `+member` for each member granted since, `-member` for each one gone; and whether any
/// was granted (access widened: security drift).
fn member_changes(applied: Option<&Json>, live: Option<&Json>) -> (Vec<String>, bool) {
    let (a, l) = (list_text(applied), list_text(live));
    let mut parts: Vec<String> = l.iter().filter(|m| !a.contains(m)).map(|m| format!("+{m}")).collect();
    let added = !parts.is_empty();
    parts.extend(a.iter().filter(|m| !l.contains(m)).map(|m| format!("-{m}")));
    (parts, added)
}

fn list_text(v: Option<&Json>) -> Vec<String> {
    v.and_then(Json::as_array)
        .into_iter()
        .flatten()
        .map(|m| m.as_str().map(str::to_owned).unwrap_or_else(|| m.to_string()))
        .collect()
}

fn tag_changes(applied: Option<&Json>, live: Option<&Json>) -> String {
    let map = |v: Option<&Json>| -> BTreeMap<String, String> {
        v.and_then(Json::as_object)
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned())).collect())
            .unwrap_or_default()
    };
    let (a, l) = (map(applied), map(live));
    let mut parts = Vec::new();
    for (k, v) in &l {
        match a.get(k) {
            None => parts.push(format!("+{k}={v}")),
            Some(old) if old != v => parts.push(format!("{k}: {old} → {v}")),
            _ => {}
        }
    }
    parts.extend(a.keys().filter(|k| !l.contains_key(*k)).map(|k| format!("-{k}")));
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn other_bindings_say_which_role_gained_or_lost_whom_and_only_gains_are_security() {
        let applied = json!({"roles/cloudkms.publicKeyViewer": ["group:auditors@example.com"]});
        let widened = json!({
            "roles/cloudkms.publicKeyViewer": ["group:auditors@example.com"],
            "roles/cloudkms.admin": ["user:mallory@example.com"],
        });
        let (severity, message) = describe("other_bindings", Compare::Exact, Some(&applied), Some(&widened));
        assert_eq!(severity, Severity::Security);
        assert_eq!(
            message,
            "bindings of other roles changed outside keyrite: roles/cloudkms.admin +user:mallory@example.com"
        );

        let narrowed = json!({});
        let (severity, message) = describe("other_bindings", Compare::Exact, Some(&applied), Some(&narrowed));
        assert_eq!(severity, Severity::Change);
        assert!(message.ends_with("roles/cloudkms.publicKeyViewer -group:auditors@example.com"), "{message}");
    }
}

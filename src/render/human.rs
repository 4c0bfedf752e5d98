//! Human-readable output: plans with attribute diffs, drift findings, state.

use std::fmt::Write;

use serde_json::Value as Json;

use crate::plan::drift::{DriftItem, Severity};
use crate::plan::{Action, AttrChange, Plan, ResourceChange, Verdict};

/// The plan as text: who it acts as, the changes, a one-line summary, the permission check,
/// and any errors that stop it from being applied.
pub fn plan(plan: &Plan) -> String {
    let mut out = String::new();
    identity(&mut out, plan);
    if let Some(r) = &plan.rotation {
        let _ = writeln!(
            out,
            "Rotation of signer {} ({}): generation {} replaces key {} ({}), which stays enabled for a grace period of {}.\n  \
             After the apply, the recovery signer {} enrols the new address (nonce {}) through its quorum gate.{}\n",
            r.signer,
            r.key,
            r.generation,
            r.replaces_id,
            r.replaces_address,
            keyrite_core::rotation::format_duration(r.grace_seconds),
            r.recovery,
            r.nonce,
            if r.continuing { "\n  This plan continues the rotation an interrupted apply started." } else { "" }
        );
    }
    for due in &plan.rotations_due {
        let _ = writeln!(out, "Rotation due: {due}.\n");
    }
    for a in &plan.allowed {
        let _ = writeln!(out, "Allowed by the manifest: {} on {} ({}): {}", a.rule, a.resource, a.message, a.reason);
    }
    if !plan.allowed.is_empty() {
        out.push('\n');
    }
    if !plan.errors.is_empty() {
        // A plan that cannot be applied promises nothing: no change is shown as one it makes.
        permissions(&mut out, plan);
        errors(&mut out, plan);
        return out;
    }
    if !plan.has_changes() {
        out.push_str("No changes. The cloud matches the manifest.\n");
        return out;
    }
    out.push_str("keyrite will perform the following actions:\n\n");
    for change in plan.changes.iter().filter(|c| c.action != Action::NoOp) {
        resource(&mut out, change);
    }
    let s = plan.summary();
    let adopt = if s.adopt > 0 { format!("{} to adopt, ", s.adopt) } else { String::new() };
    let _ = writeln!(
        out,
        "Plan: {adopt}{} to create, {} to update, {} to replace, {} to delete.",
        s.create, s.update, s.replace, s.delete
    );
    let hazards: Vec<&ResourceChange> = plan.hazards().collect();
    if !hazards.is_empty() {
        out.push_str("\n!! WARNING: this plan contains changes that need an explicit flag to apply:\n");
        for c in hazards {
            let _ = writeln!(out, "!!   {}: {}", c.address, c.hazard.as_deref().unwrap_or_default());
        }
    }
    permissions(&mut out, plan);
    errors(&mut out, plan);
    out
}

fn identity(out: &mut String, plan: &Plan) {
    let who: Vec<String> = [("AWS", &plan.identity.aws), ("Google Cloud", &plan.identity.gcp)]
        .into_iter()
        .filter_map(|(cloud, who)| who.as_ref().map(|w| format!("{cloud} as {w}")))
        .collect();
    if !who.is_empty() {
        let _ = writeln!(out, "Acting on {}.\n", who.join("; "));
    }
}

/// One line when everything needed is granted; otherwise what is missing or unchecked.
fn permissions(out: &mut String, plan: &Plan) {
    let checks = &plan.permissions;
    if checks.is_empty() {
        return;
    }
    let count = |v: Verdict| checks.iter().filter(|c| c.verdict == v).count();
    let (granted, missing, unchecked) = (count(Verdict::Granted), count(Verdict::Missing), count(Verdict::Unchecked));
    let _ = write!(out, "\nPermissions: {} needed, {granted} granted", checks.len());
    if missing > 0 {
        let _ = write!(out, ", {missing} MISSING");
    }
    if unchecked > 0 {
        let _ = write!(out, ", {unchecked} not checkable");
    }
    out.push_str(".\n");
    for c in checks.iter().filter(|c| c.verdict == Verdict::Missing) {
        let _ = writeln!(out, "  ✗ {} on {} (for {})", c.permission, c.resource, c.needed_by.join(", "));
    }
    let mut notes: Vec<&str> =
        checks.iter().filter(|c| c.verdict == Verdict::Unchecked).filter_map(|c| c.note.as_deref()).collect();
    notes.dedup();
    for note in notes {
        let _ = writeln!(out, "  ? not checked: {note}");
    }
}

fn errors(out: &mut String, plan: &Plan) {
    for e in &plan.errors {
        let _ = writeln!(out, "\nError: {}", e.message);
        if let Some(hint) = &e.hint {
            let _ = writeln!(out, "  {hint}");
        }
    }
    if !plan.errors.is_empty() {
        let n = plan.errors.len();
        let _ = writeln!(
            out,
            "\nThe plan has {n} error{}: it cannot be applied, and nothing was changed.",
            if n == 1 { "" } else { "s" }
        );
    }
}

fn resource(out: &mut String, change: &ResourceChange) {
    let label = match change.action {
        Action::Adopt => "adopted (recorded in the state)",
        Action::Create => "created",
        Action::Update => "updated in place",
        Action::Replace if change.hazard.is_some() => "REPLACED: NEW KEY, NEW ADDRESS",
        Action::Replace => "replaced",
        Action::Delete if change.hazard.is_some() => "scheduled for deletion",
        Action::Delete => "deleted",
        Action::NoOp => "left unchanged",
    };
    let _ = writeln!(out, "  {} {} ({}) will be {label}", change.action.symbol(), change.address, change.kind);
    if let Some(reason) = &change.reason {
        let _ = writeln!(out, "      # {reason}");
    }
    let width = change.changes.iter().map(|c| c.name.len()).max().unwrap_or(0);
    for attr in &change.changes {
        attribute(out, attr, change.action, width);
    }
    if let Some(h) = &change.hazard {
        let _ = writeln!(out, "      !! {h}");
    }
    out.push('\n');
}

fn attribute(out: &mut String, c: &AttrChange, action: Action, width: usize) {
    let after = if c.unknown() { "(known after apply)".to_owned() } else { value(c.after.as_ref()) };
    let line = match (action, &c.before) {
        (Action::Create, _) | (_, None) => after,
        _ if !c.detail.is_empty() => "changed:".to_owned(),
        (_, Some(Json::Object(before))) if !c.unknown() && !before.contains_key("Statement") => {
            map_delta(before, c.after.as_ref().and_then(Json::as_object).unwrap_or(&Default::default()))
        }
        _ => format!("{} → {after}", value(c.before.as_ref())),
    };
    let forces = if c.forces_replacement { "  # forces replacement" } else { "" };
    let _ = writeln!(out, "      {:width$} = {line}{forces}", c.name);
    for d in &c.detail {
        let _ = writeln!(out, "          {d}");
    }
}

/// Key-level changes between two string maps (tags): `+k = "v", -k, k: "a" → "b"`.
fn map_delta(before: &serde_json::Map<String, Json>, after: &serde_json::Map<String, Json>) -> String {
    let text = |v: &Json| v.as_str().map(|s| format!("{s:?}")).unwrap_or_else(|| v.to_string());
    let mut parts: Vec<String> = Vec::new();
    for (k, v) in after {
        match before.get(k) {
            None => parts.push(format!("+{k} = {}", text(v))),
            Some(old) if old != v => parts.push(format!("{k}: {} → {}", text(old), text(v))),
            _ => {}
        }
    }
    parts.extend(before.iter().filter(|(k, _)| !after.contains_key(*k)).map(|(k, v)| format!("-{k} = {}", text(v))));
    parts.join(", ")
}

/// A short rendering of an attribute value.
pub fn value(v: Option<&Json>) -> String {
    match v {
        None | Some(Json::Null) => "(none)".into(),
        Some(Json::Object(m)) if m.contains_key("Statement") => {
            let n = m.get("Statement").and_then(Json::as_array).map_or(1, Vec::len);
            format!("<policy document, {n} statement{}>", if n == 1 { "" } else { "s" })
        }
        Some(Json::Object(m)) => {
            let items: Vec<String> = m
                .iter()
                .map(|(k, v)| {
                    format!("{k} = {}", v.as_str().map(|s| format!("{s:?}")).unwrap_or_else(|| v.to_string()))
                })
                .collect();
            format!("{{{}}}", items.join(", "))
        }
        Some(v) => v.to_string(),
    }
}

/// Drift findings, then a line about pending manifest changes.
pub fn drift(items: &[DriftItem], pending: &Plan) -> String {
    let mut out = String::new();
    if items.is_empty() {
        out.push_str("No drift: the cloud matches what keyrite last applied.\n");
    } else {
        let security = items.iter().filter(|i| i.severity == Severity::Security).count();
        let _ = writeln!(
            out,
            "Drift: {} finding{} ({security} security) since keyrite last applied:\n",
            items.len(),
            if items.len() == 1 { "" } else { "s" }
        );
        for item in items {
            let mark = if item.severity == Severity::Security { "!" } else { "~" };
            let attr = item.attribute.as_deref().map(|a| format!(".{a}")).unwrap_or_default();
            let _ = writeln!(out, "  {mark} {}{attr} ({}): {}", item.address, item.kind, item.message);
            for d in &item.detail {
                let _ = writeln!(out, "        {d}");
            }
        }
        out.push('\n');
    }
    if pending.has_changes() {
        let s = pending.summary();
        let _ = writeln!(
            out,
            "The manifest differs from the cloud: {} to create, {} to update, {} to replace, {} to delete (`keyrite plan` shows them; `keyrite apply` heals).",
            s.create, s.update, s.replace, s.delete
        );
    } else {
        out.push_str("The cloud matches the manifest.\n");
    }
    out
}

/// Lint findings, one per line as `file:line:column: level[RULE] resource: message`, then a
/// summary line.
pub fn lint(findings: &[crate::lint::Finding]) -> String {
    let mut out = String::new();
    for f in findings {
        let allowed = f.allowed.as_deref().map(|r| format!(" (allowed by the manifest: {r})")).unwrap_or_default();
        let at = match (&f.file, &f.name) {
            (Some(file), _) => format!("{file}:{}:{}: ", f.line.unwrap_or(1), f.column.unwrap_or(1)),
            (None, Some(name)) if *name != f.resource => format!("{name}: "),
            _ => String::new(),
        };
        let _ = writeln!(out, "{at}{}[{}] {}: {}{allowed}", f.level.as_str(), f.rule, f.resource, f.message);
    }
    let count = |l: crate::lint::Level| findings.iter().filter(|f| f.level == l).count();
    let (e, w, n) =
        (count(crate::lint::Level::Error), count(crate::lint::Level::Warning), count(crate::lint::Level::Note));
    if findings.is_empty() {
        out.push_str("Lint: no findings.\n");
    } else {
        let _ = writeln!(
            out,
            "Lint: {} finding{} ({e} error, {w} warning, {n} note); rules are explained in docs/lint.md.",
            findings.len(),
            if findings.len() == 1 { "" } else { "s" }
        );
    }
    out
}

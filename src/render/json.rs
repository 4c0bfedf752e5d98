//! Machine-readable output. Every document has `format_version` (currently 1) and a `kind`.

use serde_json::{Value as Json, json};

use crate::plan::Plan;
use crate::plan::drift::DriftItem;
use crate::state::State;

/// Output schema version of every JSON document keyrite prints.
pub const FORMAT_VERSION: u32 = 1;

/// `keyrite plan --format json`.
pub fn plan(plan: &Plan) -> Json {
    json!({
        "format_version": FORMAT_VERSION,
        "kind": "plan",
        "mode": plan.mode,
        "lineage": plan.lineage,
        "base_serial": plan.base_serial,
        "has_changes": plan.has_changes(),
        "identity": plan.identity,
        "errors": plan.errors,
        "rotations_due": plan.rotations_due,
        "permissions": plan.permissions,
        "summary": plan.summary(),
        "changes": plan.changes.iter().map(|c| json!({
            "address": c.address,
            "type": c.kind,
            "action": c.action,
            "reason": c.reason,
            "hazard": c.hazard,
            "attributes": c.changes,
        })).collect::<Vec<_>>(),
    })
}

/// `keyrite drift --format json`.
pub fn drift(items: &[DriftItem], pending: &Plan) -> Json {
    json!({
        "format_version": FORMAT_VERSION,
        "kind": "drift",
        "in_sync": items.is_empty() && !pending.has_changes(),
        "drift": items,
        "pending_changes": plan(pending),
    })
}

/// `keyrite show --format json`: identifiers and outputs of every resource.
pub fn show(state: &State) -> Json {
    json!({
        "format_version": FORMAT_VERSION,
        "kind": "state",
        "lineage": state.lineage,
        "serial": state.serial,
        "resources": state.resources.iter().map(|(address, r)| {
            let mut row = json!({
                "address": address,
                "type": r.kind,
                "id": r.id,
                "outputs": r.outputs,
                "updated_at": r.updated_at,
            });
            if matches!(r.kind.as_str(), "aws_kms_key" | "gcp_kms_crypto_key") {
                row["slot"] = json!(crate::manifest::Slot::of(&r.attrs).as_str());
            }
            row
        }).collect::<Vec<_>>(),
    })
}

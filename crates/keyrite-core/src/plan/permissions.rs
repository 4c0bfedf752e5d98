//! The permissions a plan needs, worked out from the plan alone.
//!
//! Every kind names the permissions each of its operations needs ([`Kind::permissions`]).
//! A plan's changes say which operations apply will run, so the list is a pure function of
//! the plan; checking it against the cloud (IAM policy simulation, Cloud KMS
//! `testIamPermissions`) is I/O and lives with the command. The resource each permission is
//! needed on is the one the plan knows: the recorded ARN or resource name, the parent a new
//! resource is created under, or `*` before anything exists.

use std::collections::BTreeMap;

use serde_json::Value as Json;

use super::{Action, Outputs, Plan, ResourceChange, resolve};
use crate::schema::{Op, Schemas};

/// Which cloud a permission belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Cloud {
    Aws,
    Gcp,
}

/// One permission on one resource, and the plan's resources that need it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Need {
    pub cloud: Cloud,
    pub permission: &'static str,
    /// AWS: an ARN or `*`. Google: the resource name to test on (a key, or the ring a new
    /// key goes into); `None` when nothing it could be tested on exists yet.
    pub resource: Option<String>,
    pub needed_by: Vec<String>,
}

/// The operations a change makes apply run.
fn operations(action: Action) -> &'static [Op] {
    match action {
        Action::NoOp => &[],
        Action::Adopt | Action::Update => &[Op::Update],
        Action::Create => &[Op::Create],
        Action::Replace => &[Op::Create, Op::Delete],
        Action::Delete => &[Op::Delete],
    }
}

/// Every permission the plan's changes need, grouped by permission and resource, in a stable
/// order. An adoption with no attribute changes needs nothing.
pub fn needed(plan: &Plan, schemas: &Schemas) -> Vec<Need> {
    let mut known = Outputs::new(&plan.builtins);
    for c in &plan.changes {
        if let Some(p) = &c.prior {
            known.insert(&c.address, p.outputs.clone());
        }
    }
    let mut grouped: BTreeMap<(Cloud, &'static str, Option<String>), Vec<String>> = BTreeMap::new();
    for change in &plan.changes {
        let Some(kind) = schemas.get(&change.kind) else { continue };
        if change.action == Action::Adopt && change.changes.is_empty() {
            continue;
        }
        let cloud = if change.kind.starts_with("gcp_") { Cloud::Gcp } else { Cloud::Aws };
        let resource = match cloud {
            Cloud::Aws => Some(aws_resource(change)),
            Cloud::Gcp => gcp_resource(change, &known),
        };
        for op in operations(change.action) {
            for permission in kind.permissions(*op) {
                grouped.entry((cloud, *permission, resource.clone())).or_default().push(change.address.clone());
            }
        }
    }
    grouped
        .into_iter()
        .map(|((cloud, permission, resource), mut needed_by)| {
            needed_by.dedup();
            Need { cloud, permission, resource, needed_by }
        })
        .collect()
}

/// The recorded ARN, or `*` for a resource that does not exist yet.
fn aws_resource(change: &ResourceChange) -> String {
    change
        .prior
        .as_ref()
        .and_then(|p| p.outputs.get("arn"))
        .and_then(Json::as_str)
        .filter(|a| a.starts_with("arn:"))
        .unwrap_or("*")
        .to_owned()
}

/// Where a Cloud KMS permission can be tested: the resource itself once it exists, else the
/// key or ring it is created under, when that is known.
fn gcp_resource(change: &ResourceChange, known: &Outputs) -> Option<String> {
    if let Some(p) = change.prior.as_ref().filter(|_| change.live.is_some()) {
        return Some(p.id.clone());
    }
    let (desired, unknown) = resolve(change.desired.as_ref()?, known);
    let parent = match change.kind.as_str() {
        "gcp_kms_crypto_key" => "key_ring",
        "gcp_kms_crypto_key_iam_binding" => "crypto_key",
        _ => return None,
    };
    let name = desired.get(parent)?.as_str()?;
    (!unknown.contains(parent)).then(|| name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_follow_the_action() {
        assert!(operations(Action::NoOp).is_empty());
        assert_eq!(operations(Action::Replace), &[Op::Create, Op::Delete]);
        assert_eq!(operations(Action::Adopt), &[Op::Update]);
    }
}

//! Signer slots across resources: a recovery key must not be reachable from anything that
//! runs as an endpoint. Within one key's block the slot rules are the key kind's business
//! (its generated policy, its deletion window); this checks what only the whole manifest
//! shows:
//!
//! - a Lambda function that names a recovery key in its configuration, unless it is the key's
//!   quorum gate (`gate:`), and a gate in front of an operational key;
//! - a recovery key whose policy lets a Lambda's execution role sign;
//! - an inline policy of a Lambda's execution role that grants `kms:Sign` on a recovery key;
//! - a recovery Cloud KMS key whose signerVerifier members include a service account that an
//!   operational signer's endpoint runs as (a member of an endpoint key's signing binding).
//!
//! Each error points at the reference that makes the link.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value as Json;

use super::yaml::Pos;
use super::{ResourceSpec, SignerSpec, Slot, Validation, refs_from_json};
use crate::policy::Policy;

/// The resource a `${name.attr}` string refers to, when it is one reference.
fn referenced(text: &str) -> Option<&str> {
    let inner = text.strip_prefix("${")?.strip_suffix('}')?;
    Some(inner.split_once('.').map_or(inner, |(r, _)| r))
}

/// Every resource a string names with `${…}`.
fn mentions(text: &str) -> BTreeSet<&str> {
    text.match_indices("${")
        .filter_map(|(i, _)| {
            let rest = &text[i + 2..];
            let end = rest.find('}')?;
            Some(rest[..end].split_once('.').map_or(&rest[..end], |(r, _)| r))
        })
        .collect()
}

/// `(principal, resource)` strings of the statements that allow `kms:Sign`.
fn signing_grants(doc: Option<&Json>) -> Vec<(Vec<String>, Vec<String>)> {
    let Some(policy) = doc.and_then(|d| Policy::parse(d).ok()) else { return Vec::new() };
    policy
        .statements()
        .iter()
        .filter(|s| s.grants("kms:Sign"))
        .map(|s| {
            let principals = s
                .principals()
                .filter(|p| !p.negated)
                .map(|p| p.principals.values().flatten().cloned().collect())
                .unwrap_or_default();
            let resources = s.resources().map(|r| r.values.iter().cloned().collect()).unwrap_or_default();
            (principals, resources)
        })
        .collect()
}

impl Validation {
    pub(super) fn check_slots(&mut self, resources: &[(ResourceSpec, Pos)], signers: &[SignerSpec]) {
        let recovery: BTreeSet<&str> = resources
            .iter()
            .filter(|(r, _)| Slot::of(&r.desired) == Slot::Recovery)
            .map(|(r, _)| r.name.as_str())
            .collect();
        let gated = resources.iter().any(|(r, _)| crate::lint::gate_role(&r.kind, &r.desired).is_some());
        if recovery.is_empty() && !gated {
            return;
        }
        // Where a resource refers to another: the first reference's position.
        let reference_pos = |spec: &ResourceSpec, target: &str, fallback: Pos| {
            refs_from_json(&spec.desired).into_iter().find(|(r, _)| r.resource == target).map_or(fallback, |(_, p)| p)
        };

        // Roles that endpoints run as: every Lambda function's execution role but a quorum
        // gate's, which is the one principal a recovery key is meant to let sign.
        let mut endpoint_roles: BTreeMap<&str, &str> = BTreeMap::new();
        for (f, pos) in resources.iter().filter(|(r, _)| r.kind == "aws_lambda_function") {
            let gate = crate::lint::gate_role(&f.kind, &f.desired).is_some();
            if let Some(role) = f.desired.get("role").and_then(Json::as_str).and_then(referenced)
                && !gate
            {
                endpoint_roles.insert(role, &f.name);
            }
            if gate {
                let key = f.desired.get("environment").and_then(|e| e.get("KMS_KEY_ID")).and_then(Json::as_str);
                if let Some(key) = key.and_then(referenced).filter(|k| !recovery.contains(k)) {
                    let at = reference_pos(f, key, *pos);
                    self.error(
                        at,
                        "slot",
                        format!(
                            "resources.{}: a quorum gate guards a recovery key, and {key} is operational; give the \
                             key `slot: recovery`, or drop the `gate`",
                            f.name
                        ),
                    );
                }
                continue;
            }
            for (r, at) in refs_from_json(&f.desired) {
                if recovery.contains(r.resource.as_str()) {
                    self.error(
                        at,
                        "slot",
                        format!(
                            "resources.{}: the function names {}, a recovery key; recovery keys have no endpoints \
                             (declared at line {})",
                            f.name, r.resource, pos.line
                        ),
                    );
                }
            }
        }

        for (spec, pos) in resources {
            match spec.kind.as_str() {
                "aws_kms_key" if recovery.contains(spec.name.as_str()) => {
                    for (principals, _) in signing_grants(spec.desired.get("policy")) {
                        for role in principals.iter().flat_map(|p| mentions(p)) {
                            if let Some(function) = endpoint_roles.get(role) {
                                self.error(
                                    reference_pos(spec, role, *pos),
                                    "slot",
                                    format!(
                                        "resources.{}: the recovery key lets {role} sign, and {role} is the role \
                                         the endpoint {function} runs as; name the recovery signers' own principals",
                                        spec.name
                                    ),
                                );
                            }
                        }
                    }
                }
                "aws_iam_role_policy" => {
                    let role = spec.name.split('/').next().unwrap_or_default();
                    let Some(function) = endpoint_roles.get(role) else { continue };
                    for (_, keys) in signing_grants(spec.desired.get("document")) {
                        for key in keys.iter().flat_map(|k| mentions(k)).filter(|k| recovery.contains(k)) {
                            self.error(
                                reference_pos(spec, key, *pos),
                                "slot",
                                format!(
                                    "resources.{}: grants kms:Sign on {key}, a recovery key, to {role}, the role the \
                                     endpoint {function} runs as",
                                    spec.name
                                ),
                            );
                        }
                    }
                }
                _ => {}
            }
        }

        // Cloud KMS: the service accounts that endpoints run as are the members of the signing
        // bindings of keys that operational signers reach through an endpoint.
        let endpoint_keys: BTreeSet<&str> =
            signers.iter().filter(|s| !s.endpoints.is_empty()).map(|s| s.key.as_str()).collect();
        let bindings: Vec<(&ResourceSpec, Pos, &str)> = resources
            .iter()
            .filter(|(r, _)| r.kind == "gcp_kms_crypto_key_iam_binding")
            .filter_map(|(r, p)| {
                let key = r.desired.get("crypto_key").and_then(Json::as_str).and_then(referenced)?;
                Some((r, *p, key))
            })
            .collect();
        let members = |b: &ResourceSpec| -> Vec<String> {
            b.desired
                .get("members")
                .and_then(Json::as_array)
                .into_iter()
                .flatten()
                .filter_map(Json::as_str)
                .filter(|m| m.starts_with("serviceAccount:"))
                .map(str::to_owned)
                .collect()
        };
        let endpoint_accounts: BTreeMap<String, &str> = bindings
            .iter()
            .filter(|(_, _, key)| endpoint_keys.contains(key))
            .flat_map(|(b, _, key)| members(b).into_iter().map(move |m| (m, *key)))
            .collect();
        for (b, pos, key) in bindings.iter().filter(|(_, _, key)| recovery.contains(key)) {
            for m in members(b) {
                if let Some(endpoint_key) = endpoint_accounts.get(&m) {
                    self.error(
                        *pos,
                        "slot",
                        format!(
                            "resources.{}: {m} may sign with {key}, a recovery key, and it is the service account of \
                             the signer endpoint for {endpoint_key}; name the recovery signers' own principals",
                            b.name
                        ),
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_and_mentions() {
        assert_eq!(referenced("${role.arn}"), Some("role"));
        assert_eq!(referenced("arn:${aws.partition}:x"), None);
        assert_eq!(mentions("arn:${aws.partition}:iam::${aws.account_id}:role/${r.name}"), ["aws", "r"].into());
    }
}

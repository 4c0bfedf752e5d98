//! `gcp_kms_crypto_key_iam_binding`: who may sign with a Cloud KMS key.
//!
//! One role (`roles/cloudkms.signerVerifier` by default: `asymmetricSign` and
//! `getPublicKey`, nothing else) granted to named members on one key, and optionally
//! `other_bindings` (role → members, e.g. `roles/cloudkms.publicKeyViewer` for auditors).
//! The resource speaks for the key's whole IAM policy: any binding on the key that it does
//! not declare (another role, other members, or a conditional binding) shows in
//! `other_bindings`, which an auditor reads as "someone granted access outside keyrite",
//! and apply removes it. Members are compared as sets.
//!
//! Writes are read-modify-write with the policy's etag, so a concurrent change is never
//! overwritten: `setIamPolicy` answers ABORTED and keyrite reads and tries again (at most
//! five times). Public members (`allUsers`, `allAuthenticatedUsers`) are refused unless
//! `allow_public: true`, which also warns.

use std::collections::BTreeMap;

use async_trait::async_trait;
use google_cloud_iam_v1::model::{Binding, GetPolicyOptions, Policy};
use serde_json::{Value as Json, json};

use super::Gcp;
use crate::manifest::{Attrs, Block, Validation};
use crate::provider::Schema;
use crate::provider::{AttrSpec, Created, DeleteOptions, Deleted, Kind, Live, Op, Result, str_attr, unless_gone};

pub struct CryptoKeyIamBinding;

/// The role that signs and reads the public key, and nothing else.
pub const SIGNER_ROLE: &str = "roles/cloudkms.signerVerifier";
const PUBLIC_MEMBERS: &[&str] = &["allUsers", "allAuthenticatedUsers"];

const ATTRS: &[AttrSpec] = &[
    AttrSpec::replace("crypto_key"),
    AttrSpec::update("iam_role"),
    AttrSpec::update("members"),
    AttrSpec::update("other_bindings"),
];

impl Schema for CryptoKeyIamBinding {
    fn name(&self) -> &'static str {
        "gcp_kms_crypto_key_iam_binding"
    }

    fn attrs(&self) -> &'static [AttrSpec] {
        ATTRS
    }

    fn outputs(&self) -> &'static [&'static str] {
        &["crypto_key", "etag"]
    }

    /// A resource name: `projects/…/cryptoKeys/…`.
    fn check_import(&self, given: &str) -> std::result::Result<(), String> {
        let p: Vec<&str> = given.split('/').collect();
        if p.len() == 8 && p[0] == "projects" && p[2] == "locations" && p[8 - 2] == "cryptoKeys" {
            Ok(())
        } else {
            Err(format!("{given:?} is not a crypto key (the binding is imported by its key's resource name)"))
        }
    }

    fn declare(&self, live: &Live, refer: &dyn Fn(&str) -> Option<String>) -> Option<Json> {
        let a = &live.attrs;
        let mut out = json!({"crypto_key": crate::provider::declared_ref(a, "crypto_key", refer)});
        if str_attr(a, "iam_role") != SIGNER_ROLE {
            out["role"] = json!(str_attr(a, "iam_role"));
        }
        out["members"] = a.get("members").cloned().unwrap_or(json!([]));
        if let Some(o) = a.get("other_bindings").and_then(Json::as_object).filter(|o| !o.is_empty()) {
            out["other_bindings"] = Json::Object(o.clone());
        }
        let public = a
            .get("members")
            .into_iter()
            .chain(a.get("other_bindings").and_then(Json::as_object).into_iter().flat_map(|o| o.values()))
            .filter_map(Json::as_array)
            .flatten()
            .any(|m| m.as_str().is_some_and(|m| PUBLIC_MEMBERS.contains(&m)));
        if public {
            out["allow_public"] = json!(true);
        }
        Some(out)
    }

    fn permissions(&self, op: Op) -> &'static [&'static str] {
        match op {
            Op::Read => &["cloudkms.cryptoKeys.getIamPolicy"],
            Op::Create => &["cloudkms.cryptoKeys.getIamPolicy", "cloudkms.cryptoKeys.setIamPolicy"],
            Op::Update => &["cloudkms.cryptoKeys.getIamPolicy", "cloudkms.cryptoKeys.setIamPolicy"],
            Op::Delete => &["cloudkms.cryptoKeys.getIamPolicy", "cloudkms.cryptoKeys.setIamPolicy"],
        }
    }

    fn desired(&self, _name: &str, b: &mut Block<'_>, cx: &mut Validation) -> Attrs {
        let mut a = Attrs::new();
        if let Some(key) = b.required_string(cx, "crypto_key") {
            a.insert("crypto_key".into(), json!(key));
        }
        let role = b.string(cx, "role").unwrap_or_else(|| SIGNER_ROLE.into());
        check_role(b, cx, "role", &role);
        a.insert("iam_role".into(), json!(role));
        let allow_public = b.bool(cx, "allow_public").unwrap_or(false);
        if !b.has("members") {
            cx.error(b.pos_of("members"), "missing", format!("{}: list who may use the key", b.field_path("members")));
        }
        let members = member_set(b, cx, "members", allow_public);
        a.insert("members".into(), json!(members));
        let mut others = BTreeMap::new();
        if let Some(mut declared) = b.block(cx, "other_bindings") {
            for other in declared.keys() {
                check_role(&mut declared, cx, &other, &other);
                if other == role {
                    cx.error(
                        declared.pos_of(&other),
                        "value",
                        format!(
                            "{}: {role} is the binding's own role; list these under `members`",
                            declared.field_path(&other)
                        ),
                    );
                }
                let members = member_set(&mut declared, cx, &other, allow_public);
                others.insert(other, members);
            }
            declared.finish(cx);
        }
        a.insert("other_bindings".into(), json!(others));
        a
    }
}

#[async_trait]
impl Kind<Gcp> for CryptoKeyIamBinding {
    /// Permission `cloudkms.cryptoKeys.getIamPolicy` (policy version 3, so conditional
    /// bindings are seen).
    async fn read(&self, cloud: &Gcp, id: &str, reference: &Attrs) -> Result<Option<Live>> {
        let Some(policy) = unless_gone(get_policy(cloud, id).await)? else { return Ok(None) };
        let role = str_attr(reference, "iam_role");
        let mut members = Vec::new();
        let mut others: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for b in &policy.bindings {
            match &b.condition {
                None if b.role == role => members.extend(b.members.iter().cloned()),
                None => others.entry(b.role.clone()).or_default().extend(b.members.iter().cloned()),
                Some(c) => others
                    .entry(format!("{} if {}", b.role, c.expression))
                    .or_default()
                    .extend(b.members.iter().cloned()),
            }
        }
        members.sort();
        members.dedup();
        others.values_mut().for_each(|m| {
            m.sort();
            m.dedup();
        });
        let mut live = Live::default();
        live.attrs.insert("crypto_key".into(), json!(id));
        // The declared role is always what was read for; a missing binding shows as no members.
        live.attrs.insert("iam_role".into(), json!(role));
        live.attrs.insert("members".into(), json!(members));
        live.attrs.insert("other_bindings".into(), json!(others));
        live.outputs = outputs(id, &policy);
        Ok(Some(live))
    }

    /// Grants the declared roles to their members; bindings of undeclared roles are left for
    /// the next plan to show (a create never removes access it has not shown first).
    async fn create(&self, cloud: &Gcp, desired: &Attrs) -> Result<Created> {
        let key = str_attr(desired, "crypto_key").to_owned();
        let grants = grants(desired);
        let policy = rewrite(cloud, &key, |bindings| {
            bindings.retain(|b| !(b.condition.is_none() && grants.iter().any(|g| g.role == b.role)));
            bindings.extend(grants.iter().cloned());
        })
        .await?;
        Ok(Created { outputs: outputs(&key, &policy), id: key })
    }

    /// Makes the policy exactly the declared bindings: members set, undeclared bindings removed.
    async fn update(&self, cloud: &Gcp, id: &str, desired: &Attrs, _: &Attrs, _: &[String]) -> Result<Attrs> {
        let grants = grants(desired);
        let policy = rewrite(cloud, id, |bindings| bindings.clone_from(&grants)).await?;
        Ok(outputs(id, &policy))
    }

    /// Removes the declared roles' bindings; the key and undeclared bindings are untouched.
    async fn delete(&self, cloud: &Gcp, id: &str, prior: &Attrs, _: DeleteOptions) -> Result<Deleted> {
        let roles: Vec<String> = grants(prior).into_iter().map(|g| g.role).collect();
        unless_gone(
            rewrite(cloud, id, |bindings| bindings.retain(|b| !(b.condition.is_none() && roles.contains(&b.role))))
                .await,
        )?;
        Ok(Deleted::Removed)
    }

    /// A binding is identified by its key: the key's policy holding the declared members.
    async fn adopt(&self, cloud: &Gcp, desired: &Attrs, _: Option<&str>) -> Result<Option<String>> {
        let key = str_attr(desired, "crypto_key");
        let live = self.read(cloud, key, desired).await?;
        Ok(live.filter(|l| l.attrs.get("members") == desired.get("members")).map(|_| key.to_owned()))
    }
}

/// A role name: `roles/…`, or a custom role of a project or an organization.
fn check_role(b: &mut Block<'_>, cx: &mut Validation, key: &str, role: &str) {
    if !["roles/", "projects/", "organizations/"].iter().any(|p| role.starts_with(p)) {
        cx.error(b.pos_of(key), "value", format!("{}: {role:?} is not a role (roles/…)", b.field_path(key)));
    }
}

/// A non-empty set of members, sorted; public members only with `allow_public` (and a warning).
fn member_set(b: &mut Block<'_>, cx: &mut Validation, key: &str, allow_public: bool) -> Vec<String> {
    let mut members = b.string_list(cx, key).unwrap_or_default();
    let (pos, path) = (b.pos_of(key), b.field_path(key));
    if b.has(key) && members.is_empty() {
        cx.error(pos, "value", format!("{path}: at least one member"));
    }
    for m in &members {
        if PUBLIC_MEMBERS.contains(&m.as_str()) {
            if allow_public {
                let who = if m == "allUsers" { "ANYONE" } else { "ANY Google account" };
                cx.warn(pos, "public", format!("{path}: {m} lets {who} use this key"));
            } else {
                cx.error(
                    pos,
                    "public",
                    format!(
                        "{path}: {m} would let anyone use this key; set `allow_public: true` if that is really meant"
                    ),
                );
            }
        } else if let Err(msg) = check_member(m) {
            cx.error(pos, "value", format!("{path}: {msg}"));
        }
    }
    members.sort();
    members.dedup();
    members
}

/// The bindings a resource declares: its own role, then `other_bindings`.
fn grants(attrs: &Attrs) -> Vec<Binding> {
    let own = Binding::new().set_role(str_attr(attrs, "iam_role")).set_members(list(attrs.get("members")));
    let others = attrs.get("other_bindings").and_then(Json::as_object).into_iter().flatten();
    std::iter::once(own)
        .chain(others.map(|(role, members)| Binding::new().set_role(role).set_members(list(Some(members)))))
        .collect()
}

fn list(v: Option<&Json>) -> Vec<String> {
    v.and_then(Json::as_array).into_iter().flatten().filter_map(Json::as_str).map(str::to_owned).collect()
}

fn outputs(key: &str, policy: &Policy) -> Attrs {
    use base64::Engine;
    let mut out = Attrs::new();
    out.insert("crypto_key".into(), json!(key));
    out.insert("etag".into(), json!(base64::engine::general_purpose::STANDARD.encode(&policy.etag)));
    out
}

async fn get_policy(gcp: &Gcp, key: &str) -> Result<Policy> {
    let kms = gcp.kms().await?;
    gcp.call(
        "GetIamPolicy",
        kms.get_iam_policy()
            .set_resource(key)
            .set_options(GetPolicyOptions::new().set_requested_policy_version(3))
            .send(),
    )
    .await
}

/// Read-modify-write of a key's policy under its etag; retried when a concurrent writer wins.
/// Permissions `cloudkms.cryptoKeys.getIamPolicy` and `cloudkms.cryptoKeys.setIamPolicy`.
async fn rewrite(gcp: &Gcp, key: &str, edit: impl Fn(&mut Vec<Binding>)) -> Result<Policy> {
    let kms = gcp.kms().await?;
    let mut attempt = 0;
    loop {
        let mut policy = get_policy(gcp, key).await?;
        edit(&mut policy.bindings);
        policy.bindings.retain(|b| !b.members.is_empty());
        // Version 3 is required when any binding has a condition; it is harmless otherwise.
        policy.version = 3;
        match gcp.call("SetIamPolicy", kms.set_iam_policy().set_resource(key).set_policy(policy).send()).await {
            Err(e) if e.code() == Some("ABORTED") && attempt < 4 => {
                attempt += 1;
                tokio::time::sleep(std::time::Duration::from_millis(200 << attempt)).await;
            }
            other => return other,
        }
    }
}

/// Checks an IAM member: `user:`, `serviceAccount:`, `group:`, `domain:`, `principal://…`
/// or `principalSet://…`.
pub fn check_member(m: &str) -> std::result::Result<(), String> {
    if m.contains("${") {
        return Ok(());
    }
    let ok = ["user:", "serviceAccount:", "group:", "domain:", "principal://", "principalSet://"]
        .iter()
        .any(|p| m.strip_prefix(p).is_some_and(|rest| !rest.is_empty()));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{m:?} is not an IAM member (serviceAccount:…, user:…, group:…, domain:…, principal://…, principalSet://…)"
        ))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn members_need_a_kind() {
        use super::check_member as c;
        assert!(c("serviceAccount:signer@p.iam.gserviceaccount.com").is_ok());
        assert!(c("user:alice@example.com").is_ok());
        assert!(c("alice@example.com").is_err());
        assert!(c("serviceAccount:").is_err());
    }
}

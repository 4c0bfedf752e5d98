//! `aws_iam_role`: the role a signer runs as, with its trust policy and inline policies.
//!
//! Inline policies are declared under the role (`policies:`) but planned as resources of
//! their own (`aws_iam_role_policy`, addressed `<role>/<policy>`). A signer role's policy
//! names the key's ARN while the key's policy names the role's ARN; splitting them breaks
//! that cycle (role → key → role policy), as Terraform does. The role itself watches for
//! inline policies nobody declared: one appearing out of band is the classic way a signer
//! role gets broadened, so it is drift, and apply removes it. Managed policies attached to
//! the role (`managed_policies:`, by ARN, such as the console's
//! `AWSLambdaBasicExecutionRole`) are declared on the role, and one attached out of band is
//! drift too.

use std::collections::BTreeSet;

use async_trait::async_trait;
use aws_sdk_iam::types::Tag;
use serde_json::{Value as Json, json};

use super::{Aws, api_error, check_principal, document_field, unless_gone};
use crate::manifest::{Attrs, Block, Reference, Validation};
use crate::provider::Schema;
use crate::provider::{
    AttrSpec, Created, DeleteOptions, Deleted, Kind, Live, Occupant, Op, ProviderError, Result, map_attr, map_json,
    str_attr, tag_delta,
};

pub struct IamRole;

const ATTRS: &[AttrSpec] = &[
    AttrSpec::replace("name"),
    AttrSpec::replace("path"),
    AttrSpec::update("description"),
    AttrSpec::policy("trust_policy"),
    AttrSpec::update("tags"),
    AttrSpec::update("undeclared_inline_policies"),
    AttrSpec::update("managed_policies"),
    AttrSpec::state_only("inline_policies"),
];

impl Schema for IamRole {
    fn name(&self) -> &'static str {
        "aws_iam_role"
    }

    fn attrs(&self) -> &'static [AttrSpec] {
        ATTRS
    }

    fn outputs(&self) -> &'static [&'static str] {
        &["arn", "name", "role_id"]
    }

    /// A role name or a role ARN.
    fn check_import(&self, given: &str) -> std::result::Result<(), String> {
        super::arn_of(given, "iam", &["role/"], "an IAM role")
    }

    /// The role's name: an ARN's last path segment.
    fn import_lookup(&self, given: &str) -> String {
        if given.starts_with("arn:") { given.rsplit('/').next().unwrap_or(given).to_owned() } else { given.to_owned() }
    }

    /// The role; its inline policies are declared under `policies:` by the caller.
    fn declare(&self, live: &Live, _: &dyn Fn(&str) -> Option<String>) -> Option<Json> {
        let a = &live.attrs;
        let mut out = json!({"name": str_attr(a, "name")});
        if str_attr(a, "path") != "/" {
            out["path"] = json!(str_attr(a, "path"));
        }
        if !str_attr(a, "description").is_empty() {
            out["description"] = json!(str_attr(a, "description"));
        }
        out["trust"] = json!({"document": a.get("trust_policy").cloned().unwrap_or(Json::Null)});
        if a.get("managed_policies").and_then(Json::as_array).is_some_and(|p| !p.is_empty()) {
            out["managed_policies"] = a["managed_policies"].clone();
        }
        if let Some(tags) = crate::provider::declared_tags(a, "tags") {
            out["tags"] = tags;
        }
        Some(out)
    }

    fn permissions(&self, op: Op) -> &'static [&'static str] {
        match op {
            Op::Read => &["iam:GetRole", "iam:ListRoleTags", "iam:ListRolePolicies", "iam:ListAttachedRolePolicies"],
            Op::Create => &["iam:CreateRole", "iam:TagRole", "iam:AttachRolePolicy"],
            Op::Update => &[
                "iam:AttachRolePolicy",
                "iam:DetachRolePolicy",
                "iam:UpdateRole",
                "iam:UpdateAssumeRolePolicy",
                "iam:TagRole",
                "iam:UntagRole",
                "iam:DeleteRolePolicy",
            ],
            Op::Delete => &[
                "iam:ListRolePolicies",
                "iam:DeleteRolePolicy",
                "iam:ListAttachedRolePolicies",
                "iam:DetachRolePolicy",
                "iam:DeleteRole",
            ],
        }
    }

    fn desired(&self, name: &str, b: &mut Block<'_>, cx: &mut Validation) -> Attrs {
        let mut a = Attrs::new();
        let pos = b.pos();
        let role_name = b.required_string(cx, "name").unwrap_or_default();
        if !role_name.is_empty() && !valid_role_name(&role_name) {
            cx.error(
                pos,
                "value",
                format!("{}: IAM role names are 1–64 of [A-Za-z0-9+=,.@_-], found {role_name:?}", b.field_path("name")),
            );
        }
        a.insert("name".into(), json!(role_name));
        let path = b.string(cx, "path").unwrap_or_else(|| "/".into());
        if !(path.starts_with('/') && path.ends_with('/')) {
            cx.error(
                pos,
                "value",
                format!("{}: an IAM path starts and ends with '/', found {path:?}", b.field_path("path")),
            );
        }
        a.insert("path".into(), json!(path));
        a.insert("description".into(), json!(b.string(cx, "description").unwrap_or_default()));
        a.insert("trust_policy".into(), trust_policy(b, cx));
        a.insert("tags".into(), map_json(&b.string_map(cx, "tags").unwrap_or_default()));
        let mut managed = b.string_list(cx, "managed_policies").unwrap_or_default();
        for arn in &managed {
            if !(arn.starts_with("arn:") && arn.contains(":iam::") && arn.contains(":policy/")) {
                cx.error(
                    pos,
                    "value",
                    format!(
                        "{}: {arn:?} is not a managed policy ARN (arn:aws:iam::aws:policy/…, or your account's)",
                        b.field_path("managed_policies")
                    ),
                );
            }
        }
        managed.sort();
        managed.dedup();
        a.insert("managed_policies".into(), json!(managed));
        let policies = b.named_blocks(cx, "policies");
        let declared: Vec<&String> = policies.iter().map(|(n, _, _)| n).collect();
        a.insert("inline_policies".into(), json!(declared));
        a.insert("undeclared_inline_policies".into(), json!([]));
        for (policy_name, policy_pos, block) in policies {
            let outer = cx.take_refs();
            let doc = super::iam_role_policy::policy_body(block, cx);
            let mut refs = cx.take_refs();
            cx.restore_refs(outer);
            refs.push((Reference { resource: name.to_owned(), attribute: "name".into() }, policy_pos));
            let mut child = Attrs::new();
            child.insert("role".into(), json!(format!("${{{name}.name}}")));
            child.insert("name".into(), json!(policy_name));
            child.insert("document".into(), doc);
            cx.declare_child(format!("{name}/{policy_name}"), "aws_iam_role_policy", policy_pos, child, refs);
        }
        a
    }

    /// Roles recorded before `managed_policies` was read had none attached by keyrite.
    fn upgrade_recorded(&self, attrs: &mut Attrs) {
        attrs.entry("managed_policies").or_insert_with(|| json!([]));
    }
}

#[async_trait]
impl Kind<Aws> for IamRole {
    /// `iam:GetRole`, `iam:ListRoleTags`, `iam:ListRolePolicies`, `iam:ListAttachedRolePolicies`.
    async fn read(&self, cloud: &Aws, id: &str, reference: &Attrs) -> Result<Option<Live>> {
        let Some(out) =
            unless_gone(cloud.iam.get_role().role_name(id).send().await.map_err(|e| api_error("iam:GetRole", e)))?
        else {
            return Ok(None);
        };
        let role = out.role.ok_or_else(|| unexpected("iam:GetRole", "no Role"))?;
        let trust = crate::policy::decode_policy_text(role.assume_role_policy_document().unwrap_or("{}"))
            .map_err(|e| unexpected("iam:GetRole", &format!("trust policy: {e}")))?;
        let declared: BTreeSet<String> = reference
            .get("inline_policies")
            .and_then(Json::as_array)
            .map(|a| a.iter().filter_map(Json::as_str).map(str::to_owned).collect())
            .unwrap_or_default();
        let undeclared: Vec<String> =
            list_inline_policies(cloud, id).await?.into_iter().filter(|p| !declared.contains(p)).collect();
        let mut live = Live::default();
        live.attrs.insert("name".into(), json!(role.role_name()));
        live.attrs.insert("path".into(), json!(role.path()));
        live.attrs.insert("description".into(), json!(role.description().unwrap_or_default()));
        live.attrs.insert("trust_policy".into(), trust);
        live.attrs.insert("tags".into(), map_json(&list_tags(cloud, id).await?));
        live.attrs.insert("undeclared_inline_policies".into(), json!(undeclared));
        live.attrs.insert("managed_policies".into(), json!(list_attached(cloud, id).await?));
        live.outputs = outputs(&role);
        Ok(Some(live))
    }

    /// `iam:CreateRole` with tags (`iam:TagRole`).
    async fn create(&self, cloud: &Aws, desired: &Attrs) -> Result<Created> {
        let out = cloud
            .iam
            .create_role()
            .role_name(str_attr(desired, "name"))
            .path(str_attr(desired, "path"))
            .description(str_attr(desired, "description"))
            .assume_role_policy_document(serde_json::to_string(&desired["trust_policy"]).unwrap_or_default())
            .set_tags(Some(tags(&map_attr(desired, "tags"))?))
            .send()
            .await
            .map_err(|e| api_error("iam:CreateRole", e))?;
        let role = out.role.ok_or_else(|| unexpected("iam:CreateRole", "no Role"))?;
        attach(cloud, role.role_name(), desired, &Attrs::new()).await?;
        Ok(Created { id: role.role_name().to_owned(), outputs: outputs(&role) })
    }

    /// `iam:UpdateRole`, `iam:UpdateAssumeRolePolicy`, `iam:TagRole`, `iam:UntagRole`,
    /// `iam:DeleteRolePolicy` (for undeclared inline policies), as the changes need.
    async fn update(&self, cloud: &Aws, id: &str, desired: &Attrs, live: &Attrs, changed: &[String]) -> Result<Attrs> {
        for attr in changed {
            match attr.as_str() {
                "description" => {
                    cloud
                        .iam
                        .update_role()
                        .role_name(id)
                        .description(str_attr(desired, "description"))
                        .send()
                        .await
                        .map_err(|e| api_error("iam:UpdateRole", e))?;
                }
                "trust_policy" => {
                    let doc = serde_json::to_string(&desired["trust_policy"]).unwrap_or_default();
                    cloud
                        .iam
                        .update_assume_role_policy()
                        .role_name(id)
                        .policy_document(doc)
                        .send()
                        .await
                        .map_err(|e| api_error("iam:UpdateAssumeRolePolicy", e))?;
                }
                "tags" => {
                    let (set, unset) = tag_delta(desired, live);
                    if !unset.is_empty() {
                        cloud
                            .iam
                            .untag_role()
                            .role_name(id)
                            .set_tag_keys(Some(unset))
                            .send()
                            .await
                            .map_err(|e| api_error("iam:UntagRole", e))?;
                    }
                    if !set.is_empty() {
                        cloud
                            .iam
                            .tag_role()
                            .role_name(id)
                            .set_tags(Some(tags(&set)?))
                            .send()
                            .await
                            .map_err(|e| api_error("iam:TagRole", e))?;
                    }
                }
                "managed_policies" => attach(cloud, id, desired, live).await?,
                "undeclared_inline_policies" => {
                    for name in live.get(attr).and_then(Json::as_array).into_iter().flatten().filter_map(Json::as_str) {
                        cloud
                            .iam
                            .delete_role_policy()
                            .role_name(id)
                            .policy_name(name)
                            .send()
                            .await
                            .map_err(|e| api_error("iam:DeleteRolePolicy", e))?;
                    }
                }
                _ => {}
            }
        }
        let role = cloud.iam.get_role().role_name(id).send().await.map_err(|e| api_error("iam:GetRole", e))?;
        Ok(outputs(role.role().ok_or_else(|| unexpected("iam:GetRole", "no Role"))?))
    }

    /// `iam:GetRole`, `iam:ListRoleTags`: the role of this name, if it carries our tags.
    async fn adopt(&self, cloud: &Aws, desired: &Attrs, _: Option<&str>) -> Result<Option<String>> {
        let name = str_attr(desired, "name");
        match cloud.iam.get_role().role_name(name).send().await {
            Ok(_) => Ok(crate::provider::owned_by(desired, &list_tags(cloud, name).await?).then(|| name.to_owned())),
            Err(e) => {
                let e = api_error("iam:GetRole", e);
                if e.is_not_found() { Ok(None) } else { Err(e) }
            }
        }
    }

    /// `iam:GetRole`, `iam:ListRoleTags`: a role of this name is ours only with this state's
    /// ownership tags.
    async fn occupant(&self, cloud: &Aws, desired: &Attrs, _: &str) -> Result<Occupant> {
        let name = str_attr(desired, "name");
        let out = match cloud.iam.get_role().role_name(name).send().await {
            Ok(out) => out,
            Err(e) => {
                let e = api_error("iam:GetRole", e);
                return if e.is_not_found() { Ok(Occupant::Free) } else { Err(e) };
            }
        };
        if crate::provider::owned_by(desired, &list_tags(cloud, name).await?) {
            return Ok(Occupant::Ours {
                id: name.to_owned(),
                why: format!("role {name} carries this state's ownership tags"),
            });
        }
        let what = match out.role() {
            Some(r) => format!("role {} (created {})", r.arn(), r.create_date()),
            None => format!("role {name}"),
        };
        Ok(Occupant::Foreign { id: name.to_owned(), what })
    }

    /// `iam:ListRolePolicies` + `iam:DeleteRolePolicy`, `iam:ListAttachedRolePolicies` +
    /// `iam:DetachRolePolicy`, then `iam:DeleteRole`: IAM refuses to delete a role that still
    /// has policies.
    async fn delete(&self, cloud: &Aws, id: &str, _: &Attrs, _: DeleteOptions) -> Result<Deleted> {
        let result: Result<()> = async {
            for name in list_inline_policies(cloud, id).await? {
                cloud
                    .iam
                    .delete_role_policy()
                    .role_name(id)
                    .policy_name(name)
                    .send()
                    .await
                    .map_err(|e| api_error("iam:DeleteRolePolicy", e))?;
            }
            let attached: Attrs =
                [("managed_policies".to_owned(), json!(list_attached(cloud, id).await?))].into_iter().collect();
            attach(cloud, id, &Attrs::new(), &attached).await?;
            cloud.iam.delete_role().role_name(id).send().await.map_err(|e| api_error("iam:DeleteRole", e))?;
            Ok(())
        }
        .await;
        match result {
            Err(e) if !e.is_not_found() => Err(e),
            _ => Ok(Deleted::Removed),
        }
    }
}

/// The `trust:` block: `document:` as given, or generated from `services:` and `principals:`.
fn trust_policy(b: &mut Block<'_>, cx: &mut Validation) -> Json {
    let pos = b.pos();
    let path = b.field_path("trust");
    let Some(mut t) = b.block(cx, "trust") else {
        cx.error(pos, "missing", format!("{path}: missing required field (`services:`, `principals:` or `document:`)"));
        return Json::Null;
    };
    let doc = if t.has("document") {
        if t.has("services") || t.has("principals") {
            cx.error(t.pos(), "policy", format!("{path}: give either `document` or `services`/`principals`, not both"));
        }
        document_field(&mut t, cx, "document").unwrap_or(Json::Null)
    } else {
        let services = t.string_list(cx, "services").unwrap_or_default();
        let principals = t.string_list(cx, "principals").unwrap_or_default();
        for p in &principals {
            if let Err(msg) = check_principal(p) {
                cx.error(t.pos(), "value", format!("{path}.principals: {msg}"));
            }
        }
        if services.is_empty() && principals.is_empty() {
            cx.error(t.pos(), "missing", format!("{path}: name at least one of `services` or `principals`"));
        }
        generated_trust(&services, &principals)
    };
    t.finish(cx);
    doc
}

/// A trust policy letting the named services and principals assume the role.
pub fn generated_trust(services: &[String], principals: &[String]) -> Json {
    let mut principal = serde_json::Map::new();
    if !services.is_empty() {
        principal.insert("Service".into(), json!(services));
    }
    if !principals.is_empty() {
        principal.insert("AWS".into(), json!(principals));
    }
    json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": principal, "Action": "sts:AssumeRole"}]})
}

fn valid_role_name(name: &str) -> bool {
    (1..=64).contains(&name.len()) && name.chars().all(|c| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c))
}

fn outputs(role: &aws_sdk_iam::types::Role) -> Attrs {
    let mut out = Attrs::new();
    out.insert("arn".into(), json!(role.arn()));
    out.insert("name".into(), json!(role.role_name()));
    out.insert("role_id".into(), json!(role.role_id()));
    out
}

fn tags(map: &std::collections::BTreeMap<String, String>) -> Result<Vec<Tag>> {
    map.iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build().map_err(|e| unexpected("iam:TagRole", &e.to_string())))
        .collect()
}

/// `iam:ListRoleTags`.
pub(crate) async fn list_tags(cloud: &Aws, id: &str) -> Result<std::collections::BTreeMap<String, String>> {
    let mut tags = std::collections::BTreeMap::new();
    let mut marker = None;
    loop {
        let out = cloud
            .iam
            .list_role_tags()
            .role_name(id)
            .set_marker(marker)
            .send()
            .await
            .map_err(|e| api_error("iam:ListRoleTags", e))?;
        tags.extend(out.tags().iter().map(|t| (t.key().to_owned(), t.value().to_owned())));
        match (out.is_truncated(), out.marker()) {
            (true, Some(m)) => marker = Some(m.to_owned()),
            _ => return Ok(tags),
        }
    }
}

/// `iam:ListAttachedRolePolicies`: the ARNs of the managed policies attached, sorted.
async fn list_attached(cloud: &Aws, id: &str) -> Result<Vec<String>> {
    let mut arns = Vec::new();
    let mut marker = None;
    loop {
        let out = cloud
            .iam
            .list_attached_role_policies()
            .role_name(id)
            .set_marker(marker)
            .send()
            .await
            .map_err(|e| api_error("iam:ListAttachedRolePolicies", e))?;
        arns.extend(out.attached_policies().iter().filter_map(|p| p.policy_arn()).map(str::to_owned));
        match (out.is_truncated(), out.marker()) {
            (true, Some(m)) => marker = Some(m.to_owned()),
            _ => break,
        }
    }
    arns.sort();
    Ok(arns)
}

/// `iam:AttachRolePolicy` for each declared managed policy not in `live`, `iam:DetachRolePolicy`
/// for each attached one not declared.
async fn attach(cloud: &Aws, id: &str, desired: &Attrs, live: &Attrs) -> Result<()> {
    let list = |a: &Attrs| -> BTreeSet<String> {
        a.get("managed_policies")
            .and_then(Json::as_array)
            .map(|v| v.iter().filter_map(Json::as_str).map(str::to_owned).collect())
            .unwrap_or_default()
    };
    let (want, have) = (list(desired), list(live));
    for arn in want.difference(&have) {
        cloud
            .iam
            .attach_role_policy()
            .role_name(id)
            .policy_arn(arn)
            .send()
            .await
            .map_err(|e| api_error("iam:AttachRolePolicy", e))?;
    }
    for arn in have.difference(&want) {
        unless_gone(
            cloud
                .iam
                .detach_role_policy()
                .role_name(id)
                .policy_arn(arn)
                .send()
                .await
                .map_err(|e| api_error("iam:DetachRolePolicy", e)),
        )?;
    }
    Ok(())
}

/// `iam:ListRolePolicies`.
async fn list_inline_policies(cloud: &Aws, id: &str) -> Result<Vec<String>> {
    let mut names = Vec::new();
    let mut marker = None;
    loop {
        let out = cloud
            .iam
            .list_role_policies()
            .role_name(id)
            .set_marker(marker)
            .send()
            .await
            .map_err(|e| api_error("iam:ListRolePolicies", e))?;
        names.extend(out.policy_names().iter().cloned());
        match (out.is_truncated(), out.marker()) {
            (true, Some(m)) => marker = Some(m.to_owned()),
            _ => return Ok(names),
        }
    }
}

fn unexpected(operation: &'static str, message: &str) -> ProviderError {
    ProviderError::Unexpected { operation, message: message.to_owned() }
}

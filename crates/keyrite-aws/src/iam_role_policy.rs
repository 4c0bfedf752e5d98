//! `aws_iam_role_policy`: one inline policy of a role, declared under the role's `policies:`.
//!
//! The generated form is the signer's whole permission set: `kms:Sign` (ECDSA_SHA_256 only)
//! and `kms:GetPublicKey` on the referenced key ARNs, nothing else.

use async_trait::async_trait;
use serde_json::{Value as Json, json};

use super::{Aws, api_error, document_field, unless_gone};
use crate::manifest::{Attrs, Block, Validation};
use crate::provider::Schema;
use crate::provider::{
    AttrSpec, Created, DeleteOptions, Deleted, Kind, Live, Occupant, Op, ProviderError, Result, TAG_LINEAGE, str_attr,
    unresolved,
};

pub struct IamRolePolicy;

const ATTRS: &[AttrSpec] = &[AttrSpec::replace("role"), AttrSpec::replace("name"), AttrSpec::policy("document")];

impl Schema for IamRolePolicy {
    fn name(&self) -> &'static str {
        "aws_iam_role_policy"
    }

    fn attrs(&self) -> &'static [AttrSpec] {
        ATTRS
    }

    fn outputs(&self) -> &'static [&'static str] {
        &["name"]
    }

    /// `role:policy`.
    fn check_import(&self, given: &str) -> std::result::Result<(), String> {
        match given.split_once(':') {
            Some((role, name)) if !given.starts_with("arn:") && !role.is_empty() && !name.is_empty() => Ok(()),
            _ => Err(format!("{given:?} is not an inline role policy: write it as role:policy")),
        }
    }

    fn permissions(&self, op: Op) -> &'static [&'static str] {
        match op {
            Op::Read => &["iam:GetRolePolicy"],
            Op::Create => &["iam:PutRolePolicy"],
            Op::Update => &["iam:PutRolePolicy"],
            Op::Delete => &["iam:DeleteRolePolicy"],
        }
    }

    fn declared_under(&self) -> Option<&'static str> {
        Some("an aws_iam_role's `policies:`")
    }

    fn desired(&self, _name: &str, _b: &mut Block<'_>, _cx: &mut Validation) -> Attrs {
        Attrs::new()
    }
}

#[async_trait]
impl Kind<Aws> for IamRolePolicy {
    /// `iam:GetRolePolicy`.
    async fn read(&self, cloud: &Aws, id: &str, _: &Attrs) -> Result<Option<Live>> {
        let (role, name) = split_id(id)?;
        let Some(out) = unless_gone(
            cloud
                .iam
                .get_role_policy()
                .role_name(role)
                .policy_name(name)
                .send()
                .await
                .map_err(|e| api_error("iam:GetRolePolicy", e)),
        )?
        else {
            return Ok(None);
        };
        let doc = crate::policy::decode_policy_text(out.policy_document())
            .map_err(|e| ProviderError::Unexpected { operation: "iam:GetRolePolicy", message: e.to_string() })?;
        let mut live = Live::default();
        live.attrs.insert("role".into(), json!(role));
        live.attrs.insert("name".into(), json!(name));
        live.attrs.insert("document".into(), doc);
        live.outputs.insert("name".into(), json!(name));
        Ok(Some(live))
    }

    /// `iam:PutRolePolicy`.
    async fn create(&self, cloud: &Aws, desired: &Attrs) -> Result<Created> {
        put(cloud, desired).await?;
        let (role, name) = (str_attr(desired, "role"), str_attr(desired, "name"));
        let mut outputs = Attrs::new();
        outputs.insert("name".into(), json!(name));
        Ok(Created { id: format!("{role}:{name}"), outputs })
    }

    /// `iam:PutRolePolicy`.
    async fn update(&self, cloud: &Aws, _: &str, desired: &Attrs, _: &Attrs, _: &[String]) -> Result<Attrs> {
        put(cloud, desired).await?;
        let mut outputs = Attrs::new();
        outputs.insert("name".into(), json!(str_attr(desired, "name")));
        Ok(outputs)
    }

    /// An inline policy is named by its role and name; if one is there, it is the one the
    /// interrupted create put there (the next apply overwrites its document if not).
    async fn adopt(&self, cloud: &Aws, desired: &Attrs, _: Option<&str>) -> Result<Option<String>> {
        let id = format!("{}:{}", str_attr(desired, "role"), str_attr(desired, "name"));
        Ok(self.read(cloud, &id, desired).await?.map(|_| id))
    }

    /// `iam:GetRolePolicy`, `iam:ListRoleTags`: an inline policy of this name is ours when its
    /// role carries this state's lineage (its document is then planned like any update).
    async fn occupant(&self, cloud: &Aws, desired: &Attrs, lineage: &str) -> Result<Occupant> {
        let (role, name) = (str_attr(desired, "role"), str_attr(desired, "name"));
        if unresolved(role) {
            return Ok(Occupant::Free);
        }
        let id = format!("{role}:{name}");
        if self.read(cloud, &id, desired).await?.is_none() {
            return Ok(Occupant::Free);
        }
        let tags = super::iam_role::list_tags(cloud, role).await?;
        Ok(if tags.get(TAG_LINEAGE).map(String::as_str) == Some(lineage) {
            Occupant::Ours { why: format!("inline policy {name} of role {role}, which this state owns"), id }
        } else {
            Occupant::Foreign { what: format!("inline policy {name} of role {role}"), id }
        })
    }

    /// `iam:DeleteRolePolicy`.
    async fn delete(&self, cloud: &Aws, id: &str, _: &Attrs, _: DeleteOptions) -> Result<Deleted> {
        let (role, name) = split_id(id)?;
        unless_gone(
            cloud
                .iam
                .delete_role_policy()
                .role_name(role)
                .policy_name(name)
                .send()
                .await
                .map_err(|e| api_error("iam:DeleteRolePolicy", e)),
        )?;
        Ok(Deleted::Removed)
    }
}

async fn put(cloud: &Aws, desired: &Attrs) -> Result<()> {
    let doc = serde_json::to_string(&desired["document"]).unwrap_or_default();
    cloud
        .iam
        .put_role_policy()
        .role_name(str_attr(desired, "role"))
        .policy_name(str_attr(desired, "name"))
        .policy_document(doc)
        .send()
        .await
        .map_err(|e| api_error("iam:PutRolePolicy", e))?;
    Ok(())
}

fn split_id(id: &str) -> Result<(&str, &str)> {
    id.split_once(':')
        .ok_or_else(|| ProviderError::Refused(format!("malformed role policy id {id:?} (expected role:policy)")))
}

/// A policy block under a role's `policies:`: `document:` as given, or `generated:` with
/// `sign_keys:` (key ARNs, normally `${key.arn}`).
pub fn policy_body(mut b: Block<'_>, cx: &mut Validation) -> Json {
    let doc = match (b.has("document"), b.has("generated")) {
        (true, true) => {
            cx.error(b.pos(), "policy", "give either `document` or `generated`, not both");
            Json::Null
        }
        (true, false) => document_field(&mut b, cx, "document").unwrap_or(Json::Null),
        (false, true) => match b.block(cx, "generated") {
            Some(mut g) => {
                let keys = g.string_list(cx, "sign_keys").unwrap_or_default();
                if keys.is_empty() {
                    cx.error(
                        g.pos(),
                        "missing",
                        format!(
                            "{}: list at least one key ARN, e.g. [\"${{treasury_key.arn}}\"]",
                            g.field_path("sign_keys")
                        ),
                    );
                }
                g.finish(cx);
                generated_sign_policy(&keys)
            }
            None => Json::Null,
        },
        (false, false) => {
            cx.error(b.pos(), "missing", "an inline policy needs `document:` or `generated:`");
            Json::Null
        }
    };
    b.finish(cx);
    doc
}

/// Least privilege for a signer: sign with ECDSA_SHA_256 and read the public key, on the
/// named keys only.
pub fn generated_sign_policy(key_arns: &[String]) -> Json {
    json!({
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "KeyriteSign",
                "Effect": "Allow",
                "Action": "kms:Sign",
                "Resource": key_arns,
                "Condition": {"StringEquals": {"kms:SigningAlgorithm": "ECDSA_SHA_256"}},
            },
            {"Sid": "KeyriteReadPublicKey", "Effect": "Allow", "Action": "kms:GetPublicKey", "Resource": key_arns},
        ],
    })
}

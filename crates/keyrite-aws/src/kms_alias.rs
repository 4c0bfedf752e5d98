//! `aws_kms_alias`: a friendly name (`alias/treasury`) for a key.
//!
//! Signers and keystore URIs (`awskms:<region>:alias/<name>`) refer to keys by alias, so an
//! alias silently repointed to another key is a change of address; drift reports it and apply
//! points it back with `kms:UpdateAlias`.

use async_trait::async_trait;
use serde_json::json;

use super::{Aws, api_error, unless_gone};
use crate::manifest::{Attrs, Block, Validation};
use crate::provider::Schema;
use crate::provider::{
    AttrSpec, Created, DeleteOptions, Deleted, Kind, Live, Occupant, Op, Result, str_attr, unresolved,
};

pub struct KmsAlias;

const ATTRS: &[AttrSpec] = &[AttrSpec::replace("name"), AttrSpec::update("target_key_id")];

impl Schema for KmsAlias {
    fn name(&self) -> &'static str {
        "aws_kms_alias"
    }

    fn attrs(&self) -> &'static [AttrSpec] {
        ATTRS
    }

    fn outputs(&self) -> &'static [&'static str] {
        &["name", "arn"]
    }

    /// `alias/…` or an alias ARN.
    fn check_import(&self, given: &str) -> std::result::Result<(), String> {
        super::arn_of(given, "kms", &["alias/"], "a KMS alias")?;
        if !given.starts_with("arn:") && !given.starts_with("alias/") {
            return Err(format!("{given:?} is not an alias (alias/… or its ARN)"));
        }
        Ok(())
    }

    fn import_lookup(&self, given: &str) -> String {
        given.split_once(":alias/").map_or_else(|| given.to_owned(), |(_, name)| format!("alias/{name}"))
    }

    fn declare(&self, live: &Live, refer: &dyn Fn(&str) -> Option<String>) -> Option<serde_json::Value> {
        Some(json!({
            "name": str_attr(&live.attrs, "name"),
            "target_key": crate::provider::declared_ref(&live.attrs, "target_key_id", refer),
        }))
    }

    fn permissions(&self, op: Op) -> &'static [&'static str] {
        match op {
            Op::Read => &["kms:ListAliases"],
            Op::Create => &["kms:CreateAlias"],
            Op::Update => &["kms:UpdateAlias"],
            Op::Delete => &["kms:DeleteAlias"],
        }
    }

    fn desired(&self, _name: &str, b: &mut Block<'_>, cx: &mut Validation) -> Attrs {
        let mut a = Attrs::new();
        let pos = b.pos();
        if let Some(name) = b.required_string(cx, "name") {
            if let Err(msg) = check_alias_name(&name) {
                cx.error(pos, "value", format!("{}: {msg}", b.field_path("name")));
            }
            a.insert("name".into(), json!(name));
        }
        if let Some(target) = b.required_string(cx, "target_key") {
            a.insert("target_key_id".into(), json!(target));
        }
        a
    }
}

#[async_trait]
impl Kind<Aws> for KmsAlias {
    /// `kms:ListAliases`.
    async fn read(&self, cloud: &Aws, id: &str, _: &Attrs) -> Result<Option<Live>> {
        let mut marker = None;
        loop {
            let out = cloud
                .kms
                .list_aliases()
                .set_marker(marker)
                .send()
                .await
                .map_err(|e| api_error("kms:ListAliases", e))?;
            if let Some(alias) = out.aliases().iter().find(|a| a.alias_name() == Some(id)) {
                let mut live = Live::default();
                live.attrs.insert("name".into(), json!(id));
                live.attrs.insert("target_key_id".into(), json!(alias.target_key_id().unwrap_or_default()));
                live.outputs.insert("name".into(), json!(id));
                live.outputs.insert("arn".into(), json!(alias.alias_arn().unwrap_or_default()));
                return Ok(Some(live));
            }
            match (out.truncated(), out.next_marker()) {
                (true, Some(m)) => marker = Some(m.to_owned()),
                _ => return Ok(None),
            }
        }
    }

    /// `kms:CreateAlias` (on the alias and the key).
    async fn create(&self, cloud: &Aws, desired: &Attrs) -> Result<Created> {
        let name = str_attr(desired, "name");
        cloud
            .kms
            .create_alias()
            .alias_name(name)
            .target_key_id(str_attr(desired, "target_key_id"))
            .send()
            .await
            .map_err(|e| api_error("kms:CreateAlias", e))?;
        Ok(Created { id: name.to_owned(), outputs: outputs(cloud, name).await? })
    }

    /// `kms:UpdateAlias`.
    async fn update(&self, cloud: &Aws, id: &str, desired: &Attrs, _: &Attrs, _: &[String]) -> Result<Attrs> {
        cloud
            .kms
            .update_alias()
            .alias_name(id)
            .target_key_id(str_attr(desired, "target_key_id"))
            .send()
            .await
            .map_err(|e| api_error("kms:UpdateAlias", e))?;
        outputs(cloud, id).await
    }

    /// An alias is named uniquely; one pointing at the desired key is the one the
    /// interrupted create made.
    async fn adopt(&self, cloud: &Aws, desired: &Attrs, _: Option<&str>) -> Result<Option<String>> {
        let name = str_attr(desired, "name");
        let live = self.read(cloud, name, desired).await?;
        Ok(live.filter(|l| l.attrs.get("target_key_id") == desired.get("target_key_id")).map(|_| name.to_owned()))
    }

    /// `kms:ListAliases`: an alias already pointing at the declared key (one in this state)
    /// is ours; pointing anywhere else, it belongs to someone else's key.
    async fn occupant(&self, cloud: &Aws, desired: &Attrs, _: &str) -> Result<Occupant> {
        let name = str_attr(desired, "name");
        let Some(live) = self.read(cloud, name, desired).await? else { return Ok(Occupant::Free) };
        let (target, want) = (str_attr(&live.attrs, "target_key_id"), str_attr(desired, "target_key_id"));
        Ok(if !unresolved(want) && target == want {
            Occupant::Ours { id: name.to_owned(), why: format!("{name} already points at the declared key {want}") }
        } else {
            Occupant::Foreign { id: name.to_owned(), what: format!("{name} → key {target}") }
        })
    }

    /// `kms:DeleteAlias`. The key itself is untouched.
    async fn delete(&self, cloud: &Aws, id: &str, _: &Attrs, _: DeleteOptions) -> Result<Deleted> {
        unless_gone(cloud.kms.delete_alias().alias_name(id).send().await.map_err(|e| api_error("kms:DeleteAlias", e)))?;
        Ok(Deleted::Removed)
    }
}

/// The alias's outputs. The ARN is derived rather than read back: it is fully determined by
/// the caller's partition, region and account.
async fn outputs(cloud: &Aws, name: &str) -> Result<Attrs> {
    let who = cloud.identity().await?;
    let mut out = Attrs::new();
    out.insert("name".into(), json!(name));
    out.insert("arn".into(), json!(format!("arn:{}:kms:{}:{}:{name}", who.partition, cloud.region, who.account_id)));
    Ok(out)
}

/// Checks an alias name the way KMS does: `alias/` + 1–250 of `[A-Za-z0-9/_-]`, and not in
/// the reserved `alias/aws/` namespace.
pub fn check_alias_name(name: &str) -> std::result::Result<(), String> {
    let Some(rest) = name.strip_prefix("alias/") else {
        return Err(format!("alias name {name:?} must start with \"alias/\""));
    };
    if rest.starts_with("aws/") {
        return Err(format!("alias name {name:?} is in the reserved alias/aws/ namespace"));
    }
    if rest.is_empty() || rest.len() > 250 || !rest.chars().all(|c| c.is_ascii_alphanumeric() || "/_-".contains(c)) {
        return Err(format!(
            "alias name {name:?} may only use letters, digits, '/', '_' and '-' (1–250 after \"alias/\")"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn alias_names_follow_kms_rules() {
        use super::check_alias_name as c;
        assert!(c("alias/treasury-hot_1").is_ok());
        assert!(c("treasury").unwrap_err().contains("must start with"));
        assert!(c("alias/aws/kms").unwrap_err().contains("reserved"));
        assert!(c("alias/with space").is_err());
        assert!(c("alias/").is_err());
    }
}

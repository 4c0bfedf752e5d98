//! `gcp_kms_key_ring`: the container of Cloud KMS keys, in one project and location.
//!
//! A key ring has no settings beyond its name, and Cloud KMS never deletes one. So a ring
//! that already exists under the declared name *is* the declared ring: create adopts it
//! (after a `destroy`, the next `apply` finds the ring it left behind), and destroy records
//! that the ring remains.

use async_trait::async_trait;
use serde_json::json;

use super::{check_id, default_id};
use crate::Gcp;
use crate::manifest::{Attrs, Block, Validation, check_project_id};
use crate::provider::Schema;
use crate::provider::{
    AttrSpec, Created, DeleteOptions, Deleted, Kind, Live, Occupant, Op, Result, str_attr, unless_gone,
};

pub struct KeyRing;

const ATTRS: &[AttrSpec] = &[AttrSpec::replace("project"), AttrSpec::replace("location"), AttrSpec::replace("name")];

impl Schema for KeyRing {
    fn name(&self) -> &'static str {
        "gcp_kms_key_ring"
    }

    fn attrs(&self) -> &'static [AttrSpec] {
        ATTRS
    }

    fn outputs(&self) -> &'static [&'static str] {
        &["id"]
    }

    /// A resource name: `projects/…/keyRings/…`.
    fn check_import(&self, given: &str) -> std::result::Result<(), String> {
        let p: Vec<&str> = given.split('/').collect();
        if p.len() == 6 && p[0] == "projects" && p[2] == "locations" && p[6 - 2] == "keyRings" {
            Ok(())
        } else {
            Err(format!("{given:?} is not a key ring (projects/P/locations/L/keyRings/R)"))
        }
    }

    fn declare(&self, live: &Live, _: &dyn Fn(&str) -> Option<String>) -> Option<serde_json::Value> {
        let a = &live.attrs;
        Some(
            json!({"project": str_attr(a, "project"), "location": str_attr(a, "location"), "name": str_attr(a, "name")}),
        )
    }

    fn permissions(&self, op: Op) -> &'static [&'static str] {
        match op {
            Op::Read => &["cloudkms.keyRings.get"],
            Op::Create => &["cloudkms.keyRings.create"],
            Op::Update => &[],
            Op::Delete => &[],
        }
    }

    fn deletion_note(&self) -> Option<&'static str> {
        Some("Cloud KMS never deletes key rings: it remains, and only leaves the state")
    }

    fn desired(&self, name: &str, b: &mut Block<'_>, cx: &mut Validation) -> Attrs {
        let mut a = Attrs::new();
        match b.string(cx, "project").or_else(|| cx.gcp_project().map(str::to_owned)) {
            Some(project) => {
                if let Err(msg) = check_project_id(&project) {
                    cx.error(b.pos_of("project"), "value", format!("{}: {msg}", b.field_path("project")));
                }
                a.insert("project".into(), json!(project));
            }
            None => cx.error(
                b.pos_of("project"),
                "missing",
                format!("{}: no project: set `project:` here or `provider.gcp.project`", b.field_path("project")),
            ),
        }
        if let Some(location) = b.required_string(cx, "location") {
            let ok = !location.is_empty()
                && location.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
            if !ok && !location.contains("${") {
                cx.error(
                    b.pos_of("location"),
                    "value",
                    format!("{}: {location:?} is not a location", b.field_path("location")),
                );
            }
            a.insert("location".into(), json!(location));
        }
        let id = b.string(cx, "name").unwrap_or_else(|| default_id(name));
        if let Err(msg) = check_id(&id) {
            cx.error(b.pos_of("name"), "value", format!("{}: key ring id {msg}", b.field_path("name")));
        }
        a.insert("name".into(), json!(id));
        a
    }
}

#[async_trait]
impl Kind<Gcp> for KeyRing {
    /// Permission `cloudkms.keyRings.get`.
    async fn read(&self, cloud: &Gcp, id: &str, _: &Attrs) -> Result<Option<Live>> {
        let kms = cloud.kms().await?;
        let Some(ring) = unless_gone(cloud.call("GetKeyRing", kms.get_key_ring().set_name(id).send()).await)? else {
            return Ok(None);
        };
        Ok(Some(live(&ring.name)))
    }

    /// Permission `cloudkms.keyRings.create` (and `.get` to adopt); a ring that already exists
    /// under this name is adopted.
    async fn create(&self, cloud: &Gcp, desired: &Attrs) -> Result<Created> {
        let kms = cloud.kms().await?;
        let parent = format!("projects/{}/locations/{}", str_attr(desired, "project"), str_attr(desired, "location"));
        let id = str_attr(desired, "name");
        let made = cloud
            .call(
                "CreateKeyRing",
                kms.create_key_ring()
                    .set_parent(&parent)
                    .set_key_ring_id(id)
                    .set_key_ring(google_cloud_kms_v1::model::KeyRing::new())
                    .send(),
            )
            .await;
        let name = match made {
            Ok(ring) => ring.name,
            Err(e) if e.code() == Some("ALREADY_EXISTS") => format!("{parent}/keyRings/{id}"),
            Err(e) => return Err(e),
        };
        Ok(Created { outputs: live(&name).outputs, id: name })
    }

    async fn update(&self, _: &Gcp, id: &str, _: &Attrs, _: &Attrs, _: &[String]) -> Result<Attrs> {
        // Every attribute forces replacement; nothing is updated in place.
        Ok(live(id).outputs)
    }

    /// Key rings cannot be deleted.
    async fn delete(&self, _: &Gcp, id: &str, _: &Attrs, _: DeleteOptions) -> Result<Deleted> {
        Ok(Deleted::Retained {
            note: format!("key ring {id} remains: Cloud KMS never deletes key rings (they hold no key material)"),
        })
    }

    /// A ring is identified by its name alone.
    async fn adopt(&self, cloud: &Gcp, desired: &Attrs, _: Option<&str>) -> Result<Option<String>> {
        let name = format!(
            "projects/{}/locations/{}/keyRings/{}",
            str_attr(desired, "project"),
            str_attr(desired, "location"),
            str_attr(desired, "name")
        );
        Ok(self.read(cloud, &name, desired).await?.map(|_| name))
    }

    /// Permission `cloudkms.keyRings.get`. Rings are never deleted and hold no settings, so an
    /// existing ring of the declared name is the declared ring.
    async fn occupant(&self, cloud: &Gcp, desired: &Attrs, _: &str) -> Result<Occupant> {
        Ok(match self.adopt(cloud, desired, None).await? {
            Some(id) => Occupant::Ours {
                why: format!("{id} exists; Cloud KMS never deletes key rings, so it is the declared ring"),
                id,
            },
            None => Occupant::Free,
        })
    }
}

/// Attributes and outputs from the ring's full name.
fn live(name: &str) -> Live {
    let parts: Vec<&str> = name.split('/').collect();
    let part = |i: usize| parts.get(i).copied().unwrap_or_default();
    let mut l = Live::default();
    l.attrs.insert("project".into(), json!(part(1)));
    l.attrs.insert("location".into(), json!(part(3)));
    l.attrs.insert("name".into(), json!(part(5)));
    l.outputs.insert("id".into(), json!(name));
    l
}

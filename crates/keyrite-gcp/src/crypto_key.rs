//! `gcp_kms_crypto_key`: a secp256k1 signing key in Cloud KMS (`ASYMMETRIC_SIGN`,
//! `EC_SIGN_SECP256K1_SHA256`), HSM-protected unless SOFTWARE is chosen (with a warning).
//!
//! # Versions are pinned
//!
//! A Cloud KMS key signs with its *versions*, and each version is a separate key pair: a new
//! version is a new address. keyrite therefore never follows "the latest" version. The
//! manifest pins one (`version: 1` by default); signers, `addresses` and the self-test use
//! exactly that version, and the plan reports:
//! - the pinned version's state, which must be ENABLED (a disabled or destroy-scheduled
//!   version is drift, and apply re-enables or restores it);
//! - any *other* enabled version (`other_enabled_versions`): key material that can sign but
//!   that nobody declared, such as a version made by hand in the console. apply disables it
//!   (which is reversible), never destroys it.
//!
//! Rotation is explicit: raise `version:` to the next number, and apply creates that
//! version, waits for it to be generated, and disables the old one, printing the new address.
//!
//! # Never deleted
//!
//! Cloud KMS keys cannot be deleted. `destroy` (with `--allow-key-deletion`, as for AWS keys)
//! schedules every live version for destruction after the key's `destroyScheduledDuration`
//! (`deletion_window_days`, 30 by default) and says that the key itself remains.
//!
//! A crypto key id is unique within its ring, so a create whose response was lost finds
//! its key again by name; keyrite adopts it only if it carries this state's ownership
//! labels (`keyrite-lineage`, `keyrite-address`), so a stranger's key is never taken over.

use std::collections::BTreeMap;

use async_trait::async_trait;
use base64::Engine;
use google_cloud_kms_v1::model::crypto_key::CryptoKeyPurpose;
use google_cloud_kms_v1::model::crypto_key_version::{CryptoKeyVersionAlgorithm, CryptoKeyVersionState};
use google_cloud_kms_v1::model::{CryptoKeyVersion, CryptoKeyVersionTemplate, ProtectionLevel};
use serde_json::{Value as Json, json};

use super::{Gcp, check_id, check_label, default_id, enum_name, label_value, public_key, until_generated};
use crate::manifest::{Attrs, Block, Validation};
use crate::provider::Schema;
use crate::provider::{
    AttrSpec, Created, DeleteOptions, Deleted, Kind, Live, Occupant, Op, ProviderError, Result, map_attr, map_json,
    str_attr, unless_gone, unresolved,
};

pub struct CryptoKey;

/// The only algorithm keyrite manages: Ethereum's curve.
pub const ALGORITHM: &str = "EC_SIGN_SECP256K1_SHA256";
/// Ownership labels (label keys cannot hold `:`).
pub const LABEL_LINEAGE: &str = "keyrite-lineage";
pub const LABEL_ADDRESS: &str = "keyrite-address";

const ATTRS: &[AttrSpec] = &[
    AttrSpec::replace("key_ring"),
    AttrSpec::replace("name"),
    AttrSpec::replace("algorithm"),
    AttrSpec::replace("protection_level"),
    AttrSpec::replace("deletion_window_days"),
    AttrSpec::update("labels"),
    AttrSpec::update("version"),
    AttrSpec::update("version_state"),
    AttrSpec::update("other_enabled_versions"),
    AttrSpec::state_only("slot"),
];

impl Schema for CryptoKey {
    fn name(&self) -> &'static str {
        "gcp_kms_crypto_key"
    }

    fn attrs(&self) -> &'static [AttrSpec] {
        ATTRS
    }

    fn outputs(&self) -> &'static [&'static str] {
        &["id", "version_id", "public_key", "address"]
    }

    /// A resource name: `projects/…/cryptoKeys/…`.
    fn check_import(&self, given: &str) -> std::result::Result<(), String> {
        let p: Vec<&str> = given.split('/').collect();
        if p.len() == 8 && p[0] == "projects" && p[2] == "locations" && p[8 - 2] == "cryptoKeys" {
            Ok(())
        } else {
            Err(format!("{given:?} is not a crypto key (projects/P/locations/L/keyRings/R/cryptoKeys/K)"))
        }
    }

    /// The key at the version it signs with.
    fn declare(&self, live: &Live, refer: &dyn Fn(&str) -> Option<String>) -> Option<Json> {
        let a = &live.attrs;
        let mut out = json!({
            "key_ring": crate::provider::declared_ref(a, "key_ring", refer),
            "name": str_attr(a, "name"),
            "protection_level": str_attr(a, "protection_level"),
            "deletion_window_days": a.get("deletion_window_days").cloned().unwrap_or(json!(30)),
            "version": a.get("version").cloned().unwrap_or(json!(1)),
        });
        if let Some(labels) = crate::provider::declared_tags(a, "labels") {
            out["labels"] = labels;
        }
        Some(out)
    }

    fn permissions(&self, op: Op) -> &'static [&'static str] {
        match op {
            Op::Read => &[
                "cloudkms.cryptoKeys.get",
                "cloudkms.cryptoKeyVersions.list",
                "cloudkms.cryptoKeyVersions.viewPublicKey",
            ],
            Op::Create => &["cloudkms.cryptoKeys.create", "cloudkms.cryptoKeyVersions.get"],
            Op::Update => &[
                "cloudkms.cryptoKeys.update",
                "cloudkms.cryptoKeyVersions.create",
                "cloudkms.cryptoKeyVersions.update",
                "cloudkms.cryptoKeyVersions.restore",
            ],
            Op::Delete => &["cloudkms.cryptoKeyVersions.destroy"],
        }
    }

    /// In labels, which allow no `:` in keys and only lowercase values.
    fn ownership(&self, lineage: &str, address: &str) -> Option<(&'static str, Vec<(&'static str, String)>)> {
        Some(("labels", vec![(LABEL_LINEAGE, label_value(lineage)), (LABEL_ADDRESS, label_value(address))]))
    }

    fn deletion_note(&self) -> Option<&'static str> {
        Some("Cloud KMS never deletes keys: every live version is scheduled for destruction, and the key remains")
    }

    fn replacement_hazard(&self) -> Option<&'static str> {
        Some(
            "replacing a key creates a NEW KEY WITH A NEW ADDRESS; funds sent to the old address stay with the old key",
        )
    }

    fn desired(&self, name: &str, b: &mut Block<'_>, cx: &mut Validation) -> Attrs {
        let mut a = Attrs::new();
        if let Some(ring) = b.required_string(cx, "key_ring") {
            let shaped = ring.contains("${") || {
                let p: Vec<&str> = ring.split('/').collect();
                p.len() == 6 && p[0] == "projects" && p[2] == "locations" && p[4] == "keyRings"
            };
            if !shaped {
                cx.error(
                    b.pos_of("key_ring"),
                    "value",
                    format!(
                        "{}: {ring:?} is not a key ring (projects/<p>/locations/<l>/keyRings/<r>, or ${{ring.id}})",
                        b.field_path("key_ring")
                    ),
                );
            }
            a.insert("key_ring".into(), json!(ring));
        }
        let id = b.string(cx, "name").unwrap_or_else(|| default_id(name));
        if let Err(msg) = check_id(&id) {
            cx.error(b.pos_of("name"), "value", format!("{}: key id {msg}", b.field_path("name")));
        }
        a.insert("name".into(), json!(id));
        a.insert(
            "algorithm".into(),
            json!(b.choice(cx, "algorithm", &[ALGORITHM]).unwrap_or_else(|| ALGORITHM.into())),
        );
        let protection = b.choice(cx, "protection_level", &["HSM", "SOFTWARE"]).unwrap_or_else(|| "HSM".into());
        if protection == "SOFTWARE" {
            cx.warn(
                b.pos_of("protection_level"),
                "protection",
                format!(
                    "{}: SOFTWARE keeps the key outside an HSM; use HSM for keys that guard funds \
                     (Cloud KMS may also refuse secp256k1 at SOFTWARE)",
                    b.field_path("protection_level")
                ),
            );
        }
        a.insert("protection_level".into(), json!(protection));
        a.insert("deletion_window_days".into(), json!(b.integer(cx, "deletion_window_days", 1..=120).unwrap_or(30)));
        crate::manifest::Slot::field(b, cx, &mut a);
        let labels = b.string_map(cx, "labels").unwrap_or_default();
        for (k, v) in &labels {
            if k.starts_with("keyrite-") {
                cx.error(
                    b.pos_of("labels"),
                    "value",
                    format!("{}: label keys keyrite-* are keyrite's own", b.field_path("labels")),
                );
            } else if let Err(msg) = check_label(k, v) {
                cx.error(b.pos_of("labels"), "value", format!("{}: {msg}", b.field_path("labels")));
            }
        }
        a.insert("labels".into(), map_json(&labels));
        a.insert("version".into(), json!(b.integer(cx, "version", 1..=100_000).unwrap_or(1)));
        a.insert("version_state".into(), json!("ENABLED"));
        a.insert("other_enabled_versions".into(), json!([]));
        a
    }
}

#[async_trait]
impl Kind<Gcp> for CryptoKey {
    /// Permissions `cloudkms.cryptoKeys.get`, `cloudkms.cryptoKeyVersions.list` and, for an
    /// enabled version, `cloudkms.cryptoKeyVersions.viewPublicKey`.
    async fn read(&self, cloud: &Gcp, id: &str, reference: &Attrs) -> Result<Option<Live>> {
        let gcp = &cloud;
        let kms = gcp.kms().await?;
        let Some(key) = unless_gone(gcp.call("GetCryptoKey", kms.get_crypto_key().set_name(id).send()).await)? else {
            return Ok(None);
        };
        if key.purpose != CryptoKeyPurpose::AsymmetricSign {
            return Err(ProviderError::Refused(format!(
                "{id} is a {} key, not ASYMMETRIC_SIGN; keyrite manages signing keys only",
                enum_name(key.purpose.name())
            )));
        }
        let pinned = reference.get("version").and_then(Json::as_u64).unwrap_or(1);
        let mut versions = list_versions(gcp, id).await?;
        // A version still being generated (just created, perhaps by a create whose answer was
        // lost) is waited for, so that what is recorded is the key as it will be.
        if let Some((_, v)) = versions.iter_mut().find(|(n, _)| *n == pinned)
            && v.state == CryptoKeyVersionState::PendingGeneration
        {
            v.state = until_generated(gcp, &v.name).await?;
        }
        let pinned_version = versions.iter().find(|(n, _)| *n == pinned);
        let enabled: Vec<&(u64, CryptoKeyVersion)> =
            versions.iter().filter(|(_, v)| v.state == CryptoKeyVersionState::Enabled).collect();
        // `version` is the version that signs: the pinned one while it is enabled, else the only
        // enabled one (so moving the pin, or someone else moving it, shows as 1 → 2), else the
        // pinned one, else the newest.
        let signing = match (pinned_version, enabled.as_slice()) {
            (Some(p), _) if p.1.state == CryptoKeyVersionState::Enabled => Some(p),
            (_, [only]) => Some(*only),
            (Some(p), _) => Some(p),
            (None, _) => versions.last(),
        };
        let template = key.version_template.clone().unwrap_or_default();
        let mut live = Live::default();
        let ring = id.rsplit_once("/cryptoKeys/").map(|(r, _)| r).unwrap_or_default();
        live.attrs.insert("key_ring".into(), json!(ring));
        live.attrs.insert("name".into(), json!(id.rsplit('/').next().unwrap_or_default()));
        live.attrs.insert("algorithm".into(), json!(enum_name(template.algorithm.name())));
        live.attrs.insert("protection_level".into(), json!(enum_name(template.protection_level.name())));
        let window = key.destroy_scheduled_duration.as_ref().map(|d| d.seconds() / 86_400).unwrap_or(30);
        live.attrs.insert("deletion_window_days".into(), json!(window));
        live.attrs.insert("labels".into(), json!(key.labels.iter().collect::<BTreeMap<_, _>>()));
        live.attrs.insert("version".into(), json!(signing.map(|(n, _)| *n).unwrap_or(0)));
        let pinned_state =
            pinned_version.map(|(_, v)| enum_name(v.state.name())).unwrap_or_else(|| "DOES_NOT_EXIST".into());
        live.attrs.insert("version_state".into(), json!(pinned_state));
        let others: Vec<String> = versions
            .iter()
            .filter(|(n, v)| *n != pinned && v.state == CryptoKeyVersionState::Enabled)
            .map(|(n, _)| n.to_string())
            .collect();
        live.attrs.insert("other_enabled_versions".into(), json!(others));
        live.outputs.insert("id".into(), json!(id));
        if let Some((n, v)) = signing
            && v.state == CryptoKeyVersionState::Enabled
        {
            live.outputs.extend(version_outputs(gcp, id, *n).await?);
        }
        Ok(Some(live))
    }

    /// `cryptoKeys.create` (with version 1), then waits for the version to be generated.
    /// Permissions `cloudkms.cryptoKeys.create`, `cloudkms.cryptoKeyVersions.get`.
    async fn create(&self, cloud: &Gcp, desired: &Attrs) -> Result<Created> {
        let gcp = &cloud;
        let kms = gcp.kms().await?;
        if desired.get("version").and_then(Json::as_u64) != Some(1) {
            return Err(ProviderError::Refused(format!(
                "a new key has only version 1: pin `version: 1`, apply, then raise it to rotate (key {})",
                str_attr(desired, "name")
            )));
        }
        let protection = match str_attr(desired, "protection_level") {
            "SOFTWARE" => ProtectionLevel::Software,
            _ => ProtectionLevel::Hsm,
        };
        let window = desired.get("deletion_window_days").and_then(Json::as_i64).unwrap_or(30);
        let key = google_cloud_kms_v1::model::CryptoKey::new()
            .set_purpose(CryptoKeyPurpose::AsymmetricSign)
            .set_version_template(
                CryptoKeyVersionTemplate::new()
                    .set_algorithm(CryptoKeyVersionAlgorithm::EcSignSecp256K1Sha256)
                    .set_protection_level(protection),
            )
            .set_labels(map_attr(desired, "labels"))
            .set_destroy_scheduled_duration(wkt::Duration::clamp(window * 86_400, 0));
        let made = gcp
            .call(
                "CreateCryptoKey",
                kms.create_crypto_key()
                    .set_parent(str_attr(desired, "key_ring"))
                    .set_crypto_key_id(str_attr(desired, "name"))
                    .set_crypto_key(key)
                    .send(),
            )
            .await;
        let made = match made {
            // Keys are never deleted: after a `destroy`, or a create whose answer was lost, the
            // key is still there. Ours (same lineage labels) is taken back and brought to the
            // declared state, restoring versions still inside their destruction window.
            Err(e) if e.code() == Some("ALREADY_EXISTS") => {
                let Some(id) = self.adopt(cloud, desired, None).await? else { return Err(e) };
                let outputs = self.update(cloud, &id, desired, &Attrs::new(), &["labels".to_owned()]).await?;
                return Ok(Created { id, outputs });
            }
            other => other?,
        };
        let version = format!("{}/cryptoKeyVersions/1", made.name);
        let state = until_generated(gcp, &version).await?;
        if state != CryptoKeyVersionState::Enabled {
            return Err(ProviderError::Refused(format!(
                "{version} was generated in state {}",
                enum_name(state.name())
            )));
        }
        let mut outputs = version_outputs(gcp, &made.name, 1).await?;
        outputs.insert("id".into(), json!(made.name));
        Ok(Created { id: made.name, outputs })
    }

    /// Labels with `cryptoKeys.patch`; the pinned version created, enabled or restored; other
    /// enabled versions disabled. Permissions `cloudkms.cryptoKeys.update`,
    /// `cloudkms.cryptoKeyVersions.create`, `.update` and `.restore`.
    async fn update(&self, cloud: &Gcp, id: &str, desired: &Attrs, _: &Attrs, changed: &[String]) -> Result<Attrs> {
        let gcp = &cloud;
        let kms = gcp.kms().await?;
        if changed.iter().any(|c| c == "labels") {
            let key = google_cloud_kms_v1::model::CryptoKey::new().set_name(id).set_labels(map_attr(desired, "labels"));
            gcp.call(
                "UpdateCryptoKey",
                kms.update_crypto_key()
                    .set_crypto_key(key)
                    .set_update_mask(wkt::FieldMask::default().set_paths(["labels"]))
                    .send(),
            )
            .await?;
        }
        let pinned = desired.get("version").and_then(Json::as_u64).unwrap_or(1);
        let mut versions = list_versions(gcp, id).await?;
        if !versions.iter().any(|(n, _)| *n == pinned) {
            let next = versions.last().map(|(n, _)| n + 1).unwrap_or(1);
            if pinned != next {
                return Err(ProviderError::Refused(format!(
                    "{id} has no version {pinned}, and a new version would be number {next}: pin an existing version \
                     or the next one"
                )));
            }
            let v = gcp
                .call(
                    "CreateCryptoKeyVersion",
                    kms.create_crypto_key_version()
                        .set_parent(id)
                        .set_crypto_key_version(CryptoKeyVersion::new())
                        .send(),
                )
                .await?;
            if version_number(&v.name) != Some(pinned) {
                return Err(ProviderError::Unexpected {
                    operation: "cloudkms.CreateCryptoKeyVersion",
                    message: format!("expected version {pinned}, Cloud KMS made {}", v.name),
                });
            }
            until_generated(gcp, &v.name).await?;
            versions = list_versions(gcp, id).await?;
        }
        for (n, v) in &versions {
            let name = format!("{id}/cryptoKeyVersions/{n}");
            if *n == pinned {
                let mut state = v.state.clone();
                if state == CryptoKeyVersionState::DestroyScheduled {
                    let restored = gcp
                        .call("RestoreCryptoKeyVersion", kms.restore_crypto_key_version().set_name(&name).send())
                        .await?;
                    state = restored.state;
                }
                if state == CryptoKeyVersionState::Disabled {
                    set_state(gcp, &name, CryptoKeyVersionState::Enabled).await?;
                } else if state != CryptoKeyVersionState::Enabled {
                    return Err(ProviderError::Refused(format!(
                        "{name} is {} and cannot be enabled again; its key material is gone",
                        enum_name(state.name())
                    )));
                }
            } else if v.state == CryptoKeyVersionState::Enabled {
                set_state(gcp, &name, CryptoKeyVersionState::Disabled).await?;
            }
        }
        let mut outputs = version_outputs(gcp, id, pinned).await?;
        outputs.insert("id".into(), json!(id));
        Ok(outputs)
    }

    /// Schedules every live version for destruction; the key itself remains. Permission
    /// `cloudkms.cryptoKeyVersions.destroy`.
    async fn delete(&self, cloud: &Gcp, id: &str, _: &Attrs, options: DeleteOptions) -> Result<Deleted> {
        if !options.allow_key_deletion {
            return Err(ProviderError::Refused(format!(
                "refusing to schedule destruction of Cloud KMS key {id}: keys are only destroyed with \
                 --allow-key-deletion"
            )));
        }
        let gcp = &cloud;
        let kms = gcp.kms().await?;
        let mut scheduled = Vec::new();
        let mut destroy_time = String::new();
        for (n, v) in list_versions(gcp, id).await? {
            if matches!(v.state, CryptoKeyVersionState::Enabled | CryptoKeyVersionState::Disabled) {
                let name = format!("{id}/cryptoKeyVersions/{n}");
                let out = gcp
                    .call("DestroyCryptoKeyVersion", kms.destroy_crypto_key_version().set_name(&name).send())
                    .await?;
                destroy_time = out.destroy_time.map(|t| timestamp(&t)).unwrap_or_default();
                scheduled.push(n.to_string());
            }
        }
        let note = if scheduled.is_empty() {
            format!("key {id}: no live versions left to destroy; the key itself remains (Cloud KMS never deletes keys)")
        } else {
            format!(
                "key {id}: version{} {} scheduled for destruction on {destroy_time}; until then `cryptoKeyVersions.restore` \
                 undoes it. The key and its key ring remain: Cloud KMS never deletes them",
                if scheduled.len() == 1 { "" } else { "s" },
                scheduled.join(", ")
            )
        };
        Ok(Deleted::Scheduled { deletion_date: destroy_time, note: Some(note) })
    }

    /// The key with the desired name, if it carries this state's ownership labels.
    async fn adopt(&self, cloud: &Gcp, desired: &Attrs, exclude: Option<&str>) -> Result<Option<String>> {
        let gcp = &cloud;
        let kms = gcp.kms().await?;
        let name = format!("{}/cryptoKeys/{}", str_attr(desired, "key_ring"), str_attr(desired, "name"));
        if exclude == Some(name.as_str()) {
            return Ok(None);
        }
        let Some(key) = unless_gone(gcp.call("GetCryptoKey", kms.get_crypto_key().set_name(&name).send()).await)?
        else {
            return Ok(None);
        };
        let want = map_attr(desired, "labels");
        let ours =
            [LABEL_LINEAGE, LABEL_ADDRESS].iter().all(|k| want.contains_key(*k) && want.get(*k) == key.labels.get(*k));
        if ours {
            Ok(Some(name))
        } else {
            Err(ProviderError::Refused(format!(
                "a key named {name} already exists and was not created by this state (its keyrite-lineage label \
                 differs); keyrite does not take over keys it did not create"
            )))
        }
    }

    /// Permission `cloudkms.cryptoKeys.get`: a key of this name is ours only with this state's
    /// ownership labels. Keys are never deleted, so a name once used stays taken.
    async fn occupant(&self, cloud: &Gcp, desired: &Attrs, _: &str) -> Result<Occupant> {
        let ring = str_attr(desired, "key_ring");
        if unresolved(ring) {
            return Ok(Occupant::Free);
        }
        let gcp = &cloud;
        let kms = gcp.kms().await?;
        let name = format!("{ring}/cryptoKeys/{}", str_attr(desired, "name"));
        let Some(key) = unless_gone(gcp.call("GetCryptoKey", kms.get_crypto_key().set_name(&name).send()).await)?
        else {
            return Ok(Occupant::Free);
        };
        let want = map_attr(desired, "labels");
        let ours =
            [LABEL_LINEAGE, LABEL_ADDRESS].iter().all(|k| want.contains_key(*k) && want.get(*k) == key.labels.get(*k));
        Ok(if ours {
            Occupant::Ours { why: format!("{name} carries this state's ownership labels"), id: name }
        } else {
            let lineage = key
                .labels
                .get(LABEL_LINEAGE)
                .map_or("no keyrite-lineage label".to_owned(), |l| format!("keyrite-lineage {l}"));
            let purpose = enum_name(key.purpose.name());
            Occupant::Foreign { what: format!("key {name} ({purpose}, {lineage})"), id: name }
        })
    }
}

/// Every version of a key, by number, oldest first (`cryptoKeyVersions.list`, all pages).
pub async fn list_versions(gcp: &Gcp, key: &str) -> Result<Vec<(u64, CryptoKeyVersion)>> {
    let kms = gcp.kms().await?;
    let mut out = Vec::new();
    let mut token = String::new();
    loop {
        let page = gcp
            .call(
                "ListCryptoKeyVersions",
                kms.list_crypto_key_versions().set_parent(key).set_page_size(100).set_page_token(&token).send(),
            )
            .await?;
        out.extend(page.crypto_key_versions.into_iter().filter_map(|v| Some((version_number(&v.name)?, v))));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    out.sort_by_key(|(n, _)| *n);
    Ok(out)
}

fn version_number(name: &str) -> Option<u64> {
    name.rsplit_once("/cryptoKeyVersions/").and_then(|(_, n)| n.parse().ok())
}

/// `cryptoKeyVersions.patch` of the state.
async fn set_state(gcp: &Gcp, name: &str, state: CryptoKeyVersionState) -> Result<()> {
    let kms = gcp.kms().await?;
    gcp.call(
        "UpdateCryptoKeyVersion",
        kms.update_crypto_key_version()
            .set_crypto_key_version(CryptoKeyVersion::new().set_name(name).set_state(state))
            .set_update_mask(wkt::FieldMask::default().set_paths(["state"]))
            .send(),
    )
    .await?;
    Ok(())
}

/// The version's name, public key (SPKI, base64) and EVM address.
async fn version_outputs(gcp: &Gcp, key: &str, n: u64) -> Result<Attrs> {
    let version = format!("{key}/cryptoKeyVersions/{n}");
    let spki = public_key(gcp, &version).await?;
    let pk = crate::crypto::public_key_from_spki_der(&spki)
        .map_err(|e| ProviderError::Unexpected { operation: "cloudkms.GetPublicKey", message: e.to_string() })?;
    let mut out = Attrs::new();
    out.insert("version_id".into(), json!(version));
    out.insert("public_key".into(), json!(base64::engine::general_purpose::STANDARD.encode(&spki)));
    out.insert("address".into(), json!(crate::crypto::evm_address(&pk).to_string()));
    Ok(out)
}

/// RFC 3339 text of a protobuf timestamp.
fn timestamp(t: &wkt::Timestamp) -> String {
    String::from(*t)
}

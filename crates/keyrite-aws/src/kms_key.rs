//! `aws_kms_key`: an asymmetric signing key in AWS KMS (secp256k1 by default).
//!
//! A key is the one resource whose replacement changes an address that funds may already sit
//! at, so its key spec and usage are replace-only attributes flagged as a hazard, and it is
//! never deleted: `destroy` only schedules deletion, with the manifest's deletion window, and
//! only when asked to with `--allow-key-deletion`.
//!
//! The key policy is either given explicitly or generated least-privilege from named admin
//! and signer principals: admins manage but cannot sign; signers may call `kms:Sign` only
//! with `ECDSA_SHA_256` (optionally only from listed source IPs) and `kms:GetPublicKey`.
//!
//! # Never two keys where one was meant
//!
//! `kms:CreateKey` has no idempotency token: calling it twice makes two keys, two
//! addresses. A retry after a lost response (a connection reset after KMS acted, a timeout, a
//! crash of keyrite itself) would do exactly that. keyrite designs around it in three parts:
//!
//! 1. **Tagged at birth.** The key is created with its `keyrite:lineage` and
//!    `keyrite:address` tags (and, from a rotation's new key on, `keyrite:generation`) in
//!    the same `CreateKey` call, so no key of ours ever exists untagged, and a rotation's new
//!    key is never taken for the old one.
//! 2. **Intent before the call.** The apply executor writes a create intent for the address
//!    into the state (fsync'd) before calling `CreateKey`, and clears it when it records the
//!    key. A crash in between leaves the intent behind.
//! 3. **Search, never blindly retry.** `CreateKey` is sent with the SDK's retries disabled.
//!    When it fails, or when a later run finds a pending intent, keyrite first looks for a
//!    key carrying the same lineage and address tags ([`Kind::adopt`]) and adopts it; only
//!    if there is none does it create again.
//!
//! The search lists the account's keys and their tags, which costs a call per key; it runs
//! only on those recovery paths, never on a normal apply.

use async_trait::async_trait;
use aws_sdk_kms::types::{KeySpec, KeyUsageType, Tag};
use base64::Engine;
use futures_util::TryFutureExt;
use serde_json::{Value as Json, json};

use super::{Aws, api_error, arn_of, check_cidr, check_principal, document_field, unless_gone, until_visible};
use crate::manifest::{Attrs, Block, Slot, Validation};
use crate::provider::Schema;
use crate::provider::{
    AttrSpec, Created, DeleteOptions, Deleted, Kind, Live, Op, ProviderError, Result, map_json, str_attr, tag_delta,
};

pub struct KmsKey;

const KEY_SPECS: &[&str] = &["ECC_SECG_P256K1", "ECC_NIST_P256", "ECC_NIST_P384", "ECC_NIST_P521"];
const ATTRS: &[AttrSpec] = &[
    AttrSpec::replace("key_spec"),
    AttrSpec::replace("key_usage"),
    AttrSpec::update("description"),
    AttrSpec::update("key_state"),
    AttrSpec::policy("policy"),
    AttrSpec::update("tags"),
    AttrSpec::state_only("deletion_window_days"),
    AttrSpec::state_only("slot"),
];

/// Actions of the generated admin statement: full lifecycle management, no use of the key.
const ADMIN_ACTIONS: &[&str] = &[
    "kms:Create*",
    "kms:Describe*",
    "kms:Enable*",
    "kms:List*",
    "kms:Put*",
    "kms:Update*",
    "kms:Revoke*",
    "kms:Disable*",
    "kms:Get*",
    "kms:Delete*",
    "kms:TagResource",
    "kms:UntagResource",
    "kms:ScheduleKeyDeletion",
    "kms:CancelKeyDeletion",
];

impl Schema for KmsKey {
    fn name(&self) -> &'static str {
        "aws_kms_key"
    }

    fn attrs(&self) -> &'static [AttrSpec] {
        ATTRS
    }

    fn outputs(&self) -> &'static [&'static str] {
        &["key_id", "arn", "public_key", "address"]
    }

    fn declare(&self, live: &Live, _: &dyn Fn(&str) -> Option<String>) -> Option<Json> {
        let a = &live.attrs;
        let mut out = json!({"key_spec": str_attr(a, "key_spec")});
        if !str_attr(a, "description").is_empty() {
            out["description"] = json!(str_attr(a, "description"));
        }
        if str_attr(a, "key_state") == "Disabled" {
            out["enabled"] = json!(false);
        }
        out["policy"] = json!({"document": a.get("policy").cloned().unwrap_or(Json::Null)});
        if let Some(tags) = crate::provider::declared_tags(a, "tags") {
            out["tags"] = tags;
        }
        Some(out)
    }

    fn permissions(&self, op: Op) -> &'static [&'static str] {
        match op {
            Op::Read => &["kms:DescribeKey", "kms:GetKeyPolicy", "kms:ListResourceTags", "kms:GetPublicKey"],
            Op::Create => &["kms:CreateKey", "kms:TagResource", "kms:GetPublicKey"],
            Op::Update => &[
                "kms:PutKeyPolicy",
                "kms:TagResource",
                "kms:UntagResource",
                "kms:UpdateKeyDescription",
                "kms:EnableKey",
                "kms:DisableKey",
                "kms:CancelKeyDeletion",
            ],
            Op::Delete => &["kms:ScheduleKeyDeletion"],
        }
    }

    /// A key id, a key ARN, an alias (`alias/…`) or an alias ARN.
    fn check_import(&self, given: &str) -> std::result::Result<(), String> {
        arn_of(given, "kms", &["key/", "alias/"], "a KMS key")
    }

    fn import_id(&self, looked_up: &str, live: &Live) -> String {
        live.outputs.get("key_id").and_then(Json::as_str).unwrap_or(looked_up).to_owned()
    }

    fn replacement_hazard(&self) -> Option<&'static str> {
        Some(
            "replacing a key creates a NEW KEY WITH A NEW ADDRESS; funds sent to the old address stay with the old key",
        )
    }

    fn desired(&self, _name: &str, b: &mut Block<'_>, cx: &mut Validation) -> Attrs {
        let mut a = Attrs::new();
        a.insert("key_spec".into(), json!(b.choice(cx, "key_spec", KEY_SPECS).unwrap_or_else(|| KEY_SPECS[0].into())));
        a.insert(
            "key_usage".into(),
            json!(b.choice(cx, "key_usage", &["SIGN_VERIFY"]).unwrap_or_else(|| "SIGN_VERIFY".into())),
        );
        a.insert("description".into(), json!(b.string(cx, "description").unwrap_or_default()));
        let enabled = b.bool(cx, "enabled").unwrap_or(true);
        a.insert("key_state".into(), json!(if enabled { "Enabled" } else { "Disabled" }));
        let slot = Slot::field(b, cx, &mut a);
        a.insert("policy".into(), key_policy(b, cx, slot));
        a.insert("tags".into(), map_json(&b.string_map(cx, "tags").unwrap_or_default()));
        a.insert("deletion_window_days".into(), json!(b.integer(cx, "deletion_window_days", 7..=30).unwrap_or(30)));
        a
    }
}

#[async_trait]
impl Kind<Aws> for KmsKey {
    /// `kms:DescribeKey`, `kms:GetKeyPolicy`, `kms:ListResourceTags`, `kms:GetPublicKey`.
    async fn read(&self, cloud: &Aws, id: &str, _: &Attrs) -> Result<Option<Live>> {
        let Some(described) =
            unless_gone(cloud.kms.describe_key().key_id(id).send().await.map_err(|e| api_error("kms:DescribeKey", e)))?
        else {
            return Ok(None);
        };
        let meta = described.key_metadata().ok_or_else(|| unexpected("kms:DescribeKey", "no KeyMetadata"))?;
        let state = meta.key_state().map(|s| s.as_str()).unwrap_or("Unknown").to_owned();
        let policy = cloud
            .kms
            .get_key_policy()
            .key_id(id)
            .policy_name("default")
            .send()
            .await
            .map_err(|e| api_error("kms:GetKeyPolicy", e))?;
        let policy = crate::policy::decode_policy_text(policy.policy().unwrap_or("{}"))
            .map_err(|e| unexpected("kms:GetKeyPolicy", &e.to_string()))?;
        let mut live = Live::default();
        live.attrs.insert("key_spec".into(), json!(meta.key_spec().map(|s| s.as_str()).unwrap_or_default()));
        live.attrs.insert("key_usage".into(), json!(meta.key_usage().map(|s| s.as_str()).unwrap_or_default()));
        live.attrs.insert("description".into(), json!(meta.description().unwrap_or_default()));
        live.attrs.insert("key_state".into(), json!(state));
        live.attrs.insert("policy".into(), policy);
        live.attrs.insert("tags".into(), map_json(&list_tags(cloud, id).await?));
        let spki = if state == "Enabled" { Some(public_key(cloud, id).await?) } else { None };
        live.outputs = key_outputs(meta.key_id(), meta.arn().unwrap_or_default(), spki, created(meta));
        Ok(Some(live))
    }

    /// `kms:CreateKey` (+ `kms:TagResource` via tags on create), `kms:GetPublicKey`,
    /// `kms:DisableKey` when declared disabled. Retries while a principal named in the policy
    /// is not yet visible to KMS (IAM eventual consistency).
    async fn create(&self, cloud: &Aws, desired: &Attrs) -> Result<Created> {
        let tags = crate::provider::map_attr(desired, "tags")
            .into_iter()
            .map(|(k, v)| {
                Tag::builder().tag_key(k).tag_value(v).build().map_err(|e| unexpected("kms:CreateKey", &e.to_string()))
            })
            .collect::<Result<Vec<_>>>()?;
        let policy = serde_json::to_string(&desired["policy"]).unwrap_or_default();
        let out = until_visible(
            || {
                cloud
                    .kms
                    .create_key()
                    .key_spec(KeySpec::from(str_attr(desired, "key_spec")))
                    .key_usage(KeyUsageType::from(str_attr(desired, "key_usage")))
                    .description(str_attr(desired, "description"))
                    .policy(policy.clone())
                    .set_tags(Some(tags.clone()))
                    .customize()
                    .config_override(
                        aws_sdk_kms::config::Builder::default()
                            .retry_config(aws_config::retry::RetryConfig::disabled()),
                    )
                    .send()
                    .map_err(|e| api_error("kms:CreateKey", e))
            },
            |e| e.code() == Some("MalformedPolicyDocumentException"),
        )
        .await?;
        let meta = out.key_metadata().ok_or_else(|| unexpected("kms:CreateKey", "no KeyMetadata"))?;
        let id = meta.key_id().to_owned();
        if str_attr(desired, "key_state") == "Disabled" {
            cloud.kms.disable_key().key_id(&id).send().await.map_err(|e| api_error("kms:DisableKey", e))?;
        }
        let outputs =
            key_outputs(&id, meta.arn().unwrap_or_default(), Some(public_key(cloud, &id).await?), created(meta));
        Ok(Created { id, outputs })
    }

    /// `kms:UpdateKeyDescription`, `kms:PutKeyPolicy`, `kms:TagResource`, `kms:UntagResource`,
    /// `kms:CancelKeyDeletion`, `kms:EnableKey`, `kms:DisableKey`, as the changes need.
    async fn update(&self, cloud: &Aws, id: &str, desired: &Attrs, live: &Attrs, changed: &[String]) -> Result<Attrs> {
        for attr in changed {
            match attr.as_str() {
                "description" => {
                    cloud
                        .kms
                        .update_key_description()
                        .key_id(id)
                        .description(str_attr(desired, "description"))
                        .send()
                        .await
                        .map_err(|e| api_error("kms:UpdateKeyDescription", e))?;
                }
                "policy" => {
                    let policy = serde_json::to_string(&desired["policy"]).unwrap_or_default();
                    until_visible(
                        || {
                            cloud
                                .kms
                                .put_key_policy()
                                .key_id(id)
                                .policy_name("default")
                                .policy(policy.clone())
                                .send()
                                .map_err(|e| api_error("kms:PutKeyPolicy", e))
                        },
                        |e| e.code() == Some("MalformedPolicyDocumentException"),
                    )
                    .await?;
                }
                "tags" => update_tags(cloud, id, desired, live).await?,
                "key_state" => {
                    update_state(cloud, id, str_attr(desired, "key_state"), str_attr(live, "key_state")).await?
                }
                _ => {}
            }
        }
        let described =
            cloud.kms.describe_key().key_id(id).send().await.map_err(|e| api_error("kms:DescribeKey", e))?;
        let arn = described.key_metadata().and_then(|m| m.arn()).unwrap_or_default();
        let spki = if str_attr(desired, "key_state") == "Enabled" { Some(public_key(cloud, id).await?) } else { None };
        Ok(key_outputs(id, arn, spki, described.key_metadata().and_then(created)))
    }

    /// `kms:ListKeys`, `kms:ListResourceTags`, `kms:DescribeKey`: the one key (enabled or
    /// disabled, not pending deletion, not `exclude`) with the same ownership tags. Two such
    /// keys is an error: that is the situation this whole design prevents, and a person
    /// must look.
    async fn adopt(&self, cloud: &Aws, desired: &Attrs, exclude: Option<&str>) -> Result<Option<String>> {
        let mut found = Vec::new();
        let mut marker = None;
        loop {
            let page =
                cloud.kms.list_keys().set_marker(marker).send().await.map_err(|e| api_error("kms:ListKeys", e))?;
            for key in page.keys() {
                let Some(id) = key.key_id() else { continue };
                if Some(id) == exclude || !crate::provider::owned_by(desired, &list_tags(cloud, id).await?) {
                    continue;
                }
                let meta =
                    cloud.kms.describe_key().key_id(id).send().await.map_err(|e| api_error("kms:DescribeKey", e))?;
                let state =
                    meta.key_metadata().and_then(|m| m.key_state()).map(|s| s.as_str().to_owned()).unwrap_or_default();
                if state == "Enabled" || state == "Disabled" {
                    found.push(id.to_owned());
                }
            }
            match (page.truncated(), page.next_marker()) {
                (true, Some(m)) => marker = Some(m.to_owned()),
                _ => break,
            }
        }
        match found.len() {
            0 => Ok(None),
            1 => Ok(found.pop()),
            _ => Err(ProviderError::Refused(format!(
                "{} keys carry the ownership tags of this one ({}); resolve by hand before applying",
                found.len(),
                found.join(", ")
            ))),
        }
    }

    /// `kms:ScheduleKeyDeletion` with the recorded window. Refused without the explicit flag.
    async fn delete(&self, cloud: &Aws, id: &str, prior: &Attrs, options: DeleteOptions) -> Result<Deleted> {
        if !options.allow_key_deletion {
            return Err(ProviderError::Refused(format!(
                "refusing to schedule deletion of KMS key {id}: keys are only deleted with --allow-key-deletion"
            )));
        }
        let window = prior.get("deletion_window_days").and_then(Json::as_i64).unwrap_or(30) as i32;
        let out = cloud.kms.schedule_key_deletion().key_id(id).pending_window_in_days(window).send().await;
        match out {
            Ok(out) => Ok(Deleted::Scheduled {
                deletion_date: out
                    .deletion_date()
                    .map(|d| d.fmt(aws_smithy_types::date_time::Format::DateTime).unwrap_or_default())
                    .unwrap_or_default(),
                note: None,
            }),
            Err(e) => {
                let e = api_error("kms:ScheduleKeyDeletion", e);
                if e.is_not_found() { Ok(Deleted::Removed) } else { Err(e) }
            }
        }
    }
}

/// `kms:DisableKey`, for the end of a rotation: the old key stops signing and stays, with its
/// policy and material, so that it can be enabled again and is never deleted by this. Returns
/// the key state KMS reports after (`Disabled`).
pub async fn disable_key(cloud: &Aws, id: &str) -> Result<String> {
    cloud.kms.disable_key().key_id(id).send().await.map_err(|e| api_error("kms:DisableKey", e))?;
    let meta = cloud.kms.describe_key().key_id(id).send().await.map_err(|e| api_error("kms:DescribeKey", e))?;
    Ok(meta.key_metadata().and_then(|m| m.key_state()).map(|s| s.as_str().to_owned()).unwrap_or_default())
}

/// The `policy:` block: `document:` as given, or `generated:` from admins and signers.
/// Absent, it is generated with the account root as the only admin and no signers.
fn key_policy(b: &mut Block<'_>, cx: &mut Validation, slot: Slot) -> Json {
    let Some(mut p) = b.block(cx, "policy") else {
        if slot == Slot::Recovery {
            cx.error(
                b.pos(),
                "slot",
                format!(
                    "{}: a recovery key needs `policy: {{generated: {{signers: […], source_ips: […] or require_mfa: \
                     true}}}}`: only its named recovery signers may sign",
                    b.field_path("policy")
                ),
            );
        }
        return generated_policy(&Generated::default());
    };
    let doc = match (p.has("document"), p.has("generated")) {
        (true, true) => {
            cx.error(
                p.pos(),
                "policy",
                format!("{}: give either `document` or `generated`, not both", b.field_path("policy")),
            );
            None
        }
        (true, false) => document_field(&mut p, cx, "document"),
        _ => {
            let mut g = p.block(cx, "generated");
            let mut list = |key: &str, check: fn(&str) -> std::result::Result<(), String>, cx: &mut Validation| {
                let Some(g) = g.as_mut() else { return Vec::new() };
                let pos = g.pos();
                let items = g.string_list(cx, key).unwrap_or_default();
                for item in &items {
                    if let Err(msg) = check(item) {
                        cx.error(pos, "value", format!("{}: {msg}", g.field_path(key)));
                    }
                }
                items
            };
            let admins = list("admins", check_principal, cx);
            let signers = list("signers", check_principal, cx);
            let break_glass = list("break_glass", check_principal, cx);
            let source_ips = list("source_ips", check_cidr, cx);
            let require_mfa = g.as_mut().and_then(|g| g.bool(cx, "require_mfa")).unwrap_or(false);
            let gate = g.as_mut().and_then(|g| g.string(cx, "gate"));
            if let Some(gate) = &gate
                && let Err(msg) = check_principal(gate)
            {
                cx.error(p.pos(), "value", format!("{}: {msg}", b.field_path("policy.generated.gate")));
            }
            let generated = Generated { admins, signers, gate, break_glass, source_ips, require_mfa };
            if let Some(g) = g {
                let pos = g.pos();
                if slot == Slot::Recovery {
                    recovery_rules(cx, pos, &g.field_path("signers"), &generated);
                } else if generated.gate.is_some() || !generated.break_glass.is_empty() {
                    cx.error(
                        pos,
                        "slot",
                        format!(
                            "{}: `gate` and `break_glass` guard a recovery key (`slot: recovery`); an operational \
                             key lists its `signers`",
                            g.field_path("gate")
                        ),
                    );
                }
                g.finish(cx);
            }
            Some(generated_policy(&generated))
        }
    };
    p.finish(cx);
    doc.unwrap_or(Json::Null)
}

/// A recovery key's generated policy: named signers, each signature from a listed network
/// or with MFA, and no principal both administering and signing. With a quorum gate, the
/// gate alone signs (its approvals are the condition), and anyone else is declared as
/// break-glass, under the same network or MFA condition.
fn recovery_rules(cx: &mut Validation, pos: crate::manifest::yaml::Pos, path: &str, g: &Generated) {
    let humans = if g.gate.is_some() { &g.break_glass } else { &g.signers };
    if g.gate.is_some() && !g.signers.is_empty() {
        cx.error(
            pos,
            "slot",
            format!(
                "{path}: with a `gate`, the gate alone signs with the recovery key; declare anyone else who may \
                 sign without its quorum under `break_glass`"
            ),
        );
    }
    if g.gate.is_none() && !g.break_glass.is_empty() {
        cx.error(
            pos,
            "slot",
            format!(
                "{path}: `break_glass` is the way around a quorum gate, and this key has no `gate`; list `signers`"
            ),
        );
    }
    if g.gate.is_none() && g.signers.is_empty() {
        cx.error(pos, "slot", format!("{path}: a recovery key names its recovery signers; none are listed"));
    }
    if !humans.is_empty() && g.source_ips.is_empty() && !g.require_mfa {
        cx.error(
            pos,
            "slot",
            format!(
                "{path}: a recovery key signs only under a condition: list `source_ips`, or set `require_mfa: true` \
                 (aws:MultiFactorAuthPresent)"
            ),
        );
    }
    for both in g.admins.iter().filter(|a| humans.contains(a) || g.gate.as_ref() == Some(*a)) {
        cx.error(pos, "slot", format!("{path}: {both} is both an admin and a signer of a recovery key"));
    }
}

/// What a generated key policy names.
#[derive(Debug, Default)]
pub struct Generated {
    /// Manage the key, never use it; the account root when empty.
    pub admins: Vec<String>,
    /// May sign (ECDSA_SHA_256 only) and read the public key.
    pub signers: Vec<String>,
    /// A recovery key's quorum gate: the role of the function that signs only approved
    /// enrolments; it signs without the network or MFA condition, which it cannot meet.
    pub gate: Option<String>,
    /// Who may sign a gated recovery key without the gate, under the condition below.
    pub break_glass: Vec<String>,
    /// Signing only from these networks (`aws:SourceIp`).
    pub source_ips: Vec<String>,
    /// Signing only with MFA (`aws:MultiFactorAuthPresent`).
    pub require_mfa: bool,
}

/// The least-privilege key policy keyrite generates.
pub fn generated_policy(g: &Generated) -> Json {
    let (signers, source_ips) = (&g.signers, &g.source_ips);
    let admins: Vec<String> = if g.admins.is_empty() {
        vec!["arn:${aws.partition}:iam::${aws.account_id}:root".into()]
    } else {
        g.admins.clone()
    };
    let mut statements = vec![json!({
        "Sid": "KeyAdministration",
        "Effect": "Allow",
        "Principal": {"AWS": admins},
        "Action": ADMIN_ACTIONS,
        "Resource": "*",
    })];
    let algorithm = json!({"StringEquals": {"kms:SigningAlgorithm": "ECDSA_SHA_256"}});
    if let Some(gate) = &g.gate {
        statements.push(json!({
            "Sid": "AllowQuorumGateSigning",
            "Effect": "Allow",
            "Principal": {"AWS": gate},
            "Action": "kms:Sign",
            "Resource": "*",
            "Condition": algorithm,
        }));
    }
    let humans: Vec<&String> = signers.iter().chain(&g.break_glass).collect();
    if !humans.is_empty() {
        let mut condition = algorithm;
        if !source_ips.is_empty() {
            condition["IpAddress"] = json!({"aws:SourceIp": source_ips});
        }
        if g.require_mfa {
            condition["Bool"] = json!({"aws:MultiFactorAuthPresent": "true"});
        }
        statements.push(json!({
            "Sid": if g.break_glass.is_empty() { "AllowSigning" } else { "AllowBreakGlassSigning" },
            "Effect": "Allow",
            "Principal": {"AWS": humans},
            "Action": "kms:Sign",
            "Resource": "*",
            "Condition": condition,
        }));
    }
    let readers: Vec<&String> = g.gate.iter().chain(humans).collect();
    if !readers.is_empty() {
        statements.push(json!({
            "Sid": "AllowPublicKeyRead",
            "Effect": "Allow",
            "Principal": {"AWS": readers},
            "Action": ["kms:GetPublicKey", "kms:DescribeKey"],
            "Resource": "*",
        }));
    }
    json!({"Version": "2012-10-17", "Id": "keyrite-generated", "Statement": statements})
}

/// When KMS made the key (RFC 3339): how old it is, for `rotation: {every: …}`.
fn created(meta: &aws_sdk_kms::types::KeyMetadata) -> Option<String> {
    meta.creation_date().and_then(|d| d.fmt(aws_smithy_types::date_time::Format::DateTime).ok())
}

/// A key's outputs. The address is derived from the public key when it is a secp256k1 key.
fn key_outputs(id: &str, arn: &str, spki_b64: Option<String>, created_at: Option<String>) -> Attrs {
    let mut out = Attrs::new();
    out.insert("key_id".into(), json!(id));
    out.insert("arn".into(), json!(arn));
    if let Some(at) = created_at {
        out.insert("created_at".into(), json!(at));
    }
    if let Some(spki) = spki_b64 {
        let address = base64::engine::general_purpose::STANDARD
            .decode(&spki)
            .ok()
            .and_then(|der| crate::crypto::public_key_from_spki_der(&der).ok())
            .map(|pk| crate::crypto::evm_address(&pk).to_string());
        if let Some(address) = address {
            out.insert("address".into(), json!(address));
        }
        out.insert("public_key".into(), json!(spki));
    }
    out
}

/// The key's SubjectPublicKeyInfo (DER), base64. `kms:GetPublicKey`.
async fn public_key(cloud: &Aws, id: &str) -> Result<String> {
    let out = cloud.kms.get_public_key().key_id(id).send().await.map_err(|e| api_error("kms:GetPublicKey", e))?;
    let der = out.public_key().ok_or_else(|| unexpected("kms:GetPublicKey", "no PublicKey"))?;
    Ok(base64::engine::general_purpose::STANDARD.encode(der.as_ref()))
}

/// All tags on the key. `kms:ListResourceTags`.
async fn list_tags(cloud: &Aws, id: &str) -> Result<std::collections::BTreeMap<String, String>> {
    let mut tags = std::collections::BTreeMap::new();
    let mut marker = None;
    loop {
        let out = cloud
            .kms
            .list_resource_tags()
            .key_id(id)
            .set_marker(marker)
            .send()
            .await
            .map_err(|e| api_error("kms:ListResourceTags", e))?;
        tags.extend(out.tags().iter().map(|t| (t.tag_key().to_owned(), t.tag_value().to_owned())));
        match (out.truncated(), out.next_marker()) {
            (true, Some(m)) => marker = Some(m.to_owned()),
            _ => return Ok(tags),
        }
    }
}

async fn update_tags(cloud: &Aws, id: &str, desired: &Attrs, live: &Attrs) -> Result<()> {
    let (set, unset) = tag_delta(desired, live);
    if !unset.is_empty() {
        cloud
            .kms
            .untag_resource()
            .key_id(id)
            .set_tag_keys(Some(unset))
            .send()
            .await
            .map_err(|e| api_error("kms:UntagResource", e))?;
    }
    if !set.is_empty() {
        let tags = set
            .into_iter()
            .map(|(k, v)| {
                Tag::builder()
                    .tag_key(k)
                    .tag_value(v)
                    .build()
                    .map_err(|e| unexpected("kms:TagResource", &e.to_string()))
            })
            .collect::<Result<Vec<_>>>()?;
        cloud
            .kms
            .tag_resource()
            .key_id(id)
            .set_tags(Some(tags))
            .send()
            .await
            .map_err(|e| api_error("kms:TagResource", e))?;
    }
    Ok(())
}

/// Moves a key between Enabled, Disabled and PendingDeletion (cancelling the deletion).
async fn update_state(cloud: &Aws, id: &str, want: &str, have: &str) -> Result<()> {
    let mut have = have.to_owned();
    if have == "PendingDeletion" {
        cloud.kms.cancel_key_deletion().key_id(id).send().await.map_err(|e| api_error("kms:CancelKeyDeletion", e))?;
        have = "Disabled".into();
    }
    match (want, have.as_str()) {
        ("Enabled", "Disabled") => {
            cloud.kms.enable_key().key_id(id).send().await.map_err(|e| api_error("kms:EnableKey", e))?;
        }
        ("Disabled", "Enabled") => {
            cloud.kms.disable_key().key_id(id).send().await.map_err(|e| api_error("kms:DisableKey", e))?;
        }
        _ => {}
    }
    Ok(())
}

fn unexpected(operation: &'static str, message: &str) -> ProviderError {
    ProviderError::Unexpected { operation, message: message.to_owned() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_generated_key_policy_is_clean_by_lint() {
        let policy = generated_policy(&Generated {
            signers: vec!["arn:aws:iam::111122223333:role/signer".into()],
            ..Default::default()
        });
        let attrs = serde_json::json!({"policy": policy}).as_object().unwrap().clone();
        let findings = keyrite_core::lint::check("aws_kms_key", &attrs, &keyrite_core::lint::Context::default());
        assert_eq!(findings, Vec::new());
    }

    #[test]
    fn generated_policy_limits_signing_to_ecdsa_sha256_and_source_ips() {
        let p = generated_policy(&Generated {
            admins: vec!["arn:aws:iam::1:role/admin".into()],
            signers: vec!["arn:aws:iam::1:role/signer".into()],
            source_ips: vec!["203.0.113.0/24".into()],
            require_mfa: true,
            ..Default::default()
        });
        let sign = &p["Statement"][1];
        assert_eq!(sign["Action"], "kms:Sign");
        assert_eq!(sign["Condition"]["StringEquals"]["kms:SigningAlgorithm"], "ECDSA_SHA_256");
        assert_eq!(sign["Condition"]["IpAddress"]["aws:SourceIp"], json!(["203.0.113.0/24"]));
        assert_eq!(sign["Condition"]["Bool"]["aws:MultiFactorAuthPresent"], "true");
        let admin = &p["Statement"][0];
        assert!(!admin["Action"].as_array().unwrap().iter().any(|a| a == "kms:Sign" || a == "kms:*"));
    }

    #[test]
    fn a_gated_recovery_key_lets_the_gate_sign_and_break_glass_only_with_mfa() {
        let p = generated_policy(&Generated {
            admins: vec!["arn:aws:iam::1:role/admin".into()],
            gate: Some("arn:aws:iam::1:role/gate".into()),
            break_glass: vec!["arn:aws:iam::1:user/officer".into()],
            require_mfa: true,
            ..Default::default()
        });
        let statements = p["Statement"].as_array().unwrap();
        let sid = |s: &str| statements.iter().find(|x| x["Sid"] == s).unwrap_or_else(|| panic!("{p:#}"));
        let gate = sid("AllowQuorumGateSigning");
        assert_eq!(
            (&gate["Principal"]["AWS"], &gate["Action"]),
            (&json!("arn:aws:iam::1:role/gate"), &json!("kms:Sign"))
        );
        assert_eq!(gate["Condition"], json!({"StringEquals": {"kms:SigningAlgorithm": "ECDSA_SHA_256"}}));
        let glass = sid("AllowBreakGlassSigning");
        assert_eq!(glass["Principal"]["AWS"], json!(["arn:aws:iam::1:user/officer"]));
        assert_eq!(glass["Condition"]["Bool"]["aws:MultiFactorAuthPresent"], "true");
        assert_eq!(
            sid("AllowPublicKeyRead")["Principal"]["AWS"],
            json!(["arn:aws:iam::1:role/gate", "arn:aws:iam::1:user/officer"])
        );
        assert_eq!(statements.len(), 4);
    }

    #[test]
    fn generated_policy_defaults_admin_to_account_root_and_omits_signing_without_signers() {
        let p = generated_policy(&Generated::default());
        assert_eq!(p["Statement"][0]["Principal"]["AWS"], json!(["arn:${aws.partition}:iam::${aws.account_id}:root"]));
        assert_eq!(p["Statement"].as_array().unwrap().len(), 1);
    }
}

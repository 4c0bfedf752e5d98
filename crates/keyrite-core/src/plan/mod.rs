//! Plans: what apply will do, as a value.
//!
//! [`build`] is pure: given the manifest, the state and what a refresh observed in the cloud,
//! it decides per resource whether to create, update, replace, delete or leave it, with
//! attribute-level changes. Apply reads only the plan, never the manifest again, so a plan
//! saved with `--out` is exactly what runs. A plan records the state's lineage and serial;
//! apply refuses it once the state has moved on.

pub mod drift;
pub mod permissions;

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use crate::manifest::{Attrs, AwsConfig, GcpConfig, Manifest, REFS_KEY, Reference, StateConfig, refs};
use crate::rotation::{Phase, RotationPlan};
use crate::schema::{self, Compare, Live, OnChange, Schema, Schemas};
use crate::state::{ResourceState, State};

/// Saved plan format version.
pub const PLAN_FORMAT: u32 = 1;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    NoOp,
    /// Found in the cloud, created by an interrupted apply: record it, create nothing.
    Adopt,
    Create,
    Update,
    Replace,
    Delete,
}

impl Action {
    /// The symbol used in human output.
    pub fn symbol(self) -> &'static str {
        match self {
            Action::NoOp => " ",
            Action::Adopt => "<=",
            Action::Create => "+",
            Action::Update => "~",
            Action::Replace => "-/+",
            Action::Delete => "-",
        }
    }
}

/// One attribute that differs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AttrChange {
    pub name: String,
    /// The live (or, for state-only attributes, recorded) value; None when absent.
    pub before: Option<Json>,
    /// The desired value; None while it depends on a resource not created yet.
    pub after: Option<Json>,
    pub forces_replacement: bool,
    /// Statement-level explanation for policy attributes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub detail: Vec<String>,
}

impl AttrChange {
    /// True when the new value is only known after apply.
    pub fn unknown(&self) -> bool {
        self.after.is_none()
    }
}

/// What will happen to one resource.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ResourceChange {
    pub address: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub action: Action,
    /// Why, when not obvious from the attributes (e.g. "deleted outside keyrite").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Set when this change is dangerous (a key replacement or deletion); apply needs a flag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hazard: Option<String>,
    pub changes: Vec<AttrChange>,
    /// Desired attributes, references unresolved (resolved at apply). None for deletes.
    pub desired: Option<Attrs>,
    /// What the refresh saw, when the resource exists.
    pub live: Option<Attrs>,
    /// The state entry before this plan.
    pub prior: Option<ResourceState>,
    pub depends_on: BTreeSet<String>,
}

/// Whether the plan converges on the manifest or tears everything down.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    Apply,
    Destroy,
}

/// A complete plan.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub format_version: u32,
    pub keyrite_version: String,
    pub mode: Mode,
    pub created_at: String,
    pub lineage: String,
    /// The state serial the plan was made against; None when there was no state yet.
    pub base_serial: Option<u64>,
    pub manifest_path: String,
    pub manifest_sha256: String,
    pub aws: AwsConfig,
    #[serde(default)]
    pub gcp: GcpConfig,
    pub state: StateConfig,
    /// Values of `${aws.*}` at plan time.
    pub builtins: BTreeMap<String, String>,
    /// Who the plan acts as.
    #[serde(default, skip_serializing_if = "Identity::is_empty")]
    pub identity: Identity,
    /// Set when the manifest runs ceremonies: the plan needs approvals to be applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ceremony: Option<crate::manifest::CeremonyConfig>,
    /// Set for a rotation plan (`keyrite rotate`): the key it rotates and the enrolment to follow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotation: Option<crate::rotation::RotationPlan>,
    /// Signers whose keys are older than their `rotation.every`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rotations_due: Vec<crate::rotation::Due>,
    pub changes: Vec<ResourceChange>,
    /// The permissions the changes need, as checked at plan time.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub permissions: Vec<PermissionCheck>,
    /// Lint findings the manifest accepts, with its reasons; shown on every run.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed: Vec<AllowedFinding>,
    /// Reasons the plan cannot be applied. A plan with errors is never saved or applied.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<PlanError>,
}

/// Something that stops a plan from being applied, found before any change is made.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanError {
    /// The resource it concerns, if one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    pub message: String,
    /// How to proceed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

/// A lint finding the manifest accepts on purpose.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllowedFinding {
    pub rule: String,
    pub resource: String,
    pub message: String,
    pub reason: String,
}

/// Who the plan acts as, per cloud the manifest uses. Approvers approve a plan for these
/// principals; apply refuses a saved plan when the caller is someone else.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// The AWS caller's ARN (`sts:GetCallerIdentity`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws: Option<String>,
    /// The Google principal, as IAM names members (`serviceAccount:…`, `user:…`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gcp: Option<String>,
}

impl Identity {
    pub fn is_empty(&self) -> bool {
        self.aws.is_none() && self.gcp.is_none()
    }
}

/// What the cloud said about one permission the plan needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Granted,
    Missing,
    /// No read-only check was possible; `note` says why.
    Unchecked,
}

/// One permission the plan needs, on one resource.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PermissionCheck {
    /// `kms:CreateAlias`, `cloudkms.cryptoKeys.create`, …
    pub permission: String,
    /// The ARN or resource name it was checked on (`*` before the resource exists).
    pub resource: String,
    /// The plan's resources that need it.
    pub needed_by: Vec<String>,
    pub verdict: Verdict,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// Counts for the summary line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub adopt: usize,
    pub create: usize,
    pub update: usize,
    pub replace: usize,
    pub delete: usize,
}

/// Why a saved plan file cannot be applied or approved.
#[derive(Debug, thiserror::Error)]
pub enum SavedPlanError {
    #[error("{path} is not a keyrite plan: {source}")]
    NotAPlan { path: String, source: serde_json::Error },
    #[error("plan {path} has format version {found}; this keyrite applies version {PLAN_FORMAT}")]
    Version { path: String, found: u32 },
}

impl Plan {
    /// A plan saved with `plan --out`, as its bytes were read (approvals sign those bytes).
    pub fn from_saved(path: &std::path::Path, bytes: &[u8]) -> Result<Plan, SavedPlanError> {
        let path = || path.display().to_string();
        let plan: Plan =
            serde_json::from_slice(bytes).map_err(|source| SavedPlanError::NotAPlan { path: path(), source })?;
        if plan.format_version != PLAN_FORMAT {
            return Err(SavedPlanError::Version { path: path(), found: plan.format_version });
        }
        Ok(plan)
    }

    fn new(
        mode: Mode,
        manifest: &Manifest,
        lineage: String,
        base_serial: Option<u64>,
        observed: &Observed,
        created_at: String,
        changes: Vec<ResourceChange>,
    ) -> Plan {
        Plan {
            format_version: PLAN_FORMAT,
            keyrite_version: env!("CARGO_PKG_VERSION").into(),
            mode,
            created_at,
            lineage,
            base_serial,
            manifest_path: manifest.path.display().to_string(),
            manifest_sha256: manifest.sha256.clone(),
            aws: manifest.aws.clone(),
            gcp: manifest.gcp.clone(),
            state: manifest.state.clone(),
            builtins: observed.builtins.clone(),
            identity: observed.identity.clone(),
            ceremony: manifest.ceremony.clone(),
            rotation: None,
            rotations_due: Vec::new(),
            changes,
            permissions: Vec::new(),
            allowed: Vec::new(),
            errors: Vec::new(),
        }
    }

    pub fn has_changes(&self) -> bool {
        self.changes.iter().any(|c| c.action != Action::NoOp)
    }

    pub fn summary(&self) -> Summary {
        let mut s = Summary::default();
        for c in &self.changes {
            match c.action {
                Action::Adopt => s.adopt += 1,
                Action::Create => s.create += 1,
                Action::Update => s.update += 1,
                Action::Replace => s.replace += 1,
                Action::Delete => s.delete += 1,
                Action::NoOp => {}
            }
        }
        s
    }

    /// Changes that need an explicit flag to apply.
    pub fn hazards(&self) -> impl Iterator<Item = &ResourceChange> {
        self.changes.iter().filter(|c| c.hazard.is_some())
    }
}

/// Everything `build` needs besides the manifest and the state.
#[derive(Clone, Debug, Default)]
pub struct Observed {
    /// The lineage a plan without a state will give the new state; empty: a fresh one.
    pub lineage: String,
    /// Per state address: what a read found (None: the resource is gone).
    pub live: BTreeMap<String, Option<Live>>,
    /// `${aws.account_id}`, `${aws.region}`, `${aws.partition}`.
    pub builtins: BTreeMap<String, String>,
    /// Who the refresh ran as.
    pub identity: Identity,
    /// Resources found in the cloud that the plan records instead of creating: made by an
    /// interrupted apply (ownership tags or unique name), or holding a declared name and
    /// this state's ownership marks.
    pub adopted: BTreeMap<String, Adopted>,
    /// Declared names already taken by resources this state does not own.
    pub conflicts: BTreeMap<String, Conflict>,
    /// `import:` ids that cannot be imported, and why.
    pub import_errors: BTreeMap<String, PlanError>,
}

/// A resource the plan adopts.
#[derive(Clone, Debug)]
pub struct Adopted {
    pub id: String,
    pub live: Live,
    /// How it was found, for the plan's reason line.
    pub why: String,
    /// Named by the manifest's `import:`: never replaced.
    pub imported: bool,
    /// For an import: where the manifest names it (`file:line:col: `), for plan errors.
    pub at: String,
}

/// A declared name someone else's resource holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conflict {
    pub id: String,
    /// What exists, e.g. "alias/treasury → key 1234abcd…".
    pub what: String,
}

impl Observed {
    /// The lineage for a plan: the state's, else the one the refresh chose, else a new one.
    pub fn lineage_for(&self, state: Option<&State>) -> String {
        match state {
            Some(s) => s.lineage.clone(),
            None if !self.lineage.is_empty() => self.lineage.clone(),
            None => uuid::Uuid::new_v4().to_string(),
        }
    }
}

/// Plans the changes that bring the cloud to the manifest.
pub fn build(manifest: &Manifest, state: Option<&State>, observed: &Observed, created_at: String) -> Plan {
    let mut plan = converge(manifest, state, observed, created_at.clone());
    if let Some(s) = state {
        plan.rotations_due = crate::rotation::due(&manifest.signers, s, &created_at);
    }
    let unfinished = state.into_iter().flat_map(|s| &s.rotations).filter(|r| r.phase == Phase::Applying);
    for r in unfinished {
        plan.errors.push(PlanError {
            address: Some(r.key.clone()),
            message: format!(
                "the rotation of {} (signer {}) to generation {} was interrupted before its new key was recorded",
                r.key, r.signer, r.generation
            ),
            hint: Some(format!(
                "continue it with `keyrite rotate {} --out rotation.plan`, approve, and apply that plan",
                r.signer
            )),
        });
    }
    plan
}

/// Plans a rotation of `rotation.key`: a new key (a new address, the next generation) with
/// everything that refers to it moved over, the old key left as it is. For a rotation an
/// interrupted apply started, the plan continues it: the new key it may have made is adopted.
pub fn build_rotation(
    manifest: &Manifest,
    state: &State,
    observed: &Observed,
    created_at: String,
    rotation: RotationPlan,
) -> Plan {
    let mut after = state.clone();
    let mut observed = observed.clone();
    if !rotation.continuing {
        after.resources.remove(&rotation.key);
        after.generations.insert(rotation.key.clone(), rotation.generation);
        observed.live.remove(&rotation.key);
    }
    let mut plan = converge(manifest, Some(&after), &observed, created_at);
    plan.base_serial = Some(state.serial);
    for c in plan.changes.iter_mut().filter(|c| c.address == rotation.key) {
        let grace = crate::rotation::format_duration(rotation.grace_seconds);
        let note = format!(
            "rotation to generation {}: a NEW KEY WITH A NEW ADDRESS for signer {}; the old key {} ({}) stays enabled, \
             and signs, until `keyrite rotate {} --finish` after a grace period of {grace}",
            rotation.generation, rotation.signer, rotation.replaces_id, rotation.replaces_address, rotation.signer
        );
        c.reason = Some(match c.reason.take() {
            Some(r) => format!("{r}; {note}"),
            None => note,
        });
    }
    plan.rotation = Some(rotation);
    plan
}

fn converge(manifest: &Manifest, state: Option<&State>, observed: &Observed, created_at: String) -> Plan {
    let lineage = observed.lineage_for(state);
    let empty = BTreeMap::new();
    let prior_resources = state.map(|s| &s.resources).unwrap_or(&empty);
    let mut known = Outputs::new(&observed.builtins);
    let mut changes = Vec::new();
    let mut errors = Vec::new();
    for spec in &manifest.resources {
        let Some(kind) = manifest.schemas.get(&spec.kind) else { continue };
        if let Some(e) = observed.import_errors.get(&spec.name) {
            // Nothing is known of what the import names: the plan promises nothing for it.
            errors.push(e.clone());
            continue;
        }
        let template = with_ownership(kind, &spec.desired, &lineage, &spec.name, generation(state, &spec.name));
        let adopted = observed.adopted.get(&spec.name);
        // An import carrying another state's marks belongs to that state. A new state may
        // continue a lost one's lineage (see `continue_lineage`), but only at the same address.
        let marked = |mark| adopted.and_then(|a| schema::ownership_mark(kind, &a.live.attrs, mark));
        let readdressed = state.is_none() && marked(schema::Mark::Address).is_some_and(|m| m != spec.name);
        if let Some(a) = adopted.filter(|a| a.imported)
            && let Some(other) = marked(schema::Mark::Lineage)
            && !other.is_empty()
            && (other != lineage || readdressed)
        {
            let by = marked(schema::Mark::Address).map(|addr| format!(" as {addr}")).unwrap_or_default();
            errors.push(PlanError {
                address: Some(spec.name.clone()),
                message: format!(
                    "{}{}: import {}: it belongs to another keyrite state (lineage {other}{by})",
                    a.at, spec.name, a.id
                ),
                hint: Some(
                    "a resource is managed by one state: plan it there, or, if that state is gone for good, \
                     remove the keyrite:lineage and keyrite:address tags by hand first"
                        .into(),
                ),
            });
            continue;
        }
        let old_live = matches!(observed.live.get(&spec.name), Some(Some(_)));
        if let (Some(_), Some(old), true) = (adopted, prior_resources.get(&spec.name), old_live) {
            // An interrupted replacement: the new resource exists and is adopted below; the
            // old one still has to go, as the replacement would have done.
            let mut finish = delete_change(
                manifest.schemas,
                &format!("{}#replaced", spec.name),
                old,
                observed.live.get(&spec.name).cloned().flatten(),
            );
            finish.reason = Some(format!("the old {} {} left by an interrupted replacement", spec.kind, old.id));
            changes.push(finish);
        }
        let prior = adopted
            .map(|a| ResourceState {
                kind: spec.kind.clone(),
                id: a.id.clone(),
                // An adoption takes what the cloud cannot show (a deletion window) as declared.
                attrs: schema::with_state_only(kind, &a.live.attrs, &template),
                outputs: a.live.outputs.clone(),
                depends_on: spec.depends_on.clone(),
                updated_at: created_at.clone(),
            })
            .or_else(|| prior_resources.get(&spec.name).filter(|p| p.kind == spec.kind).cloned());
        let live = match adopted {
            Some(a) => Some(a.live.clone()),
            None => prior.as_ref().and_then(|_| observed.live.get(&spec.name).cloned().flatten()),
        };
        let (desired, unknown) = resolve(&template, &known);
        let mut change = ResourceChange {
            address: spec.name.clone(),
            kind: spec.kind.clone(),
            action: Action::Create,
            reason: None,
            hazard: None,
            changes: Vec::new(),
            desired: Some(template),
            live: live.as_ref().map(|l| l.attrs.clone()),
            prior: prior.clone(),
            depends_on: spec.depends_on.clone(),
        };
        match (&prior, &live) {
            (Some(p), Some(l)) => {
                change.changes = diff_attrs(kind, &desired, &unknown, &l.attrs, Some(&p.attrs));
                change.action = if change.changes.iter().any(|c| c.forces_replacement) {
                    change.hazard = kind.replacement_hazard().map(str::to_owned);
                    Action::Replace
                } else if change.changes.is_empty() {
                    if adopted.is_some() { Action::Adopt } else { Action::NoOp }
                } else {
                    Action::Update
                };
                if let Some(a) = adopted {
                    change.reason = Some(a.why.clone());
                }
                // What an import found has no record of how it was made: judge against that.
                let before = adopted.filter(|a| a.imported).map_or(&p.attrs, |a| &a.live.attrs);
                if change.action == Action::Update
                    && let Some(note) = kind.change_note(before, &desired)
                {
                    change.reason = Some(match change.reason.take() {
                        Some(r) => format!("{r}; {note}"),
                        None => note,
                    });
                }
                if change.action != Action::Replace {
                    known.insert(&spec.name, merged_outputs(&l.outputs, &p.outputs));
                }
            }
            (Some(_), None) => {
                change.reason = Some("deleted outside keyrite; it will be created again".into());
                change.changes = creation_attrs(kind, &desired, &unknown);
                if let Some(h) = kind.replacement_hazard() {
                    change.hazard = Some(format!("the recorded resource is gone; {h}"));
                }
            }
            (None, _) => change.changes = creation_attrs(kind, &desired, &unknown),
        }
        if adopted.is_some_and(|a| a.imported) && change.action == Action::Replace {
            let forced: Vec<String> = change
                .changes
                .iter()
                .filter(|c| c.forces_replacement)
                .map(|c| format!("{}: {} → {}", c.name, short(&c.before), short(&c.after)))
                .collect();
            let id = adopted.map(|a| a.id.as_str()).unwrap_or_default();
            errors.push(PlanError {
                address: Some(spec.name.clone()),
                message: format!(
                    "importing {id} as {} would replace it ({}); keyrite never replaces an imported resource{}",
                    spec.name,
                    forced.join(", "),
                    kind.replacement_hazard().map(|h| format!(": {h}")).unwrap_or_default()
                ),
                hint: Some(format!("declare {} as it exists, or import another resource", spec.name)),
            });
        }
        if let Some(c) = observed.conflicts.get(&spec.name) {
            errors.push(PlanError {
                address: Some(spec.name.clone()),
                message: format!("{} cannot be created: {} already exists, and this state did not create it", spec.name, c.what),
                hint: Some(format!(
                    "keyrite never takes over what it did not make: choose another name for {}, or remove or rename {} by hand",
                    spec.name, c.id
                )),
            });
        }
        changes.push(change);
    }
    let declared: BTreeSet<&str> = manifest.resources.iter().map(|r| r.name.as_str()).collect();
    for address in delete_order(prior_resources, &declared) {
        let prior = &prior_resources[&address];
        changes.push(delete_change(manifest.schemas, &address, prior, observed.live.get(&address).cloned().flatten()));
    }
    let mut plan = Plan::new(Mode::Apply, manifest, lineage, state.map(|s| s.serial), observed, created_at, changes);
    plan.errors = errors;
    plan
}

/// Plans the removal of everything in state (keys: scheduled deletion), dependents first.
pub fn build_destroy(manifest: &Manifest, state: &State, observed: &Observed, created_at: String) -> Plan {
    let everything = BTreeSet::new();
    let changes = delete_order(&state.resources, &everything)
        .into_iter()
        .map(|address| {
            delete_change(
                manifest.schemas,
                &address,
                &state.resources[&address],
                observed.live.get(&address).cloned().flatten(),
            )
        })
        .collect();
    Plan::new(Mode::Destroy, manifest, state.lineage.clone(), Some(state.serial), observed, created_at, changes)
}

fn delete_change(schemas: &Schemas, address: &str, prior: &ResourceState, live: Option<Live>) -> ResourceChange {
    let kind = schemas.get(&prior.kind);
    let gone = live.is_none();
    let hazard = kind.filter(|k| k.replacement_hazard().is_some() && !gone).map(|_| {
        let days = prior.attrs.get("deletion_window_days").and_then(Json::as_i64).unwrap_or(30);
        format!("schedules deletion of the key after a {days}-day window; its address stops signing")
    });
    ResourceChange {
        address: address.to_owned(),
        kind: prior.kind.clone(),
        action: Action::Delete,
        reason: if gone {
            Some("already gone from the cloud; only the state entry is removed".into())
        } else {
            kind.and_then(|k| k.deletion_note()).map(str::to_owned)
        },
        hazard,
        changes: Vec::new(),
        desired: None,
        live: live.map(|l| l.attrs),
        prior: Some(prior.clone()),
        depends_on: prior.depends_on.clone(),
    }
}

/// State entries not in `keep`, ordered so that dependents go before what they depend on.
fn delete_order(resources: &BTreeMap<String, ResourceState>, keep: &BTreeSet<&str>) -> Vec<String> {
    let nodes: Vec<(String, BTreeSet<String>)> = resources
        .iter()
        .filter(|(a, _)| !keep.contains(a.as_str()))
        .map(|(a, r)| (a.clone(), r.depends_on.clone()))
        .collect();
    let mut order = refs::topological_order(&nodes).unwrap_or_else(|_| nodes.iter().map(|(a, _)| a.clone()).collect());
    order.reverse();
    order
}

/// The desired attributes with keyrite's ownership marks added (see [`Kind::ownership`]),
/// and, past a key's first generation, its generation (in `tags`, where the kind has them).
pub fn with_ownership(kind: &dyn Schema, desired: &Attrs, lineage: &str, address: &str, generation: u32) -> Attrs {
    let mut attrs = desired.clone();
    if let Some((attr, mut marks)) = kind.ownership(lineage, address) {
        if generation > 1 && attr == "tags" {
            marks.push((crate::rotation::TAG_GENERATION, generation.to_string()));
        }
        let map = attrs.entry(attr).or_insert_with(|| Json::Object(Default::default()));
        if let Json::Object(map) = map {
            map.extend(marks.into_iter().map(|(k, v)| (k.to_owned(), Json::String(v))));
        }
    }
    attrs
}

/// A resource's generation in `state`: 1 unless it was rotated.
pub fn generation(state: Option<&State>, address: &str) -> u32 {
    state.and_then(|s| s.generations.get(address)).copied().unwrap_or(1)
}

/// Outputs known so far, by resource address, plus the `aws.*` builtins.
pub struct Outputs {
    values: BTreeMap<String, Attrs>,
}

impl Outputs {
    pub fn new(builtins: &BTreeMap<String, String>) -> Outputs {
        let aws = builtins.iter().map(|(k, v)| (k.clone(), Json::String(v.clone()))).collect();
        Outputs { values: BTreeMap::from([(refs::BUILTIN.to_owned(), aws)]) }
    }

    pub fn insert(&mut self, address: &str, outputs: Attrs) {
        self.values.insert(address.to_owned(), outputs);
    }

    pub fn lookup(&self, r: &Reference) -> Option<String> {
        self.values.get(&r.resource)?.get(&r.attribute)?.as_str().map(str::to_owned)
    }
}

/// Live outputs, with gaps (a disabled key has no readable public key) filled from state.
pub fn merged_outputs(live: &Attrs, prior: &Attrs) -> Attrs {
    let mut out = prior.clone();
    out.extend(live.iter().map(|(k, v)| (k.clone(), v.clone())));
    out
}

/// Resolves references in a desired-attribute template. Returns the attributes and the
/// names of those still depending on unknown outputs (left as written).
pub fn resolve(template: &Attrs, known: &Outputs) -> (Attrs, BTreeSet<String>) {
    let mut unknown = BTreeSet::new();
    let mut out = Attrs::new();
    for (name, value) in template {
        if name == REFS_KEY {
            continue;
        }
        let (v, complete) = resolve_value(value, known);
        if !complete {
            unknown.insert(name.clone());
        }
        out.insert(name.clone(), v);
    }
    (out, unknown)
}

fn resolve_value(value: &Json, known: &Outputs) -> (Json, bool) {
    match value {
        Json::String(s) => match refs::substitute(s, &|r| known.lookup(r)) {
            Some(v) => (Json::String(v), true),
            None => (value.clone(), false),
        },
        Json::Array(items) => {
            let mut complete = true;
            let items = items
                .iter()
                .map(|i| {
                    let (v, c) = resolve_value(i, known);
                    complete &= c;
                    v
                })
                .collect();
            (Json::Array(items), complete)
        }
        Json::Object(map) => {
            let mut complete = true;
            let map = map
                .iter()
                .map(|(k, v)| {
                    let (v, c) = resolve_value(v, known);
                    complete &= c;
                    (k.clone(), v)
                })
                .collect();
            (Json::Object(map), complete)
        }
        other => (other.clone(), true),
    }
}

/// Attribute changes between desired and live. State-only attributes compare against the
/// last-applied attributes instead of live.
pub fn diff_attrs(
    kind: &dyn Schema,
    desired: &Attrs,
    unknown: &BTreeSet<String>,
    live: &Attrs,
    prior: Option<&Attrs>,
) -> Vec<AttrChange> {
    let mut out = Vec::new();
    for spec in kind.attrs() {
        let want = desired.get(spec.name);
        let replace = spec.on_change == OnChange::Replace;
        if unknown.contains(spec.name) {
            out.push(AttrChange {
                name: spec.name.into(),
                before: live.get(spec.name).cloned(),
                after: None,
                forces_replacement: replace,
                detail: Vec::new(),
            });
            continue;
        }
        let have = match spec.compare {
            Compare::StateOnly => match prior {
                Some(p) => p.get(spec.name),
                None => continue,
            },
            _ => live.get(spec.name),
        };
        let (same, detail) = compare(spec.compare, have, want);
        if !same {
            out.push(AttrChange {
                name: spec.name.into(),
                before: have.cloned(),
                after: want.cloned(),
                forces_replacement: replace,
                detail,
            });
        }
    }
    out
}

/// For a resource about to be created: every attribute, with no `before`.
fn creation_attrs(kind: &dyn Schema, desired: &Attrs, unknown: &BTreeSet<String>) -> Vec<AttrChange> {
    kind.attrs()
        .iter()
        .filter_map(|spec| {
            let after = desired.get(spec.name).filter(|v| v.as_array().is_none_or(|a| !a.is_empty()))?;
            Some(AttrChange {
                name: spec.name.into(),
                before: None,
                after: (!unknown.contains(spec.name)).then(|| after.clone()),
                forces_replacement: false,
                detail: Vec::new(),
            })
        })
        .collect()
}

/// Compares an attribute's value `from` one side `to` the other; for policies by meaning,
/// with the statements that differ, described as `to` relative to `from` (a plan goes from
/// live to desired, drift from applied to live).
pub fn compare(mode: Compare, from: Option<&Json>, to: Option<&Json>) -> (bool, Vec<String>) {
    match (mode, from, to) {
        (Compare::Policy, Some(f), Some(t)) => match (crate::policy::Policy::parse(f), crate::policy::Policy::parse(t))
        {
            (Ok(f), Ok(t)) => {
                let d = crate::policy::diff(&f, &t);
                if d.is_empty() {
                    (true, Vec::new())
                } else {
                    (false, d.to_string().lines().map(str::to_owned).collect())
                }
            }
            _ => (f == t, Vec::new()),
        },
        _ => (from == to, Vec::new()),
    }
}

/// A value for a one-line message: a string as itself, anything else as JSON, absent as "-".
fn short(v: &Option<Json>) -> String {
    match v {
        Some(Json::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => "-".into(),
    }
}

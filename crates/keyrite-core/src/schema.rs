//! Resource schemas: what each kind of resource declares, compares and outputs, as data the
//! manifest validator, the planner, drift and lint read, the way Terraform reads a provider's
//! schema. The kinds themselves (with their cloud operations) live in the provider crates
//! above; the CLI hands the core a [`Schemas`] registry of them.

use std::collections::BTreeMap;

use serde_json::Value as Json;

use crate::manifest::{Attrs, Block, Validation};

/// How two values of an attribute are compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compare {
    /// JSON equality.
    Exact,
    /// IAM policy equivalence: by meaning, not bytes (see [`crate::policy`]).
    Policy,
    /// Recorded in state and used by keyrite (e.g. a deletion window), but not readable from
    /// the cloud, so never compared against live state.
    StateOnly,
}

/// What a change to an attribute costs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnChange {
    Update,
    /// The resource must be destroyed and created again.
    Replace,
}

/// One attribute of a kind.
#[derive(Clone, Copy, Debug)]
pub struct AttrSpec {
    pub name: &'static str,
    pub compare: Compare,
    pub on_change: OnChange,
}

impl AttrSpec {
    pub const fn update(name: &'static str) -> AttrSpec {
        AttrSpec { name, compare: Compare::Exact, on_change: OnChange::Update }
    }
    pub const fn replace(name: &'static str) -> AttrSpec {
        AttrSpec { name, compare: Compare::Exact, on_change: OnChange::Replace }
    }
    pub const fn policy(name: &'static str) -> AttrSpec {
        AttrSpec { name, compare: Compare::Policy, on_change: OnChange::Update }
    }
    pub const fn state_only(name: &'static str) -> AttrSpec {
        AttrSpec { name, compare: Compare::StateOnly, on_change: OnChange::Update }
    }
}

/// What a read found in the cloud.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Live {
    /// The comparable attributes, in the same shape as desired attributes.
    pub attrs: Attrs,
    /// Values other resources may reference (ARN, key id, public key…).
    pub outputs: Attrs,
}

/// Which cloud operation a permission list is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Read,
    Create,
    Update,
    Delete,
}

/// True while a desired value still holds a reference to a resource not created yet: a
/// name that depends on a new resource cannot already be taken.
pub fn unresolved(value: &str) -> bool {
    value.contains("${")
}

/// What a kind of resource is, without its cloud: its manifest block, attributes and how
/// they compare, outputs, ownership marks, import forms and the permissions its operations
/// need. Every provider kind implements it.
pub trait Schema: Send + Sync {
    /// The `type:` written in manifests, e.g. `aws_kms_key`.
    fn name(&self) -> &'static str;
    /// Attributes keyrite manages, in display order.
    fn attrs(&self) -> &'static [AttrSpec];
    /// Attributes other resources may reference.
    fn outputs(&self) -> &'static [&'static str];
    /// Set for kinds whose replacement is dangerous; the text says why.
    fn replacement_hazard(&self) -> Option<&'static str> {
        None
    }
    /// Where and how the kind carries keyrite's ownership marks: the map attribute and the
    /// entries to add. Default: `keyrite:lineage` and `keyrite:address` in `tags`, for kinds
    /// that have tags.
    fn ownership(&self, lineage: &str, address: &str) -> Option<(&'static str, Vec<(&'static str, String)>)> {
        let marks = vec![(TAG_LINEAGE, lineage.to_owned()), (TAG_ADDRESS, address.to_owned())];
        self.attrs().iter().any(|a| a.name == "tags").then_some(("tags", marks))
    }
    /// Set for kinds whose delete does something other than delete; the plan shows it.
    fn deletion_note(&self) -> Option<&'static str> {
        None
    }
    /// Set for kinds that are only declared inside another kind's block; names where.
    fn declared_under(&self) -> Option<&'static str> {
        None
    }
    /// Validates the manifest block into desired attributes (strings may hold references).
    fn desired(&self, name: &str, block: &mut Block<'_>, cx: &mut Validation) -> Attrs;
    /// The manifest fields (without `type:` and `import:`) that declare `live` as it is, for
    /// `keyrite discover`, so that a plan of them shows no change. `refer` turns an id or ARN
    /// into a `${…}` reference when what it names is declared too. Default: the kind is not
    /// discovered.
    fn declare(&self, live: &Live, refer: &dyn Fn(&str) -> Option<String>) -> Option<Json> {
        let _ = (live, refer);
        None
    }
    /// A sentence the plan shows for an update from `before` (the recorded or imported
    /// attributes) to `desired`, when the change deserves one. Default: none.
    fn change_note(&self, before: &Attrs, desired: &Attrs) -> Option<String> {
        let _ = (before, desired);
        None
    }
    /// Checks the form of an `import:` id, before any call: `Err` says why it cannot name a
    /// resource of this kind (an ARN of another service, say). Default: any id.
    fn check_import(&self, given: &str) -> std::result::Result<(), String> {
        let _ = given;
        Ok(())
    }
    /// The id an `import:` names, in the form `read` takes. Default: as given.
    fn import_lookup(&self, given: &str) -> String {
        given.to_owned()
    }
    /// The id the state records for an imported resource, from what its read found (a key's
    /// id when the import named its alias, say). Default: the looked-up id.
    fn import_id(&self, looked_up: &str, live: &Live) -> String {
        let _ = live;
        looked_up.to_owned()
    }
    /// Brings attributes an older keyrite recorded in the state to their current shape (an
    /// attribute it did not read yet, a boolean that became a list), so that drift compares
    /// like with like. Default: as recorded.
    fn upgrade_recorded(&self, attrs: &mut Attrs) {
        let _ = attrs;
    }
    /// The permissions an operation of this kind needs, as the cloud names them
    /// (`kms:CreateAlias`, `cloudkms.cryptoKeys.create`), for the plan's permission check.
    fn permissions(&self, op: Op) -> &'static [&'static str];
}

/// The kinds a manifest may declare, by `type:` name.
pub struct Schemas {
    kinds: Vec<&'static dyn Schema>,
    /// Clouds this build leaves out: their kinds' name prefix and the cargo feature that
    /// builds them in.
    absent: Vec<(&'static str, &'static str)>,
}

impl std::fmt::Debug for Schemas {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.names()).finish()
    }
}

impl PartialEq for Schemas {
    fn eq(&self, other: &Schemas) -> bool {
        self.names() == other.names()
    }
}

impl Schemas {
    pub fn new(kinds: impl IntoIterator<Item = &'static dyn Schema>) -> Schemas {
        Schemas { kinds: kinds.into_iter().collect(), absent: Vec::new() }
    }

    /// Marks the kinds named `prefix…` as a cloud this build leaves out, so that a manifest
    /// naming one is told which cargo `feature` builds it in.
    pub fn leaving_out(mut self, prefix: &'static str, feature: &'static str) -> Schemas {
        self.absent.push((prefix, feature));
        self
    }

    /// The cargo feature a kind of a cloud this build leaves out needs.
    pub fn feature_left_out(&self, name: &str) -> Option<&'static str> {
        self.absent.iter().find(|(prefix, _)| name.starts_with(prefix)).map(|(_, feature)| *feature)
    }

    /// The kind with this manifest name.
    pub fn get(&self, name: &str) -> Option<&'static dyn Schema> {
        self.kinds.iter().copied().find(|k| k.name() == name)
    }

    /// All kind names, for error messages and docs.
    pub fn names(&self) -> Vec<&'static str> {
        self.kinds.iter().map(|k| k.name()).collect()
    }
}

/// Tags keyrite puts on everything it creates, so that an auditor (and keyrite itself, after
/// a crash) can tell which state and which manifest entry a cloud resource belongs to.
pub const TAG_LINEAGE: &str = "keyrite:lineage";
pub const TAG_ADDRESS: &str = "keyrite:address";

/// True when `tags` carry the same keyrite ownership tags as `desired`, generation included
/// (a rotated key's new generation is never taken for the old one).
pub fn owned_by(desired: &Attrs, tags: &BTreeMap<String, String>) -> bool {
    let want = map_attr(desired, "tags");
    let generation = crate::rotation::TAG_GENERATION;
    [TAG_LINEAGE, TAG_ADDRESS].iter().all(|k| want.contains_key(*k) && want.get(*k) == tags.get(*k))
        && want.get(generation) == tags.get(generation)
}

/// Reads a string attribute.
pub fn str_attr<'a>(attrs: &'a Attrs, name: &str) -> &'a str {
    attrs.get(name).and_then(Json::as_str).unwrap_or_default()
}

/// Reads a string-map attribute (tags).
pub fn map_attr(attrs: &Attrs, name: &str) -> BTreeMap<String, String> {
    attrs
        .get(name)
        .and_then(Json::as_object)
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned())).collect())
        .unwrap_or_default()
}

/// Converts a string map to a JSON attribute value.
pub fn map_json(map: &BTreeMap<String, String>) -> Json {
    Json::Object(map.iter().map(|(k, v)| (k.clone(), Json::String(v.clone()))).collect())
}

/// Tags to add or change, and tag keys to remove, to go from `live` to `desired`.
pub fn tag_delta(desired: &Attrs, live: &Attrs) -> (BTreeMap<String, String>, Vec<String>) {
    let (want, have) = (map_attr(desired, "tags"), map_attr(live, "tags"));
    let set = want.iter().filter(|(k, v)| have.get(*k) != Some(*v)).map(|(k, v)| (k.clone(), v.clone())).collect();
    let unset = have.keys().filter(|k| !want.contains_key(*k)).cloned().collect();
    (set, unset)
}

/// For [`Schema::declare`]: a string attribute of `live`, as a reference when `refer` knows it.
pub fn declared_ref(live: &Attrs, name: &str, refer: &dyn Fn(&str) -> Option<String>) -> Json {
    let value = str_attr(live, name);
    Json::String(refer(value).unwrap_or_else(|| value.to_owned()))
}

/// For [`Schema::declare`]: the `tags` (or `labels`) of `live` without keyrite's own marks;
/// None when nothing is left.
pub fn declared_tags(live: &Attrs, name: &str) -> Option<Json> {
    let tags: serde_json::Map<String, Json> = live
        .get(name)
        .and_then(Json::as_object)
        .into_iter()
        .flatten()
        .filter(|(k, _)| !k.starts_with("keyrite:") && !k.starts_with("keyrite-"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    (!tags.is_empty()).then_some(Json::Object(tags))
}

/// What the cloud shows, plus the values of the attributes it cannot show (state-only ones,
/// such as a deletion window or a slot) taken from `recorded` (declared or last applied).
pub fn with_state_only(kind: &dyn Schema, live: &Attrs, recorded: &Attrs) -> Attrs {
    let mut attrs = live.clone();
    for spec in kind.attrs().iter().filter(|a| a.compare == Compare::StateOnly) {
        if let Some(v) = recorded.get(spec.name) {
            attrs.insert(spec.name.to_owned(), v.clone());
        }
    }
    attrs
}

/// Which of keyrite's ownership marks ([`Schema::ownership`]) to read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mark {
    Lineage,
    Address,
}

/// The ownership mark `attrs` (live attributes of a `kind`) carry, if any.
pub fn ownership_mark<'a>(kind: &dyn Schema, attrs: &'a Attrs, mark: Mark) -> Option<&'a str> {
    let (attr, marks) = kind.ownership("", "")?;
    let key = marks.get(mark as usize)?.0;
    attrs.get(attr)?.get(key)?.as_str().filter(|v| !v.is_empty())
}

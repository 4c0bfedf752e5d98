//! Resource kinds: the only place keyrite talks to a cloud.
//!
//! Each kind lives in one file and implements [`Kind`]: how its manifest block validates into
//! desired attributes, which attributes exist and how they compare, and the four cloud
//! operations (read, create, update, delete). The planner, the drift checker and the apply
//! executor are generic over this trait, so adding a resource kind means adding one file and
//! one line in [`KINDS`].

pub mod aws;
pub mod gcp;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use serde_json::Value as Json;

use crate::manifest::{Attrs, AwsConfig, Block, GcpConfig, Validation};

/// Both clouds' clients, and one log of every API call made through them.
#[derive(Debug)]
pub struct Cloud {
    pub aws: aws::Aws,
    pub gcp: gcp::Gcp,
    /// How keyrite proves that a converged apply makes no mutating calls.
    pub calls: Arc<CallLog>,
}

impl Cloud {
    /// Prepares clients from the environment and the manifest's `provider:` settings. Nothing
    /// is sent until a kind needs it, so a manifest for one cloud needs no settings for the
    /// other.
    pub async fn connect(aws: &AwsConfig, gcp: &GcpConfig) -> Cloud {
        let calls = Arc::new(CallLog::default());
        Cloud {
            aws: aws::Aws::connect(aws, calls.clone()).await,
            gcp: gcp::Gcp::new(gcp.clone(), calls.clone()),
            calls,
        }
    }
}

/// Counts of API calls per `Service.Operation`.
#[derive(Debug, Default)]
pub struct CallLog {
    calls: Mutex<BTreeMap<String, u64>>,
}

impl CallLog {
    /// Counts one call.
    pub fn record(&self, key: String) {
        if let Ok(mut calls) = self.calls.lock() {
            *calls.entry(key).or_default() += 1;
        }
    }

    /// Calls so far, by `Service.Operation`.
    pub fn snapshot(&self) -> BTreeMap<String, u64> {
        self.calls.lock().map(|c| c.clone()).unwrap_or_default()
    }

    /// Calls whose operation can change something (anything not Get/List/Describe).
    pub fn mutating(&self) -> u64 {
        self.snapshot().iter().filter(|(op, _)| is_mutating(op)).map(|(_, n)| n).sum()
    }
}

/// True for operations that may change cloud state. Permission checks (IAM's
/// `SimulatePrincipalPolicy`, Cloud KMS's `testIamPermissions`) only read.
pub fn is_mutating(op: &str) -> bool {
    let name = op.rsplit('.').next().unwrap_or(op);
    !["Get", "List", "Describe", "Simulate", "TestIamPermissions"].iter().any(|p| name.starts_with(p))
}

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

/// A resource that was just created.
#[derive(Clone, Debug, PartialEq)]
pub struct Created {
    /// The identifier keyrite stores to find the resource again.
    pub id: String,
    pub outputs: Attrs,
}

/// Options that gate destructive operations.
#[derive(Clone, Copy, Debug, Default)]
pub struct DeleteOptions {
    /// Keys may be scheduled for deletion (never deleted outright).
    pub allow_key_deletion: bool,
}

/// What a delete did; keys are scheduled, not removed.
#[derive(Clone, Debug, PartialEq)]
pub enum Deleted {
    Removed,
    /// Scheduled for deletion on this date (RFC 3339), after the deletion window. `note`,
    /// when set, says in full what was scheduled and what remains.
    Scheduled {
        deletion_date: String,
        note: Option<String>,
    },
    /// Nothing can be deleted (Cloud KMS key rings); the note says what remains.
    Retained {
        note: String,
    },
}

/// What already holds the unique name a resource would be created under. The plan asks
/// before it promises a create, so that apply never finds out halfway through.
#[derive(Clone, Debug, PartialEq)]
pub enum Occupant {
    /// Nothing: the create can go ahead.
    Free,
    /// A resource that carries this state's ownership marks (or is the declared one by
    /// nature, like a Cloud KMS key ring): the plan adopts it. `why` says how it was known.
    Ours { id: String, why: String },
    /// Someone else's: the plan fails, naming it. `what` describes what exists.
    Foreign { id: String, what: String },
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

/// An error from a cloud API, with the operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    #[error("{operation} failed: {code}: {message}{}", hint_suffix(operation, code, message))]
    Api { operation: &'static str, code: String, message: String },
    #[error("{0}")]
    Refused(String),
    #[error("{operation}: unexpected response: {message}")]
    Unexpected { operation: &'static str, message: String },
}

pub type Result<T> = std::result::Result<T, ProviderError>;

static VERBOSE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Makes cloud errors carry their SDK's full context (`keyrite -v`).
pub fn set_verbose(on: bool) {
    VERBOSE.store(on, std::sync::atomic::Ordering::Relaxed);
}

/// True under `keyrite -v`.
pub fn verbose() -> bool {
    VERBOSE.load(std::sync::atomic::Ordering::Relaxed)
}

/// An error and its causes by their `Display`, on one line: `a: b: c`. A cause whose text
/// the previous one already contains is left out, since many errors repeat their source.
pub fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut cause = Some(err);
    while let Some(e) = cause {
        let text = e.to_string().split_whitespace().collect::<Vec<_>>().join(" ");
        if !text.is_empty() && !parts.last().is_some_and(|p| p.contains(&text)) {
            parts.push(text);
        }
        cause = e.source();
    }
    parts.join(": ")
}

/// What to do about a cloud error, for the common cases: missing or expired credentials,
/// a permission the caller lacks, a region without the service, throttling that outlasted
/// the retries.
pub fn hint(operation: &str, code: &str, message: &str) -> Option<String> {
    let text = message.to_ascii_lowercase();
    let google = operation.starts_with("cloudkms.") || code.chars().all(|c| c.is_ascii_uppercase() || c == '_');
    Some(match code {
        aws::NO_CREDENTIALS => "no AWS credentials were found: set AWS_PROFILE (and run `aws sso login` for an SSO profile), or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY".into(),
        aws::CREDENTIALS_FAILED => "the AWS credential provider failed: check the profile in ~/.aws/config, or run `aws sso login` if its SSO session expired".into(),
        "ExpiredToken" | "ExpiredTokenException" | "RequestExpired" => {
            "the AWS session token has expired: run `aws sso login`, or assume the role again".into()
        }
        "InvalidClientTokenId" | "UnrecognizedClientException" | "SignatureDoesNotMatch" | "InvalidSignatureException" => {
            "AWS does not recognise these credentials: check AWS_PROFILE or the access key in use".into()
        }
        "AccessDenied" | "AccessDeniedException" | "AccessDeniedError" | "UnauthorizedOperation" => {
            format!("the caller lacks {operation}: grant it in the caller's IAM policy (and in the key policy, for kms: actions on a key)")
        }
        "UNAUTHENTICATED" => format!("Google rejected the credentials (missing or expired): {}", gcp::credentials::LOGIN_HINT),
        "PERMISSION_DENIED" => "the Google principal lacks the permission named above: grant it a role that has it (`keyrite plan` lists what a plan needs)".into(),
        "ThrottlingException" | "Throttling" | "TooManyRequestsException" | "RequestLimitExceeded" | "RESOURCE_EXHAUSTED" => {
            "still throttled after keyrite's retries: wait and run again, or lower --parallelism".into()
        }
        TRANSPORT if text.contains("dns error") || text.contains("failed to lookup address") || text.contains("name or service not known") => {
            if google {
                "the Cloud KMS endpoint does not resolve: check provider.gcp.endpoint or KEYRITE_GCP_KMS_ENDPOINT".into()
            } else {
                "the service's endpoint does not resolve: is the service offered in this region (provider.aws.region / AWS_REGION), and is AWS_ENDPOINT_URL right?".into()
            }
        }
        TRANSPORT if text.contains("connection refused") => "nothing answers at the service's endpoint: check AWS_ENDPOINT_URL, provider.*.endpoint, or the network".into(),
        _ => return None,
    })
}

fn hint_suffix(operation: &str, code: &str, message: &str) -> String {
    hint(operation, code, message).map(|h| format!(" ({h})")).unwrap_or_default()
}

/// `Ok(None)` when the service says the resource does not exist, the value otherwise.
pub fn unless_gone<T>(result: Result<T>) -> Result<Option<T>> {
    match result {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e),
    }
}

/// The code given to failures below the API: connection refused or reset, timeouts,
/// unparseable responses.
pub const TRANSPORT: &str = "TransportError";

impl ProviderError {
    /// True for failures worth retrying: throttling, 5xx, transport trouble.
    pub fn is_transient(&self) -> bool {
        matches!(
            self.code(),
            Some(
                TRANSPORT
                    | "ThrottlingException"
                    | "Throttling"
                    | "TooManyRequestsException"
                    | "RequestLimitExceeded"
                    | "ServiceUnavailable"
                    | "ServiceUnavailableException"
                    | "InternalFailure"
                    | "InternalError"
                    | "KMSInternalException"
                    | "DependencyTimeoutException"
                    | "ServiceFailure"
                    // Google's canonical codes.
                    | "UNAVAILABLE"
                    | "RESOURCE_EXHAUSTED"
                    | "DEADLINE_EXCEEDED"
                    | "INTERNAL"
            )
        )
    }

    /// The service's error code, if this came from an API.
    pub fn code(&self) -> Option<&str> {
        match self {
            ProviderError::Api { code, .. } => Some(code),
            _ => None,
        }
    }

    /// True when the service said the resource does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(
            self.code(),
            Some(
                "NotFoundException"
                    | "NoSuchEntity"
                    | "NoSuchEntityException"
                    | "ResourceNotFoundException"
                    | "NOT_FOUND"
            )
        )
    }
}

/// A resource kind.
#[async_trait]
pub trait Kind: Send + Sync {
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
    /// Reads the resource. `reference` is the desired or last-applied attributes, for kinds
    /// whose live view depends on what was declared (a role's undeclared inline policies).
    /// `Ok(None)` means it no longer exists.
    async fn read(&self, cloud: &Cloud, id: &str, reference: &Attrs) -> Result<Option<Live>>;
    async fn create(&self, cloud: &Cloud, desired: &Attrs) -> Result<Created>;
    /// Brings the named attributes from `live` to `desired`; returns the outputs after.
    async fn update(&self, cloud: &Cloud, id: &str, desired: &Attrs, live: &Attrs, changed: &[String])
    -> Result<Attrs>;
    async fn delete(&self, cloud: &Cloud, id: &str, prior: &Attrs, options: DeleteOptions) -> Result<Deleted>;
    /// Finds the resource an interrupted or failed create made for `desired` (same
    /// ownership tags, or same unique name) and returns its id; `exclude` is an id already
    /// recorded. Called only for addresses with a pending create intent, or right after a
    /// create call failed, so that a create is never repeated blindly. Default: none.
    async fn adopt(&self, cloud: &Cloud, desired: &Attrs, exclude: Option<&str>) -> Result<Option<String>> {
        let _ = (cloud, desired, exclude);
        Ok(None)
    }
    /// Who holds the unique name `desired` would be created under (references to resources
    /// not created yet are left as `${…}`). Called at plan time for every resource the plan
    /// would create; reads only. `lineage` is the state's, for ownership marks. Default: the
    /// kind has no unique name (KMS keys, REST APIs), so nothing can collide.
    async fn occupant(&self, cloud: &Cloud, desired: &Attrs, lineage: &str) -> Result<Occupant> {
        let _ = (cloud, desired, lineage);
        Ok(Occupant::Free)
    }
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

/// Every kind keyrite knows. Adding a kind: one file under `provider/`, one line here.
static KINDS: &[&dyn Kind] = &[
    &aws::kms_key::KmsKey,
    &aws::kms_alias::KmsAlias,
    &aws::iam_role::IamRole,
    &aws::iam_role_policy::IamRolePolicy,
    &aws::lambda_layer::LambdaLayer,
    &aws::lambda_function::LambdaFunction,
    &aws::lambda_function_url::LambdaFunctionUrl,
    &aws::api_gateway::ApiGateway,
    &gcp::key_ring::KeyRing,
    &gcp::crypto_key::CryptoKey,
    &gcp::iam_binding::CryptoKeyIamBinding,
];

/// The kind with this manifest name.
pub fn kind(name: &str) -> Option<&'static dyn Kind> {
    KINDS.iter().copied().find(|k| k.name() == name)
}

/// All kind names, for error messages and docs.
/// Every state entry in its kind's current shape ([`Kind::upgrade_recorded`]).
pub fn upgrade_recorded(state: &mut crate::state::State) {
    for r in state.resources.values_mut() {
        if let Some(k) = kind(&r.kind) {
            k.upgrade_recorded(&mut r.attrs);
        }
    }
}

pub fn kind_names() -> Vec<&'static str> {
    KINDS.iter().map(|k| k.name()).collect()
}

/// Tags keyrite puts on everything it creates, so that an auditor (and keyrite itself, after
/// a crash) can tell which state and which manifest entry a cloud resource belongs to.
pub const TAG_LINEAGE: &str = "keyrite:lineage";
pub const TAG_ADDRESS: &str = "keyrite:address";

/// True when `tags` carry the same keyrite ownership tags as `desired`.
pub fn owned_by(desired: &Attrs, tags: &BTreeMap<String, String>) -> bool {
    let want = map_attr(desired, "tags");
    [TAG_LINEAGE, TAG_ADDRESS].iter().all(|k| want.contains_key(*k) && want.get(*k) == tags.get(*k))
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

/// For [`Kind::declare`]: a string attribute of `live`, as a reference when `refer` knows it.
pub fn declared_ref(live: &Attrs, name: &str, refer: &dyn Fn(&str) -> Option<String>) -> Json {
    let value = str_attr(live, name);
    Json::String(refer(value).unwrap_or_else(|| value.to_owned()))
}

/// For [`Kind::declare`]: the `tags` (or `labels`) of `live` without keyrite's own marks;
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
pub fn with_state_only(kind: &dyn Kind, live: &Attrs, recorded: &Attrs) -> Attrs {
    let mut attrs = live.clone();
    for spec in kind.attrs().iter().filter(|a| a.compare == Compare::StateOnly) {
        if let Some(v) = recorded.get(spec.name) {
            attrs.insert(spec.name.to_owned(), v.clone());
        }
    }
    attrs
}

/// Which of keyrite's ownership marks ([`Kind::ownership`]) to read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mark {
    Lineage,
    Address,
}

/// The ownership mark `attrs` (live attributes of a `kind`) carry, if any.
pub fn ownership_mark<'a>(kind: &dyn Kind, attrs: &'a Attrs, mark: Mark) -> Option<&'a str> {
    let (attr, marks) = kind.ownership("", "")?;
    let key = marks.get(mark as usize)?.0;
    attrs.get(attr)?.get(key)?.as_str().filter(|v| !v.is_empty())
}

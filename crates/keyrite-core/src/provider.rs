//! The provider interface: what a cloud provider crate implements ([`Kind`], over its own
//! clients) and what every provider shares: its errors and their hints, the call log that
//! proves a converged apply mutates nothing, and the results of cloud operations.
//!
//! Nothing here talks to a cloud; the provider crates above (keyrite-aws, keyrite-gcp) do.

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;

use crate::manifest::Attrs;
use crate::schema::{Live, Schema};

/// The error code the AWS SDK's errors get when no credentials were found.
pub const AWS_NO_CREDENTIALS: &str = "NoCredentials";
/// The error code the AWS SDK's errors get when a credential provider failed.
pub const AWS_CREDENTIALS_FAILED: &str = "CredentialsError";
/// How to give Google credentials.
pub const GOOGLE_LOGIN_HINT: &str =
    "run `gcloud auth application-default login`, or set GOOGLE_APPLICATION_CREDENTIALS to a service account key file";

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
        AWS_NO_CREDENTIALS => "no AWS credentials were found: set AWS_PROFILE (and run `aws sso login` for an SSO profile), or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY".into(),
        AWS_CREDENTIALS_FAILED => "the AWS credential provider failed: check the profile in ~/.aws/config, or run `aws sso login` if its SSO session expired".into(),
        "ExpiredToken" | "ExpiredTokenException" | "RequestExpired" => {
            "the AWS session token has expired: run `aws sso login`, or assume the role again".into()
        }
        "InvalidClientTokenId" | "UnrecognizedClientException" | "SignatureDoesNotMatch" | "InvalidSignatureException" => {
            "AWS does not recognise these credentials: check AWS_PROFILE or the access key in use".into()
        }
        "AccessDenied" | "AccessDeniedException" | "AccessDeniedError" | "UnauthorizedOperation" => {
            format!("the caller lacks {operation}: grant it in the caller's IAM policy (and in the key policy, for kms: actions on a key)")
        }
        "UNAUTHENTICATED" => format!("Google rejected the credentials (missing or expired): {}", GOOGLE_LOGIN_HINT),
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

/// A resource kind of the cloud whose clients are `C`: its [`Schema`] and the four cloud
/// operations (read, create, update, delete), plus the reads that keep creates from
/// colliding or repeating. Each provider crate implements it for its kinds.
#[async_trait]
pub trait Kind<C: Sync>: Schema {
    /// Reads the resource. `reference` is the desired or last-applied attributes, for kinds
    /// whose live view depends on what was declared (a role's undeclared inline policies).
    /// `Ok(None)` means it no longer exists.
    async fn read(&self, cloud: &C, id: &str, reference: &Attrs) -> Result<Option<Live>>;
    async fn create(&self, cloud: &C, desired: &Attrs) -> Result<Created>;
    /// Brings the named attributes from `live` to `desired`; returns the outputs after.
    async fn update(&self, cloud: &C, id: &str, desired: &Attrs, live: &Attrs, changed: &[String]) -> Result<Attrs>;
    async fn delete(&self, cloud: &C, id: &str, prior: &Attrs, options: DeleteOptions) -> Result<Deleted>;
    /// Finds the resource an interrupted or failed create made for `desired` (same
    /// ownership tags, or same unique name) and returns its id; `exclude` is an id already
    /// recorded. Called only for addresses with a pending create intent, or right after a
    /// create call failed, so that a create is never repeated blindly. Default: none.
    async fn adopt(&self, cloud: &C, desired: &Attrs, exclude: Option<&str>) -> Result<Option<String>> {
        let _ = (cloud, desired, exclude);
        Ok(None)
    }
    /// Who holds the unique name `desired` would be created under (references to resources
    /// not created yet are left as `${…}`). Called at plan time for every resource the plan
    /// would create; reads only. `lineage` is the state's, for ownership marks. Default: the
    /// kind has no unique name (KMS keys, REST APIs), so nothing can collide.
    async fn occupant(&self, cloud: &C, desired: &Attrs, lineage: &str) -> Result<Occupant> {
        let _ = (cloud, desired, lineage);
        Ok(Occupant::Free)
    }
}

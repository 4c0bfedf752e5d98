//! Policy documents: decoding, normalisation, semantic equivalence and
//! statement-level diff for IAM, KMS key and API Gateway resource policies.
//!
//! Drift detection has to compare policies by *meaning*, not by bytes: IAM
//! returns documents percent-encoded, API Gateway returns them as a
//! backslash-escaped JSON string, KMS returns plain JSON with arbitrary
//! formatting, and people write the same policy in many shapes.
//! [`decode_policy_text`] peels those transport encodings off,
//! [`Policy::parse`] turns the document into a canonical form, and
//! [`Policy::equivalent`] / [`diff`] compare two canonical forms. One file per stage:
//! `decode.rs` (transport encodings), `model.rs` (the canonical form, parsing into it and
//! rendering it back), `diff.rs` (statement-level differences); this file holds the errors
//! and the constants they share.
//!
//! Two policies are equivalent when they have the same `Version` and the same
//! *set* of statements, where:
//!
//! - statement order does not matter and exact duplicates collapse;
//! - `Statement` may be a single object or an array;
//! - a string and a one-element array are the same, and every list (actions,
//!   resources, principal values, condition values) is a set;
//! - `Action`/`NotAction` compare case-insensitively;
//! - condition operators compare as written, condition keys
//!   case-insensitively, and condition values as strings (`true` == `"true"`);
//! - `"*"` as principal is `{"AWS": "*"}`, and a bare 12-digit account id in
//!   `AWS` is `arn:aws:iam::<id>:root`; principal types are case-sensitive;
//! - `Sid` and the document `Id` are labels, not meaning;
//! - a missing `Version` is `"2008-10-17"`, as AWS defines it.
//!
//! [`diff`] reports which statements were added, removed or changed, and flags
//! changes that make the live policy grant more than the expected one
//! ("broadened"). A change whose direction cannot be determined (for example an
//! `Action` turned into a `NotAction`) is conservatively treated as broadening.

mod decode;
mod diff;
mod model;

use serde::Serialize;

pub use decode::decode_policy_text;
pub use diff::*;
pub use model::*;
#[allow(unused_imports)]
use {decode::*, diff::*, model::*};

/// The policy language version AWS assumes when a document has no `Version`.
pub const DEFAULT_VERSION: &str = "2008-10-17";
/// The current policy language version.
pub const CURRENT_VERSION: &str = "2012-10-17";

pub(super) const KNOWN_VERSIONS: [&str; 2] = [CURRENT_VERSION, DEFAULT_VERSION];
pub(super) const DOCUMENT_KEYS: [&str; 3] = ["Version", "Id", "Statement"];
pub(super) const STATEMENT_KEYS: [&str; 9] =
    ["Sid", "Effect", "Principal", "NotPrincipal", "Action", "NotAction", "Resource", "NotResource", "Condition"];
pub(super) const PRINCIPAL_TYPES: [&str; 4] = ["AWS", "Service", "Federated", "CanonicalUser"];
pub(super) const MAX_ENCODING_LAYERS: usize = 4;

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

/// Why a policy text or document could not be understood.
///
/// Statement positions are 1-based, as shown to users (`#1` is the first).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
pub enum PolicyError {
    /// The text is empty or only whitespace.
    #[error("policy text is empty")]
    Empty,
    /// The (decoded) text is not JSON.
    #[error("policy is not valid JSON{context}: {message} at line {line} column {column}")]
    InvalidJson {
        /// Which decoding step produced the text, e.g. " (after percent-decoding)".
        context: String,
        /// The parser's message.
        message: String,
        /// 1-based line of the error.
        line: usize,
        /// 1-based column of the error.
        column: usize,
    },
    /// A transport encoding (percent-encoding, backslash escapes) is broken.
    #[error("policy could not be decoded: {0}")]
    Undecodable(String),
    /// The text is wrapped in suspiciously many encodings.
    #[error("policy is wrapped in too many layers of encoding (more than {limit})")]
    TooManyEncodingLayers {
        /// The number of layers allowed.
        limit: usize,
    },
    /// The document is not a JSON object.
    #[error("policy document must be a JSON object, found {found}")]
    NotAnObject {
        /// What was found instead, e.g. "an array".
        found: &'static str,
    },
    /// The document has a top-level key other than `Version`, `Id`, `Statement`.
    #[error("policy document has unknown key {key:?} (allowed: Version, Id, Statement)")]
    UnknownDocumentKey {
        /// The offending key.
        key: String,
    },
    /// A top-level field has the wrong type or value.
    #[error("policy document: {field} {reason}")]
    InvalidDocumentField {
        /// `Version`, `Id` or `Statement`.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The document has no `Statement`.
    #[error("policy document has no Statement")]
    MissingStatement,
    /// A statement has a key AWS does not define.
    #[error(
        "Statement {position}: unknown key {key:?} (allowed: Sid, Effect, Principal, \
         NotPrincipal, Action, NotAction, Resource, NotResource, Condition)"
    )]
    UnknownStatementKey {
        /// 1-based position of the statement in the document.
        position: usize,
        /// The offending key.
        key: String,
    },
    /// A statement is malformed.
    #[error("Statement {position}: {reason}")]
    InvalidStatement {
        /// 1-based position of the statement in the document.
        position: usize,
        /// What is wrong with it.
        reason: String,
    },
}

#[cfg(test)]
mod tests;

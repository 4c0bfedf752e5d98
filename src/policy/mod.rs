//! Policy documents: decoding, normalisation, semantic equivalence and
//! statement-level diff for IAM, KMS key and API Gateway resource policies.
//!
//! Drift detection has to compare policies by *meaning*, not by bytes: IAM
//! returns documents percent-encoded, API Gateway returns them as a
//! backslash-escaped JSON string, KMS returns plain JSON with arbitrary
//! formatting, and people write the same policy in many shapes.
//! [`decode_policy_text`] peels those transport encodings off,
//! [`Policy::parse`] turns the document into a canonical form, and
//! [`Policy::equivalent`] / [`diff`] compare two canonical forms.
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

use std::cmp::{Ordering, Reverse};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::{self, Write as _};
use std::hash::{Hash, Hasher};

use serde::{Serialize, Serializer};
use serde_json::{Map, Value};

/// The policy language version AWS assumes when a document has no `Version`.
pub const DEFAULT_VERSION: &str = "2008-10-17";
/// The current policy language version.
pub const CURRENT_VERSION: &str = "2012-10-17";

const KNOWN_VERSIONS: [&str; 2] = [CURRENT_VERSION, DEFAULT_VERSION];
const DOCUMENT_KEYS: [&str; 3] = ["Version", "Id", "Statement"];
const STATEMENT_KEYS: [&str; 9] =
    ["Sid", "Effect", "Principal", "NotPrincipal", "Action", "NotAction", "Resource", "NotResource", "Condition"];
const PRINCIPAL_TYPES: [&str; 4] = ["AWS", "Service", "Federated", "CanonicalUser"];
const MAX_ENCODING_LAYERS: usize = 4;

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

// ---------------------------------------------------------------------------
// Decoding
// ---------------------------------------------------------------------------

/// Decodes policy text as returned by AWS APIs or written by hand into the
/// JSON document object.
///
/// Accepted forms, possibly nested inside one another:
/// - plain JSON (KMS `GetKeyPolicy`, files on disk);
/// - percent-encoded JSON (IAM; `%20` is a space, `+` stays a plus sign);
/// - backslash-escaped JSON such as `{\"Version\":...}` (API Gateway), with or
///   without surrounding quotes;
/// - a JSON string literal whose content is a policy document.
///
/// # Errors
/// [`PolicyError::InvalidJson`] with the line and column when the (decoded)
/// text is not JSON, [`PolicyError::NotAnObject`] when it is JSON but not an
/// object, and [`PolicyError::Undecodable`] for a broken transport encoding.
pub fn decode_policy_text(text: &str) -> Result<Value, PolicyError> {
    decode_layer(text, Layer::Plain, 0)
}

/// The decoding step that produced the text being parsed, for error messages.
#[derive(Debug, Clone, Copy)]
enum Layer {
    Plain,
    PercentDecoded,
    Unescaped,
    StringLiteral,
}

impl Layer {
    fn context(self) -> &'static str {
        match self {
            Layer::Plain => "",
            Layer::PercentDecoded => " (after percent-decoding)",
            Layer::Unescaped => " (after removing backslash escapes)",
            Layer::StringLiteral => " (inside a JSON string)",
        }
    }
}

fn decode_layer(text: &str, layer: Layer, depth: usize) -> Result<Value, PolicyError> {
    if depth > MAX_ENCODING_LAYERS {
        return Err(PolicyError::TooManyEncodingLayers { limit: MAX_ENCODING_LAYERS });
    }
    let trimmed = text.trim_start_matches('\u{feff}').trim();
    if trimmed.is_empty() {
        return Err(PolicyError::Empty);
    }
    match serde_json::from_str::<Value>(trimmed) {
        Ok(Value::String(inner)) => decode_layer(&inner, Layer::StringLiteral, depth + 1),
        Ok(Value::Object(object)) => Ok(Value::Object(object)),
        Ok(other) => Err(PolicyError::NotAnObject { found: json_type(&other) }),
        Err(error) if looks_percent_encoded(trimmed) => {
            let decoded = percent_decode(trimmed)?;
            decode_layer(&decoded, Layer::PercentDecoded, depth + 1)
                .map_err(|inner| prefer_outer_error(inner, &error, layer))
        }
        Err(error) if looks_backslash_escaped(trimmed) => {
            let unescaped = unescape_backslashes(trimmed)?;
            decode_layer(&unescaped, Layer::Unescaped, depth + 1)
                .map_err(|inner| prefer_outer_error(inner, &error, layer))
        }
        Err(error) => Err(invalid_json(&error, layer)),
    }
}

/// When a decoding guess fails with "empty", the original JSON error explains
/// the problem better.
fn prefer_outer_error(inner: PolicyError, outer: &serde_json::Error, layer: Layer) -> PolicyError {
    match inner {
        PolicyError::Empty => invalid_json(outer, layer),
        other => other,
    }
}

fn invalid_json(error: &serde_json::Error, layer: Layer) -> PolicyError {
    let full = error.to_string();
    let location = format!(" at line {} column {}", error.line(), error.column());
    let message = full.strip_suffix(&location).unwrap_or(&full).to_string();
    PolicyError::InvalidJson {
        context: layer.context().to_string(),
        message,
        line: error.line(),
        column: error.column(),
    }
}

/// Percent-encoded text has `%XX` escapes and either does not start like JSON
/// or has no literal quote (every real document has quoted keys).
fn looks_percent_encoded(text: &str) -> bool {
    let has_escape =
        text.as_bytes().windows(3).any(|w| w[0] == b'%' && w[1].is_ascii_hexdigit() && w[2].is_ascii_hexdigit());
    let starts_like_json = text.starts_with(['{', '[', '"']);
    has_escape && (!starts_like_json || !text.contains('"'))
}

/// Backslash-escaped text starts with an escaped quote, either at once or
/// right after the opening brace (`{\"Version\":...}`). A plain document that
/// merely contains `\"` inside a string value does not qualify.
fn looks_backslash_escaped(text: &str) -> bool {
    let after_brace = text.strip_prefix('{').map_or(text, str::trim_start);
    after_brace.starts_with("\\\"")
}

fn percent_decode(text: &str) -> Result<String, PolicyError> {
    percent_encoding::percent_decode_str(text)
        .decode_utf8()
        .map(std::borrow::Cow::into_owned)
        .map_err(|error| PolicyError::Undecodable(format!("percent-decoded policy is not valid UTF-8: {error}")))
}

/// Removes one level of JSON-style backslash escaping by turning the text into
/// a JSON string literal and letting the JSON parser interpret the escapes.
/// Stray quotes and raw control characters (pretty-printed documents) are
/// tolerated.
fn unescape_backslashes(text: &str) -> Result<String, PolicyError> {
    let mut literal = String::with_capacity(text.len() + 2);
    literal.push('"');
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                let escaped = chars
                    .next()
                    .ok_or_else(|| PolicyError::Undecodable("escaped policy ends with a lone backslash".into()))?;
                literal.push('\\');
                push_literal_char(&mut literal, escaped);
            }
            '"' => literal.push_str("\\\""),
            other => push_literal_char(&mut literal, other),
        }
    }
    literal.push('"');
    serde_json::from_str::<String>(&literal)
        .map_err(|error| PolicyError::Undecodable(format!("invalid backslash escape in policy: {error}")))
}

fn push_literal_char(literal: &mut String, c: char) {
    if c.is_control() {
        // Writing to a String cannot fail.
        let _ = write!(literal, "\\u{:04x}", u32::from(c));
    } else {
        literal.push(c);
    }
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

// ---------------------------------------------------------------------------
// Normalised model
// ---------------------------------------------------------------------------

/// A string that compares, orders and hashes case-insensitively but keeps its
/// original spelling for display (actions, condition keys).
#[derive(Debug, Clone)]
pub struct CaseInsensitive {
    text: String,
    folded: String,
}

impl CaseInsensitive {
    /// Wraps `text`.
    pub fn new(text: &str) -> Self {
        Self { text: text.to_string(), folded: text.to_lowercase() }
    }

    /// The original spelling.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl PartialEq for CaseInsensitive {
    fn eq(&self, other: &Self) -> bool {
        self.folded == other.folded
    }
}

impl Eq for CaseInsensitive {}

impl PartialOrd for CaseInsensitive {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for CaseInsensitive {
    fn cmp(&self, other: &Self) -> Ordering {
        self.folded.cmp(&other.folded)
    }
}

impl Hash for CaseInsensitive {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.folded.hash(state);
    }
}

impl fmt::Display for CaseInsensitive {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Serialize for CaseInsensitive {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text)
    }
}

/// `Allow` or `Deny`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Effect {
    /// The statement grants.
    Allow,
    /// The statement denies.
    Deny,
}

impl fmt::Display for Effect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Effect::Allow => "Allow",
            Effect::Deny => "Deny",
        })
    }
}

/// A set of values under a key that has a negated twin: `Action`/`NotAction`,
/// `Resource`/`NotResource`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Clause<T: Ord> {
    /// True for the `Not...` form.
    pub negated: bool,
    /// The values, as a set.
    pub values: BTreeSet<T>,
}

/// `Principal` or `NotPrincipal`: principal type (`AWS`, `Service`, ...) to
/// the set of principals of that type.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct PrincipalClause {
    /// True for `NotPrincipal`.
    pub negated: bool,
    /// Principal type to normalised principal values.
    pub principals: BTreeMap<String, BTreeSet<String>>,
}

/// Condition operator (as written) to condition key (case-insensitive) to the
/// set of values.
pub type Conditions = BTreeMap<String, BTreeMap<CaseInsensitive, BTreeSet<String>>>;

/// One normalised statement. `sid` and `position` are labels for display and
/// pairing; they take no part in [`Statement::same_meaning`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Statement {
    sid: Option<String>,
    position: usize,
    effect: Effect,
    action: Clause<CaseInsensitive>,
    resource: Option<Clause<String>>,
    principal: Option<PrincipalClause>,
    condition: Conditions,
}

/// The parts of a statement that carry meaning, comparable and orderable.
type Meaning<'a> =
    (Effect, &'a Clause<CaseInsensitive>, Option<&'a Clause<String>>, Option<&'a PrincipalClause>, &'a Conditions);

impl Statement {
    /// The statement's `Sid`, if it has one.
    pub fn sid(&self) -> Option<&str> {
        self.sid.as_deref()
    }

    /// 1-based position of the statement in its source document.
    pub fn position(&self) -> usize {
        self.position
    }

    /// `Allow` or `Deny`.
    pub fn effect(&self) -> Effect {
        self.effect
    }

    /// `Action` or `NotAction`.
    pub fn actions(&self) -> &Clause<CaseInsensitive> {
        &self.action
    }

    /// `Resource` or `NotResource`, absent in trust policies.
    pub fn resources(&self) -> Option<&Clause<String>> {
        self.resource.as_ref()
    }

    /// `Principal` or `NotPrincipal`, absent in identity policies.
    pub fn principals(&self) -> Option<&PrincipalClause> {
        self.principal.as_ref()
    }

    /// The condition block (empty when the statement has none).
    pub fn conditions(&self) -> &Conditions {
        &self.condition
    }

    /// True when both statements mean the same thing (ignores `Sid` and position).
    pub fn same_meaning(&self, other: &Statement) -> bool {
        self.meaning() == other.meaning()
    }

    /// A short human label: `statement "Sid" (#2)` or `statement #2`.
    pub fn label(&self) -> String {
        match &self.sid {
            Some(sid) => format!("statement {sid:?} (#{})", self.position),
            None => format!("statement #{}", self.position),
        }
    }

    /// The statement as a canonical AWS-shaped JSON object.
    pub fn to_json(&self) -> Value {
        let mut object = Map::new();
        if let Some(sid) = &self.sid {
            object.insert("Sid".into(), Value::String(sid.clone()));
        }
        object.insert("Effect".into(), Value::String(self.effect.to_string()));
        if let Some(principal) = &self.principal {
            let by_type =
                principal.principals.iter().map(|(kind, values)| (kind.clone(), values_json(values))).collect();
            object.insert(principal_key(principal.negated).into(), Value::Object(by_type));
        }
        object.insert(clause_key(ACTION_KEYS, self.action.negated).into(), values_json(&self.action.values));
        if let Some(resource) = &self.resource {
            object.insert(clause_key(RESOURCE_KEYS, resource.negated).into(), values_json(&resource.values));
        }
        if !self.condition.is_empty() {
            object.insert("Condition".into(), conditions_json(&self.condition));
        }
        Value::Object(object)
    }

    fn meaning(&self) -> Meaning<'_> {
        (self.effect, &self.action, self.resource.as_ref(), self.principal.as_ref(), &self.condition)
    }
}

/// `Effect Action [..] on Resource [..] Principal AWS [..] Condition Op key [..]`.
impl fmt::Display for Statement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} [{}]", self.effect, clause_key(ACTION_KEYS, self.action.negated), join(&self.action.values))?;
        if let Some(resource) = &self.resource {
            let key = clause_key(RESOURCE_KEYS, resource.negated);
            write!(f, " on {key} [{}]", join(&resource.values))?;
        }
        if let Some(principal) = &self.principal {
            write!(f, " {}", principal_key(principal.negated))?;
            for (kind, values) in &principal.principals {
                write!(f, " {kind} [{}]", join(values))?;
            }
        }
        if !self.condition.is_empty() {
            f.write_str(" Condition")?;
            for (operator, keys) in &self.condition {
                for (key, values) in keys {
                    write!(f, " {operator} {key} [{}]", join(values))?;
                }
            }
        }
        Ok(())
    }
}

/// A parsed, normalised policy document.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Policy {
    version: String,
    id: Option<String>,
    statements: Vec<Statement>,
}

impl Policy {
    /// Parses and normalises a decoded policy document.
    ///
    /// # Errors
    /// A [`PolicyError`] naming the unknown key, the bad top-level field, or
    /// the 1-based position of the malformed statement and what is wrong.
    pub fn parse(doc: &Value) -> Result<Policy, PolicyError> {
        let object = doc.as_object().ok_or(PolicyError::NotAnObject { found: json_type(doc) })?;
        if let Some(key) = object.keys().find(|k| !DOCUMENT_KEYS.contains(&k.as_str())) {
            return Err(PolicyError::UnknownDocumentKey { key: key.clone() });
        }
        let version = parse_version(object.get("Version"))?;
        let id = parse_id(object.get("Id"))?;
        let raw = object.get("Statement").ok_or(PolicyError::MissingStatement)?;
        let statements = statement_values(raw)?
            .into_iter()
            .enumerate()
            .map(|(index, value)| parse_statement(value, index + 1))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Policy { version, id, statements: collapse_duplicates(statements) })
    }

    /// Decodes policy text in any supported transport form and parses it.
    ///
    /// # Errors
    /// Any error of [`decode_policy_text`] or [`Policy::parse`].
    pub fn from_text(text: &str) -> Result<Policy, PolicyError> {
        Policy::parse(&decode_policy_text(text)?)
    }

    /// True when both policies mean the same thing.
    pub fn equivalent(&self, other: &Policy) -> bool {
        self.version == other.version && self.meanings() == other.meanings()
    }

    /// The statements in document order, exact duplicates removed.
    pub fn statements(&self) -> &[Statement] {
        &self.statements
    }

    /// The policy language version (`"2008-10-17"` when the document had none).
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The document `Id`, if any (not semantic).
    pub fn id(&self) -> Option<&str> {
        self.id.as_deref()
    }

    /// The policy as a canonical AWS-shaped JSON document.
    pub fn to_json(&self) -> Value {
        let mut object = Map::new();
        object.insert("Version".into(), Value::String(self.version.clone()));
        if let Some(id) = &self.id {
            object.insert("Id".into(), Value::String(id.clone()));
        }
        let statements = self.statements.iter().map(Statement::to_json).collect();
        object.insert("Statement".into(), Value::Array(statements));
        Value::Object(object)
    }

    fn meanings(&self) -> BTreeSet<Meaning<'_>> {
        self.statements.iter().map(Statement::meaning).collect()
    }
}

// ---------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------

const ACTION_KEYS: (&str, &str) = ("Action", "NotAction");
const RESOURCE_KEYS: (&str, &str) = ("Resource", "NotResource");
const PRINCIPAL_KEYS: (&str, &str) = ("Principal", "NotPrincipal");

fn clause_key(keys: (&'static str, &'static str), negated: bool) -> &'static str {
    if negated { keys.1 } else { keys.0 }
}

fn principal_key(negated: bool) -> &'static str {
    clause_key(PRINCIPAL_KEYS, negated)
}

fn parse_version(value: Option<&Value>) -> Result<String, PolicyError> {
    match value {
        None => Ok(DEFAULT_VERSION.to_string()),
        Some(Value::String(version)) if KNOWN_VERSIONS.contains(&version.as_str()) => Ok(version.clone()),
        Some(other) => Err(PolicyError::InvalidDocumentField {
            field: "Version",
            reason: format!("must be \"{CURRENT_VERSION}\" or \"{DEFAULT_VERSION}\", found {}", describe(other)),
        }),
    }
}

fn parse_id(value: Option<&Value>) -> Result<Option<String>, PolicyError> {
    match value {
        None => Ok(None),
        Some(Value::String(id)) => Ok(Some(id.clone())),
        Some(other) => Err(PolicyError::InvalidDocumentField {
            field: "Id",
            reason: format!("must be a string, found {}", json_type(other)),
        }),
    }
}

fn statement_values(raw: &Value) -> Result<Vec<&Value>, PolicyError> {
    match raw {
        Value::Array(items) => Ok(items.iter().collect()),
        Value::Object(_) => Ok(vec![raw]),
        other => Err(PolicyError::InvalidDocumentField {
            field: "Statement",
            reason: format!("must be an object or an array of objects, found {}", json_type(other)),
        }),
    }
}

fn parse_statement(value: &Value, position: usize) -> Result<Statement, PolicyError> {
    let invalid = |reason: String| PolicyError::InvalidStatement { position, reason };
    let object =
        value.as_object().ok_or_else(|| invalid(format!("must be a JSON object, found {}", json_type(value))))?;
    if let Some(key) = object.keys().find(|k| !STATEMENT_KEYS.contains(&k.as_str())) {
        return Err(PolicyError::UnknownStatementKey { position, key: key.clone() });
    }
    let sid = parse_sid(object.get("Sid")).map_err(invalid)?;
    let effect = parse_effect(object.get("Effect")).map_err(invalid)?;
    let action = one_of(object, ACTION_KEYS)
        .map_err(invalid)?
        .ok_or_else(|| invalid("must have exactly one of Action or NotAction".into()))
        .and_then(|found| parse_clause(found, CaseInsensitive::new).map_err(invalid))?;
    let resource = one_of(object, RESOURCE_KEYS)
        .map_err(invalid)?
        .map(|found| parse_clause(found, str::to_string))
        .transpose()
        .map_err(invalid)?;
    let principal =
        one_of(object, PRINCIPAL_KEYS).map_err(invalid)?.map(parse_principal).transpose().map_err(invalid)?;
    let condition = parse_conditions(object.get("Condition")).map_err(invalid)?;
    Ok(Statement { sid, position, effect, action, resource, principal, condition })
}

fn parse_sid(value: Option<&Value>) -> Result<Option<String>, String> {
    match value {
        None => Ok(None),
        Some(Value::String(sid)) => Ok(Some(sid.clone())),
        Some(other) => Err(format!("Sid must be a string, found {}", json_type(other))),
    }
}

fn parse_effect(value: Option<&Value>) -> Result<Effect, String> {
    match value.and_then(Value::as_str) {
        Some("Allow") => Ok(Effect::Allow),
        Some("Deny") => Ok(Effect::Deny),
        _ => Err(match value {
            None => "Effect is missing (must be Allow or Deny)".to_string(),
            Some(other) => format!("Effect must be Allow or Deny, found {}", describe(other)),
        }),
    }
}

/// A key found in a statement: its name, whether it is the `Not...` form, and
/// its value.
type Found<'a> = (&'static str, bool, &'a Value);

/// Finds whichever of a key and its negated twin is present; both is an error.
fn one_of<'a>(object: &'a Map<String, Value>, keys: (&'static str, &'static str)) -> Result<Option<Found<'a>>, String> {
    match (object.get(keys.0), object.get(keys.1)) {
        (Some(_), Some(_)) => Err(format!("must not have both {} and {}", keys.0, keys.1)),
        (Some(value), None) => Ok(Some((keys.0, false, value))),
        (None, Some(value)) => Ok(Some((keys.1, true, value))),
        (None, None) => Ok(None),
    }
}

fn parse_clause<T: Ord>((name, negated, value): Found<'_>, convert: impl Fn(&str) -> T) -> Result<Clause<T>, String> {
    let values = string_list(name, value)?;
    Ok(Clause { negated, values: values.into_iter().map(convert).collect() })
}

/// A non-empty string or a non-empty array of non-empty strings.
fn string_list<'a>(name: &str, value: &'a Value) -> Result<Vec<&'a str>, String> {
    let values: Vec<&str> = match value {
        Value::String(single) => vec![single.as_str()],
        Value::Array(items) if items.is_empty() => return Err(format!("{name} must not be empty")),
        Value::Array(items) => items
            .iter()
            .map(|item| {
                item.as_str().ok_or_else(|| format!("{name} values must be strings, found {}", json_type(item)))
            })
            .collect::<Result<_, _>>()?,
        other => {
            return Err(format!("{name} must be a string or an array of strings, found {}", json_type(other)));
        }
    };
    if values.iter().any(|v| v.is_empty()) {
        return Err(format!("{name} values must not be empty strings"));
    }
    Ok(values)
}

fn parse_principal((name, negated, value): Found<'_>) -> Result<PrincipalClause, String> {
    let principals = match value {
        Value::String(star) if star == "*" => BTreeMap::from([("AWS".to_string(), BTreeSet::from(["*".to_string()]))]),
        Value::Object(by_type) if !by_type.is_empty() => {
            by_type.iter().map(|(kind, values)| parse_principal_values(name, kind, values)).collect::<Result<_, _>>()?
        }
        Value::Object(_) => return Err(format!("{name} must not be empty")),
        other => {
            return Err(format!(
                "{name} must be \"*\" or an object such as {{\"AWS\": ...}}, found {}",
                describe(other)
            ));
        }
    };
    Ok(PrincipalClause { negated, principals })
}

fn parse_principal_values(name: &str, kind: &str, values: &Value) -> Result<(String, BTreeSet<String>), String> {
    if !PRINCIPAL_TYPES.contains(&kind) {
        return Err(format!(
            "{name} has unknown principal type {kind:?} (expected one of {})",
            PRINCIPAL_TYPES.join(", ")
        ));
    }
    let values = string_list(&format!("{name}.{kind}"), values)?;
    let normalised = values.into_iter().map(|value| normalise_principal(kind, value)).collect();
    Ok((kind.to_string(), normalised))
}

/// A bare account id in `AWS` means the account's root principal.
fn normalise_principal(kind: &str, value: &str) -> String {
    if kind == "AWS" && is_account_id(value) { format!("arn:aws:iam::{value}:root") } else { value.to_string() }
}

fn is_account_id(value: &str) -> bool {
    value.len() == 12 && value.bytes().all(|b| b.is_ascii_digit())
}

fn parse_conditions(value: Option<&Value>) -> Result<Conditions, String> {
    let Some(value) = value else {
        return Ok(Conditions::new());
    };
    let operators =
        value.as_object().ok_or_else(|| format!("Condition must be an object, found {}", json_type(value)))?;
    let mut conditions = Conditions::new();
    for (operator, block) in operators {
        let entries = parse_condition_block(operator, block)?;
        if !entries.is_empty() {
            conditions.insert(operator.clone(), entries);
        }
    }
    Ok(conditions)
}

fn parse_condition_block(operator: &str, block: &Value) -> Result<BTreeMap<CaseInsensitive, BTreeSet<String>>, String> {
    let keys = block
        .as_object()
        .ok_or_else(|| format!("Condition.{operator} must be an object, found {}", json_type(block)))?;
    let mut entries = BTreeMap::new();
    for (key, values) in keys {
        let values = condition_values(&format!("Condition.{operator}.{key}"), values)?;
        if entries.insert(CaseInsensitive::new(key), values).is_some() {
            return Err(format!(
                "Condition.{operator} has key {key:?} more than once \
                 (condition keys are case-insensitive)"
            ));
        }
    }
    Ok(entries)
}

fn condition_values(field: &str, value: &Value) -> Result<BTreeSet<String>, String> {
    match value {
        Value::Array(items) if items.is_empty() => Err(format!("{field} must not be empty")),
        Value::Array(items) => items.iter().map(|item| condition_scalar(field, item)).collect(),
        scalar => condition_scalar(field, scalar).map(|single| BTreeSet::from([single])),
    }
}

fn condition_scalar(field: &str, value: &Value) -> Result<String, String> {
    match value {
        Value::String(text) => Ok(text.clone()),
        Value::Bool(flag) => Ok(flag.to_string()),
        Value::Number(number) => Ok(number.to_string()),
        other => Err(format!("{field} values must be strings, booleans or numbers, found {}", json_type(other))),
    }
}

fn collapse_duplicates(statements: Vec<Statement>) -> Vec<Statement> {
    let mut kept: Vec<Statement> = Vec::with_capacity(statements.len());
    for statement in statements {
        if !kept.iter().any(|seen| seen.same_meaning(&statement)) {
            kept.push(statement);
        }
    }
    kept
}

/// A value for error messages: strings quoted, other kinds by type.
fn describe(value: &Value) -> String {
    match value {
        Value::String(text) => format!("{text:?}"),
        other => json_type(other).to_string(),
    }
}

// ---------------------------------------------------------------------------
// JSON rendering helpers
// ---------------------------------------------------------------------------

fn values_json<T: fmt::Display>(values: &BTreeSet<T>) -> Value {
    let mut strings: Vec<Value> = values.iter().map(|v| Value::String(v.to_string())).collect();
    match strings.len() {
        1 => strings.pop().unwrap_or(Value::Null),
        _ => Value::Array(strings),
    }
}

fn conditions_json(conditions: &Conditions) -> Value {
    let operators = conditions
        .iter()
        .map(|(operator, keys)| {
            let keys = keys.iter().map(|(key, values)| (key.to_string(), values_json(values))).collect();
            (operator.clone(), Value::Object(keys))
        })
        .collect();
    Value::Object(operators)
}

fn join<T: fmt::Display>(values: &BTreeSet<T>) -> String {
    values.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
}

// ---------------------------------------------------------------------------
// Diff
// ---------------------------------------------------------------------------

/// The difference between an expected policy and the live one.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PolicyDiff {
    /// Set when the `Version`s differ.
    pub version: Option<VersionChange>,
    /// Statements of the expected policy with no counterpart in the live one.
    pub removed: Vec<Statement>,
    /// Statements of the live policy with no counterpart in the expected one.
    pub added: Vec<Statement>,
    /// Statements present in both but with different content.
    pub changed: Vec<StatementChange>,
}

/// A policy-level `Version` difference.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VersionChange {
    /// The expected policy's version.
    pub expected: String,
    /// The live policy's version.
    pub live: String,
}

/// An expected statement paired with its differing live counterpart.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StatementChange {
    /// The statement as expected.
    pub expected: Statement,
    /// Its live counterpart.
    pub live: Statement,
    /// What differs, field by field.
    pub fields: Vec<FieldChange>,
    /// True when the live statement grants more than the expected one.
    pub broadened: bool,
}

/// The values of one field that differ between paired statements.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldChange {
    /// `Effect`, `Action`, `NotResource`, `Principal.AWS`,
    /// `Condition.StringEquals.kms:SigningAlgorithm`, ...
    pub field: String,
    /// Values in the expected statement only.
    pub removed: Vec<String>,
    /// Values in the live statement only.
    pub added: Vec<String>,
}

impl PolicyDiff {
    /// True when the policies are equivalent.
    pub fn is_empty(&self) -> bool {
        self.version.is_none() && self.removed.is_empty() && self.added.is_empty() && self.changed.is_empty()
    }

    /// True when the live policy may grant more than the expected one: a
    /// broadened statement, an added `Allow`, or a removed `Deny`.
    pub fn broadens(&self) -> bool {
        self.changed.iter().any(|change| change.broadened)
            || self.added.iter().any(|s| s.effect == Effect::Allow)
            || self.removed.iter().any(|s| s.effect == Effect::Deny)
    }
}

/// Human-readable lines; an empty diff renders as nothing.
impl fmt::Display for PolicyDiff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(version) = &self.version {
            writeln!(f, "~ Version: {:?} (expected) -> {:?} (live)", version.expected, version.live)?;
        }
        for change in &self.changed {
            write!(f, "{change}")?;
        }
        for statement in &self.added {
            writeln!(f, "+ {} (added): {statement}", statement.label())?;
        }
        for statement in &self.removed {
            writeln!(f, "- {} (removed): {statement}", statement.label())?;
        }
        Ok(())
    }
}

impl fmt::Display for StatementChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "~ {}", self.expected.label())?;
        if self.live.position != self.expected.position {
            write!(f, " (live #{})", self.live.position)?;
        }
        writeln!(f, "{}", if self.broadened { ": BROADENED" } else { ":" })?;
        for field in &self.fields {
            write!(f, "{field}")?;
        }
        Ok(())
    }
}

/// One indented line per value: removals first, then additions.
impl fmt::Display for FieldChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for value in &self.removed {
            writeln!(f, "    {}: - {value}", self.field)?;
        }
        for value in &self.added {
            writeln!(f, "    {}: + {value}", self.field)?;
        }
        Ok(())
    }
}

/// Compares `expected` (what the configuration says) with `live` (what AWS
/// has). Statements with identical meaning are unchanged; the rest are paired
/// by `Sid` when that `Sid` is unique on both sides, then by best match (same
/// `Effect`, at least one shared value, most equal fields).
pub fn diff(expected: &Policy, live: &Policy) -> PolicyDiff {
    let version = (expected.version != live.version)
        .then(|| VersionChange { expected: expected.version.clone(), live: live.version.clone() });
    let expected_only = unmatched(&expected.statements, live);
    let live_only = unmatched(&live.statements, expected);
    let pairing = Pairing::build(&expected_only, &live_only);
    let changed = pairing
        .pairs
        .iter()
        .filter_map(|&(e, l)| Some(compare_statements(expected_only.get(e)?, live_only.get(l)?)))
        .collect();
    PolicyDiff {
        version,
        removed: unpaired(&expected_only, &pairing.expected_taken),
        added: unpaired(&live_only, &pairing.live_taken),
        changed,
    }
}

/// Statements of `statements` whose meaning does not occur in `other`.
fn unmatched<'a>(statements: &'a [Statement], other: &Policy) -> Vec<&'a Statement> {
    let meanings = other.meanings();
    statements.iter().filter(|s| !meanings.contains(&s.meaning())).collect()
}

/// Pairs of indices into the unmatched expected and live statements.
struct Pairing {
    pairs: Vec<(usize, usize)>,
    expected_taken: Vec<bool>,
    live_taken: Vec<bool>,
}

impl Pairing {
    fn build(expected: &[&Statement], live: &[&Statement]) -> Pairing {
        let mut pairing = Pairing {
            pairs: Vec::new(),
            expected_taken: vec![false; expected.len()],
            live_taken: vec![false; live.len()],
        };
        pairing.pair_by_sid(expected, live);
        pairing.pair_by_similarity(expected, live);
        pairing.pairs.sort_by_key(|&(e, _)| e);
        pairing
    }

    fn take(&mut self, e: usize, l: usize) {
        if let (Some(e_taken), Some(l_taken)) = (self.expected_taken.get_mut(e), self.live_taken.get_mut(l)) {
            *e_taken = true;
            *l_taken = true;
            self.pairs.push((e, l));
        }
    }

    fn is_free(&self, e: usize, l: usize) -> bool {
        self.expected_taken.get(e) == Some(&false) && self.live_taken.get(l) == Some(&false)
    }

    fn pair_by_sid(&mut self, expected: &[&Statement], live: &[&Statement]) {
        for (e, statement) in expected.iter().enumerate() {
            let Some(sid) = statement.sid() else {
                continue;
            };
            let with_sid = |s: &&Statement| s.sid() == Some(sid);
            let live_matches: Vec<usize> =
                live.iter().enumerate().filter(|(_, s)| with_sid(s)).map(|(l, _)| l).collect();
            let unique_in_expected = expected.iter().filter(|s| with_sid(s)).count() == 1;
            if unique_in_expected && let [l] = live_matches[..] {
                self.take(e, l);
            }
        }
    }

    fn pair_by_similarity(&mut self, expected: &[&Statement], live: &[&Statement]) {
        let mut candidates: Vec<(Similarity, usize, usize)> = Vec::new();
        for (e, expected_statement) in expected.iter().enumerate() {
            for (l, live_statement) in live.iter().enumerate() {
                if let Some(score) = similarity(expected_statement, live_statement) {
                    candidates.push((score, e, l));
                }
            }
        }
        candidates.sort_by_key(|&(score, e, l)| (Reverse(score), e, l));
        for (_, e, l) in candidates {
            if self.is_free(e, l) {
                self.take(e, l);
            }
        }
    }
}

/// Clones of the statements that found no partner.
fn unpaired(statements: &[&Statement], taken: &[bool]) -> Vec<Statement> {
    statements.iter().zip(taken).filter(|(_, taken)| !**taken).map(|(statement, _)| (*statement).clone()).collect()
}

/// (number of equal fields, number of shared values); higher is more similar.
type Similarity = (usize, usize);

fn similarity(expected: &Statement, live: &Statement) -> Option<Similarity> {
    if expected.effect != live.effect {
        return None;
    }
    let shared = shared_values(expected, live);
    if shared == 0 {
        return None;
    }
    let equal_fields = [
        expected.action == live.action,
        expected.resource == live.resource,
        expected.principal == live.principal,
        expected.condition == live.condition,
    ]
    .into_iter()
    .filter(|equal| *equal)
    .count();
    Some((equal_fields, shared))
}

/// Values both statements name. A `"*"` resource or principal is too common
/// (every KMS key policy statement has `Resource: "*"`) to say two statements
/// are about the same thing, so it is not counted.
fn shared_values(expected: &Statement, live: &Statement) -> usize {
    let actions = expected.action.values.intersection(&live.action.values).count();
    let resources = match (&expected.resource, &live.resource) {
        (Some(e), Some(l)) => count_specific(e.values.intersection(&l.values)),
        _ => 0,
    };
    let principals = match (&expected.principal, &live.principal) {
        (Some(e), Some(l)) => e
            .principals
            .iter()
            .filter_map(|(kind, values)| Some(count_specific(values.intersection(l.principals.get(kind)?))))
            .sum(),
        _ => 0,
    };
    actions + resources + principals
}

fn count_specific<'a>(values: impl Iterator<Item = &'a String>) -> usize {
    values.filter(|value| value.as_str() != "*").count()
}

/// How a change moves the set of requests a statement matches.
#[derive(Debug, Clone, Copy, Default)]
struct Shift {
    widens: bool,
    narrows: bool,
}

impl Shift {
    const WIDENS: Shift = Shift { widens: true, narrows: false };
    const NARROWS: Shift = Shift { widens: false, narrows: true };
    /// Direction unknown: treated as both, so it counts as broadening.
    const UNKNOWN: Shift = Shift { widens: true, narrows: true };
}

impl Shift {
    /// For a list of alternatives (actions, resources, principals, values of a positive
    /// condition) adding widens; for exclusions (`Not…` keys, negated condition operators)
    /// removing widens. A value that a wildcard on the other side already covers moves
    /// nothing: `kms:*` → `kms:Sign` only narrows, `kms:Sign` → `kms:*` only widens.
    fn of_sets(exclusions: bool, before: &[String], after: &[String], removed: &[String], added: &[String]) -> Shift {
        let uncovered = |values: &[String], other: &[String]| {
            values.iter().any(|v| !other.iter().any(|p| p != v && wildcard_match(p, v)))
        };
        let (gained, lost) = (uncovered(added, before), uncovered(removed, after));
        if exclusions { Shift { widens: lost, narrows: gained } } else { Shift { widens: gained, narrows: lost } }
    }
}

/// IAM-style wildcard match (`*` any run, `?` one character), case-insensitive.
fn wildcard_match(pattern: &str, value: &str) -> bool {
    let (p, v): (Vec<char>, Vec<char>) =
        (pattern.to_lowercase().chars().collect(), value.to_lowercase().chars().collect());
    let (mut pi, mut vi, mut star, mut mark) = (0, 0, None, 0);
    while vi < v.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == v[vi]) {
            pi += 1;
            vi += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = vi;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            vi = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// Accumulates field changes and how they shift the statement's scope.
#[derive(Default)]
struct FieldChanges {
    fields: Vec<FieldChange>,
    shift: Shift,
}

impl FieldChanges {
    fn record(&mut self, field: String, removed: Vec<String>, added: Vec<String>, shift: Shift) {
        if removed.is_empty() && added.is_empty() {
            return;
        }
        self.shift.widens |= shift.widens;
        self.shift.narrows |= shift.narrows;
        self.fields.push(FieldChange { field, removed, added });
    }

    /// Records a set difference under one field name.
    fn record_sets<T: Ord + fmt::Display>(
        &mut self,
        field: String,
        expected: &BTreeSet<T>,
        live: &BTreeSet<T>,
        exclusions: bool,
    ) {
        let removed = strings(expected.difference(live));
        let added = strings(live.difference(expected));
        let shift = Shift::of_sets(exclusions, &strings(expected.iter()), &strings(live.iter()), &removed, &added);
        self.record(field, removed, added, shift);
    }
}

fn strings<'a, T: fmt::Display + 'a>(values: impl Iterator<Item = &'a T>) -> Vec<String> {
    values.map(ToString::to_string).collect()
}

fn compare_statements(expected: &Statement, live: &Statement) -> StatementChange {
    let mut changes = FieldChanges::default();
    if expected.effect != live.effect {
        changes.record(
            "Effect".into(),
            vec![expected.effect.to_string()],
            vec![live.effect.to_string()],
            Shift::UNKNOWN,
        );
    }
    diff_clause(&mut changes, ACTION_KEYS, Some(&expected.action), Some(&live.action));
    diff_clause(&mut changes, RESOURCE_KEYS, expected.resource.as_ref(), live.resource.as_ref());
    diff_principals(&mut changes, expected.principal.as_ref(), live.principal.as_ref());
    diff_conditions(&mut changes, &expected.condition, &live.condition);
    // Narrowing a Deny un-denies requests, so it broadens what is granted.
    let broadened = match (expected.effect, live.effect) {
        (Effect::Allow, Effect::Allow) => changes.shift.widens,
        (Effect::Deny, Effect::Deny) => changes.shift.narrows,
        (Effect::Deny, Effect::Allow) => true,
        (Effect::Allow, Effect::Deny) => false,
    };
    StatementChange { expected: expected.clone(), live: live.clone(), fields: changes.fields, broadened }
}

fn diff_clause<T: Ord + fmt::Display>(
    changes: &mut FieldChanges,
    keys: (&'static str, &'static str),
    expected: Option<&Clause<T>>,
    live: Option<&Clause<T>>,
) {
    match (expected, live) {
        (Some(e), Some(l)) if e.negated == l.negated => {
            let field = clause_key(keys, e.negated).to_string();
            changes.record_sets(field, &e.values, &l.values, e.negated);
        }
        _ => {
            if let Some(e) = expected {
                let field = clause_key(keys, e.negated).to_string();
                changes.record(field, strings(e.values.iter()), Vec::new(), Shift::UNKNOWN);
            }
            if let Some(l) = live {
                let field = clause_key(keys, l.negated).to_string();
                changes.record(field, Vec::new(), strings(l.values.iter()), Shift::UNKNOWN);
            }
        }
    }
}

fn diff_principals(changes: &mut FieldChanges, expected: Option<&PrincipalClause>, live: Option<&PrincipalClause>) {
    match (expected, live) {
        (Some(e), Some(l)) if e.negated == l.negated => {
            let empty = BTreeSet::new();
            let kinds: BTreeSet<&String> = e.principals.keys().chain(l.principals.keys()).collect();
            for kind in kinds {
                let field = format!("{}.{kind}", principal_key(e.negated));
                let expected_values = e.principals.get(kind).unwrap_or(&empty);
                let live_values = l.principals.get(kind).unwrap_or(&empty);
                changes.record_sets(field, expected_values, live_values, e.negated);
            }
        }
        _ => {
            for (clause, is_expected) in [(expected, true), (live, false)] {
                let Some(clause) = clause else { continue };
                for (kind, values) in &clause.principals {
                    let field = format!("{}.{kind}", principal_key(clause.negated));
                    let values = strings(values.iter());
                    let (removed, added) = if is_expected { (values, Vec::new()) } else { (Vec::new(), values) };
                    changes.record(field, removed, added, Shift::UNKNOWN);
                }
            }
        }
    }
}

fn diff_conditions(changes: &mut FieldChanges, expected: &Conditions, live: &Conditions) {
    let no_keys = BTreeMap::new();
    let operators: BTreeSet<&String> = expected.keys().chain(live.keys()).collect();
    for operator in operators {
        let expected_keys = expected.get(operator).unwrap_or(&no_keys);
        let live_keys = live.get(operator).unwrap_or(&no_keys);
        // Expected keys first, so their spelling wins in field names.
        let keys: BTreeSet<&CaseInsensitive> = expected_keys.keys().chain(live_keys.keys()).collect();
        for key in keys {
            let field = format!("Condition.{operator}.{key}");
            diff_condition_key(
                changes,
                field,
                is_negated_operator(operator),
                expected_keys.get(key),
                live_keys.get(key),
            );
        }
    }
}

fn diff_condition_key(
    changes: &mut FieldChanges,
    field: String,
    negated_operator: bool,
    expected: Option<&BTreeSet<String>>,
    live: Option<&BTreeSet<String>>,
) {
    match (expected, live) {
        (Some(e), Some(l)) => changes.record_sets(field, e, l, negated_operator),
        // A dropped constraint matches more requests; a new one fewer.
        (Some(e), None) => changes.record(field, strings(e.iter()), Vec::new(), Shift::WIDENS),
        (None, Some(l)) => changes.record(field, Vec::new(), strings(l.iter()), Shift::NARROWS),
        (None, None) => {}
    }
}

/// `StringNotEquals`, `ForAllValues:ArnNotLike`, `NotIpAddressIfExists`, ...:
/// operators whose values are exclusions.
fn is_negated_operator(operator: &str) -> bool {
    let base =
        operator.strip_prefix("ForAllValues:").or_else(|| operator.strip_prefix("ForAnyValue:")).unwrap_or(operator);
    let base = base.strip_suffix("IfExists").unwrap_or(base);
    base.contains("Not")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const KEY_POLICY: &str = r#"{
      "Version": "2012-10-17",
      "Id": "keyrite-signer",
      "Statement": [
        {
          "Sid": "Admin",
          "Effect": "Allow",
          "Principal": {"AWS": "arn:aws:iam::111122223333:root"},
          "Action": "kms:*",
          "Resource": "*"
        },
        {
          "Sid": "AllowSign",
          "Effect": "Allow",
          "Principal": {"AWS": "arn:aws:iam::111122223333:role/signer"},
          "Action": ["kms:Sign", "kms:GetPublicKey"],
          "Resource": "*",
          "Condition": {"StringEquals": {"kms:SigningAlgorithm": "ECDSA_SHA_256"}}
        }
      ]
    }"#;

    /// The IAM trust policy `{"Version":"2012-10-17","Statement":[{"Effect":"Allow",
    /// "Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}]}`
    /// as IAM GetRole returns it.
    const IAM_ENCODED_TRUST: &str = "%7B%22Version%22%3A%222012-10-17%22%2C%22Statement%22%3A%5B%7B%22Effect%22%3A%22Allow%22%2C%22Principal%22%3A%7B%22Service%22%3A%22lambda.amazonaws.com%22%7D%2C%22Action%22%3A%22sts%3AAssumeRole%22%7D%5D%7D";

    fn policy(doc: Value) -> Policy {
        Policy::parse(&doc).expect("test policy parses")
    }

    fn text(source: &str) -> Policy {
        Policy::from_text(source).expect("test policy text parses")
    }

    fn statement(body: Value) -> Policy {
        policy(json!({"Version": "2012-10-17", "Statement": [body]}))
    }

    fn parse_error(doc: Value) -> PolicyError {
        Policy::parse(&doc).expect_err("test policy must be rejected")
    }

    fn assert_equivalent(a: &Policy, b: &Policy) {
        assert!(a.equivalent(b), "expected equivalent:\n{a:#?}\n{b:#?}");
        assert!(b.equivalent(a), "equivalence must be symmetric");
        let d = diff(a, b);
        assert!(d.is_empty(), "diff of equivalent policies must be empty: {d}");
    }

    fn sign_statement() -> Value {
        json!({
            "Sid": "AllowSign",
            "Effect": "Allow",
            "Principal": {"AWS": "arn:aws:iam::111122223333:role/signer"},
            "Action": ["kms:Sign", "kms:GetPublicKey"],
            "Resource": "*",
            "Condition": {"StringEquals": {"kms:SigningAlgorithm": "ECDSA_SHA_256"}}
        })
    }

    fn single_change(d: &PolicyDiff) -> &StatementChange {
        assert!(d.added.is_empty() && d.removed.is_empty(), "unexpected add/remove: {d}");
        assert_eq!(d.changed.len(), 1, "expected exactly one changed statement: {d}");
        &d.changed[0]
    }

    fn field<'a>(change: &'a StatementChange, name: &str) -> &'a FieldChange {
        change
            .fields
            .iter()
            .find(|f| f.field == name)
            .unwrap_or_else(|| panic!("no field {name} in {:?}", change.fields))
    }

    // --- decoding --------------------------------------------------------

    #[test]
    fn decodes_plain_json_object() {
        let doc = decode_policy_text(KEY_POLICY).unwrap();
        assert_eq!(doc["Id"], json!("keyrite-signer"));
        assert_eq!(text(KEY_POLICY).statements().len(), 2);
    }

    #[test]
    fn decodes_iam_percent_encoded_document() {
        let doc = decode_policy_text(IAM_ENCODED_TRUST).unwrap();
        assert_eq!(doc["Statement"][0]["Principal"]["Service"], json!("lambda.amazonaws.com"));
        let plain = policy(json!({
            "Version": "2012-10-17",
            "Statement": {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
        }));
        assert_equivalent(&text(IAM_ENCODED_TRUST), &plain);
    }

    #[test]
    fn percent_decoding_keeps_plus_and_decodes_space() {
        let encoded = "%7B%22Statement%22%3A%7B%22Effect%22%3A%22Allow%22%2C%22Action%22%3A%22s3%3AGetObject%22%2C%22Resource%22%3A%22arn%3Aaws%3As3%3A%3A%3Aa+b%2Fmy%20file%22%7D%7D";
        let parsed = text(encoded);
        let resources = parsed.statements()[0].resources().unwrap();
        assert_eq!(resources.values.iter().collect::<Vec<_>>(), ["arn:aws:s3:::a+b/my file"]);
    }

    #[test]
    fn decodes_api_gateway_backslash_escaped_document() {
        let escaped = r#"{\"Version\":\"2012-10-17\",\"Statement\":[{\"Effect\":\"Allow\",\"Principal\":\"*\",\"Action\":\"execute-api:Invoke\",\"Resource\":\"arn:aws:execute-api:us-east-1:111122223333:abc123/*\",\"Condition\":{\"IpAddress\":{\"aws:SourceIp\":\"10.0.0.0/8\"}}}]}"#;
        let plain = policy(json!({
            "Version": "2012-10-17",
            "Statement": [{
                "Effect": "Allow",
                "Principal": {"AWS": "*"},
                "Action": ["execute-api:Invoke"],
                "Resource": "arn:aws:execute-api:us-east-1:111122223333:abc123/*",
                "Condition": {"IpAddress": {"aws:SourceIp": ["10.0.0.0/8"]}}
            }]
        }));
        assert_equivalent(&text(escaped), &plain);
    }

    #[test]
    fn decodes_escaped_document_with_raw_newlines_and_escaped_slashes() {
        let escaped = "{\n  \\\"Statement\\\": {\\\"Effect\\\": \\\"Deny\\\",\n  \\\"Action\\\": \\\"kms:Decrypt\\\", \\\"Resource\\\": \\\"arn:aws:kms:eu-west-1:111122223333:key\\/abc\\\"}\n}";
        let parsed = text(escaped);
        let resources = parsed.statements()[0].resources().unwrap();
        assert!(resources.values.contains("arn:aws:kms:eu-west-1:111122223333:key/abc"));
        assert_eq!(parsed.statements()[0].effect(), Effect::Deny);
    }

    #[test]
    fn decodes_json_string_literal_and_double_escaping() {
        let inner = r#"{"Statement":{"Effect":"Allow","Action":"kms:Sign","Resource":"*"}}"#;
        let literal = serde_json::to_string(inner).unwrap();
        assert!(literal.starts_with("\"{\\\""));
        let double = serde_json::to_string(&literal).unwrap();
        let unquoted_double = double.strip_prefix('"').and_then(|d| d.strip_suffix('"')).unwrap();
        let expected = text(inner);
        assert_equivalent(&text(&literal), &expected);
        assert_equivalent(&text(&double), &expected);
        assert_equivalent(&text(unquoted_double), &expected);
    }

    #[test]
    fn decodes_string_literal_holding_percent_encoded_document() {
        let literal = serde_json::to_string(IAM_ENCODED_TRUST).unwrap();
        assert_equivalent(&text(&literal), &text(IAM_ENCODED_TRUST));
    }

    #[test]
    fn byte_order_mark_and_surrounding_whitespace_are_ignored() {
        let with_bom = format!("\u{feff}\n\t {KEY_POLICY}  \n");
        assert_equivalent(&text(&with_bom), &text(KEY_POLICY));
    }

    #[test]
    fn invalid_json_reports_line_and_column() {
        let broken = "{\n  \"Version\": \"2012-10-17\",\n    \"Statement\": [,]\n}";
        let error = decode_policy_text(broken).unwrap_err();
        let PolicyError::InvalidJson { line, column, .. } = &error else {
            panic!("expected InvalidJson, got {error:?}");
        };
        assert_eq!((*line, *column), (3, 19));
        let message = error.to_string();
        assert!(message.starts_with("policy is not valid JSON: "), "{message}");
        assert!(message.ends_with("at line 3 column 19"), "{message}");
        assert_eq!(message.matches("at line").count(), 1, "{message}");
    }

    #[test]
    fn invalid_plain_json_with_escaped_quote_in_a_value_reports_plain_error() {
        let broken = r#"{"Statement": {"Effect": "Allow", "Action": "s3:Get\"Object",}}"#;
        let error = decode_policy_text(broken).unwrap_err();
        let message = error.to_string();
        assert!(message.starts_with("policy is not valid JSON: "), "{message}");
        assert_eq!(message, "policy is not valid JSON: trailing comma at line 1 column 62");
    }

    #[test]
    fn invalid_json_after_percent_decoding_says_so() {
        let error = decode_policy_text("%7B%22Version%22%3A%7D").unwrap_err();
        let message = error.to_string();
        assert!(message.contains("(after percent-decoding)"), "{message}");
        assert!(message.contains("line 1 column"), "{message}");
    }

    #[test]
    fn rejects_empty_non_object_and_undecodable_text() {
        assert_eq!(decode_policy_text("  \n "), Err(PolicyError::Empty));
        assert_eq!(decode_policy_text("[1, 2]"), Err(PolicyError::NotAnObject { found: "an array" }));
        assert_eq!(decode_policy_text("\"42\""), Err(PolicyError::NotAnObject { found: "a number" }));
        let error = decode_policy_text("%FF%FE%7B").unwrap_err();
        assert!(matches!(error, PolicyError::Undecodable(_)), "{error:?}");
        assert!(error.to_string().contains("UTF-8"));
    }

    #[test]
    fn deeply_nested_string_literals_are_rejected() {
        let mut wrapped = KEY_POLICY.to_string();
        for _ in 0..6 {
            wrapped = serde_json::to_string(&wrapped).unwrap();
        }
        assert_eq!(
            decode_policy_text(&wrapped),
            Err(PolicyError::TooManyEncodingLayers { limit: MAX_ENCODING_LAYERS })
        );
    }

    #[test]
    fn never_panics_on_truncated_or_mangled_input() {
        let encoded: String =
            percent_encoding::utf8_percent_encode(KEY_POLICY, percent_encoding::NON_ALPHANUMERIC).to_string();
        let escaped = serde_json::to_string(KEY_POLICY).unwrap();
        for source in [KEY_POLICY, encoded.as_str(), escaped.as_str()] {
            for (cut, _) in source.char_indices() {
                let _ = Policy::from_text(&source[..cut]);
                let _ = Policy::from_text(&source[cut..]);
            }
        }
        for weird in ["\\", "\"\\", "%", "%%%", "{\\\"", "\"\"", "null", "{}", "\u{0}", "{\\u0000\\\"}"] {
            let _ = Policy::from_text(weird);
        }
        assert!(Policy::from_text(&encoded).is_ok());
    }

    // --- parse errors ----------------------------------------------------

    #[test]
    fn bad_effect_names_statement_position() {
        let error = parse_error(json!({
            "Version": "2012-10-17",
            "Statement": [sign_statement(), {"Effect": "allow", "Action": "kms:Sign", "Resource": "*"}]
        }));
        assert_eq!(error.to_string(), "Statement 2: Effect must be Allow or Deny, found \"allow\"");
        let missing = parse_error(json!({"Statement": {"Action": "kms:Sign"}}));
        assert_eq!(missing.to_string(), "Statement 1: Effect is missing (must be Allow or Deny)");
    }

    #[test]
    fn missing_or_doubled_action_is_rejected() {
        let missing = parse_error(json!({"Statement": [{"Effect": "Allow", "Resource": "*"}]}));
        assert_eq!(missing.to_string(), "Statement 1: must have exactly one of Action or NotAction");
        let both = parse_error(json!({"Statement": [
            {"Effect": "Allow", "Action": "kms:Sign", "NotAction": "kms:Decrypt", "Resource": "*"}
        ]}));
        assert_eq!(both.to_string(), "Statement 1: must not have both Action and NotAction");
    }

    #[test]
    fn resource_and_not_resource_together_are_rejected() {
        let error = parse_error(json!({"Statement": [
            {"Effect": "Allow", "Action": "kms:Sign", "Resource": "*", "NotResource": "arn:x"}
        ]}));
        assert_eq!(
            error,
            PolicyError::InvalidStatement { position: 1, reason: "must not have both Resource and NotResource".into() }
        );
    }

    #[test]
    fn unknown_statement_and_document_keys_are_named() {
        let error = parse_error(json!({"Statement": [
            sign_statement(),
            {"Effect": "Allow", "Actions": "kms:Sign", "Resource": "*"}
        ]}));
        assert_eq!(error, PolicyError::UnknownStatementKey { position: 2, key: "Actions".into() });
        assert!(error.to_string().starts_with("Statement 2: unknown key \"Actions\""));
        let document = parse_error(json!({"Statement": [], "Statements": []}));
        assert_eq!(document, PolicyError::UnknownDocumentKey { key: "Statements".into() });
    }

    #[test]
    fn non_object_statements_and_statement_lists_are_rejected() {
        let error = parse_error(json!({"Statement": [sign_statement(), "Allow everything"]}));
        assert_eq!(error.to_string(), "Statement 2: must be a JSON object, found a string");
        let list = parse_error(json!({"Statement": "nope"}));
        assert!(matches!(list, PolicyError::InvalidDocumentField { field: "Statement", .. }));
        assert_eq!(parse_error(json!({"Version": "2012-10-17"})), PolicyError::MissingStatement);
    }

    #[test]
    fn bad_values_are_rejected_with_field_names() {
        let cases = [
            (json!({"Effect": "Allow", "Action": [], "Resource": "*"}), "Action must not be empty"),
            (
                json!({"Effect": "Allow", "Action": [1], "Resource": "*"}),
                "Action values must be strings, found a number",
            ),
            (
                json!({"Effect": "Allow", "Action": "kms:Sign", "Resource": ""}),
                "Resource values must not be empty strings",
            ),
            (
                json!({"Effect": "Allow", "Action": "kms:Sign", "Principal": {"aws": "*"}}),
                "unknown principal type \"aws\"",
            ),
            (
                json!({"Effect": "Allow", "Action": "kms:Sign", "Principal": "arn:aws:iam::111122223333:root"}),
                "Principal must be \"*\" or an object",
            ),
            (
                json!({"Effect": "Allow", "Action": "kms:Sign", "Condition": {"Bool": {"aws:SecureTransport": null}}}),
                "Condition.Bool.aws:SecureTransport values must be strings, booleans or numbers, found null",
            ),
            (
                json!({"Effect": "Allow", "Action": "kms:Sign", "Condition": {"StringEquals": "x"}}),
                "Condition.StringEquals must be an object",
            ),
            (
                json!({"Effect": "Allow", "Action": "kms:Sign", "Condition": {"StringEquals": {"kms:ViaService": "a", "KMS:viaservice": "b"}}}),
                "more than once",
            ),
            (json!({"Sid": 7, "Effect": "Allow", "Action": "kms:Sign"}), "Sid must be a string"),
        ];
        for (body, expected) in cases {
            let message = parse_error(json!({"Statement": [body]})).to_string();
            assert!(message.starts_with("Statement 1: "), "{message}");
            assert!(message.contains(expected), "{message:?} should contain {expected:?}");
        }
    }

    #[test]
    fn unknown_version_is_rejected() {
        let error = parse_error(json!({"Version": "2012-10-18", "Statement": []}));
        assert_eq!(
            error.to_string(),
            "policy document: Version must be \"2012-10-17\" or \"2008-10-17\", found \"2012-10-18\""
        );
    }

    #[test]
    fn trust_policy_without_resource_parses() {
        let trust = text(IAM_ENCODED_TRUST);
        let only = &trust.statements()[0];
        assert!(only.resources().is_none());
        assert_eq!(only.principals().unwrap().principals["Service"].len(), 1);
        assert_eq!(only.position(), 1);
        assert_eq!(only.sid(), None);
    }

    // --- equivalence -----------------------------------------------------

    #[test]
    fn statement_order_does_not_matter() {
        let doc: Value = serde_json::from_str(KEY_POLICY).unwrap();
        let mut reversed = doc.clone();
        reversed["Statement"].as_array_mut().unwrap().reverse();
        assert_equivalent(&policy(doc), &policy(reversed));
    }

    #[test]
    fn reformatted_json_is_equivalent() {
        let compact = serde_json::to_string(&serde_json::from_str::<Value>(KEY_POLICY).unwrap()).unwrap();
        assert!(!compact.contains('\n'));
        assert_equivalent(&text(&compact), &text(KEY_POLICY));
    }

    #[test]
    fn single_statement_object_equals_one_element_array() {
        let object = policy(json!({"Version": "2012-10-17", "Statement": sign_statement()}));
        let array = policy(json!({"Version": "2012-10-17", "Statement": [sign_statement()]}));
        assert_equivalent(&object, &array);
    }

    #[test]
    fn strings_equal_one_element_lists_everywhere() {
        let strings = statement(json!({
            "Effect": "Allow",
            "Principal": {"AWS": "arn:aws:iam::111122223333:role/signer"},
            "Action": "kms:Sign",
            "Resource": "*",
            "Condition": {"StringEquals": {"kms:SigningAlgorithm": "ECDSA_SHA_256"}}
        }));
        let lists = statement(json!({
            "Effect": "Allow",
            "Principal": {"AWS": ["arn:aws:iam::111122223333:role/signer"]},
            "Action": ["kms:Sign"],
            "Resource": ["*"],
            "Condition": {"StringEquals": {"kms:SigningAlgorithm": ["ECDSA_SHA_256"]}}
        }));
        assert_equivalent(&strings, &lists);
    }

    #[test]
    fn lists_are_sets() {
        let a =
            statement(json!({"Effect": "Allow", "Action": ["kms:Sign", "kms:Verify"], "Resource": ["arn:b", "arn:a"]}));
        let b = statement(
            json!({"Effect": "Allow", "Action": ["kms:Verify", "kms:Sign", "kms:Sign"], "Resource": ["arn:a", "arn:b", "arn:a"]}),
        );
        assert_equivalent(&a, &b);
    }

    #[test]
    fn actions_compare_case_insensitively_but_keep_spelling() {
        let a = statement(json!({"Effect": "Allow", "Action": "kms:Sign", "Resource": "*"}));
        let b = statement(json!({"Effect": "Allow", "Action": "KMS:sign", "Resource": "*"}));
        assert_equivalent(&a, &b);
        let first = a.statements()[0].actions().values.iter().next().unwrap();
        assert_eq!(first.as_str(), "kms:Sign");
    }

    #[test]
    fn resources_compare_case_sensitively() {
        let a = statement(json!({"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::Bucket/*"}));
        let b = statement(json!({"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::bucket/*"}));
        assert!(!a.equivalent(&b));
    }

    #[test]
    fn account_id_equals_root_arn() {
        let id = statement(
            json!({"Effect": "Allow", "Principal": {"AWS": "111122223333"}, "Action": "kms:*", "Resource": "*"}),
        );
        let arn = statement(
            json!({"Effect": "Allow", "Principal": {"AWS": ["arn:aws:iam::111122223333:root"]}, "Action": "kms:*", "Resource": "*"}),
        );
        assert_equivalent(&id, &arn);
        let not_an_id = statement(
            json!({"Effect": "Allow", "Principal": {"AWS": "11112222333"}, "Action": "kms:*", "Resource": "*"}),
        );
        assert!(!not_an_id.equivalent(&arn));
    }

    #[test]
    fn star_principal_equals_aws_star() {
        let star =
            statement(json!({"Effect": "Allow", "Principal": "*", "Action": "execute-api:Invoke", "Resource": "*"}));
        let aws_star = statement(
            json!({"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "execute-api:Invoke", "Resource": "*"}),
        );
        assert_equivalent(&star, &aws_star);
        let not_principal = statement(
            json!({"Effect": "Allow", "NotPrincipal": {"AWS": "*"}, "Action": "execute-api:Invoke", "Resource": "*"}),
        );
        assert!(!not_principal.equivalent(&star));
    }

    #[test]
    fn condition_keys_are_case_insensitive_operators_are_not() {
        let base = |operator: &str, key: &str| {
            statement(json!({"Effect": "Allow", "Action": "kms:Sign", "Resource": "*",
                "Condition": {operator: {key: "ECDSA_SHA_256"}}}))
        };
        let original = base("StringEquals", "kms:SigningAlgorithm");
        assert_equivalent(&original, &base("StringEquals", "KMS:signingalgorithm"));
        assert!(!original.equivalent(&base("stringequals", "kms:SigningAlgorithm")));
    }

    #[test]
    fn boolean_and_number_condition_values_equal_their_strings() {
        let typed = statement(json!({"Effect": "Deny", "Action": "s3:*", "Resource": "*",
            "Condition": {"Bool": {"aws:SecureTransport": false}, "NumericLessThan": {"s3:TlsVersion": 1.2}}}));
        let strings = statement(json!({"Effect": "Deny", "Action": "s3:*", "Resource": "*",
            "Condition": {"Bool": {"aws:SecureTransport": "false"}, "NumericLessThan": {"s3:TlsVersion": ["1.2"]}}}));
        assert_equivalent(&typed, &strings);
    }

    #[test]
    fn empty_condition_blocks_mean_no_condition() {
        let none = statement(json!({"Effect": "Allow", "Action": "kms:Sign", "Resource": "*"}));
        let empty = statement(
            json!({"Effect": "Allow", "Action": "kms:Sign", "Resource": "*", "Condition": {"StringEquals": {}}}),
        );
        assert_equivalent(&none, &empty);
    }

    #[test]
    fn exact_duplicate_statements_collapse() {
        let doubled = policy(json!({"Version": "2012-10-17", "Statement": [
            sign_statement(),
            {"Sid": "Copy", "Effect": "Allow", "Principal": {"AWS": ["arn:aws:iam::111122223333:role/signer"]},
             "Action": ["KMS:GetPublicKey", "kms:Sign"], "Resource": "*",
             "Condition": {"StringEquals": {"kms:signingalgorithm": "ECDSA_SHA_256"}}}
        ]}));
        assert_eq!(doubled.statements().len(), 1);
        assert_eq!(doubled.statements()[0].sid(), Some("AllowSign"));
        assert_equivalent(&doubled, &statement(sign_statement()));
    }

    #[test]
    fn sid_and_id_changes_are_equivalent() {
        let original = text(KEY_POLICY);
        let renamed = text(&KEY_POLICY.replace("AllowSign", "SignerAccess").replace("keyrite-signer", "other-id"));
        assert_ne!(original, renamed);
        assert_equivalent(&original, &renamed);
        let no_sids = statement(json!({"Effect": "Allow", "Action": "kms:Sign", "Resource": "*"}));
        let with_sid = statement(json!({"Sid": "X", "Effect": "Allow", "Action": "kms:Sign", "Resource": "*"}));
        assert_equivalent(&no_sids, &with_sid);
    }

    #[test]
    fn missing_version_is_2008_and_differs_from_2012() {
        let body = json!({"Effect": "Allow", "Action": "kms:Sign", "Resource": "*"});
        let missing = policy(json!({"Statement": body.clone()}));
        let old = policy(json!({"Version": "2008-10-17", "Statement": body.clone()}));
        let current = policy(json!({"Version": "2012-10-17", "Statement": body}));
        assert_eq!(missing.version(), DEFAULT_VERSION);
        assert_equivalent(&missing, &old);
        assert!(!missing.equivalent(&current));
        let d = diff(&current, &missing);
        assert_eq!(d.version, Some(VersionChange { expected: "2012-10-17".into(), live: "2008-10-17".into() }));
        assert!(d.changed.is_empty() && d.added.is_empty() && d.removed.is_empty());
        assert!(!d.is_empty());
        assert_eq!(d.to_string(), "~ Version: \"2012-10-17\" (expected) -> \"2008-10-17\" (live)\n");
    }

    #[test]
    fn canonical_json_round_trips() {
        let original = text(KEY_POLICY);
        let canonical = original.to_json();
        assert_eq!(canonical["Statement"][1]["Action"], json!(["kms:GetPublicKey", "kms:Sign"]));
        assert_eq!(canonical["Statement"][0]["Action"], json!("kms:*"));
        let reparsed = policy(canonical);
        assert_equivalent(&original, &reparsed);
        assert_eq!(reparsed.id(), Some("keyrite-signer"));
    }

    // --- diff ------------------------------------------------------------

    #[test]
    fn replacing_a_wildcard_with_a_specific_action_narrows() {
        let wide = Policy::from_text(r#"{"Version":"2012-10-17","Statement":[{"Sid":"S","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:role/a"},"Action":"kms:*","Resource":"*"}]}"#).unwrap();
        let narrow = Policy::from_text(r#"{"Version":"2012-10-17","Statement":[{"Sid":"S","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:role/a"},"Action":"kms:Sign","Resource":"*"}]}"#).unwrap();
        assert!(!diff(&wide, &narrow).broadens(), "kms:* → kms:Sign narrows");
        assert!(diff(&narrow, &wide).broadens(), "kms:Sign → kms:* broadens");
        assert!(wildcard_match("kms:Get*", "KMS:GetPublicKey"));
        assert!(wildcard_match("arn:aws:kms:*:111122223333:key/?bc", "arn:aws:kms:us-east-1:111122223333:key/abc"));
        assert!(!wildcard_match("kms:Get*", "kms:Sign"));
    }

    #[test]
    fn action_broadened_to_kms_star() {
        let expected = statement(sign_statement());
        let mut live_body = sign_statement();
        live_body["Action"] = json!(["kms:Sign", "kms:GetPublicKey", "kms:*"]);
        let d = diff(&expected, &statement(live_body));
        let change = single_change(&d);
        assert!(change.broadened);
        assert_eq!(change.fields.len(), 1);
        assert_eq!(
            change.fields[0],
            FieldChange { field: "Action".into(), removed: vec![], added: vec!["kms:*".into()] }
        );
        assert!(d.broadens());
    }

    #[test]
    fn removed_signing_algorithm_condition_is_broadening() {
        let expected = statement(sign_statement());
        let mut live_body = sign_statement();
        live_body.as_object_mut().unwrap().remove("Condition");
        let d = diff(&expected, &statement(live_body));
        let change = single_change(&d);
        assert!(change.broadened);
        let condition = field(change, "Condition.StringEquals.kms:SigningAlgorithm");
        assert_eq!(condition.removed, ["ECDSA_SHA_256"]);
        assert!(condition.added.is_empty());
    }

    #[test]
    fn added_source_ip_restriction_is_not_broadening() {
        let expected = statement(sign_statement());
        let mut live_body = sign_statement();
        live_body["Condition"]["IpAddress"] = json!({"aws:SourceIp": "203.0.113.0/24"});
        let d = diff(&expected, &statement(live_body));
        let change = single_change(&d);
        assert!(!change.broadened);
        assert_eq!(field(change, "Condition.IpAddress.aws:SourceIp").added, ["203.0.113.0/24"]);
        assert!(!d.broadens());
    }

    #[test]
    fn extra_allowed_condition_value_is_broadening_and_negated_operator_is_reversed() {
        let with = |operator: &str, values: Value| {
            statement(json!({"Effect": "Allow", "Action": "kms:Sign", "Resource": "*",
                "Condition": {operator: {"kms:SigningAlgorithm": values}}}))
        };
        let d = diff(
            &with("StringEquals", json!("ECDSA_SHA_256")),
            &with("StringEquals", json!(["ECDSA_SHA_256", "RSASSA_PSS_SHA_256"])),
        );
        assert!(single_change(&d).broadened);
        let d = diff(
            &with("StringNotEquals", json!(["RSASSA_PSS_SHA_256", "ECDSA_SHA_384"])),
            &with("StringNotEquals", json!("RSASSA_PSS_SHA_256")),
        );
        assert!(single_change(&d).broadened, "removing an exclusion broadens");
        let d = diff(
            &with("StringNotEquals", json!("RSASSA_PSS_SHA_256")),
            &with("StringNotEquals", json!(["RSASSA_PSS_SHA_256", "ECDSA_SHA_384"])),
        );
        assert!(!single_change(&d).broadened, "adding an exclusion narrows");
    }

    #[test]
    fn added_and_removed_statements() {
        let expected = text(KEY_POLICY);
        let mut doc: Value = serde_json::from_str(KEY_POLICY).unwrap();
        let statements = doc["Statement"].as_array_mut().unwrap();
        statements.remove(0);
        statements.push(
            json!({"Effect": "Allow", "Principal": {"AWS": "444455556666"}, "Action": "iam:PassRole", "Resource": "*"}),
        );
        let live = policy(doc);
        let d = diff(&expected, &live);
        assert!(d.changed.is_empty(), "{d}");
        assert_eq!(d.removed.len(), 1);
        assert_eq!(d.removed[0].sid(), Some("Admin"));
        assert_eq!(d.added.len(), 1);
        assert_eq!(d.added[0].position(), 2);
        assert!(d.broadens(), "an added Allow broadens");
    }

    #[test]
    fn removed_deny_broadens_and_added_deny_does_not() {
        let allow = json!({"Effect": "Allow", "Action": "kms:*", "Resource": "*"});
        let deny = json!({"Effect": "Deny", "Action": "kms:ScheduleKeyDeletion", "Resource": "*"});
        let with_deny = policy(json!({"Version": "2012-10-17", "Statement": [allow.clone(), deny]}));
        let without = policy(json!({"Version": "2012-10-17", "Statement": [allow]}));
        let removed = diff(&with_deny, &without);
        assert_eq!(removed.removed.len(), 1);
        assert!(removed.broadens());
        let added = diff(&without, &with_deny);
        assert_eq!(added.added.len(), 1);
        assert!(!added.broadens());
    }

    #[test]
    fn changed_resource_is_reported_and_broadening() {
        let expected = statement(
            json!({"Sid": "Read", "Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::logs/*"}),
        );
        let live = statement(
            json!({"Sid": "Read", "Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::*"}),
        );
        let d = diff(&expected, &live);
        let change = single_change(&d);
        assert_eq!(
            change.fields,
            [FieldChange {
                field: "Resource".into(),
                removed: vec!["arn:aws:s3:::logs/*".into()],
                added: vec!["arn:aws:s3:::*".into()],
            }]
        );
        assert!(change.broadened);
    }

    #[test]
    fn narrowed_deny_is_broadening_and_widened_deny_is_not() {
        let deny = |actions: Value| {
            statement(
                json!({"Sid": "NoDelete", "Effect": "Deny", "Principal": "*", "Action": actions, "Resource": "*"}),
            )
        };
        let both = deny(json!(["kms:ScheduleKeyDeletion", "kms:DisableKey"]));
        let one = deny(json!("kms:ScheduleKeyDeletion"));
        let narrowed = diff(&both, &one);
        let change = single_change(&narrowed);
        assert!(change.broadened);
        assert_eq!(field(change, "Action").removed, ["kms:DisableKey"]);
        let widened = diff(&one, &both);
        assert!(!single_change(&widened).broadened);
    }

    #[test]
    fn removed_not_action_exclusion_is_broadening() {
        let not_action = |actions: Value| statement(json!({"Effect": "Allow", "NotAction": actions, "Resource": "*"}));
        let d = diff(&not_action(json!(["iam:*", "kms:ScheduleKeyDeletion"])), &not_action(json!("iam:*")));
        let change = single_change(&d);
        assert!(change.broadened);
        assert_eq!(field(change, "NotAction").removed, ["kms:ScheduleKeyDeletion"]);
    }

    #[test]
    fn action_turned_into_not_action_counts_as_broadening() {
        let expected = statement(json!({"Sid": "S", "Effect": "Allow", "Action": "kms:Sign", "Resource": "*"}));
        let live = statement(json!({"Sid": "S", "Effect": "Allow", "NotAction": "kms:Decrypt", "Resource": "*"}));
        let d = diff(&expected, &live);
        let change = single_change(&d);
        assert!(change.broadened);
        assert_eq!(field(change, "Action").removed, ["kms:Sign"]);
        assert_eq!(field(change, "NotAction").added, ["kms:Decrypt"]);
    }

    #[test]
    fn added_principal_is_broadening() {
        let expected = statement(sign_statement());
        let mut live_body = sign_statement();
        live_body["Principal"] = json!({
            "AWS": ["arn:aws:iam::111122223333:role/signer", "999988887777"],
            "Service": "lambda.amazonaws.com"
        });
        let d = diff(&expected, &statement(live_body));
        let change = single_change(&d);
        assert!(change.broadened);
        assert_eq!(field(change, "Principal.AWS").added, ["arn:aws:iam::999988887777:root"]);
        assert_eq!(field(change, "Principal.Service").added, ["lambda.amazonaws.com"]);
    }

    #[test]
    fn effect_flip_to_allow_is_broadening() {
        let deny = statement(json!({"Sid": "Guard", "Effect": "Deny", "Action": "kms:Decrypt", "Resource": "*"}));
        let allow = statement(json!({"Sid": "Guard", "Effect": "Allow", "Action": "kms:Decrypt", "Resource": "*"}));
        let d = diff(&deny, &allow);
        let change = single_change(&d);
        assert!(change.broadened);
        assert_eq!(field(change, "Effect").added, ["Allow"]);
        assert!(!single_change(&diff(&allow, &deny)).broadened);
    }

    #[test]
    fn pairs_by_sid_even_when_content_differs_entirely() {
        let expected = statement(json!({"Sid": "Main", "Effect": "Allow", "Action": "kms:Sign", "Resource": "arn:a"}));
        let live = statement(json!({"Sid": "Main", "Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:b"}));
        let change = single_change(&diff(&expected, &live)).clone();
        assert_eq!(change.expected.sid(), Some("Main"));
        assert_eq!(field(&change, "Action").added, ["s3:GetObject"]);
        assert_eq!(field(&change, "Resource").removed, ["arn:a"]);
    }

    #[test]
    fn unrelated_statements_without_sids_are_added_and_removed() {
        let expected = statement(json!({"Effect": "Allow", "Action": "kms:Sign", "Resource": "arn:a"}));
        let live = statement(json!({"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:b"}));
        let d = diff(&expected, &live);
        assert!(d.changed.is_empty());
        assert_eq!((d.removed.len(), d.added.len()), (1, 1));
    }

    #[test]
    fn pairs_by_best_match_without_sids() {
        let expected = policy(json!({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:role/a"}, "Action": "kms:Sign", "Resource": "*"},
            {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:role/b"}, "Action": "kms:Sign", "Resource": "*"}
        ]}));
        let live = policy(json!({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:role/b"}, "Action": ["kms:Sign", "kms:Verify"], "Resource": "*"},
            {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:role/a"}, "Action": "kms:Sign", "Resource": "*"}
        ]}));
        let d = diff(&expected, &live);
        let change = single_change(&d);
        assert_eq!(change.expected.position(), 2);
        assert_eq!(change.live.position(), 1);
        assert_eq!(change.fields.len(), 1);
        assert_eq!(field(change, "Action").added, ["kms:Verify"]);
    }

    #[test]
    fn display_renders_human_lines() {
        let expected = text(KEY_POLICY);
        let live = policy(json!({"Version": "2012-10-17", "Statement": [
            {"Sid": "Other", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:role/ops"}, "Action": "kms:DescribeKey", "Resource": "*"},
            {"Sid": "AllowSign", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:role/signer"},
             "Action": ["kms:Sign", "kms:GetPublicKey", "kms:*"], "Resource": "*"},
            {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::444455556666:role/ci"}, "Action": "iam:PassRole", "Resource": "*"}
        ]}));
        let d = diff(&expected, &live);
        let rendered = d.to_string();
        let expected_lines = [
            "~ statement \"AllowSign\" (#2): BROADENED",
            "    Action: + kms:*",
            "    Condition.StringEquals.kms:SigningAlgorithm: - ECDSA_SHA_256",
            "+ statement #3 (added): Allow Action [iam:PassRole] on Resource [*] Principal AWS [arn:aws:iam::444455556666:role/ci]",
            "+ statement \"Other\" (#1) (added): Allow Action [kms:DescribeKey] on Resource [*] Principal AWS [arn:aws:iam::111122223333:role/ops]",
            "- statement \"Admin\" (#1) (removed): Allow Action [kms:*] on Resource [*] Principal AWS [arn:aws:iam::111122223333:root]",
        ];
        for line in expected_lines {
            assert!(rendered.lines().any(|l| l == line), "missing line {line:?} in:\n{rendered}");
        }
        assert!(!rendered.contains("Version"));
        assert_eq!(d.changed.len(), 1);
    }

    #[test]
    fn display_of_unbroadened_change_and_moved_statement() {
        let expected = statement(sign_statement());
        let mut live_body = sign_statement();
        live_body["Action"] = json!("kms:Sign");
        let live = policy(json!({"Version": "2012-10-17", "Statement": [
            {"Effect": "Deny", "Action": "kms:Decrypt", "Resource": "*"}, live_body
        ]}));
        let rendered = diff(&expected, &live).to_string();
        assert!(rendered.contains("~ statement \"AllowSign\" (#1) (live #2):\n"), "{rendered}");
        assert!(rendered.contains("    Action: - kms:GetPublicKey\n"), "{rendered}");
        assert!(!rendered.contains("BROADENED"), "{rendered}");
        assert!(rendered.contains("+ statement #1 (added): Deny Action [kms:Decrypt] on Resource [*]"), "{rendered}");
    }

    #[test]
    fn empty_diff_renders_nothing_and_serialises() {
        let d = diff(&text(KEY_POLICY), &text(KEY_POLICY));
        assert!(d.is_empty());
        assert!(!d.broadens());
        assert_eq!(d.to_string(), "");
        assert_eq!(
            serde_json::to_value(&d).unwrap(),
            json!({"version": null, "removed": [], "added": [], "changed": []})
        );
    }

    #[test]
    fn diff_serialises_to_json() {
        let expected = statement(sign_statement());
        let mut live_body = sign_statement();
        live_body["Action"] = json!("KMS:*");
        let value = serde_json::to_value(diff(&expected, &statement(live_body))).unwrap();
        let change = &value["changed"][0];
        assert_eq!(change["broadened"], json!(true));
        assert_eq!(change["expected"]["sid"], json!("AllowSign"));
        assert_eq!(change["live"]["action"]["values"], json!(["KMS:*"]));
        assert_eq!(
            change["fields"][0],
            json!({"field": "Action", "removed": ["kms:GetPublicKey", "kms:Sign"], "added": ["KMS:*"]})
        );
        let error = serde_json::to_value(PolicyError::UnknownStatementKey { position: 3, key: "Foo".into() }).unwrap();
        assert_eq!(error, json!({"UnknownStatementKey": {"position": 3, "key": "Foo"}}));
    }

    #[test]
    fn negated_operator_detection() {
        for operator in ["StringNotEquals", "ForAllValues:StringNotLike", "NotIpAddress", "ArnNotEqualsIfExists"] {
            assert!(is_negated_operator(operator), "{operator}");
        }
        for operator in ["StringEquals", "ForAnyValue:StringLike", "IpAddress", "Null", "BoolIfExists"] {
            assert!(!is_negated_operator(operator), "{operator}");
        }
    }
}

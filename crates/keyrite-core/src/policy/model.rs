//! The canonical form of a policy: statements as sets, case rules applied, principals and
//! versions normalised; parsing into it, and rendering it back to JSON.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::hash::{Hash, Hasher};

use serde::{Serialize, Serializer};
use serde_json::{Map, Value};

use super::*;

/// A string that compares, orders and hashes case-insensitively but keeps its
/// original spelling for display (actions, condition keys).
#[derive(Debug, Clone)]
pub struct CaseInsensitive {
    pub(super) text: String,
    pub(super) folded: String,
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
    pub(super) sid: Option<String>,
    pub(super) position: usize,
    pub(super) effect: Effect,
    pub(super) action: Clause<CaseInsensitive>,
    pub(super) resource: Option<Clause<String>>,
    pub(super) principal: Option<PrincipalClause>,
    pub(super) condition: Conditions,
}

/// The parts of a statement that carry meaning, comparable and orderable.
pub(super) type Meaning<'a> =
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

    /// True when this is an Allow statement whose actions cover `action` (directly, by a
    /// wildcard such as `kms:*` or `kms:Sig*`, or by a NotAction that does not exclude it).
    pub fn grants(&self, action: &str) -> bool {
        if self.effect() != Effect::Allow {
            return false;
        }
        let action = action.to_ascii_lowercase();
        let matches = |pattern: &CaseInsensitive| {
            let pattern = pattern.as_str().to_ascii_lowercase();
            pattern == "*"
                || pattern == action
                || pattern.strip_suffix('*').is_some_and(|prefix| action.starts_with(prefix))
        };
        let actions = self.actions();
        let listed = actions.values.iter().any(matches);
        if actions.negated { !listed } else { listed }
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

    pub(super) fn meaning(&self) -> Meaning<'_> {
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
    pub(super) version: String,
    pub(super) id: Option<String>,
    pub(super) statements: Vec<Statement>,
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

    pub(super) fn meanings(&self) -> BTreeSet<Meaning<'_>> {
        self.statements.iter().map(Statement::meaning).collect()
    }
}

// ---------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------

pub(super) const ACTION_KEYS: (&str, &str) = ("Action", "NotAction");
pub(super) const RESOURCE_KEYS: (&str, &str) = ("Resource", "NotResource");
pub(super) const PRINCIPAL_KEYS: (&str, &str) = ("Principal", "NotPrincipal");

pub(super) fn clause_key(keys: (&'static str, &'static str), negated: bool) -> &'static str {
    if negated { keys.1 } else { keys.0 }
}

pub(super) fn principal_key(negated: bool) -> &'static str {
    clause_key(PRINCIPAL_KEYS, negated)
}

pub(super) fn parse_version(value: Option<&Value>) -> Result<String, PolicyError> {
    match value {
        None => Ok(DEFAULT_VERSION.to_string()),
        Some(Value::String(version)) if KNOWN_VERSIONS.contains(&version.as_str()) => Ok(version.clone()),
        Some(other) => Err(PolicyError::InvalidDocumentField {
            field: "Version",
            reason: format!("must be \"{CURRENT_VERSION}\" or \"{DEFAULT_VERSION}\", found {}", describe(other)),
        }),
    }
}

pub(super) fn parse_id(value: Option<&Value>) -> Result<Option<String>, PolicyError> {
    match value {
        None => Ok(None),
        Some(Value::String(id)) => Ok(Some(id.clone())),
        Some(other) => Err(PolicyError::InvalidDocumentField {
            field: "Id",
            reason: format!("must be a string, found {}", json_type(other)),
        }),
    }
}

pub(super) fn statement_values(raw: &Value) -> Result<Vec<&Value>, PolicyError> {
    match raw {
        Value::Array(items) => Ok(items.iter().collect()),
        Value::Object(_) => Ok(vec![raw]),
        other => Err(PolicyError::InvalidDocumentField {
            field: "Statement",
            reason: format!("must be an object or an array of objects, found {}", json_type(other)),
        }),
    }
}

pub(super) fn parse_statement(value: &Value, position: usize) -> Result<Statement, PolicyError> {
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

pub(super) fn parse_sid(value: Option<&Value>) -> Result<Option<String>, String> {
    match value {
        None => Ok(None),
        Some(Value::String(sid)) => Ok(Some(sid.clone())),
        Some(other) => Err(format!("Sid must be a string, found {}", json_type(other))),
    }
}

pub(super) fn parse_effect(value: Option<&Value>) -> Result<Effect, String> {
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
pub(super) type Found<'a> = (&'static str, bool, &'a Value);

/// Finds whichever of a key and its negated twin is present; both is an error.
pub(super) fn one_of<'a>(
    object: &'a Map<String, Value>,
    keys: (&'static str, &'static str),
) -> Result<Option<Found<'a>>, String> {
    match (object.get(keys.0), object.get(keys.1)) {
        (Some(_), Some(_)) => Err(format!("must not have both {} and {}", keys.0, keys.1)),
        (Some(value), None) => Ok(Some((keys.0, false, value))),
        (None, Some(value)) => Ok(Some((keys.1, true, value))),
        (None, None) => Ok(None),
    }
}

pub(super) fn parse_clause<T: Ord>(
    (name, negated, value): Found<'_>,
    convert: impl Fn(&str) -> T,
) -> Result<Clause<T>, String> {
    let values = string_list(name, value)?;
    Ok(Clause { negated, values: values.into_iter().map(convert).collect() })
}

/// A non-empty string or a non-empty array of non-empty strings.
pub(super) fn string_list<'a>(name: &str, value: &'a Value) -> Result<Vec<&'a str>, String> {
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

pub(super) fn parse_principal((name, negated, value): Found<'_>) -> Result<PrincipalClause, String> {
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

pub(super) fn parse_principal_values(
    name: &str,
    kind: &str,
    values: &Value,
) -> Result<(String, BTreeSet<String>), String> {
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
pub(super) fn normalise_principal(kind: &str, value: &str) -> String {
    if kind == "AWS" && is_account_id(value) { format!("arn:aws:iam::{value}:root") } else { value.to_string() }
}

pub(super) fn is_account_id(value: &str) -> bool {
    value.len() == 12 && value.bytes().all(|b| b.is_ascii_digit())
}

pub(super) fn parse_conditions(value: Option<&Value>) -> Result<Conditions, String> {
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

pub(super) fn parse_condition_block(
    operator: &str,
    block: &Value,
) -> Result<BTreeMap<CaseInsensitive, BTreeSet<String>>, String> {
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

pub(super) fn condition_values(field: &str, value: &Value) -> Result<BTreeSet<String>, String> {
    match value {
        Value::Array(items) if items.is_empty() => Err(format!("{field} must not be empty")),
        Value::Array(items) => items.iter().map(|item| condition_scalar(field, item)).collect(),
        scalar => condition_scalar(field, scalar).map(|single| BTreeSet::from([single])),
    }
}

pub(super) fn condition_scalar(field: &str, value: &Value) -> Result<String, String> {
    match value {
        Value::String(text) => Ok(text.clone()),
        Value::Bool(flag) => Ok(flag.to_string()),
        Value::Number(number) => Ok(number.to_string()),
        other => Err(format!("{field} values must be strings, booleans or numbers, found {}", json_type(other))),
    }
}

pub(super) fn collapse_duplicates(statements: Vec<Statement>) -> Vec<Statement> {
    let mut kept: Vec<Statement> = Vec::with_capacity(statements.len());
    for statement in statements {
        if !kept.iter().any(|seen| seen.same_meaning(&statement)) {
            kept.push(statement);
        }
    }
    kept
}

/// A value for error messages: strings quoted, other kinds by type.
pub(super) fn describe(value: &Value) -> String {
    match value {
        Value::String(text) => format!("{text:?}"),
        other => json_type(other).to_string(),
    }
}

// ---------------------------------------------------------------------------
// JSON rendering helpers
// ---------------------------------------------------------------------------

pub(super) fn values_json<T: fmt::Display>(values: &BTreeSet<T>) -> Value {
    let mut strings: Vec<Value> = values.iter().map(|v| Value::String(v.to_string())).collect();
    match strings.len() {
        1 => strings.pop().unwrap_or(Value::Null),
        _ => Value::Array(strings),
    }
}

pub(super) fn conditions_json(conditions: &Conditions) -> Value {
    let operators = conditions
        .iter()
        .map(|(operator, keys)| {
            let keys = keys.iter().map(|(key, values)| (key.to_string(), values_json(values))).collect();
            (operator.clone(), Value::Object(keys))
        })
        .collect();
    Value::Object(operators)
}

pub(super) fn join<T: fmt::Display>(values: &BTreeSet<T>) -> String {
    values.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
}

// ---------------------------------------------------------------------------

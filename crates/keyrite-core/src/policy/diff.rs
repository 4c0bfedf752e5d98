//! Statement-level differences between an expected policy and the live one, and whether
//! the live one grants more ("broadened").

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::Serialize;

use super::*;

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
pub(super) fn unmatched<'a>(statements: &'a [Statement], other: &Policy) -> Vec<&'a Statement> {
    let meanings = other.meanings();
    statements.iter().filter(|s| !meanings.contains(&s.meaning())).collect()
}

/// Pairs of indices into the unmatched expected and live statements.
pub(super) struct Pairing {
    pub(super) pairs: Vec<(usize, usize)>,
    pub(super) expected_taken: Vec<bool>,
    pub(super) live_taken: Vec<bool>,
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
pub(super) fn unpaired(statements: &[&Statement], taken: &[bool]) -> Vec<Statement> {
    statements.iter().zip(taken).filter(|(_, taken)| !**taken).map(|(statement, _)| (*statement).clone()).collect()
}

/// (number of equal fields, number of shared values); higher is more similar.
pub(super) type Similarity = (usize, usize);

pub(super) fn similarity(expected: &Statement, live: &Statement) -> Option<Similarity> {
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
pub(super) fn shared_values(expected: &Statement, live: &Statement) -> usize {
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

pub(super) fn count_specific<'a>(values: impl Iterator<Item = &'a String>) -> usize {
    values.filter(|value| value.as_str() != "*").count()
}

/// How a change moves the set of requests a statement matches.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Shift {
    pub(super) widens: bool,
    pub(super) narrows: bool,
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
pub(super) fn wildcard_match(pattern: &str, value: &str) -> bool {
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
pub(super) struct FieldChanges {
    pub(super) fields: Vec<FieldChange>,
    pub(super) shift: Shift,
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

pub(super) fn strings<'a, T: fmt::Display + 'a>(values: impl Iterator<Item = &'a T>) -> Vec<String> {
    values.map(ToString::to_string).collect()
}

pub(super) fn compare_statements(expected: &Statement, live: &Statement) -> StatementChange {
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

pub(super) fn diff_clause<T: Ord + fmt::Display>(
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

pub(super) fn diff_principals(
    changes: &mut FieldChanges,
    expected: Option<&PrincipalClause>,
    live: Option<&PrincipalClause>,
) {
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

pub(super) fn diff_conditions(changes: &mut FieldChanges, expected: &Conditions, live: &Conditions) {
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

pub(super) fn diff_condition_key(
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
pub(super) fn is_negated_operator(operator: &str) -> bool {
    let base =
        operator.strip_prefix("ForAllValues:").or_else(|| operator.strip_prefix("ForAnyValue:")).unwrap_or(operator);
    let base = base.strip_suffix("IfExists").unwrap_or(base);
    base.contains("Not")
}

//! `${resource.attribute}` references: finding them in strings, checking them, ordering by them.
//!
//! References are the manifest's only way to connect resources, so the dependency graph is
//! exactly the set of references. Everything here is pure.

use std::collections::{BTreeMap, BTreeSet};

/// The pseudo-resource that names the caller's account: `${aws.account_id}` and friends.
pub const BUILTIN: &str = "aws";
/// Attributes of [`BUILTIN`].
pub const BUILTIN_ATTRS: &[&str] = &["account_id", "region", "partition"];

/// A reference to another resource's output.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Reference {
    pub resource: String,
    pub attribute: String,
}

impl std::fmt::Display for Reference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "${{{}.{}}}", self.resource, self.attribute)
    }
}

impl Reference {
    /// Checks that the target exists and has the attribute. `outputs` maps a resource name to
    /// its kind's output attributes.
    pub fn check<'k>(&self, owner: &str, outputs: impl Fn(&str) -> Option<&'k [&'k str]>) -> Result<(), String> {
        let attrs: &[&str] = if self.resource == BUILTIN {
            BUILTIN_ATTRS
        } else if self.resource == owner {
            return Err(format!("{self}: a resource cannot refer to itself"));
        } else {
            outputs(&self.resource)
                .ok_or_else(|| format!("{self}: no resource named `{}` in this manifest", self.resource))?
        };
        if attrs.contains(&self.attribute.as_str()) {
            Ok(())
        } else {
            Err(format!(
                "{self}: `{}` has no attribute `{}` (it has: {})",
                self.resource,
                self.attribute,
                attrs.join(", ")
            ))
        }
    }
}

/// Checks a resource name: lowercase letters, digits, `_` and `-`, starting with a letter.
pub fn check_name(name: &str) -> Result<(), String> {
    let ok = name.len() <= 64
        && name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    if name == BUILTIN {
        Err(format!("resource name `{BUILTIN}` is reserved for ${{aws.account_id}} and friends"))
    } else if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid resource name {name:?}: use lowercase letters, digits, `_` and `-`, starting with a letter (at most 64)"
        ))
    }
}

/// Finds the `${name.attr}` references in `text`. `${` sequences that are not references by
/// shape (IAM policy variables like `${aws:username}`) are skipped; an unterminated `${`
/// followed by a dotted name is an error.
pub fn find(text: &str) -> Vec<Result<Reference, String>> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            if after.split(|c: char| !is_ident_char(c) && c != '.').next().is_some_and(|s| s.contains('.')) {
                out.push(Err(format!("unterminated reference in {text:?}: missing `}}`")));
            }
            break;
        };
        let inner = &after[..end];
        if let Some((resource, attribute)) = inner.split_once('.') {
            if !resource.is_empty()
                && resource.chars().all(is_ident_char)
                && !attribute.is_empty()
                && attribute.chars().all(is_ident_char)
            {
                out.push(Ok(Reference { resource: resource.to_owned(), attribute: attribute.to_owned() }));
            } else if !inner.contains(':') {
                out.push(Err(format!("malformed reference `${{{inner}}}`: expected ${{resource.attribute}}")));
            }
        }
        rest = &after[end + 1..];
    }
    out
}

fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '/'
}

/// Replaces every reference in `text` using `lookup`; returns None if any is unknown yet.
pub fn substitute(text: &str, lookup: &impl Fn(&Reference) -> Option<String>) -> Option<String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = match after.find('}') {
            Some(end) => end,
            None => {
                out.push_str(&rest[start..]);
                return Some(out);
            }
        };
        let token = &rest[start..start + 2 + end + 1];
        match find(token).into_iter().next() {
            Some(Ok(r)) => out.push_str(&lookup(&r)?),
            _ => out.push_str(token),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Some(out)
}

/// Orders nodes so that every node comes after its dependencies, keeping the input order
/// where the graph allows. Returns one cycle (as a closed path) if there is one.
pub fn topological_order(nodes: &[(String, BTreeSet<String>)]) -> Result<Vec<String>, Vec<String>> {
    let known: BTreeSet<&str> = nodes.iter().map(|(n, _)| n.as_str()).collect();
    let deps: BTreeMap<&str, Vec<&str>> = nodes
        .iter()
        .map(|(n, d)| (n.as_str(), d.iter().map(String::as_str).filter(|d| known.contains(d)).collect()))
        .collect();
    let mut done: BTreeSet<&str> = BTreeSet::new();
    let mut order = Vec::new();
    let mut stack: Vec<&str> = Vec::new();
    fn visit<'a>(
        n: &'a str,
        deps: &BTreeMap<&'a str, Vec<&'a str>>,
        done: &mut BTreeSet<&'a str>,
        stack: &mut Vec<&'a str>,
        order: &mut Vec<String>,
    ) -> Result<(), Vec<String>> {
        if done.contains(n) {
            return Ok(());
        }
        if let Some(i) = stack.iter().position(|s| *s == n) {
            let mut cycle: Vec<String> = stack[i..].iter().map(|s| s.to_string()).collect();
            cycle.push(n.to_owned());
            return Err(cycle);
        }
        stack.push(n);
        for d in &deps[n] {
            visit(d, deps, done, stack, order)?;
        }
        stack.pop();
        done.insert(n);
        order.push(n.to_owned());
        Ok(())
    }
    for (n, _) in nodes {
        visit(n, &deps, &mut done, &mut stack, &mut order)?;
    }
    Ok(order)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(a: &str, b: &str) -> Reference {
        Reference { resource: a.into(), attribute: b.into() }
    }

    #[test]
    fn finds_references_and_skips_policy_variables() {
        let found = find("arn:${key.arn}/${aws:username}/${aws.account_id}");
        assert_eq!(found, vec![Ok(r("key", "arn")), Ok(r("aws", "account_id"))]);
        assert!(find("${bad ref.x}")[0].is_err());
        assert!(find("prefix ${key.arn")[0].is_err());
        assert!(find("no refs here").is_empty());
    }

    #[test]
    fn substitutes_known_and_reports_unknown() {
        let lookup = |x: &Reference| (x.resource == "key").then(|| "arn:k".to_string());
        assert_eq!(substitute("a ${key.arn} ${aws:username}", &lookup).as_deref(), Some("a arn:k ${aws:username}"));
        assert_eq!(substitute("${role.arn}", &lookup), None);
    }

    #[test]
    fn checks_targets_and_attributes() {
        let outputs = |n: &str| (n == "key").then_some(&["arn", "key_id"][..]);
        assert!(r("key", "arn").check("role", outputs).is_ok());
        assert!(
            r("key", "nope")
                .check("role", outputs)
                .unwrap_err()
                .contains("has no attribute `nope` (it has: arn, key_id)")
        );
        assert!(r("missing", "arn").check("role", outputs).unwrap_err().contains("no resource named `missing`"));
        assert!(r("role", "arn").check("role", outputs).unwrap_err().contains("itself"));
        assert!(r("aws", "account_id").check("role", outputs).is_ok());
    }

    #[test]
    fn orders_dependencies_first_and_finds_cycles() {
        let set = |xs: &[&str]| xs.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
        let nodes = vec![("alias".into(), set(&["key"])), ("key".into(), set(&["role"])), ("role".into(), set(&[]))];
        assert_eq!(topological_order(&nodes).unwrap(), vec!["role", "key", "alias"]);
        let cyclic = vec![("a".into(), set(&["b"])), ("b".into(), set(&["a"]))];
        assert_eq!(topological_order(&cyclic).unwrap_err(), vec!["a", "b", "a"]);
    }

    #[test]
    fn names_are_checked() {
        assert!(check_name("treasury_key-1").is_ok());
        assert!(check_name("Treasury").is_err());
        assert!(check_name("aws").is_err());
        assert!(check_name("").is_err());
    }
}

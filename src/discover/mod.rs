//! Reading an account for signer stacks nobody declared: the secp256k1 keys, and what
//! surrounds each (aliases, the roles that may sign with it and their inline policies, the
//! functions whose configuration names it, their Function URLs and the REST APIs that
//! integrate them).
//!
//! Every resource is read through its kind's own `read`, so what is found has exactly the
//! shape the plan, drift and lint already understand. A scan only reads: it makes no
//! mutating call, which the call log shows.

#[cfg(feature = "aws")]
pub mod aws;
#[cfg(feature = "gcp")]
pub mod gcp;

use crate::manifest::Attrs;
use crate::provider::{Cloud, Live, Result};

/// Which keys a scan starts from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Every secp256k1 key of the account and region.
    All,
    /// One key: an id, an ARN or an alias (`alias/…`).
    Key(String),
    /// Keys carrying this tag.
    Tag(String, String),
}

/// A resource the scan found.
#[derive(Clone, Debug)]
pub struct Found {
    /// The keyrite kind (`aws_kms_key`, …).
    pub kind: &'static str,
    /// What identifies it to its kind's `read` (and in an `import:` line).
    pub id: String,
    /// How a person names it: an ARN, or the resource name.
    pub name: String,
    pub live: Live,
    /// Where it was found: why it belongs to the stack.
    pub why: String,
}

/// Something the scan looked at and left out, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skipped {
    pub name: String,
    pub reason: String,
}

/// What a scan found.
#[derive(Clone, Debug, Default)]
pub struct Scan {
    pub found: Vec<Found>,
    pub skipped: Vec<Skipped>,
    /// Parts of a found stack that keyrite does not manage yet, and so leaves as they are
    /// (`name` names them, `reason` says what they do): written as comments, never dropped.
    pub unmanaged: Vec<Skipped>,
}

impl Scan {
    pub fn contains(&self, kind: &str, id: &str) -> bool {
        self.found.iter().any(|f| f.kind == kind && f.id == id)
    }
}

/// Reads a resource through its kind's own read, so that what is found has the shape plans,
/// drift and lint know.
async fn read(cloud: &Cloud, kind: &'static str, id: &str, reference: &Attrs) -> Result<Option<Live>> {
    let k = crate::provider::kind(kind).expect("a built-in kind");
    k.read(cloud, id, reference).await
}

/// True when an IAM resource pattern (`*` and `?` wildcards) matches `text`. IAM matches
/// ARNs case-sensitively.
pub fn arn_matches(pattern: &str, text: &str) -> bool {
    fn go(p: &[u8], t: &[u8]) -> bool {
        match (p.first(), t.first()) {
            (None, None) => true,
            (Some(b'*'), _) => go(&p[1..], t) || (!t.is_empty() && go(p, &t[1..])),
            (Some(b'?'), Some(_)) => go(&p[1..], &t[1..]),
            (Some(a), Some(b)) if a == b => go(&p[1..], &t[1..]),
            _ => false,
        }
    }
    go(pattern.as_bytes(), text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::arn_matches;

    #[test]
    fn wildcards_match_as_iam_does() {
        let key = "arn:aws:kms:us-east-1:111122223333:key/1234abcd";
        assert!(arn_matches("*", key));
        assert!(arn_matches("arn:aws:kms:*:111122223333:key/*", key));
        assert!(arn_matches("arn:aws:kms:us-east-1:111122223333:key/1234abc?", key));
        assert!(!arn_matches("arn:aws:kms:*:444455556666:key/*", key));
        assert!(!arn_matches("arn:aws:kms:us-east-1:111122223333:key/1234", key));
    }
}

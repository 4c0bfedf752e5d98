//! Who may approve. The approvers of a ceremony are listed in OpenSSH's allowed_signers format
//! (ssh-keygen(1), ALLOWED SIGNERS) so that the same file works with `ssh-keygen -Y verify` and with
//! keyrite. `ssh-key` has no parser for it, so this is one: `principal[,principal...] [options]
//! keytype base64key [comment]`, blank lines and `#` comments, options `namespaces="..."`,
//! `valid-after="..."` and `valid-before="..."` (values quoted, as OpenSSH 9.2 requires). Every bad
//! line is reported with its line and column, not just the first. Two deliberate differences from
//! OpenSSH: `cert-authority` and certificate key types are refused (keyrite does not do certificates),
//! and timestamps without a `Z` are read as UTC rather than the machine's time zone, so that a file
//! means the same thing on every machine.

use std::collections::BTreeSet;
use std::fmt;

use base64::Engine as _;
use ssh_key::{Algorithm, PublicKey};
use thiserror::Error;

/// One line of an allowed_signers file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedSigner {
    /// Principal patterns as written (`alice@example.com`, `*@example.com`, `!bob@example.com`).
    pub principals: Vec<String>,
    /// `namespaces="..."`: a pattern list; `None` means every namespace.
    pub namespaces: Option<Vec<String>>,
    /// `valid-after`, as unix seconds (UTC).
    pub valid_after: Option<u64>,
    /// `valid-before`, as unix seconds (UTC).
    pub valid_before: Option<u64>,
    /// The key; its comment is the line's comment, if any.
    pub key: PublicKey,
    /// 1-based line number in the file.
    pub line: usize,
}

/// Why a line's options refuse a signature.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum Refusal {
    #[error("key is not permitted for use in signature namespace {namespace:?} (allowed: {allowed:?})")]
    Namespace { namespace: String, allowed: Vec<String> },
    #[error("key is not yet valid: verify time {now} < valid-after {valid_after} (unix seconds)")]
    NotYetValid { valid_after: u64, now: u64 },
    #[error("key has expired: verify time {now} > valid-before {valid_before} (unix seconds)")]
    Expired { valid_before: u64, now: u64 },
}

impl AllowedSigner {
    /// Whether `principal` matches this line's principal patterns, as `ssh-keygen -Y verify -I` decides.
    pub fn matches_principal(&self, principal: &str) -> bool {
        match_pattern_list(principal, &self.principals)
    }

    /// Principals on this line that name one identity (no wildcard, no negation).
    pub fn literal_principals(&self) -> impl Iterator<Item = &str> {
        self.principals.iter().map(String::as_str).filter(|p| !is_pattern(p))
    }

    /// Checks the line's `namespaces`, `valid-after` and `valid-before` options for a signature in
    /// `namespace` verified at `now` (unix seconds).
    pub fn check_options(&self, namespace: &str, now: u64) -> Result<(), Refusal> {
        if let Some(allowed) = &self.namespaces
            && !match_pattern_list(namespace, allowed)
        {
            return Err(Refusal::Namespace { namespace: namespace.to_owned(), allowed: allowed.clone() });
        }
        if let Some(valid_after) = self.valid_after
            && now < valid_after
        {
            return Err(Refusal::NotYetValid { valid_after, now });
        }
        if let Some(valid_before) = self.valid_before
            && now > valid_before
        {
            return Err(Refusal::Expired { valid_before, now });
        }
        Ok(())
    }
}

/// The distinct principal names in `signers`, for counting: patterns (`*`, `?`) and negations are
/// not names of anyone and are left out.
pub fn distinct_principals(signers: &[AllowedSigner]) -> BTreeSet<String> {
    signers.iter().flat_map(AllowedSigner::literal_principals).map(str::to_owned).collect()
}

/// What is wrong with one line.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum LineError {
    #[error("missing key type and key")]
    MissingKeyType,
    #[error("missing base64 key")]
    MissingKey,
    #[error("empty principal in principal list")]
    EmptyPrincipal,
    #[error("unterminated quote")]
    UnterminatedQuote,
    #[error("unknown key type {0:?}")]
    UnknownKeyType(String),
    #[error("key type {0:?} is a certificate: certificates are not supported")]
    Certificate(String),
    #[error("cert-authority: certificates are not supported")]
    CertAuthority,
    #[error("options must be one comma-separated field, with spaces only inside quotes")]
    SpaceInOptions,
    #[error("unknown option {0:?}")]
    UnknownOption(String),
    #[error("option {0:?} given twice")]
    DuplicateOption(String),
    #[error("option {0:?} needs a double-quoted value, e.g. {0}=\"...\"")]
    MissingQuotedValue(String),
    #[error("option {0:?} takes no value")]
    UnexpectedValue(String),
    #[error("empty namespace in namespaces=")]
    EmptyNamespace,
    #[error("invalid {option} time {value:?}: expected YYYYMMDD[Z] or YYYYMMDDHHMM[SS][Z]")]
    BadTime { option: String, value: String },
    #[error("key is not valid base64: {0}")]
    BadBase64(String),
    #[error("invalid key blob: {0}")]
    BadKeyBlob(String),
    #[error("key blob is {blob:?} but the key type says {declared:?}")]
    KeyTypeMismatch { declared: String, blob: String },
}

/// A problem at a 1-based line and column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub line: usize,
    pub column: usize,
    pub error: LineError,
}

/// Every problem found in one file, displayed one per line as `name:line:column: message`.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub struct ParseError {
    pub source_name: String,
    pub diagnostics: Vec<Diagnostic>,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.diagnostics.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{}:{}:{}: {}", self.source_name, d.line, d.column, d.error)?;
        }
        Ok(())
    }
}

/// Parses an allowed_signers file. `source_name` (e.g. `approvers.allowed_signers`) only labels errors.
pub fn parse(source_name: &str, text: &str) -> Result<Vec<AllowedSigner>, ParseError> {
    let mut signers = Vec::new();
    let mut diagnostics = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        let body = raw.trim_start_matches([' ', '\t']);
        if body.is_empty() || body.starts_with('#') {
            continue;
        }
        match parse_line(raw, line) {
            Ok(signer) => signers.push(signer),
            Err((column, error)) => diagnostics.push(Diagnostic { line, column, error }),
        }
    }
    if diagnostics.is_empty() {
        Ok(signers)
    } else {
        Err(ParseError { source_name: source_name.to_owned(), diagnostics })
    }
}

/// 1-based column of byte offset `at` in `line`, counted in characters.
fn column(line: &str, at: usize) -> usize {
    line[..at].chars().count() + 1
}

/// Splits off the next field (up to unquoted whitespace) at or after byte `from`; returns
/// `(start, end)` byte offsets or `None` at end of line.
fn next_field(line: &str, from: usize) -> Result<Option<(usize, usize)>, (usize, LineError)> {
    let bytes = line.as_bytes();
    let mut start = from;
    while start < bytes.len() && matches!(bytes[start], b' ' | b'\t') {
        start += 1;
    }
    if start == bytes.len() {
        return Ok(None);
    }
    let (mut end, mut quoted) = (start, false);
    while end < bytes.len() && (quoted || !matches!(bytes[end], b' ' | b'\t')) {
        match bytes[end] {
            b'\\' if quoted && bytes.get(end + 1) == Some(&b'"') => end += 1,
            b'"' => quoted = !quoted,
            _ => {}
        }
        end += 1;
    }
    if quoted {
        return Err((column(line, start), LineError::UnterminatedQuote));
    }
    Ok(Some((start, end)))
}

const OPTION_NAMES: [&str; 4] = ["cert-authority", "namespaces", "valid-after", "valid-before"];

/// A field is options (not a key type) if it starts with a known option name or contains `=` or `"`,
/// which no key type does.
fn looks_like_options(field: &str) -> bool {
    let name = field.split([',', '=']).next().unwrap_or("");
    OPTION_NAMES.iter().any(|n| n.eq_ignore_ascii_case(name)) || field.contains(['=', '"'])
}

#[derive(Default)]
struct Options {
    namespaces: Option<Vec<String>>,
    valid_after: Option<u64>,
    valid_before: Option<u64>,
}

fn parse_line(line: &str, line_no: usize) -> Result<AllowedSigner, (usize, LineError)> {
    let col = |at: usize| column(line, at);
    let (p_start, p_end) = next_field(line, 0)?.ok_or((1, LineError::MissingKeyType))?;
    let mut principals = Vec::new();
    let mut at = p_start;
    for p in line[p_start..p_end].split(',') {
        if p.is_empty() {
            return Err((col(at), LineError::EmptyPrincipal));
        }
        principals.push(p.to_owned());
        at += p.len() + 1;
    }

    let (mut f_start, mut f_end) = next_field(line, p_end)?.ok_or((col(p_end), LineError::MissingKeyType))?;
    let mut options = Options::default();
    if looks_like_options(&line[f_start..f_end]) {
        options = parse_options(line, f_start, f_end)?;
        (f_start, f_end) = next_field(line, f_end)?.ok_or((col(f_end), LineError::MissingKeyType))?;
        if looks_like_options(&line[f_start..f_end]) {
            return Err((col(f_start), LineError::SpaceInOptions));
        }
    }
    let key_type = &line[f_start..f_end];
    if key_type.ends_with("-cert-v01@openssh.com") {
        return Err((col(f_start), LineError::Certificate(key_type.to_owned())));
    }
    let algorithm = match Algorithm::new(key_type) {
        Ok(Algorithm::Other(_)) | Err(_) => return Err((col(f_start), LineError::UnknownKeyType(key_type.to_owned()))),
        Ok(a) => a,
    };

    let (k_start, k_end) = next_field(line, f_end)?.ok_or((col(f_end), LineError::MissingKey))?;
    let blob = base64::engine::general_purpose::STANDARD
        .decode(&line[k_start..k_end])
        .map_err(|e| (col(k_start), LineError::BadBase64(e.to_string())))?;
    let mut key = PublicKey::from_bytes(&blob).map_err(|e| (col(k_start), LineError::BadKeyBlob(e.to_string())))?;
    if key.algorithm() != algorithm {
        let blob = key.algorithm().as_str().to_owned();
        return Err((col(k_start), LineError::KeyTypeMismatch { declared: key_type.to_owned(), blob }));
    }
    key.set_comment(line[k_end..].trim());
    let Options { namespaces, valid_after, valid_before } = options;
    Ok(AllowedSigner { principals, namespaces, valid_after, valid_before, key, line: line_no })
}

/// Parses the comma-separated options in `line[start..end]`.
fn parse_options(line: &str, start: usize, end: usize) -> Result<Options, (usize, LineError)> {
    let mut options = Options::default();
    let bytes = line.as_bytes();
    let mut at = start;
    while at < end {
        // One option runs to the next unquoted comma.
        let (mut stop, mut quoted) = (at, false);
        while stop < end && (quoted || bytes[stop] != b',') {
            match bytes[stop] {
                b'\\' if quoted && bytes.get(stop + 1) == Some(&b'"') => stop += 1,
                b'"' => quoted = !quoted,
                _ => {}
            }
            stop += 1;
        }
        let here = column(line, at);
        let option = &line[at..stop];
        let (name, value) = match option.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (option, None),
        };
        let lname = name.to_ascii_lowercase();
        let quoted_value = || {
            value
                .and_then(|v| v.strip_prefix('"')?.strip_suffix('"'))
                .map(|v| v.replace("\\\"", "\""))
                .ok_or((here, LineError::MissingQuotedValue(lname.clone())))
        };
        let twice = || (here, LineError::DuplicateOption(lname.clone()));
        match lname.as_str() {
            "cert-authority" if value.is_none() => return Err((here, LineError::CertAuthority)),
            "cert-authority" => return Err((here, LineError::UnexpectedValue(lname))),
            "namespaces" => {
                let list: Vec<String> = quoted_value()?.split(',').map(str::to_owned).collect();
                if list.iter().any(String::is_empty) {
                    return Err((here, LineError::EmptyNamespace));
                }
                if options.namespaces.replace(list).is_some() {
                    return Err(twice());
                }
            }
            "valid-after" | "valid-before" => {
                let v = quoted_value()?;
                let t = parse_time(&v).ok_or_else(|| (here, LineError::BadTime { option: lname.clone(), value: v }))?;
                let slot = if lname == "valid-after" { &mut options.valid_after } else { &mut options.valid_before };
                if slot.replace(t).is_some() {
                    return Err(twice());
                }
            }
            _ => return Err((here, LineError::UnknownOption(name.to_owned()))),
        }
        at = stop + 1;
    }
    Ok(options)
}

/// `YYYYMMDD[Z]` or `YYYYMMDDHHMM[SS][Z]` to unix seconds, read as UTC with or without the `Z`.
pub fn parse_time(s: &str) -> Option<u64> {
    let digits = s.strip_suffix(['Z', 'z']).unwrap_or(s);
    if !matches!(digits.len(), 8 | 12 | 14) || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n = |r: std::ops::Range<usize>| digits.get(r).map_or(Some(0), |d| d.parse::<u64>().ok());
    let (year, month, day) = (n(0..4)?, n(4..6)?, n(6..8)?);
    let (hour, minute, second) = (n(8..10)?, n(10..12)?, n(12..14)?);
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let month_days = [31, if leap { 29 } else { 28 }, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    if year < 1970 || !(1..=12).contains(&month) || day == 0 || day > month_days[month as usize - 1] {
        return None;
    }
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let days_before_year: u64 =
        (1970..year).map(|y| if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 { 366 } else { 365 }).sum();
    let days = days_before_year + month_days[..month as usize - 1].iter().sum::<u64>() + day - 1;
    Some(((days * 24 + hour) * 60 + minute) * 60 + second)
}

fn is_pattern(p: &str) -> bool {
    p.starts_with('!') || p.contains(['*', '?'])
}

/// OpenSSH's `match_pattern`: `*` matches any run, `?` any one character; case-sensitive.
pub fn match_pattern(s: &str, pattern: &str) -> bool {
    let (s, p): (Vec<char>, Vec<char>) = (s.chars().collect(), pattern.chars().collect());
    let (mut si, mut pi, mut star, mut mark) = (0, 0, None, 0);
    while si < s.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == s[si]) {
            si += 1;
            pi += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = si;
            pi += 1;
        } else if let Some(st) = star {
            pi = st + 1;
            mark += 1;
            si = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// OpenSSH's `match_pattern_list` reduced to yes/no: true when some pattern matches and no negated
/// (`!`) pattern does.
pub fn match_pattern_list(s: &str, patterns: &[String]) -> bool {
    let mut positive = false;
    for p in patterns {
        match p.strip_prefix('!') {
            Some(neg) if match_pattern(s, neg) => return false,
            Some(_) => {}
            None => positive |= match_pattern(s, p),
        }
    }
    positive
}

#[cfg(test)]
mod tests {
    use super::*;

    const ED: &str = "AAAAC3NzaC1lZDI1NTE5AAAAINsMGF+2k2Flf407zXDy8l4fg5NODRCCjzQFXEoq5yNA";
    const P256: &str = "AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBGSoI/voGtvdyxOP3lS5u98fAZypimh4LbZb5EfjQS/0YPqRLitJGvXXhJJNF5V1lVoo+45mM7cG4DFQyA2vYxc=";
    const SK: &str =
        "AAAAGnNrLXNzaC1lZDI1NTE5QG9wZW5zc2guY29tAAAAII7VpQW6vuNlZhjSmsBGm9XzLFmd4GjEx5KDu8XHQNlNAAAABHNzaDo=";

    fn one(line: &str) -> AllowedSigner {
        let mut v = parse("t", line).unwrap();
        assert_eq!(v.len(), 1);
        v.pop().unwrap()
    }

    fn err(text: &str) -> (usize, usize, LineError) {
        let e = parse("t", text).unwrap_err();
        let d = &e.diagnostics[0];
        (d.line, d.column, d.error.clone())
    }

    #[test]
    fn parses_lines_comments_and_options() {
        let text = format!(
            "# approvers\n\n  \t\nalice@example.com,bob@example.com ssh-ed25519 {ED} alice laptop\n\
             carol@example.com NAMESPACES=\"keyrite-plan@v1,file\",valid-after=\"20250101\",valid-before=\"20270101235959Z\" ecdsa-sha2-nistp256 {P256}\n\
             dave@example.com sk-ssh-ed25519@openssh.com {SK}\r\n"
        );
        let v = parse("approvers.allowed_signers", &text).unwrap();
        assert_eq!(v.len(), 3);
        assert_eq!(v[0].principals, ["alice@example.com", "bob@example.com"]);
        assert_eq!((v[0].line, v[0].key.comment(), v[0].namespaces.as_ref()), (4, "alice laptop", None));
        assert_eq!(v[0].key.algorithm(), Algorithm::Ed25519);
        assert_eq!(v[1].namespaces.as_deref(), Some(&["keyrite-plan@v1".to_owned(), "file".to_owned()][..]));
        assert_eq!((v[1].valid_after, v[1].valid_before), (Some(1_735_689_600), Some(1_798_847_999)));
        assert_eq!(v[1].key.algorithm().as_str(), "ecdsa-sha2-nistp256");
        assert_eq!(v[2].key.algorithm(), Algorithm::SkEd25519);
        assert_eq!(v[2].line, 6);
    }

    #[test]
    fn quoted_option_values_may_hold_commas_and_spaces() {
        let s = one(&format!("a@x namespaces=\"one, two,x\\\"y\" ssh-ed25519 {ED}"));
        assert_eq!(s.namespaces.unwrap(), ["one", " two", "x\"y"]);
    }

    #[test]
    fn reports_line_and_column() {
        let text = format!("# c\nalice ssh-ed25519 {ED}\nbob@example ssh-foo {ED}\n");
        let e = parse("approvers.allowed_signers", &text).unwrap_err();
        assert_eq!(e.to_string(), "approvers.allowed_signers:3:13: unknown key type \"ssh-foo\"");
    }

    #[test]
    fn collects_every_bad_line() {
        let text = format!("a ssh-foo {ED}\nb ssh-ed25519 {ED}\nc ssh-ed25519 !!!\n");
        let e = parse("f", &text).unwrap_err();
        let at: Vec<_> = e.diagnostics.iter().map(|d| (d.line, d.column)).collect();
        assert_eq!(at, [(1, 3), (3, 15)]);
        assert!(matches!(e.diagnostics[1].error, LineError::BadBase64(_)));
        assert_eq!(e.to_string().lines().count(), 2);
    }

    #[test]
    fn refusals() {
        assert!(matches!(err(&format!("a ssh-ed25519 {}", &ED[..20])), (1, 15, LineError::BadKeyBlob(_))));
        assert_eq!(
            err(&format!("a  ecdsa-sha2-nistp256 {ED}")),
            (1, 24, LineError::KeyTypeMismatch { declared: "ecdsa-sha2-nistp256".into(), blob: "ssh-ed25519".into() })
        );
        assert_eq!(err(&format!("*@x cert-authority ssh-ed25519 {ED}")), (1, 5, LineError::CertAuthority));
        assert_eq!(
            err(&format!("a ssh-ed25519-cert-v01@openssh.com {ED}")),
            (1, 3, LineError::Certificate("ssh-ed25519-cert-v01@openssh.com".into()))
        );
        assert_eq!(err(&format!("a foo=\"1\" ssh-ed25519 {ED}")), (1, 3, LineError::UnknownOption("foo".into())));
        assert_eq!(
            err(&format!("a namespaces=x ssh-ed25519 {ED}")),
            (1, 3, LineError::MissingQuotedValue("namespaces".into()))
        );
        assert_eq!(
            err(&format!("a valid-after=\"1\",valid-after=\"2020010112\" ssh-ed25519 {ED}")).2,
            LineError::BadTime { option: "valid-after".into(), value: "1".into() }
        );
        assert_eq!(
            err(&format!("a namespaces=\"x\" valid-after=\"20200101\" ssh-ed25519 {ED}")),
            (1, 18, LineError::SpaceInOptions)
        );
        assert_eq!(err("a ssh-ed25519"), (1, 14, LineError::MissingKey));
        assert_eq!(err("alice"), (1, 6, LineError::MissingKeyType));
        assert_eq!(err(&format!("a,,b ssh-ed25519 {ED}")), (1, 3, LineError::EmptyPrincipal));
        assert_eq!(err(&format!("a namespaces=\"x ssh-ed25519 {ED}")), (1, 3, LineError::UnterminatedQuote));
        let dup = err(&format!("a namespaces=\"x\",NAMESPACES=\"y\" ssh-ed25519 {ED}"));
        assert_eq!(dup, (1, 18, LineError::DuplicateOption("namespaces".into())));
    }

    #[test]
    fn odd_input_is_an_error_not_a_panic() {
        for text in [
            "é ssh-ed25519 ünïcode",
            "\"",
            "a \"",
            "a =",
            "a ,",
            "a namespaces=\"",
            "a valid-after=\"\"",
            "a , b",
            ",",
            "a\tssh-ed25519\t==",
            "a cert-authority=1 x y",
        ] {
            assert!(parse("f", text).is_err(), "{text:?}");
        }
        assert_eq!(
            err("é,ü ssh-foo AAAA"),
            (1, 5, LineError::UnknownKeyType("ssh-foo".into())),
            "columns count characters"
        );
    }

    #[test]
    fn times() {
        assert_eq!(parse_time("19700101"), Some(0));
        assert_eq!(parse_time("20000229Z"), Some(951_782_400));
        assert_eq!(parse_time("202001011230"), Some(1_577_881_800));
        assert_eq!(parse_time("20200101123059z"), Some(1_577_881_859));
        for bad in ["2020010112", "20190229", "20201301", "20200100", "202001012460", "2020O101", "", "Z"] {
            assert_eq!(parse_time(bad), None, "{bad}");
        }
    }

    #[test]
    fn options_are_enforced() {
        let s = one(&format!(
            "a namespaces=\"keyrite-*,!keyrite-test\",valid-after=\"20250101Z\",valid-before=\"20260101Z\" ssh-ed25519 {ED}"
        ));
        let now = 1_750_000_000;
        assert_eq!(s.check_options("keyrite-plan@v1", now), Ok(()));
        assert!(matches!(s.check_options("keyrite-test", now), Err(Refusal::Namespace { .. })));
        assert!(matches!(s.check_options("file", now), Err(Refusal::Namespace { .. })));
        assert_eq!(
            s.check_options("keyrite-plan@v1", 1_735_689_599),
            Err(Refusal::NotYetValid { valid_after: 1_735_689_600, now: 1_735_689_599 })
        );
        assert_eq!(s.check_options("keyrite-plan@v1", 1_767_225_600), Ok(()), "valid-before is inclusive");
        assert!(matches!(s.check_options("keyrite-plan@v1", 1_767_225_601), Err(Refusal::Expired { .. })));
    }

    #[test]
    fn patterns_match_like_openssh() {
        let list = |s: &str| s.split(',').map(str::to_owned).collect::<Vec<_>>();
        assert!(match_pattern("alice@example.com", "*@example.com"));
        assert!(match_pattern("ab", "a?") && !match_pattern("abc", "a?") && match_pattern("", "*"));
        assert!(match_pattern("a.b.c", "a*c") && !match_pattern("a.b.cd", "a*c") && match_pattern("aXbYc", "a*b*c"));
        assert!(!match_pattern("Alice", "alice"));
        assert!(match_pattern_list("alice@x", &list("bob@x,*@x")));
        assert!(!match_pattern_list("mallory@x", &list("*@x,!mallory@x")));
        assert!(!match_pattern_list("alice@y", &list("*@x")));
        assert!(!match_pattern_list("alice@x", &list("!bob@x")), "a negation alone matches nobody");
    }

    #[test]
    fn distinct_principals_skip_patterns_and_repeat_names_once() {
        let text = format!(
            "alice@x,bob@x ssh-ed25519 {ED}\nalice@x ecdsa-sha2-nistp256 {P256}\n*@x,!eve@x,car?l@x ssh-ed25519 {ED}\n"
        );
        let v = parse("f", &text).unwrap();
        assert_eq!(distinct_principals(&v).into_iter().collect::<Vec<_>>(), ["alice@x", "bob@x"]);
        assert!(v[2].matches_principal("carol@x") && !v[2].matches_principal("eve@x"));
    }
}

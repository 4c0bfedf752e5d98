//! The rules. Each is a small function of one resource's desired attributes; [`check`] runs
//! the ones for the resource's kind. Policy rules work on the canonical form, so `kms:*`,
//! `KMS:*` and `["kms:*"]` are one thing, and `"*"` as a principal is `{"AWS": "*"}`.

use serde_json::Value as Json;

use std::collections::BTreeSet;

use super::{Level, Rule};
use crate::manifest::{Attrs, Slot};
use crate::policy::{Effect, Policy, Statement};

pub static RULES: &[Rule] = &[
    Rule {
        id: "KR101",
        name: "key-policy-grants-everything",
        level: Level::Error,
        security_severity: "9.0",
        short: "A key policy grants kms:* to a principal other than the account",
        full: "A statement of a signing key's policy allows every KMS action (kms:* or *) to a role, user or wildcard. Whoever holds that principal can sign, change the policy and schedule the key for deletion.",
        help: "Grant signers kms:Sign (with the kms:SigningAlgorithm condition) and kms:GetPublicKey only, and administrators the lifecycle actions without kms:Sign: use `policy: {generated: {signers: […], admins: […]}}`.",
    },
    Rule {
        id: "KR102",
        name: "sign-without-algorithm-condition",
        level: Level::Warning,
        security_severity: "5.0",
        short: "kms:Sign is allowed without the kms:SigningAlgorithm condition",
        full: "A key or role policy allows kms:Sign without restricting kms:SigningAlgorithm, so the key signs with any algorithm the caller asks for.",
        help: "Add `\"Condition\": {\"StringEquals\": {\"kms:SigningAlgorithm\": \"ECDSA_SHA_256\"}}` to the statement; keyrite's generated policies do.",
    },
    Rule {
        id: "KR103",
        name: "admin-can-sign",
        level: Level::Error,
        security_severity: "7.5",
        short: "A principal both administers the key and signs with it",
        full: "The same principal may change the key's policy or schedule its deletion, and sign with it. Separating the two means one compromised role cannot both move funds and cover its tracks.",
        help: "Give administration and signing to different principals; `generated: {admins: […]}` never grants kms:Sign to admins.",
    },
    Rule {
        id: "KR104",
        name: "no-lockout-prevention",
        level: Level::Warning,
        security_severity: "4.0",
        short: "The key policy has no statement that lets anyone manage it",
        full: "No statement allows kms:PutKeyPolicy (or kms:*) to an administrator or the account. If the signers are deleted, nobody can repair the policy and the key becomes unmanageable.",
        help: "Keep an administration statement for the account root or named admins; generated policies always have one.",
    },
    Rule {
        id: "KR105",
        name: "software-protection",
        level: Level::Warning,
        security_severity: "5.0",
        short: "A Cloud KMS signing key is protected in software, not an HSM",
        full: "protection_level SOFTWARE keeps the key material outside an HSM. Cloud KMS may also refuse secp256k1 at that level.",
        help: "Use `protection_level: HSM` (the default).",
    },
    Rule {
        id: "KR106",
        name: "public-kms-members",
        level: Level::Error,
        security_severity: "9.5",
        short: "A Cloud KMS key's IAM policy grants a role to allUsers or allAuthenticatedUsers",
        full: "Anyone on the internet (or with any Google account) holds the granted role on the key.",
        help: "Name the service accounts, users or groups that need the role.",
    },
    Rule {
        id: "KR107",
        name: "recovery-key-exposed",
        level: Level::Error,
        security_severity: "9.0",
        short: "A recovery key may be used by more than its named signers, or without a condition",
        full: "Recovery keys enrol a new operational signer after a loss or a compromise, so they get the most restrictive access there is: kms:Sign only for named principals, only with ECDSA_SHA_256, and only from listed networks or with MFA. This key's policy lets a wildcard, the whole account (through IAM) or a principal without those conditions sign, or a Cloud KMS recovery key is granted to a group or a domain.",
        help: "Use `slot: recovery` with `policy: {generated: {signers: […], source_ips: […]}}` (or `require_mfa: true`); on Cloud KMS, bind the recovery key to named users or service accounts.",
    },
    Rule {
        id: "KR108",
        name: "recovery-deletion-window",
        level: Level::Error,
        security_severity: "6.0",
        short: "A recovery key's deletion window is shorter than 30 days",
        full: "A scheduled deletion of a recovery key must be noticed and cancelled before it takes effect; recovery keys are used rarely, so the longest window applies.",
        help: "Set `deletion_window_days: 30` (the default) on recovery keys.",
    },
    Rule {
        id: "KR109",
        name: "key-policy-delegates-signing-to-account",
        level: Level::Warning,
        security_severity: "6.0",
        short: "A key policy gives kms:* to the whole account",
        full: "The account root is allowed every KMS action on the key, so any IAM policy of the account that allows kms:Sign (on this key or on \"*\") can sign with it, and who may sign is no longer decided by the key. This is the KMS console's default key policy.",
        help: "Give the account root the administrative actions only, and name the signers in the key policy: `policy: {generated: {signers: […]}}` does both.",
    },
    Rule {
        id: "KR110",
        name: "recovery-break-glass",
        level: Level::Warning,
        security_severity: "6.5",
        short: "A gated recovery key also lets a principal sign without the quorum gate",
        full: "The recovery key has a quorum gate, which signs only an enrolment approved by k approvers, and its policy (on Cloud KMS, its binding) also lets another principal sign directly: a break-glass path around the quorum. It may be deliberate (the manifest declares it under `break_glass`, or as another member of the binding), and an auditor must know of it.",
        help: "Keep break-glass principals few, each under MFA or a network condition, and accept the finding with a reason (`lint: {allow: {recovery-break-glass: {<key>: \"<reason>\"}}}`); or remove them.",
    },
    Rule {
        id: "KR111",
        name: "recovery-without-quorum",
        level: Level::Note,
        security_severity: "4.0",
        short: "A recovery key may be used by one person alone",
        full: "Each of the recovery key's signers can sign anything with it on their own: nothing makes a recovery need more than one person. A quorum gate (an `aws_lambda_function` with a `gate:` block) signs only an enrolment approved by k of n approvers.",
        help: "Put a quorum gate in front of the recovery key: `policy: {generated: {gate: \"${gate_role.arn}\"}}` and the gate function (see manifests/recovery-gate.yaml).",
    },
    Rule {
        id: "KR112",
        name: "rotation-overdue",
        level: Level::Warning,
        security_severity: "3.0",
        short: "A signer's key is older than its rotation period",
        full: "The signer declares `rotation: {every: …}`, and the key it signs with has been live for longer than that: the regular rotation the team committed to has not happened. Found by `lint --live`, which reads the key's creation date (or the rotation that made it live).",
        help: "Rotate it: `keyrite rotate <signer> --out rotation.plan`, approve and apply the plan, have the recovery key enrol the new address, and `keyrite rotate <signer> --finish` after the grace period.",
    },
    Rule {
        id: "KR201",
        name: "wildcard-principal",
        level: Level::Error,
        security_severity: "9.0",
        short: "A key or trust policy allows any principal, with no condition",
        full: "`Principal: \"*\"` (or AWS \"*\") without a condition lets every AWS account use what the statement allows.",
        help: "Name the principals, or add a condition that narrows them (aws:PrincipalArn, aws:SourceAccount, aws:PrincipalOrgID).",
    },
    Rule {
        id: "KR202",
        name: "sign-any-key",
        level: Level::Error,
        security_severity: "8.0",
        short: "A role policy allows kms:Sign on every key (Resource \"*\")",
        full: "The role may sign with any key of the account whose key policy delegates to IAM, not only with the keys it exists for.",
        help: "List the key ARNs in Resource; `generated: {sign_keys: [\"${key.arn}\"]}` does.",
    },
    Rule {
        id: "KR203",
        name: "cross-account-trust",
        level: Level::Error,
        security_severity: "8.0",
        short: "A signing role may be assumed by any principal of another account",
        full: "The role's trust policy names another account's root with no condition, so every user and role of that account that its own IAM allows can assume the signing role.",
        help: "Trust the specific role ARN of the other account, or add aws:PrincipalArn / sts:ExternalId conditions.",
    },
    Rule {
        id: "KR301",
        name: "public-function-url",
        level: Level::Warning,
        security_severity: "7.0",
        short: "A signer Function URL takes requests without authentication",
        full: "auth_type NONE lets anyone who learns the URL ask the signer to sign. The signer still signs only for its configured address, but every request is a signature over a digest of the caller's choosing.",
        help: "Keep `auth_type: AWS_IAM` (the default) and sign requests with SigV4; `public: true` is for deliberate cases only.",
    },
    Rule {
        id: "KR302",
        name: "public-api-policy",
        level: Level::Error,
        security_severity: "8.5",
        short: "An API's resource policy allows any principal with no condition",
        full: "A statement of the REST API's resource policy allows `Principal: *` to invoke the API without a condition.",
        help: "Allow only the account (keyrite's generated policy) or named principals, or add an aws:SourceIp / aws:SourceVpce condition.",
    },
    Rule {
        id: "KR303",
        name: "secret-in-environment",
        level: Level::Warning,
        security_severity: "6.5",
        short: "A Lambda environment value looks like a secret",
        full: "Environment variables are visible to anyone who may read the function's configuration, and are kept in its versions.",
        help: "Keep secrets in Secrets Manager or SSM Parameter Store and read them at start; a KMS signer needs none.",
    },
    Rule {
        id: "KR304",
        name: "no-reserved-concurrency",
        level: Level::Warning,
        security_severity: "3.0",
        short: "A signer function has no reserved concurrency",
        full: "Without reserved concurrency there is no circuit breaker: signing cannot be stopped at once without deleting the function, and a flood of requests competes with the account's other functions.",
        help: "Set `reserved_concurrency:` (setting it to 0 stops all signing at once).",
    },
    Rule {
        id: "KR305",
        name: "function-url-permissions-incomplete",
        level: Level::Warning,
        security_severity: "2.0",
        short: "A public Function URL has only one of the two permissions it needs",
        full: "Since Lambda's authorization change of October 2025 (accounts with older URLs were exempt until November 2026), a URL with auth NONE is invoked only when the function's resource policy grants everyone both lambda:InvokeFunctionUrl and lambda:InvokeFunction. With one of them the URL answers 403 to every request; the console made such URLs before the change.",
        help: "Declare both (`public_actions:` with both actions, or no `public_actions:`) and apply: keyrite adds only the missing statement. Or make the URL AWS_IAM.",
    },
];

/// What a rule needs to know beyond the resource itself.
#[derive(Clone, Debug, Default)]
pub struct Context {
    /// Recovery keys: their manifest names, and for live resources their ids and ARNs.
    pub recovery: BTreeSet<String>,
    /// The account being linted, live: its own root is not another account.
    pub account_id: Option<String>,
    /// The principals quorum gates run as: AWS roles ([`gate_role`]), as the manifest writes
    /// them and live, their ARNs; Cloud Run gates' `serviceAccount:` members.
    pub gates: BTreeSet<String>,
}

/// The role a quorum gate runs as: a function whose `SIGNING_MODE` is `gate`.
pub fn gate_role<'a>(kind: &str, a: &'a Attrs) -> Option<&'a str> {
    let gated = a.get("environment").and_then(|e| e.get("SIGNING_MODE")).and_then(Json::as_str) == Some("gate");
    (kind == "aws_lambda_function" && gated).then(|| a.get("role").and_then(Json::as_str)).flatten()
}

impl Context {
    /// Whether a key reference (`${key.id}`, an id or a resource name) is a recovery key's.
    fn is_recovery(&self, key: &str) -> bool {
        let name = key.strip_prefix("${").and_then(|k| k.split('.').next()).unwrap_or(key);
        self.recovery.contains(name)
    }
}

/// The findings of one resource, from its attributes (desired or live, which share a shape):
/// `(rule id, message)`.
pub fn check(kind: &str, a: &Attrs, cx: &Context) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    let recovery = Slot::of(a) == Slot::Recovery;
    match kind {
        "aws_kms_key" => {
            if let Some(p) = policy(a.get("policy")) {
                key_policy(&p, &mut out);
                if recovery {
                    recovery_key_policy(&p, cx, &mut out);
                }
            }
            recovery_window(a, recovery, &mut out);
        }
        "gcp_kms_crypto_key" => {
            if a.get("protection_level").and_then(Json::as_str) == Some("SOFTWARE") {
                out.push(("KR105", "protection_level is SOFTWARE".into()));
            }
            recovery_window(a, recovery, &mut out);
        }
        "aws_iam_role" => {
            if let Some(p) = policy(a.get("trust_policy")) {
                trust_policy(&p, cx.account_id.as_deref(), &mut out);
            }
        }
        "aws_iam_role_policy" => {
            if let Some(p) = policy(a.get("document")) {
                role_policy(&p, &mut out);
            }
        }
        "aws_lambda_function" => lambda(a, &mut out),
        "aws_lambda_function_url" if a.get("auth_type").and_then(Json::as_str) == Some("NONE") => {
            out.push(("KR301", "auth_type is NONE: anyone with the URL can ask for signatures".into()));
            let granted = strings(a.get("public_permissions"));
            let missing: Vec<&str> = ["lambda:InvokeFunction", "lambda:InvokeFunctionUrl"]
                .into_iter()
                .filter(|action| !granted.iter().any(|g| g == action))
                .collect();
            if let [one] = missing.as_slice()
                && !granted.is_empty()
            {
                out.push((
                    "KR305",
                    format!(
                        "everyone (*) is granted {} but not {one}: Lambda now answers 403 to every request of such a URL",
                        granted.join(", ")
                    ),
                ));
            }
        }
        "aws_api_gateway_rest_api" => {
            if let Some(p) = policy(a.get("policy")) {
                for s in allows(&p).filter(|s| wildcard_principal(s) && s.conditions().is_empty()) {
                    out.push(("KR302", format!("{} allows Principal * with no condition", s.label())));
                }
            }
        }
        "gcp_kms_crypto_key_iam_binding" => {
            let mut members: Vec<String> = strings(a.get("members"));
            if let Some(Json::Object(other)) = a.get("other_bindings") {
                for (role, m) in other {
                    members.extend(strings(Some(m)).into_iter().map(|m| format!("{m} ({role})")));
                }
            }
            for m in members.iter().filter(|m| m.starts_with("allUsers") || m.starts_with("allAuthenticatedUsers")) {
                out.push(("KR106", format!("{m} is granted a role on the key")));
            }
            let key = a.get("crypto_key").and_then(Json::as_str).unwrap_or_default();
            if cx.is_recovery(key) {
                let broad = ["group:", "domain:", "principalSet://", "allUsers", "allAuthenticatedUsers"];
                let signers = strings(a.get("members"));
                for m in signers.iter().filter(|m| broad.iter().any(|b| m.starts_with(b))) {
                    out.push(("KR107", format!("{m} may sign with a recovery key; name users or service accounts")));
                }
                // Beside a quorum gate's service account, any other signer is a way around it.
                if let Some(gate) = signers.iter().find(|m| cx.gates.contains(*m)) {
                    for m in signers.iter().filter(|m| !cx.gates.contains(*m)) {
                        out.push((
                            "KR110",
                            format!("{m} may sign with the recovery key without the quorum its gate {gate} enforces"),
                        ));
                    }
                }
            }
        }
        _ => {}
    }
    out
}

fn policy(doc: Option<&Json>) -> Option<Policy> {
    Policy::parse(doc?).ok()
}

fn strings(v: Option<&Json>) -> Vec<String> {
    v.and_then(Json::as_array).into_iter().flatten().filter_map(Json::as_str).map(str::to_owned).collect()
}

fn allows(p: &Policy) -> impl Iterator<Item = &Statement> {
    p.statements().iter().filter(|s| s.effect() == Effect::Allow)
}

fn grants_everything(s: &Statement) -> bool {
    let actions = s.actions();
    !actions.negated && actions.values.iter().any(|a| matches!(a.as_str().to_ascii_lowercase().as_str(), "*" | "kms:*"))
}

/// `AWS` principals of the statement (empty for NotPrincipal or none).
fn aws_principals(s: &Statement) -> Vec<&str> {
    match s.principals() {
        Some(p) if !p.negated => p.principals.get("AWS").into_iter().flatten().map(String::as_str).collect(),
        _ => Vec::new(),
    }
}

fn wildcard_principal(s: &Statement) -> bool {
    aws_principals(s).contains(&"*")
}

/// An account's root principal (`arn:…:iam::<account>:root`), the account delegating to IAM.
fn is_account_root(principal: &str) -> bool {
    principal.starts_with("arn:") && principal.ends_with(":root")
}

fn has_condition_key(s: &Statement, key: &str) -> bool {
    s.conditions().values().any(|keys| keys.keys().any(|k| k.as_str().eq_ignore_ascii_case(key)))
}

const ADMIN_ACTIONS: [&str; 4] = ["kms:PutKeyPolicy", "kms:ScheduleKeyDeletion", "kms:DisableKey", "kms:UpdateAlias"];

fn key_policy(p: &Policy, out: &mut Vec<(&'static str, String)>) {
    let mut admins: Vec<(&str, String)> = Vec::new();
    let mut signers: Vec<(&str, String)> = Vec::new();
    for s in allows(p) {
        let principals = aws_principals(s);
        if wildcard_principal(s) && s.conditions().is_empty() {
            out.push(("KR201", format!("{} allows Principal * with no condition", s.label())));
        }
        let others: Vec<&str> = principals.iter().copied().filter(|p| !is_account_root(p)).collect();
        let roots: Vec<&str> = principals.iter().copied().filter(|p| is_account_root(p)).collect();
        if grants_everything(s) && !roots.is_empty() {
            out.push(("KR109", format!("{} allows kms:* to {}", s.label(), roots.join(", "))));
        }
        if grants_everything(s) && !others.is_empty() {
            out.push(("KR101", format!("{} allows kms:* to {}", s.label(), others.join(", "))));
        }
        // The account root delegates to IAM: its kms:* is the lockout-prevention statement,
        // and what it may sign is decided by IAM policies (which KR202 and KR102 check).
        if s.grants("kms:Sign") && !others.is_empty() && !has_condition_key(s, "kms:SigningAlgorithm") {
            out.push(("KR102", format!("{} allows kms:Sign without a kms:SigningAlgorithm condition", s.label())));
        }
        for principal in &principals {
            if ADMIN_ACTIONS.iter().any(|a| s.grants(a)) {
                admins.push((principal, s.label()));
            }
            if s.grants("kms:Sign") {
                signers.push((principal, s.label()));
            }
        }
    }
    for (admin, where_admin) in &admins {
        if is_account_root(admin) || *admin == "*" {
            continue;
        }
        if let Some((_, where_sign)) = signers.iter().find(|(p, _)| p == admin) {
            out.push((
                "KR103",
                format!("{admin} administers the key ({where_admin}) and signs with it ({where_sign})"),
            ));
        }
    }
    if !allows(p).any(|s| s.grants("kms:PutKeyPolicy") && !aws_principals(s).is_empty()) {
        out.push(("KR104", "no statement allows kms:PutKeyPolicy to an administrator or the account".into()));
    }
    out.dedup();
}

/// A recovery key: every statement that lets anyone sign names its principals (no wildcard,
/// no account root delegating to IAM) and carries the algorithm condition and a network or
/// MFA condition; a quorum gate needs only the algorithm condition, since its approvals are
/// its condition. Beside a gate, any other signer is a break-glass path (KR110); without
/// one, a single signer can use the key alone (KR111).
fn recovery_key_policy(p: &Policy, cx: &Context, out: &mut Vec<(&'static str, String)>) {
    let mut gated = false;
    let mut others: Vec<(String, String)> = Vec::new();
    for s in allows(p).filter(|s| s.grants("kms:Sign")) {
        let principals = aws_principals(s);
        let broad: Vec<&str> = principals.iter().copied().filter(|p| *p == "*" || is_account_root(p)).collect();
        if !broad.is_empty() || principals.is_empty() {
            let who = if broad.is_empty() { "any principal".to_owned() } else { broad.join(", ") };
            out.push(("KR107", format!("{} lets {who} sign with the recovery key", s.label())));
            continue;
        }
        let (gates, people): (Vec<&str>, Vec<&str>) = principals.iter().partition(|p| cx.gates.contains(**p));
        gated |= !gates.is_empty();
        others.extend(people.iter().map(|p| ((*p).to_owned(), s.label())));
        let conditioned = has_condition_key(s, "aws:SourceIp") || has_condition_key(s, "aws:MultiFactorAuthPresent");
        let algorithm = has_condition_key(s, "kms:SigningAlgorithm");
        if !algorithm || (!people.is_empty() && !conditioned) {
            let who = if algorithm { people } else { principals };
            out.push((
                "KR107",
                format!(
                    "{} lets {} sign without the algorithm and a source-IP or MFA condition",
                    s.label(),
                    who.join(", ")
                ),
            ));
        }
    }
    if gated {
        for (principal, label) in &others {
            out.push(("KR110", format!("{label} lets {principal} sign with the recovery key without its quorum gate")));
        }
    } else if !others.is_empty() {
        let who: Vec<&str> = others.iter().map(|(p, _)| p.as_str()).collect();
        out.push((
            "KR111",
            format!("no quorum gate signs with the recovery key: any one of {} can sign with it alone", who.join(", ")),
        ));
    }
}

fn recovery_window(a: &Attrs, recovery: bool, out: &mut Vec<(&'static str, String)>) {
    let days = a.get("deletion_window_days").and_then(Json::as_u64);
    if let Some(days) = days.filter(|d| recovery && *d < 30) {
        out.push(("KR108", format!("deletion_window_days is {days}; a recovery key's is 30")));
    }
}

fn trust_policy(p: &Policy, own_account: Option<&str>, out: &mut Vec<(&'static str, String)>) {
    for s in allows(p) {
        if wildcard_principal(s) && s.conditions().is_empty() {
            out.push(("KR201", format!("trust {} lets any principal assume the role", s.label())));
        }
        for principal in aws_principals(s) {
            let own = principal.contains("${aws.account_id}")
                || own_account.is_some_and(|a| principal == a || principal.ends_with(&format!(":{a}:root")));
            let other_account = is_account_root(principal) && !own;
            let narrowed = has_condition_key(s, "aws:PrincipalArn") || has_condition_key(s, "sts:ExternalId");
            if other_account && !narrowed {
                out.push(("KR203", format!("trust {} lets any principal of {principal} assume the role", s.label())));
            }
        }
    }
}

fn role_policy(p: &Policy, out: &mut Vec<(&'static str, String)>) {
    for s in allows(p) {
        if !s.grants("kms:Sign") {
            continue;
        }
        let any_key = s.resources().is_none_or(|r| r.negated || r.values.iter().any(|v| v == "*"));
        if any_key {
            out.push(("KR202", format!("{} allows kms:Sign on Resource *", s.label())));
        }
        if !has_condition_key(s, "kms:SigningAlgorithm") {
            out.push(("KR102", format!("{} allows kms:Sign without a kms:SigningAlgorithm condition", s.label())));
        }
    }
}

/// Names and values that look like credentials.
fn looks_secret(name: &str, value: &str) -> bool {
    let name = name.to_ascii_uppercase();
    let named = ["SECRET", "PASSWORD", "PASSWD", "TOKEN", "PRIVATE_KEY", "API_KEY", "APIKEY", "MNEMONIC", "SEED"]
        .iter()
        .any(|w| name.contains(w));
    let aws_key = value.len() == 20 && (value.starts_with("AKIA") || value.starts_with("ASIA"));
    let pem = value.contains("PRIVATE KEY-----");
    let hex_key = value.len() == 64 + 2 * usize::from(value.starts_with("0x"))
        && value.trim_start_matches("0x").chars().all(|c| c.is_ascii_hexdigit());
    (named && !value.is_empty() && !value.contains("${")) || aws_key || pem || hex_key
}

fn lambda(a: &crate::manifest::Attrs, out: &mut Vec<(&'static str, String)>) {
    if let Some(Json::Object(env)) = a.get("environment") {
        for (k, v) in env {
            if looks_secret(k, v.as_str().unwrap_or_default()) {
                out.push(("KR303", format!("environment variable {k} looks like a secret")));
            }
        }
    }
    if a.get("reserved_concurrency").is_none_or(Json::is_null) {
        out.push(("KR304", "no reserved_concurrency: signing cannot be stopped at once".into()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn key(policy: Json) -> Vec<&'static str> {
        let mut out = Vec::new();
        key_policy(&Policy::parse(&policy).unwrap(), &mut out);
        out.into_iter().map(|(r, _)| r).collect()
    }

    #[test]
    fn the_console_default_key_policy_lacks_only_the_algorithm_condition_when_it_signs() {
        let console = json!({"Version": "2012-10-17", "Statement": [
            {"Sid": "Enable IAM User Permissions", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:root"}, "Action": "kms:*", "Resource": "*"}]});
        assert_eq!(
            key(console),
            ["KR109"],
            "the account root's kms:* keeps the key manageable, and lets IAM grant signing"
        );
        let broad = json!({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:role/ops"}, "Action": "kms:*", "Resource": "*"}]});
        assert_eq!(key(broad), ["KR101", "KR102", "KR103"]);
    }

    #[test]
    fn wildcards_and_missing_admins() {
        let open = json!({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Principal": "*", "Action": "kms:Sign", "Resource": "*",
             "Condition": {"StringEquals": {"kms:SigningAlgorithm": "ECDSA_SHA_256"}}}]});
        assert_eq!(key(open), ["KR104"], "a condition narrows the wildcard");
        let open = json!({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Principal": "*", "Action": "kms:GetPublicKey", "Resource": "*"}]});
        assert_eq!(key(open), ["KR201", "KR104"]);
    }

    #[test]
    fn role_policies_and_trust() {
        let mut out = Vec::new();
        role_policy(
            &Policy::parse(&json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "kms:Sign", "Resource": "*"}]})).unwrap(),
            &mut out,
        );
        assert_eq!(out.iter().map(|(r, _)| *r).collect::<Vec<_>>(), ["KR202", "KR102"]);
        let mut out = Vec::new();
        trust_policy(
            &Policy::parse(&json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": "444455556666"}, "Action": "sts:AssumeRole"}]})).unwrap(),
            None,
            &mut out,
        );
        assert_eq!(out.iter().map(|(r, _)| *r).collect::<Vec<_>>(), ["KR203"]);
    }

    #[test]
    fn secrets_look_like_secrets() {
        assert!(looks_secret("API_TOKEN", "abc"));
        assert!(looks_secret("X", "AKIAIOSFODNN7EXAMPLE"));
        assert!(looks_secret("K", &"ab".repeat(32)));
        assert!(!looks_secret("KMS_KEY_ID", "1234abcd-12ab-34cd-56ef-1234567890ab"));
        assert!(!looks_secret("EXPECTED_ADDRESS", "0x52908400098527886E0F7030069857D2E4169EE7"));
        assert!(!looks_secret("SIGNING_MODE", "eip191"));
    }

    #[test]
    fn a_gate_alone_signs_a_recovery_key_and_anyone_beside_it_is_break_glass() {
        let (gate, officer) = ("arn:aws:iam::1:role/gate", "arn:aws:iam::1:user/officer");
        let statement = |who: &str, condition: Json| json!({"Effect": "Allow", "Principal": {"AWS": who}, "Action": "kms:Sign", "Resource": "*", "Condition": condition});
        let algorithm = json!({"StringEquals": {"kms:SigningAlgorithm": "ECDSA_SHA_256"}});
        let mfa = json!({"StringEquals": {"kms:SigningAlgorithm": "ECDSA_SHA_256"}, "Bool": {"aws:MultiFactorAuthPresent": "true"}});
        let rules = |statements: Vec<Json>, gates: &[&str]| {
            let cx = Context { gates: gates.iter().map(|g| g.to_string()).collect(), ..Context::default() };
            let mut out = Vec::new();
            recovery_key_policy(&Policy::parse(&json!({"Statement": statements})).unwrap(), &cx, &mut out);
            out.into_iter().map(|(r, _)| r).collect::<Vec<_>>()
        };
        // The gate needs only the algorithm condition; its approvals are the rest.
        assert_eq!(rules(vec![statement(gate, algorithm.clone())], &[gate]), Vec::<&str>::new());
        assert_eq!(rules(vec![statement(gate, json!({}))], &[gate]), ["KR107"]);
        // Beside it, an officer with MFA is a break-glass path; without MFA, exposed as well.
        assert_eq!(
            rules(vec![statement(gate, algorithm.clone()), statement(officer, mfa.clone())], &[gate]),
            ["KR110"]
        );
        assert_eq!(
            rules(vec![statement(gate, algorithm.clone()), statement(officer, algorithm.clone())], &[gate]),
            ["KR107", "KR110"]
        );
        // A role no gate runs as is a person as far as the key can tell.
        assert_eq!(rules(vec![statement(gate, algorithm)], &[]), ["KR107", "KR111"]);
        assert_eq!(rules(vec![statement(officer, mfa)], &[gate]), ["KR111"]);
    }
}

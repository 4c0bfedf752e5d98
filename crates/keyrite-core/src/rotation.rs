//! Rotation: an operational key replaced by a new one (a new address), in three recorded steps.
//!
//! 1. **rotate**: an approved plan makes the new key (generation n+1) and moves the signer's
//!    role, aliases and endpoints to it; the old key stays enabled, with its own policy, for
//!    the grace period the manifest sets (`rotation: {grace: 7d}`), so that it can still sign
//!    until the wallet has accepted the new signer;
//! 2. **enrol**: the wallet's enrolment of the new address in place of the old one (EIP-712,
//!    [`crate::ceremony::enrolment`]), approved by the quorum gate's approvers and signed by
//!    the recovery key through the gate;
//! 3. **finish**: after the grace period, the old key is disabled (never deleted).
//!
//! Each step leaves a ceremony record chained to the one before. The state keeps each key's
//! generation (a new key carries `keyrite:generation`, so that an interrupted create is
//! adopted and the old key never is) and the history of rotations, which `addresses` shows.

use serde::{Deserialize, Serialize};

use crate::manifest::SignerSpec;
use crate::state::{ResourceState, State};

/// The ownership mark that tells a key's generations apart (absent on the first).
pub const TAG_GENERATION: &str = "keyrite:generation";

/// How long an enrolment stays valid by default (approvers have this long to approve).
pub const DEFAULT_VALID_FOR: u64 = 7 * 86400;

/// A signer's `rotation:` block.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RotationSpec {
    /// How long the old key stays enabled after the rotation (`grace:`).
    pub grace_seconds: u64,
    /// How old a key may get before a rotation is due (`every:`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub every_seconds: Option<u64>,
    /// The recovery signer whose quorum gate signs the enrolment (`recovery:`).
    pub recovery: String,
}

/// A rotation as a saved plan carries it: what the approvers approve beside the changes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RotationPlan {
    pub signer: String,
    /// The key resource's address (`treasury_key`).
    pub key: String,
    /// The new key's generation (2 for the first rotation).
    pub generation: u32,
    /// The key it replaces: its cloud id and EVM address.
    pub replaces_id: String,
    pub replaces_address: String,
    pub grace_seconds: u64,
    pub recovery: String,
    /// The enrolment's nonce and how long it stays valid once written.
    pub nonce: u64,
    pub valid_for_seconds: u64,
    /// True when the plan continues a rotation an earlier apply started and did not finish.
    #[serde(default)]
    pub continuing: bool,
}

/// Where a rotation is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// The apply that makes the new key started and has not recorded it yet.
    Applying,
    /// The new key is live; the enrolment waits for its approvals.
    Rotated,
    /// The recovery key signed the enrolment; the old key waits for the grace period to end.
    Enrolled,
    /// The old key is disabled.
    Finished,
}

/// One rotation, as the state remembers it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Rotation {
    pub signer: String,
    pub key: String,
    pub generation: u32,
    pub phase: Phase,
    /// The old key's state entry, as last applied.
    pub old: ResourceState,
    pub old_address: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_address: Option<String>,
    pub recovery: String,
    pub nonce: u64,
    pub valid_for_seconds: u64,
    pub grace_seconds: u64,
    pub started_at: String,
    /// When the new key went live, and when the old key may be disabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotated_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grace_until: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    /// The ceremony records of each step, in order.
    #[serde(default)]
    pub records: Vec<String>,
}

impl Rotation {
    pub fn from_plan(plan: &RotationPlan, old: ResourceState, started_at: String) -> Rotation {
        Rotation {
            signer: plan.signer.clone(),
            key: plan.key.clone(),
            generation: plan.generation,
            phase: Phase::Applying,
            old,
            old_address: plan.replaces_address.clone(),
            new_id: None,
            new_address: None,
            recovery: plan.recovery.clone(),
            nonce: plan.nonce,
            valid_for_seconds: plan.valid_for_seconds,
            grace_seconds: plan.grace_seconds,
            started_at,
            rotated_at: None,
            grace_until: None,
            finished_at: None,
            records: Vec::new(),
        }
    }
}

/// A signer whose key is older than its `rotation.every`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Due {
    pub signer: String,
    pub key: String,
    /// When the key was made (KMS's creation date, or the rotation that made it live).
    pub since: String,
    pub age_seconds: u64,
    pub every_seconds: u64,
}

impl std::fmt::Display for Due {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "a rotation of signer {} is due: its key {} is {} old (since {}), and it rotates every {}; run `keyrite rotate {} --out rotation.plan`",
            self.signer,
            self.key,
            format_age(self.age_seconds),
            self.since,
            format_duration(self.every_seconds),
            self.signer
        )
    }
}

/// An age in whole days, or hours under two days.
fn format_age(seconds: u64) -> String {
    if seconds >= 2 * 86400 { format!("{} days", seconds / 86400) } else { format!("{} hours", seconds / 3600) }
}

/// When the key now at `address` went live: the rotation that made it, else the cloud's
/// creation date as last read.
pub fn key_since(state: &State, address: &str) -> Option<String> {
    let current = state.resources.get(address)?;
    let rotated = state
        .rotations
        .iter()
        .rev()
        .find(|r| r.key == address && r.new_id.as_deref() == Some(current.id.as_str()))
        .and_then(|r| r.rotated_at.clone());
    rotated.or_else(|| current.outputs.get("created_at").and_then(|v| v.as_str()).map(str::to_owned))
}

/// The signers with `rotation.every` whose keys are older than that at `now`.
pub fn due(signers: &[SignerSpec], state: &State, now: &str) -> Vec<Due> {
    signers
        .iter()
        .filter_map(|s| {
            let every = s.rotation.as_ref()?.every_seconds?;
            let since = key_since(state, &s.key)?;
            let age = u64::try_from(seconds_between(&since, now)?).ok()?;
            (age > every).then(|| Due {
                signer: s.name.clone(),
                key: s.key.clone(),
                since,
                age_seconds: age,
                every_seconds: every,
            })
        })
        .collect()
}

/// `90s`, `30m`, `24h`, `7d`, `0s` in seconds.
pub fn duration_seconds(text: &str) -> Option<u64> {
    let text = text.trim();
    let unit = match text.chars().last()? {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86400,
        _ => return None,
    };
    let number = &text[..text.len() - 1];
    if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    number.parse::<u64>().ok()?.checked_mul(unit)
}

/// A number of seconds as the largest whole unit (`7d`, `36h`, `90s`).
pub fn format_duration(seconds: u64) -> String {
    match seconds {
        0 => "0s".into(),
        s if s % 86400 == 0 => format!("{}d", s / 86400),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// RFC 3339 `at` plus `seconds`.
pub fn plus_seconds(at: &str, seconds: u64) -> Option<String> {
    let t: jiff::Timestamp = at.parse().ok()?;
    Some(t.checked_add(jiff::SignedDuration::from_secs(i64::try_from(seconds).ok()?)).ok()?.to_string())
}

/// Seconds from RFC 3339 `from` to `to` (negative when `to` is earlier).
pub fn seconds_between(from: &str, to: &str) -> Option<i64> {
    let (a, b): (jiff::Timestamp, jiff::Timestamp) = (from.parse().ok()?, to.parse().ok()?);
    Some(b.as_second() - a.as_second())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_and_print_in_whole_units() {
        assert_eq!(duration_seconds("24h"), Some(86400));
        assert_eq!(duration_seconds("7d"), Some(7 * 86400));
        assert_eq!(duration_seconds("90s"), Some(90));
        assert_eq!(duration_seconds("0s"), Some(0));
        for bad in ["1w", "h", "-1d", "+1d", "1.5d", ""] {
            assert_eq!(duration_seconds(bad), None, "{bad}");
        }
        assert_eq!(format_duration(7 * 86400), "7d");
        assert_eq!(format_duration(36 * 3600), "36h");
        assert_eq!(format_duration(90), "90s");
    }

    #[test]
    fn a_key_is_due_once_it_is_older_than_its_rotation_period() {
        use crate::manifest::{SigningMode, Slot};
        let mut state = State::new(Some("l".into()));
        let key = ResourceState {
            kind: "aws_kms_key".into(),
            id: "k1".into(),
            attrs: Default::default(),
            outputs: [("created_at".to_owned(), serde_json::json!("2026-09-01T00:00:00Z"))].into_iter().collect(),
            depends_on: Default::default(),
            updated_at: String::new(),
        };
        state.resources.insert("treasury_key".into(), key.clone());
        let signer = |every| SignerSpec {
            name: "treasury".into(),
            key: "treasury_key".into(),
            slot: Slot::Operational,
            mode: SigningMode::Eip191,
            endpoints: Vec::new(),
            rotation: Some(RotationSpec { grace_seconds: 0, every_seconds: every, recovery: "r".into() }),
            gate: None,
        };
        let now = "2026-12-07T00:00:00Z";
        let due = due(&[signer(Some(90 * 86400))], &state, now);
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].age_seconds, 97 * 86400);
        assert!(due[0].to_string().contains("is 97 days old (since 2026-09-01T00:00:00Z), and it rotates every 90d"));
        assert!(super::due(&[signer(Some(100 * 86400))], &state, now).is_empty());
        assert!(super::due(&[signer(None)], &state, now).is_empty());
        // After a rotation, the age counts from the rotation that made the key live.
        state.resources.get_mut("treasury_key").unwrap().id = "k2".into();
        let mut r = Rotation::from_plan(
            &RotationPlan {
                signer: "treasury".into(),
                key: "treasury_key".into(),
                generation: 2,
                replaces_id: "k1".into(),
                replaces_address: "0x1".into(),
                grace_seconds: 0,
                recovery: "r".into(),
                nonce: 0,
                valid_for_seconds: 60,
                continuing: false,
            },
            key,
            "2026-12-01T00:00:00Z".into(),
        );
        r.new_id = Some("k2".into());
        r.rotated_at = Some("2026-12-01T00:00:00Z".into());
        state.rotations.push(r);
        assert!(super::due(&[signer(Some(90 * 86400))], &state, now).is_empty());
    }

    #[test]
    fn a_grace_period_ends_its_length_after_it_starts() {
        let end = plus_seconds("2026-12-07T10:00:00Z", 7 * 86400).unwrap();
        assert_eq!(end, "2026-12-14T10:00:00Z");
        assert_eq!(seconds_between("2026-12-07T10:00:00Z", &end), Some(7 * 86400));
        assert_eq!(seconds_between(&end, "2026-12-07T10:00:00Z"), Some(-7 * 86400));
    }
}

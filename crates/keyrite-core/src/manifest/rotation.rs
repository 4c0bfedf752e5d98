//! A signer's `rotation:` block:
//!
//! ```yaml
//! signers:
//!   treasury:
//!     key: treasury_key
//!     rotation:
//!       grace: 7d        # the old key stays enabled this long after `keyrite rotate`
//!       every: 90d       # optional: a key older than this is due for rotation
//!       recovery: recovery   # the recovery signer whose quorum gate signs the enrolment
//! ```
//!
//! Only an operational signer rotates; `recovery:` must name a recovery signer of the
//! manifest (it may be left out when there is exactly one).

use super::yaml::Pos;
use super::{Block, SignerSpec, Slot, Validation};
use crate::rotation::{RotationSpec, duration_seconds};

/// The longest grace period: a year. An old key kept longer is not being rotated.
const MAX_GRACE: u64 = 365 * 86400;

impl Validation {
    /// Reads `rotation:`; returns the spec and where its `recovery:` (or the block) is.
    pub(super) fn rotation(&mut self, b: &mut Block<'_>, slot: Slot) -> Option<(RotationSpec, Pos)> {
        let block_pos = b.pos_of("rotation");
        let mut r = b.block(self, "rotation")?;
        if slot == Slot::Recovery {
            self.error(
                block_pos,
                "rotation",
                format!(
                    "{}: a recovery signer is not rotated by `keyrite rotate`: it enrols the operational signers that are",
                    b.field_path("rotation")
                ),
            );
        }
        let duration = |cx: &mut Validation, r: &mut Block<'_>, field: &str, required: bool| -> Option<u64> {
            let pos = r.pos_of(field);
            let text = if required { r.required_string(cx, field)? } else { r.string(cx, field)? };
            match duration_seconds(&text) {
                Some(s) if s <= MAX_GRACE || field == "every" => Some(s),
                Some(_) => {
                    cx.error(pos, "rotation", format!("{}: at most 365d", r.field_path(field)));
                    None
                }
                None => {
                    cx.error(
                        pos,
                        "rotation",
                        format!("{}: {text:?} is not a duration (90s, 30m, 24h, 7d)", r.field_path(field)),
                    );
                    None
                }
            }
        };
        let grace = duration(self, &mut r, "grace", true);
        let every_pos = r.pos_of("every");
        let every = duration(self, &mut r, "every", false);
        if let (Some(g), Some(e)) = (grace, every)
            && e <= g
        {
            self.error(
                every_pos,
                "rotation",
                format!(
                    "{}: a key is due for rotation only after its grace period ends (every > grace)",
                    r.field_path("every")
                ),
            );
        }
        if every == Some(0) {
            self.error(every_pos, "rotation", format!("{}: must be longer than 0s", r.field_path("every")));
        }
        let recovery_pos = r.pos_of("recovery");
        let recovery = r.string(self, "recovery").unwrap_or_default();
        r.finish(self);
        Some((RotationSpec { grace_seconds: grace.unwrap_or_default(), every_seconds: every, recovery }, recovery_pos))
    }

    /// Resolves each rotation's recovery signer: the one named, which must be a recovery
    /// signer, or the manifest's only recovery signer.
    pub(super) fn check_rotations(&mut self, signers: &mut [SignerSpec], at: &[(String, Pos)]) {
        let recovery: Vec<String> =
            signers.iter().filter(|s| s.slot == Slot::Recovery).map(|s| s.name.clone()).collect();
        let slots: Vec<(String, Slot)> = signers.iter().map(|s| (s.name.clone(), s.slot)).collect();
        for signer in signers.iter_mut() {
            let Some(rotation) = signer.rotation.as_mut() else { continue };
            let pos = at.iter().find(|(n, _)| *n == signer.name).map(|(_, p)| *p).unwrap_or_default();
            let path = format!("manifest.signers.{}.rotation.recovery", signer.name);
            if rotation.recovery.is_empty() {
                match recovery.as_slice() {
                    [only] => rotation.recovery = only.clone(),
                    [] => self.error(
                        pos,
                        "rotation",
                        format!(
                            "manifest.signers.{}.rotation: no recovery signer in this manifest to enrol the new key; declare one \
                             with a quorum gate (see manifests/rotation.yaml)",
                            signer.name
                        ),
                    ),
                    _ => self.error(
                        pos,
                        "rotation",
                        format!("{path}: missing: name one of the recovery signers ({})", recovery.join(", ")),
                    ),
                }
                continue;
            }
            match slots.iter().find(|(n, _)| *n == rotation.recovery) {
                Some((_, Slot::Recovery)) => {}
                Some(_) => self.error(
                    pos,
                    "rotation",
                    format!("{path}: {:?} is an operational signer, not a recovery signer", rotation.recovery),
                ),
                None => self.error(
                    pos,
                    "reference",
                    format!("{path}: no signer named {:?} in this manifest", rotation.recovery),
                ),
            }
        }
    }
}

//! `keyrite rotate SIGNER`: the rotation of an operational key, as a ceremony in three
//! recorded steps (see [`crate::rotation`] for the model).
//!
//! 1. `rotate SIGNER --out FILE` plans the new key (a new address, the key's next generation)
//!    with everything that names it moved over; the approvers approve that plan as any
//!    other, and `keyrite apply FILE --operator-key K` makes it, proves the new key signs,
//!    self-tests the endpoints, writes the record, and writes the enrolment (`FILE.enrolment.json`
//!    and its digest) for the gate's approvers. The old key stays enabled.
//! 2. `rotate SIGNER --enrol FILE.enrolment.json --operator-key K`: with the approvals beside
//!    it, the recovery key signs the enrolment through its quorum gate; the record holds the
//!    enrolment, its approvals and the signature.
//! 3. `rotate SIGNER --finish --operator-key K`, once the grace period is over: the old key
//!    is disabled (never deleted), and the record says so.
//!
//! An apply killed in step 1 leaves the rotation in the state as `applying`; `rotate` then
//! plans its continuation, which adopts the new key the interrupted create may have made
//! (found by its generation tag), so that there is only ever one new key.

use anyhow::{Context, bail};
use keyrite_core::ceremony::record::{KeyRecord, KeyRef, RotationRecord};
use keyrite_core::rotation::{self as model, Phase, Rotation};

use crate::plan::Plan;
use crate::state::{Backend, State, now};

#[cfg(feature = "aws")]
mod steps;
#[cfg(feature = "aws")]
pub(crate) use steps::write_enrolment;
#[cfg(feature = "aws")]
pub use steps::{enrol, finish, plan, status};

/// Before a rotation plan's changes: the old key leaves the key's address for the state's
/// rotation history (it stays in the cloud, enabled), and the address moves to the next
/// generation. Written before any cloud call, so that a crash after it is continued, not
/// repeated.
pub(super) async fn begin(store: &Backend, mut state: State, plan: &Plan) -> anyhow::Result<State> {
    let Some(r) = &plan.rotation else { return Ok(state) };
    if r.continuing {
        let open = state
            .rotations
            .iter()
            .any(|x| x.key == r.key && x.generation == r.generation && x.phase == Phase::Applying);
        if !open {
            bail!(
                "the plan continues a rotation of {} to generation {} that the state does not have",
                r.key,
                r.generation
            );
        }
        return Ok(state);
    }
    let old = state.resources.remove(&r.key).with_context(|| format!("{} is not in the state", r.key))?;
    if old.id != r.replaces_id {
        bail!("the plan rotates {} from key {}, but the state records {}", r.key, r.replaces_id, old.id);
    }
    state.generations.insert(r.key.clone(), r.generation);
    state.rotations.push(Rotation::from_plan(r, old, now()));
    state.serial += 1;
    store.write(&state).await?;
    Ok(state)
}

/// After a rotation plan's changes, as its record is written: the rotation's step for the
/// record, and the state's rotation moved on to `rotated`.
pub(super) fn rotated(
    state: &mut State,
    plan: &Plan,
    keys: &[KeyRecord],
    record_id: &str,
) -> anyhow::Result<Option<RotationRecord>> {
    let Some(r) = &plan.rotation else { return Ok(None) };
    let made =
        keys.iter().find(|k| k.address == r.key).with_context(|| format!("the new key {} was not proven", r.key))?;
    let entry = state
        .rotations
        .iter_mut()
        .rev()
        .find(|x| x.key == r.key && x.generation == r.generation)
        .context("the rotation is not in the state")?;
    let at = now();
    let grace_until = model::plus_seconds(&at, r.grace_seconds).context("grace period")?;
    entry.phase = Phase::Rotated;
    entry.new_id = Some(made.id.clone());
    entry.new_address = Some(made.evm_address.clone());
    entry.rotated_at = Some(at);
    entry.grace_until = Some(grace_until.clone());
    entry.records.push(record_id.to_owned());
    Ok(Some(step_record("rotate", entry, None, None)))
}

/// A rotation step's section of its record, from the state's account of the rotation.
pub(super) fn step_record(
    step: &str,
    r: &Rotation,
    disabled_at: Option<String>,
    old_key_state: Option<String>,
) -> RotationRecord {
    RotationRecord {
        step: step.into(),
        signer: r.signer.clone(),
        key: r.key.clone(),
        generation: r.generation,
        replaces: KeyRef { id: r.old.id.clone(), evm_address: r.old_address.clone() },
        new: KeyRef {
            id: r.new_id.clone().unwrap_or_default(),
            evm_address: r.new_address.clone().unwrap_or_default(),
        },
        grace_until: r.grace_until.clone().unwrap_or_default(),
        disabled_at,
        old_key_state,
    }
}

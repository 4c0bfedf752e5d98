//! Offline verification of a ceremony record: no cloud call, no file but the ones given.
//!
//! In order, and stopping at the first failure:
//! 1. the file is a DSSE envelope of an in-toto statement with keyrite's predicate;
//! 2. every envelope signature verifies, with the operator's key (named in the record), an
//!    approver's key (from the embedded allowed_signers) or a key the auditor trusts;
//! 3. the embedded plan is the plan the subjects and the predicate name, and the manifest
//!    and plan files given match the subjects;
//! 4. the approvals: each SSHSIG verifies over the exact plan bytes in the plan namespace,
//!    by a key of the embedded allowed_signers, and distinct principals meet the threshold;
//! 5. every key: its SPKI gives the recorded address, its subject digest matches, and its
//!    proof of possession (absent only for a key its quorum gate alone signs with) is the
//!    statement naming this ceremony, signed by that key, in both
//!    DER and r‖s‖v form;
//! 6. a rotation step: the new key is among the proven keys; an enrolment is the EIP-712
//!    message for this rotation's old and new addresses, approved by enough of the gate's
//!    approvers over its exact digest, under the gate configuration the record names, before
//!    its deadline, and signed by the recovery key.
//!
//! What this proves and what it does not is set out in docs/ceremony.md.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;

use super::record::{self, Found, Statement};
use super::{allowed_signers, approval, dsse};
use crate::crypto;

/// The first thing that does not hold.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct VerifyError(pub String);

fn fail<T>(message: impl Into<String>) -> Result<T, VerifyError> {
    Err(VerifyError(message.into()))
}

/// Files the auditor has besides the record.
#[derive(Default)]
pub struct Inputs<'a> {
    pub manifest: Option<&'a [u8]>,
    pub plan: Option<&'a [u8]>,
    /// Further keys whose envelope signatures are accepted (witnesses).
    pub trusted: &'a [ssh_key::PublicKey],
    /// Fail unless a witness signature (one besides the operator's) verifies, and every
    /// envelope signature is checked.
    pub require_witness: bool,
}

/// A record that verified, and what was checked.
pub struct Verified {
    pub statement: Statement,
    /// keyids of the keys whose envelope signatures verified.
    pub signed_by: Vec<String>,
    pub checks: Vec<String>,
    /// keyids of envelope signatures by keys neither the record nor `--trusted-keys` names:
    /// present, not checked.
    pub unchecked: Vec<String>,
    /// True when `--trusted-keys` pinned the operator's key.
    pub trusted: bool,
}

/// Verifies one record's bytes.
pub fn verify_record(bytes: &[u8], inputs: &Inputs) -> Result<Verified, VerifyError> {
    let text = std::str::from_utf8(bytes).map_err(|_| VerifyError("not a DSSE envelope: not UTF-8 text".into()))?;
    let envelope = dsse::Envelope::from_json(text).map_err(|e| VerifyError(format!("not a DSSE envelope: {e}")))?;
    if envelope.payload_type != dsse::IN_TOTO_PAYLOAD_TYPE {
        return fail(format!("payloadType is {:?}, not {}", envelope.payload_type, dsse::IN_TOTO_PAYLOAD_TYPE));
    }
    let payload = envelope.payload_bytes().map_err(|e| VerifyError(format!("envelope payload: {e}")))?;
    let statement: Statement = serde_json::from_slice(&payload)
        .map_err(|e| VerifyError(format!("the payload is not a keyrite ceremony statement: {e}")))?;
    if statement.statement_type != record::STATEMENT_TYPE || statement.predicate_type != record::PREDICATE_TYPE {
        return fail(format!(
            "statement type {} / predicate {} is not a keyrite ceremony record v1",
            statement.statement_type, statement.predicate_type
        ));
    }
    let p = &statement.predicate;
    let mut checks = Vec::new();

    // 2. Envelope signatures.
    let operator = ssh_key::PublicKey::from_openssh(&p.operator.public_key)
        .map_err(|e| VerifyError(format!("the operator's public key does not parse: {e}")))?;
    let approvers = allowed_signers::parse("embedded allowed_signers", &p.approvals.allowed_signers)
        .map_err(|e| VerifyError(format!("the embedded allowed_signers do not parse: {e}")))?;
    let mut known = vec![operator.clone()];
    known.extend(approvers.iter().map(|a| a.key.clone()));
    known.extend(inputs.trusted.iter().cloned());
    // Envelopes are signed with Ed25519 only; approvers' other keys cannot have signed one.
    known.retain(|k| k.algorithm() == ssh_key::Algorithm::Ed25519);
    if envelope.signatures.is_empty() {
        return fail("the envelope carries no signature");
    }
    let verified = envelope.verify(&known).map_err(|e| VerifyError(format!("envelope: {e}")))?;
    let known_ids: Vec<String> = known.iter().map(dsse::keyid).collect();
    let mut unchecked = Vec::new();
    for s in &envelope.signatures {
        if verified.contains(&s.keyid) {
            continue;
        }
        // A key the record or the auditor names that does not verify is a failure; a key
        // nobody named (a witness the auditor has not trusted) cannot be checked.
        if known_ids.contains(&s.keyid) {
            return fail(format!("envelope signature with keyid {} does not verify with that key", s.keyid));
        }
        unchecked.push(s.keyid.clone());
    }
    if !verified.contains(&dsse::keyid(&operator)) {
        return fail(format!("the operator's key {} did not sign the envelope", p.operator.keyid));
    }
    // The record names its operator's key itself; an auditor who knows the operators pins
    // them with trusted keys.
    if !inputs.trusted.is_empty() && !inputs.trusted.iter().any(|k| k.key_data() == operator.key_data()) {
        return fail(format!("the operator's key {} is not among the trusted keys", p.operator.keyid));
    }
    let witnesses = verified.iter().filter(|id| **id != dsse::keyid(&operator)).count();
    if inputs.require_witness {
        if let Some(id) = unchecked.first() {
            return fail(format!(
                "--require-witness: the witness signature with keyid {id} is not checked: its key is not in --trusted-keys"
            ));
        }
        if witnesses == 0 {
            return fail("--require-witness: no signature besides the operator's verifies");
        }
    }
    checks.push(format!(
        "{} envelope signature(s) verify, the operator's among them{}",
        verified.len(),
        if inputs.trusted.is_empty() {
            " (operator key as named in the record; pin it with --trusted-keys)"
        } else {
            " (operator key trusted)"
        }
    ));

    // 3. The plan and the subjects.
    let plan = B64.decode(&p.plan.content).map_err(|e| VerifyError(format!("the embedded plan is not base64: {e}")))?;
    let plan_sha = record::sha256_hex(&plan);
    if plan_sha != p.plan.sha256 {
        return fail(format!("the embedded plan has SHA-256 {plan_sha}, but the record names {}", p.plan.sha256));
    }
    let subject = |prefix: &str| {
        statement.subject.iter().find(|s| s.name.starts_with(prefix)).and_then(|s| s.digest.get("sha256")).cloned()
    };
    if subject("plan:").as_deref() != Some(plan_sha.as_str()) {
        return fail("the plan subject's digest is not the embedded plan's");
    }
    if subject("manifest:").as_deref() != Some(p.manifest.sha256.as_str()) {
        return fail("the manifest subject's digest is not the manifest's recorded SHA-256");
    }
    if let Some(given) = inputs.plan {
        let sha = record::sha256_hex(given);
        if sha != plan_sha {
            return fail(format!("the plan file given has SHA-256 {sha}; the record's plan has {plan_sha}"));
        }
        checks.push("the plan file given is the approved plan".into());
    }
    if let Some(given) = inputs.manifest {
        let sha = record::sha256_hex(given);
        if sha != p.manifest.sha256 {
            return fail(format!("the manifest file given has SHA-256 {sha}; the record names {}", p.manifest.sha256));
        }
        checks.push("the manifest file given is the one the plan was made from".into());
    }

    // 4. Approvals.
    if record::sha256_hex(p.approvals.allowed_signers.as_bytes()) != p.approvals.allowed_signers_sha256 {
        return fail("the embedded allowed_signers do not match their recorded SHA-256");
    }
    if p.approvals.namespace != approval::PLAN_NAMESPACE {
        return fail(format!(
            "approvals are in namespace {:?}, not {}",
            p.approvals.namespace,
            approval::PLAN_NAMESPACE
        ));
    }
    let at =
        unix_time(&p.started_at).ok_or_else(|| VerifyError(format!("started_at {:?} is not a time", p.started_at)))?;
    let mut approvals = Vec::new();
    for a in &p.approvals.signatures {
        // The record names every principal the approving key is listed under, comma-separated.
        let v = approval::verify(&a.signature, &plan, approval::PLAN_NAMESPACE, &approvers, at, None)
            .map_err(|e| VerifyError(format!("approval by {}: {e}", a.principal)))?;
        if v.principals.join(",") != a.principal {
            return fail(format!("the approval recorded for {} was made by {}", a.principal, v.principals.join(",")));
        }
        approvals.push(v);
    }
    let tally = approval::tally(p.approvals.threshold, &approvers, &approvals)
        .map_err(|e| VerifyError(format!("approvals: {e}")))?;
    if !tally.met {
        return fail(format!(
            "approvals: {} of {} required principals approved (missing: {})",
            tally.counted,
            p.approvals.threshold,
            tally.missing.iter().cloned().collect::<Vec<_>>().join(", ")
        ));
    }
    checks.push(format!(
        "approvals: {} distinct principal(s) of threshold {} signed the exact plan ({})",
        tally.counted,
        p.approvals.threshold,
        tally.approved.iter().cloned().collect::<Vec<_>>().join(", ")
    ));

    // 5. Keys and proofs of possession.
    for k in &p.keys {
        check_key(&statement, k)?;
        checks.push(match &k.gate {
            None => format!("{}: proof of possession recovers to {}", k.address, k.evm_address),
            Some(gate) => format!(
                "{}: {} signs only through its quorum gate {gate}, so it has no proof of possession; its SPKI gives the address",
                k.address, k.evm_address
            ),
        });
    }

    // 6. A rotation step, and the enrolment the recovery key signed.
    checks.extend(check_rotation(p)?);
    Ok(Verified {
        signed_by: verified.into_iter().collect(),
        statement,
        checks,
        unchecked,
        trusted: !inputs.trusted.is_empty(),
    })
}

fn check_key(statement: &Statement, k: &record::KeyRecord) -> Result<(), VerifyError> {
    let p = &statement.predicate;
    let what = |m: String| VerifyError(format!("{}: {m}", k.address));
    let spki = B64.decode(&k.spki).map_err(|e| what(format!("SPKI is not base64: {e}")))?;
    let key = crypto::public_key_from_spki_der(&spki).map_err(|e| what(format!("SPKI: {e}")))?;
    let address = crypto::evm_address(&key).to_checksum_string();
    if address != k.evm_address {
        return Err(what(format!("the recorded SPKI gives address {address}, but the record says {}", k.evm_address)));
    }
    let name = format!("spki:{}", k.address);
    let digest = statement.subject.iter().find(|s| s.name == name).and_then(|s| s.digest.get("sha256"));
    if digest.map(String::as_str) != Some(record::sha256_hex(&spki).as_str()) {
        return Err(what("the SPKI subject's digest does not match the recorded SPKI".into()));
    }
    let proof = match (&k.proof, &k.gate) {
        (Some(proof), None) => proof,
        (None, Some(_)) => return Ok(()),
        (None, None) => return Err(what("no proof of possession, and no quorum gate that would explain why".into())),
        (Some(_), Some(_)) => {
            return Err(what("a proof of possession for a key only its quorum gate signs with".into()));
        }
    };
    let expected = record::pop_statement(&p.record_id, &p.plan.sha256, &k.address, &k.evm_address);
    if proof.statement != expected {
        return Err(what("the proof-of-possession statement does not name this ceremony, plan and key".into()));
    }
    let prehash = crypto::eip191_message_hash(expected.as_bytes());
    if proof.digest != format!("0x{}", hex::encode(prehash)) {
        return Err(what("the proof's digest is not the EIP-191 hash of its statement".into()));
    }
    let sig = crate::signing::parse_hex(&proof.signature).map_err(|e| what(format!("proof signature: {e}")))?;
    let sig: [u8; 65] = sig.try_into().map_err(|_| what("proof signature is not 65 bytes".into()))?;
    let recovered = crypto::recover_address(&prehash, &sig).map_err(|e| what(format!("proof signature: {e}")))?;
    if recovered.to_checksum_string() != k.evm_address {
        return Err(what(format!("the proof recovers to {recovered}, not {}", k.evm_address)));
    }
    let der = hex::decode(proof.der.trim_start_matches("0x")).map_err(|e| what(format!("proof DER: {e}")))?;
    crate::signing::check_der(&recovered, &prehash, &der).map_err(|e| what(format!("proof DER: {e}")))?;
    Ok(())
}

/// A rotation record's step is consistent with its keys, and an enrolment is what its
/// approvers approved and the recovery key signed, for this rotation's old and new keys.
fn check_rotation(p: &record::Predicate) -> Result<Vec<String>, VerifyError> {
    let Some(r) = &p.rotation else {
        return match p.enrolment {
            Some(_) => fail("the record carries an enrolment but no rotation"),
            None => Ok(Vec::new()),
        };
    };
    let mut checks = Vec::new();
    let what = |m: String| VerifyError(format!("rotation of {}: {m}", r.key));
    if r.new.evm_address == r.replaces.evm_address {
        return Err(what("the new key has the old key's address".into()));
    }
    match (r.step.as_str(), &p.enrolment) {
        ("rotate", None) => {
            let made = p.keys.iter().find(|k| k.address == r.key);
            if made.is_none_or(|k| k.evm_address != r.new.evm_address || k.id != r.new.id) {
                return Err(what(format!(
                    "the record's proofs of possession do not include the new key {} ({})",
                    r.new.id, r.new.evm_address
                )));
            }
            checks.push(format!(
                "rotation: {} generation {} is the new key {}, in place of {} (enabled until {})",
                r.key, r.generation, r.new.evm_address, r.replaces.evm_address, r.grace_until
            ));
        }
        ("finish", None) => checks.push(format!(
            "rotation: the old key {} ({}) of {} was disabled at {}",
            r.replaces.id,
            r.replaces.evm_address,
            r.key,
            r.disabled_at.as_deref().unwrap_or("an unrecorded time")
        )),
        ("enrol", Some(e)) => checks.extend(check_enrolment(p, r, e)?),
        (step, e) => {
            return Err(what(format!(
                "a {step:?} step {} an enrolment",
                if e.is_some() { "does not carry" } else { "must carry" }
            )));
        }
    }
    Ok(checks)
}

fn check_enrolment(
    p: &record::Predicate,
    r: &record::RotationRecord,
    e: &record::EnrolmentRecord,
) -> Result<Vec<String>, VerifyError> {
    use super::enrolment::{NAMESPACE, TypedEnrolment};
    let what = |m: String| VerifyError(format!("enrolment: {m}"));
    let typed = TypedEnrolment::from_json(&e.typed_data).map_err(|m| what(format!("the typed data: {m}")))?;
    let digest = typed.digest();
    if e.digest != format!("0x{}", hex::encode(digest)) {
        return Err(what(format!("the recorded digest {} is not the typed data's EIP-712 digest", e.digest)));
    }
    let address = |text: &str| text.parse::<crypto::Address>().map_err(|m| what(format!("{text:?}: {m}")));
    let m = &typed.message;
    if m.new_signer != address(&r.new.evm_address)? || m.replaces != address(&r.replaces.evm_address)? {
        return Err(what(format!(
            "it enrols {} in place of {}, but the rotation is from {} to {}",
            m.new_signer, m.replaces, r.replaces.evm_address, r.new.evm_address
        )));
    }
    if e.namespace != NAMESPACE {
        return Err(what(format!("approvals are in namespace {:?}, not {NAMESPACE}", e.namespace)));
    }
    if record::sha256_hex(e.allowed_signers.as_bytes()) != e.allowed_signers_sha256 {
        return Err(what("the gate's allowed_signers do not match their recorded SHA-256".into()));
    }
    let scope = crate::gate::Scope { domain: typed.domain.clone(), wallet: m.wallet };
    if crate::gate::fingerprint(&e.allowed_signers, e.threshold, &scope) != e.gate_configuration_sha256 {
        return Err(what(
            "the gate's configuration (approvers, threshold, domain, wallet) is not the one the record names".into(),
        ));
    }
    let signers = allowed_signers::parse("the gate's allowed_signers", &e.allowed_signers)
        .map_err(|m| what(format!("the gate's allowed_signers: {m}")))?;
    let at = unix_time(&p.started_at).ok_or_else(|| what(format!("started_at {:?} is not a time", p.started_at)))?;
    if m.deadline <= at {
        return Err(what(format!("its deadline {} had passed when the step started ({})", m.deadline, p.started_at)));
    }
    let mut approvals = Vec::new();
    for a in &e.approvals {
        let v = approval::verify(&a.signature, &digest, NAMESPACE, &signers, at, None)
            .map_err(|m| what(format!("approval by {}: {m}", a.principal)))?;
        if v.principals.join(",") != a.principal {
            return Err(what(format!(
                "the approval recorded for {} was made by {}",
                a.principal,
                v.principals.join(",")
            )));
        }
        approvals.push(v);
    }
    let tally = approval::tally(e.threshold, &signers, &approvals).map_err(|m| what(m.to_string()))?;
    if !tally.met {
        return Err(what(format!("{} of the {} approvals the gate needs", tally.counted, e.threshold)));
    }
    let recovery = address(&e.recovery_address)?;
    let sig = crate::signing::parse_hex(&e.signature).map_err(|m| what(format!("signature: {m}")))?;
    crate::signing::check_rsv(&recovery, &digest, &sig)
        .map_err(|m| what(format!("the signature is not the recovery key's ({recovery}): {m}")))?;
    Ok(vec![
        format!(
            "enrolment: {} of threshold {} gate approvers signed its exact EIP-712 digest ({})",
            tally.counted,
            e.threshold,
            tally.approved.iter().cloned().collect::<Vec<_>>().join(", ")
        ),
        format!(
            "enrolment: the recovery key {recovery} signed the enrolment of {} in place of {} (nonce {}, deadline {})",
            m.new_signer, m.replaces, m.nonce, m.deadline
        ),
    ])
}

/// Walks the chain of records in a directory: consecutive sequence numbers from 1, each
/// naming the SHA-256 of the one before, each verifying on its own. Returns one line per
/// link.
pub fn verify_chain(records: &[Found], trusted: &[ssh_key::PublicKey]) -> Result<Vec<String>, VerifyError> {
    let mut lines = Vec::new();
    for (i, r) in records.iter().enumerate() {
        let p = &r.statement.predicate;
        let want = i as u64 + 1;
        if p.sequence != want {
            return fail(format!(
                "chain gap: expected record {want} of lineage {}, found {} ({})",
                p.lineage,
                p.sequence,
                r.path.display()
            ));
        }
        verify_record(&r.bytes, &Inputs { trusted, ..Inputs::default() })
            .map_err(|e| VerifyError(format!("{}: {e}", r.path.display())))?;
        match (i, &p.previous) {
            (0, None) => {}
            (0, Some(prev)) => {
                return fail(format!(
                    "{}: the first record names a previous one ({})",
                    r.path.display(),
                    prev.record_id
                ));
            }
            (_, None) => return fail(format!("{}: record {} names no previous record", r.path.display(), p.sequence)),
            (_, Some(prev)) => {
                let before = &records[i - 1];
                let sha = &before.payload_sha256;
                if prev.sha256 != *sha || prev.record_id != before.statement.predicate.record_id {
                    return fail(format!(
                        "{}: names previous record {} with SHA-256 {}, but {} has SHA-256 {sha}",
                        r.path.display(),
                        prev.record_id,
                        prev.sha256,
                        before.path.display()
                    ));
                }
            }
        }
        lines.push(format!("#{} {} ({})", p.sequence, p.record_id, r.path.display()));
    }
    Ok(lines)
}

/// Seconds since the Unix epoch of an RFC 3339 UTC time (`2026-12-01T21:11:36Z`).
pub fn unix_time(text: &str) -> Option<u64> {
    u64::try_from(text.parse::<jiff::Timestamp>().ok()?.as_second()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_times_become_unix_seconds() {
        assert_eq!(unix_time("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(unix_time("2026-12-01T21:11:36Z"), Some(1_796_159_496));
        assert_eq!(unix_time("2000-03-01T00:00:00.5Z"), Some(951_868_800));
        assert_eq!(unix_time("yesterday"), None);
    }

    #[test]
    fn garbage_is_not_an_envelope() {
        let e = verify_record(b"{\"hello\": 1}", &Inputs::default()).err().unwrap();
        assert!(e.0.starts_with("not a DSSE envelope"), "{e}");
    }
}

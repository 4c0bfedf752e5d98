//! The ceremony record: an in-toto Statement v1 whose predicate (type [`PREDICATE_TYPE`],
//! version 1, documented in docs/ceremony.md) holds everything an auditor needs to check a
//! ceremony offline: the exact plan (embedded), the approvers and their approvals, who ran it
//! and when, what the cloud says about each key, each key's proof of possession, the
//! self-test evidence, and the SHA-256 of the previous record of the same state lineage, so
//! that records form a chain. The statement travels in a DSSE envelope ([`super::dsse`]).
//!
//! Nothing secret goes in: public keys, signatures, identities and the plan, which approvers
//! already read in full.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

/// The in-toto Statement type.
pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
/// keyrite's predicate, versioned in its URI.
pub const PREDICATE_TYPE: &str = "https://keyrite.dev/ceremony-record/v1";
/// The first line of every proof-of-possession statement.
pub const POP_HEADER: &str = "keyrite proof of possession v1";

/// An in-toto Statement v1 carrying a ceremony record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Statement {
    #[serde(rename = "_type")]
    pub statement_type: String,
    pub subject: Vec<Subject>,
    #[serde(rename = "predicateType")]
    pub predicate_type: String,
    pub predicate: Predicate,
}

/// An artifact the record speaks for, by digest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subject {
    pub name: String,
    pub digest: BTreeMap<String, String>,
}

impl Subject {
    pub fn sha256(name: impl Into<String>, bytes: &[u8]) -> Subject {
        Subject { name: name.into(), digest: BTreeMap::from([("sha256".to_owned(), sha256_hex(bytes))]) }
    }
}

/// Everything the ceremony did and proved.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Predicate {
    /// The predicate's schema version (1).
    pub version: u32,
    pub record_id: String,
    /// The state lineage the ceremony applied to; the chain is per lineage.
    pub lineage: String,
    /// 1 for the lineage's first ceremony, then one more each time.
    pub sequence: u64,
    /// The record before this one in the chain.
    pub previous: Option<Previous>,
    pub started_at: String,
    pub finished_at: String,
    pub keyrite_version: String,
    pub operator: Operator,
    pub manifest: Artifact,
    pub plan: PlanRecord,
    pub approvals: Approvals,
    pub applied: Vec<Applied>,
    pub keys: Vec<KeyRecord>,
    pub selftest: Vec<SelfTestRecord>,
    /// For the records of a rotation (`keyrite rotate`): which step, of which key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotation: Option<RotationRecord>,
    /// For a rotation's enrolment step: the enrolment, its approvals and the recovery key's
    /// signature over it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enrolment: Option<EnrolmentRecord>,
}

/// One step of a rotation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RotationRecord {
    /// `rotate` (the new key is made), `enrol` (the recovery key signed its enrolment) or
    /// `finish` (the old key is disabled).
    pub step: String,
    pub signer: String,
    /// The key resource's address.
    pub key: String,
    /// The new key's generation.
    pub generation: u32,
    pub replaces: KeyRef,
    pub new: KeyRef,
    /// The old key stays enabled until then.
    pub grace_until: String,
    /// For `finish`: when the old key was disabled, and the state KMS reported for it after.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old_key_state: Option<String>,
}

/// A key by its cloud id and EVM address.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRef {
    pub id: String,
    pub evm_address: String,
}

/// The enrolment the recovery key signed through its quorum gate.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrolmentRecord {
    /// The EIP-712 message, as `eth_signTypedData_v4` takes it.
    pub typed_data: Json,
    /// Its EIP-712 digest, 0x-hex: what the approvers signed (as 32 bytes) and the key signed.
    pub digest: String,
    pub namespace: String,
    /// The gate's approvers and threshold, as deployed.
    pub threshold: usize,
    pub allowed_signers: String,
    pub allowed_signers_sha256: String,
    pub approvals: Vec<ApprovalRecord>,
    /// The gate's function, and the SHA-256 of its configuration (approvers, threshold, scope).
    pub gate: String,
    pub gate_configuration_sha256: String,
    /// The recovery key's address, and its 0x r‖s‖v signature over the digest.
    pub recovery_address: String,
    pub signature: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Previous {
    pub record_id: String,
    /// SHA-256 of the previous record's payload (its statement), so that signatures added to
    /// its envelope later do not break the chain.
    pub sha256: String,
}

/// Who ran the ceremony.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Operator {
    pub user: String,
    pub host: String,
    /// The AWS caller ARN and the Google principal, as the clouds named them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gcp: Option<String>,
    /// The key that signed the envelope: OpenSSH public key line, and its keyid there.
    pub public_key: String,
    pub keyid: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Artifact {
    pub path: String,
    pub sha256: String,
}

/// The approved plan, embedded, so that approvals can be checked without any other file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanRecord {
    pub path: String,
    pub sha256: String,
    /// The SHA-256 as PGP words, as approvers compared it out of band.
    pub words: String,
    /// The plan file's bytes, base64.
    pub content: String,
}

/// The approvers, the threshold, and each approval as made.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approvals {
    pub namespace: String,
    pub threshold: usize,
    /// The allowed_signers file's text and SHA-256, as read at apply.
    pub allowed_signers: String,
    pub allowed_signers_sha256: String,
    pub signatures: Vec<ApprovalRecord>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalRecord {
    pub principal: String,
    pub fingerprint: String,
    pub key_type: String,
    /// The armored SSHSIG (`-----BEGIN SSH SIGNATURE-----`).
    pub signature: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied {
    pub address: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub action: String,
}

/// A key the ceremony created or changed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KeyRecord {
    /// The manifest address (`treasury_key`).
    pub address: String,
    #[serde(rename = "type")]
    pub kind: String,
    /// The cloud's id: key id, or the pinned Cloud KMS key version's name.
    pub id: String,
    /// SubjectPublicKeyInfo, DER, base64.
    pub spki: String,
    pub evm_address: String,
    /// What the cloud says about the key (key spec, origin, protection level, attestation…).
    pub cloud: Json,
    /// The proof of possession; absent only for a key a quorum gate alone may sign with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proof: Option<Proof>,
    /// The quorum gate (its function) that alone signs with the key: nobody else can make a
    /// proof of possession, and the key's first enrolment is its proof.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gate: Option<String>,
}

/// A proof of possession: the key signed a statement naming this ceremony.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proof {
    /// The statement, signed as an EIP-191 personal message.
    pub statement: String,
    /// keccak256 of the EIP-191 wrapping of the statement: what KMS signed.
    pub digest: String,
    /// KMS's DER signature, hex.
    pub der: String,
    /// 0x r‖s‖v, low-s, v ∈ {27, 28}.
    pub signature: String,
}

/// One self-test check, as the live self-test ran it at the end of the ceremony.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SelfTestRecord {
    pub signer: String,
    pub target: String,
    pub passed: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
    pub message: String,
    pub latency_ms: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
    pub expected_address: String,
}

/// The statement a key signs to prove possession during a ceremony.
pub fn pop_statement(record_id: &str, plan_sha256: &str, address: &str, evm_address: &str) -> String {
    format!("{POP_HEADER}\nceremony: {record_id}\nplan sha256: {plan_sha256}\nkey: {address}\naddress: {evm_address}\n")
}

pub use crate::crypto::sha256_hex;

/// A record file found in a records directory.
#[derive(Clone, Debug)]
pub struct Found {
    pub path: PathBuf,
    pub bytes: Vec<u8>,
    /// SHA-256 of the envelope's payload: what the next record names.
    pub payload_sha256: String,
    pub statement: Statement,
}

/// Every readable ceremony record in `dir` (files ending `.json` that hold a DSSE envelope
/// with a keyrite statement), for `lineage` if given, in chain order.
pub fn records_in(dir: &Path, lineage: Option<&str>) -> std::io::Result<Vec<Found>> {
    let mut found = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(found),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let path = entry?.path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let bytes = std::fs::read(&path)?;
        let Some((statement, payload)) = parse(&bytes) else { continue };
        if lineage.is_none_or(|l| statement.predicate.lineage == l) {
            found.push(Found { path, bytes, payload_sha256: sha256_hex(&payload), statement });
        }
    }
    found.sort_by_key(|f| f.statement.predicate.sequence);
    Ok(found)
}

/// The statement inside a record file's envelope, if it is one of keyrite's.
pub fn statement_of(bytes: &[u8]) -> Option<Statement> {
    parse(bytes).map(|(s, _)| s)
}

fn parse(bytes: &[u8]) -> Option<(Statement, Vec<u8>)> {
    let envelope = super::dsse::Envelope::from_json(std::str::from_utf8(bytes).ok()?).ok()?;
    let payload = envelope.payload_bytes().ok()?;
    let statement: Statement = serde_json::from_slice(&payload).ok()?;
    (statement.predicate_type == PREDICATE_TYPE).then_some((statement, payload))
}

/// The file name of a record: its sequence and id, so a directory lists in chain order.
pub fn file_name(p: &Predicate) -> String {
    format!("ceremony-{:04}-{}.json", p.sequence, &p.record_id[..8.min(p.record_id.len())])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_statement_names_the_ceremony_the_plan_and_the_key() {
        let s = pop_statement("r-1", "ab", "treasury_key", "0xAbC");
        assert_eq!(
            s,
            "keyrite proof of possession v1\nceremony: r-1\nplan sha256: ab\nkey: treasury_key\naddress: 0xAbC\n"
        );
    }

    #[test]
    fn subjects_carry_sha256() {
        let s = Subject::sha256("plan", b"");
        assert_eq!(s.digest["sha256"], "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    }
}

//! The quorum gate: what decides whether a recovery key may sign. A gate is the only principal
//! a recovery key lets sign; it holds the approvers' allowed_signers, the threshold k and the
//! enrolment's domain and wallet, all fixed when it is deployed, and authorizes exactly one
//! kind of request: an [`enrolment`](crate::ceremony::enrolment) message carrying approvals
//! (SSHSIG, namespace `keyrite-enrolment@v1`) over its exact digest by k different approvers,
//! before its deadline. Everything else is refused here, before any key is asked to sign: a
//! raw digest, too few approvals, one approver twice, an unknown key, an approval of another
//! message, an expired or far-off deadline, another wallet or domain.
//!
//! Pure: [`Gate::authorize`] reads a request body and the time, and says which digest may be
//! signed and who approved it. The deployed endpoints (the Rust Lambda's gate mode) sign that
//! digest as it is, without the EIP-191 prefix, since EIP-712 digests are signed bare.
//!
//! Request: `{"enrolment": <eth_signTypedData_v4 object>, "approvals": ["-----BEGIN SSH
//! SIGNATURE-----…", …]}`. The configuration comes from the function's environment:
//! `GATE_ALLOWED_SIGNERS` (the file's text), `GATE_THRESHOLD` and `GATE_ENROLMENT`
//! (`{"domain": {…}, "wallet": "0x…"}`); [`Gate::fingerprint`] is the SHA-256 of the three,
//! which records and drift compare.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ceremony::allowed_signers::{self, AllowedSigner};
use crate::ceremony::approval;
use crate::ceremony::enrolment::{self, Domain, TypedEnrolment};
use crate::crypto::{Address, sha256_hex};

/// The environment variables a gate is configured by.
pub const ENV_ALLOWED_SIGNERS: &str = "GATE_ALLOWED_SIGNERS";
pub const ENV_THRESHOLD: &str = "GATE_THRESHOLD";
pub const ENV_ENROLMENT: &str = "GATE_ENROLMENT";

/// The largest request a gate reads, and the most approvals it checks.
pub const MAX_BODY: usize = 64 * 1024;
pub const MAX_APPROVALS: usize = 32;

/// The longest an enrolment may stay valid: a deadline further ahead is refused, so that an
/// approved enrolment cannot be held back and used months later.
pub const MAX_VALIDITY_SECONDS: u64 = 30 * 24 * 3600;

/// What an enrolment must be for, beyond its approvals.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scope {
    pub domain: Domain,
    pub wallet: Address,
}

/// A gate's fixed configuration.
#[derive(Clone, Debug)]
pub struct Gate {
    signers: Vec<AllowedSigner>,
    threshold: usize,
    scope: Scope,
    fingerprint: String,
}

/// Why a request is not signed. Each is said to the caller (400 or 403) as it is.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Refusal {
    #[error("{0}")]
    Malformed(String),
    #[error(
        "the quorum gate signs only enrolment messages with their approvals ({{\"enrolment\": …, \"approvals\": […]}}), never a raw digest ({0:?} given)"
    )]
    RawDigest(String),
    #[error("the enrolment is for {found}, not for this gate's {expected}")]
    OutOfScope { expected: String, found: String },
    #[error("the enrolment's deadline {deadline} has passed (now {now}, unix seconds)")]
    Expired { deadline: u64, now: u64 },
    #[error(
        "the enrolment's deadline {deadline} is more than {} days ahead (now {now}); approve one that expires sooner",
        MAX_VALIDITY_SECONDS / 86400
    )]
    TooFarAhead { deadline: u64, now: u64 },
    #[error("the enrolment replaces {0} with itself")]
    SameSigner(Address),
    #[error("{counted} of the {required} approvals needed ({approved}){rejected}")]
    Quorum { required: usize, counted: usize, approved: String, rejected: String },
}

impl Refusal {
    /// The HTTP status a gate answers with: 400 for a request it cannot read, 403 for one it
    /// read and will not sign.
    pub fn status(&self) -> u16 {
        match self {
            Refusal::Malformed(_) | Refusal::RawDigest(_) => 400,
            _ => 403,
        }
    }
}

/// A request the gate lets the recovery key sign.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Authorized {
    pub enrolment: TypedEnrolment,
    /// The EIP-712 digest, signed as it is.
    pub digest: [u8; 32],
    /// The principals whose approvals counted, sorted.
    pub approvers: Vec<String>,
}

impl Gate {
    /// A gate over `allowed_signers` (the file's text), `threshold` and `scope`: refused if
    /// the file does not parse or names fewer than `threshold` principals.
    pub fn new(allowed_signers: &str, threshold: usize, scope: Scope) -> Result<Gate, String> {
        let signers = allowed_signers::parse(ENV_ALLOWED_SIGNERS, allowed_signers).map_err(|e| e.to_string())?;
        let available = allowed_signers::distinct_principals(&signers).len();
        if threshold == 0 || threshold > available {
            return Err(format!(
                "{ENV_THRESHOLD} must be from 1 to the {available} principal(s) of {ENV_ALLOWED_SIGNERS}: {threshold}"
            ));
        }
        let fingerprint = fingerprint(allowed_signers, threshold, &scope);
        Ok(Gate { signers, threshold, scope, fingerprint })
    }

    /// Reads `GATE_ALLOWED_SIGNERS`, `GATE_THRESHOLD` and `GATE_ENROLMENT` through `var`.
    pub fn from_env(var: impl Fn(&str) -> Option<String>) -> Result<Gate, String> {
        let get = |name: &str| var(name).filter(|v| !v.trim().is_empty()).ok_or(format!("{name} is not set"));
        let signers = get(ENV_ALLOWED_SIGNERS)?;
        let threshold = get(ENV_THRESHOLD)?;
        let threshold: usize =
            threshold.trim().parse().map_err(|_| format!("{ENV_THRESHOLD} is not a number: {threshold:?}"))?;
        let scope: Scope =
            serde_json::from_str(&get(ENV_ENROLMENT)?).map_err(|e| format!("{ENV_ENROLMENT} is not a scope: {e}"))?;
        Gate::new(&signers, threshold, scope)
    }

    pub fn threshold(&self) -> usize {
        self.threshold
    }

    pub fn scope(&self) -> &Scope {
        &self.scope
    }

    /// SHA-256 over the allowed signers, the threshold and the scope, as deployed.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// Decides a request at `now` (unix seconds). Only an `Ok` may reach a key.
    pub fn authorize(&self, body: &[u8], now: u64) -> Result<Authorized, Refusal> {
        let malformed = |m: &str| Refusal::Malformed(m.to_owned());
        if body.len() > MAX_BODY {
            return Err(Refusal::Malformed(format!("the request is over {MAX_BODY} bytes")));
        }
        let value: Value =
            serde_json::from_slice(body).map_err(|e| Refusal::Malformed(format!("body is not valid JSON: {e}")))?;
        let object = value.as_object().ok_or_else(|| malformed("body must be a JSON object"))?;
        if let Some(field) = crate::contract::HASH_FIELDS.iter().find(|f| object.contains_key(**f)) {
            return Err(Refusal::RawDigest((*field).to_owned()));
        }
        if let Some(extra) = object.keys().find(|k| !["enrolment", "approvals"].contains(&k.as_str())) {
            return Err(Refusal::Malformed(format!("unknown field {extra:?}: send enrolment and approvals only")));
        }
        let typed = TypedEnrolment::from_json(
            object.get("enrolment").ok_or_else(|| malformed("missing enrolment (an eth_signTypedData_v4 object)"))?,
        )
        .map_err(Refusal::Malformed)?;
        let approvals: Vec<&str> = match object.get("approvals") {
            Some(Value::Array(a)) if a.len() <= MAX_APPROVALS => a
                .iter()
                .map(|v| v.as_str().ok_or_else(|| malformed("approvals must be strings")))
                .collect::<Result<_, _>>()?,
            Some(Value::Array(_)) => return Err(Refusal::Malformed(format!("more than {MAX_APPROVALS} approvals"))),
            _ => return Err(malformed("missing approvals: a list of armored SSH signatures")),
        };

        if typed.domain != self.scope.domain {
            return Err(Refusal::OutOfScope {
                expected: describe_domain(&self.scope.domain),
                found: describe_domain(&typed.domain),
            });
        }
        let m = &typed.message;
        if m.wallet != self.scope.wallet {
            return Err(Refusal::OutOfScope {
                expected: format!("wallet {}", self.scope.wallet),
                found: format!("wallet {}", m.wallet),
            });
        }
        if m.new_signer == m.replaces {
            return Err(Refusal::SameSigner(m.new_signer));
        }
        if m.deadline <= now {
            return Err(Refusal::Expired { deadline: m.deadline, now });
        }
        if m.deadline - now > MAX_VALIDITY_SECONDS {
            return Err(Refusal::TooFarAhead { deadline: m.deadline, now });
        }

        let digest = typed.digest();
        let mut verified = Vec::new();
        let mut rejected = Vec::new();
        for (i, armored) in approvals.iter().enumerate() {
            match approval::verify(armored, &digest, enrolment::NAMESPACE, &self.signers, now, None) {
                Ok(v) => verified.push(v),
                Err(e) => rejected.push(format!("approval {}: {e}", i + 1)),
            }
        }
        let tally =
            approval::tally(self.threshold, &self.signers, &verified).map_err(|e| Refusal::Malformed(e.to_string()))?;
        if !tally.met {
            let approved: BTreeSet<&str> = tally.approved.iter().map(String::as_str).collect();
            let approved = if approved.is_empty() {
                "none counted".to_owned()
            } else {
                approved.into_iter().collect::<Vec<_>>().join(", ")
            };
            let duplicates = verified.len() > tally.counted;
            let mut notes = rejected;
            if duplicates {
                notes.push("approvals by the same approver or key count once".into());
            }
            let rejected = if notes.is_empty() { String::new() } else { format!("; {}", notes.join("; ")) };
            return Err(Refusal::Quorum { required: self.threshold, counted: tally.counted, approved, rejected });
        }
        Ok(Authorized { enrolment: typed, digest, approvers: tally.approved.into_iter().collect() })
    }
}

fn describe_domain(d: &Domain) -> String {
    format!("domain {:?} version {:?} on chain {} at {}", d.name, d.version, d.chain_id, d.verifying_contract)
}

/// SHA-256 over the gate's configuration, each part length-prefixed.
pub fn fingerprint(allowed_signers: &str, threshold: usize, scope: &Scope) -> String {
    let scope = serde_json::to_string(scope).unwrap_or_default();
    let mut data = Vec::new();
    for part in [allowed_signers, &threshold.to_string(), &scope] {
        data.extend_from_slice(&(part.len() as u64).to_be_bytes());
        data.extend_from_slice(part.as_bytes());
    }
    sha256_hex(&data)
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use ssh_key::PrivateKey;
    use ssh_key::private::Ed25519Keypair;

    use super::*;
    use crate::ceremony::enrolment::Enrolment;

    const NOW: u64 = 1_800_000_000;

    fn key(seed: u8) -> PrivateKey {
        PrivateKey::new(Ed25519Keypair::from_seed(&[seed; 32]).into(), "").unwrap()
    }

    fn allowed(names: &[(&str, u8)]) -> String {
        names.iter().map(|(name, seed)| format!("{name} {}\n", key(*seed).public_key().to_openssh().unwrap())).collect()
    }

    fn scope() -> Scope {
        let wallet: Address = "0x2c7536E3605D9C16a7a3D7b1898e529396a65c23".parse().unwrap();
        Scope {
            domain: Domain { name: "Treasury".into(), version: "1".into(), chain_id: 1, verifying_contract: wallet },
            wallet,
        }
    }

    fn gate(k: usize) -> Gate {
        Gate::new(&allowed(&[("alice", 1), ("bob", 2), ("carol", 3)]), k, scope()).unwrap()
    }

    fn enrolment() -> TypedEnrolment {
        let s = scope();
        TypedEnrolment {
            domain: s.domain,
            message: Enrolment {
                wallet: s.wallet,
                new_signer: Address([0x11; 20]),
                replaces: Address([0x22; 20]),
                nonce: 4,
                deadline: NOW + 3600,
            },
        }
    }

    fn approve(e: &TypedEnrolment, seeds: &[u8]) -> Vec<String> {
        seeds.iter().map(|s| approval::sign(&key(*s), enrolment::NAMESPACE, &e.digest()).unwrap()).collect()
    }

    fn request(e: &TypedEnrolment, approvals: &[String]) -> Vec<u8> {
        json!({"enrolment": e.to_json(), "approvals": approvals}).to_string().into_bytes()
    }

    #[test]
    fn k_approvals_by_different_approvers_authorize_the_exact_digest() {
        let e = enrolment();
        let ok = gate(2).authorize(&request(&e, &approve(&e, &[3, 1])), NOW).unwrap();
        assert_eq!(ok.digest, e.digest());
        assert_eq!(ok.approvers, ["alice", "carol"]);
        assert_eq!(ok.enrolment, e);
    }

    #[test]
    fn refuses_everything_short_of_a_quorum_over_this_message() {
        let g = gate(2);
        let e = enrolment();
        let refuse = |body: Vec<u8>| g.authorize(&body, NOW).unwrap_err();
        // k-1 approvals; one approver twice.
        assert!(matches!(refuse(request(&e, &approve(&e, &[1]))), Refusal::Quorum { counted: 1, .. }));
        let twice = refuse(request(&e, &approve(&e, &[1, 1])));
        assert!(twice.to_string().contains("count once"), "{twice}");
        // An approver not in the list.
        let stranger = refuse(request(&e, &approve(&e, &[1, 9])));
        assert!(stranger.to_string().contains("not in the allowed signers"), "{stranger}");
        // Approvals of another new signer, nonce or deadline, sent with this message.
        for change in [
            |m: &mut Enrolment| m.new_signer = Address([0x33; 20]),
            |m: &mut Enrolment| m.nonce += 1,
            |m: &mut Enrolment| m.deadline += 1,
        ] {
            let mut other = e.clone();
            change(&mut other.message);
            let r = refuse(request(&e, &approve(&other, &[1, 2])));
            assert!(r.to_string().contains("does not verify"), "{r}");
            // And k approvals of this message, sent with a tampered one.
            let r = refuse(request(&other, &approve(&e, &[1, 2])));
            assert!(matches!(r, Refusal::Quorum { counted: 0, .. }), "{r}");
        }
        // An approval of a plan is not an approval of an enrolment.
        let plan =
            vec![approval::sign(&key(1), approval::PLAN_NAMESPACE, &e.digest()).unwrap(), approve(&e, &[2]).remove(0)];
        assert!(refuse(request(&e, &plan)).to_string().contains("namespace"));
        // Expired, and too far ahead.
        let mut late = e.clone();
        late.message.deadline = NOW;
        assert!(matches!(refuse(request(&late, &approve(&late, &[1, 2]))), Refusal::Expired { .. }));
        let mut far = e.clone();
        far.message.deadline = NOW + MAX_VALIDITY_SECONDS + 1;
        assert!(matches!(refuse(request(&far, &approve(&far, &[1, 2]))), Refusal::TooFarAhead { .. }));
        // Another wallet or domain, even approved.
        let mut elsewhere = e.clone();
        elsewhere.domain.chain_id = 10;
        assert!(matches!(refuse(request(&elsewhere, &approve(&elsewhere, &[1, 2]))), Refusal::OutOfScope { .. }));
        let mut wallet = e.clone();
        wallet.message.wallet = Address([0x44; 20]);
        assert!(matches!(refuse(request(&wallet, &approve(&wallet, &[1, 2]))), Refusal::OutOfScope { .. }));
        let mut same = e.clone();
        same.message.replaces = same.message.new_signer;
        assert!(matches!(refuse(request(&same, &approve(&same, &[1, 2]))), Refusal::SameSigner(_)));
        // A raw digest, in any of the contract's fields, even with approvals.
        for field in crate::contract::HASH_FIELDS {
            let body = json!({field: format!("0x{}", hex::encode(e.digest())), "approvals": approve(&e, &[1, 2])});
            let r = refuse(body.to_string().into_bytes());
            assert_eq!((r.status(), matches!(r, Refusal::RawDigest(_))), (400, true), "{r}");
        }
        assert_eq!(refuse(b"not json".to_vec()).status(), 400);
        assert_eq!(refuse(json!({"approvals": []}).to_string().into_bytes()).status(), 400);
    }

    #[test]
    fn its_configuration_comes_from_the_environment_and_has_a_fingerprint() {
        let signers = allowed(&[("alice", 1), ("bob", 2)]);
        let scope_json = serde_json::to_string(&scope()).unwrap();
        let env = |k: usize| {
            let (signers, scope_json) = (signers.clone(), scope_json.clone());
            move |name: &str| match name {
                ENV_ALLOWED_SIGNERS => Some(signers.clone()),
                ENV_THRESHOLD => Some(k.to_string()),
                ENV_ENROLMENT => Some(scope_json.clone()),
                _ => None,
            }
        };
        let g = Gate::from_env(env(2)).unwrap();
        assert_eq!((g.threshold(), g.scope()), (2, &scope()));
        assert_eq!(g.fingerprint(), fingerprint(&signers, 2, &scope()));
        assert_ne!(g.fingerprint(), Gate::from_env(env(1)).unwrap().fingerprint());
        assert!(Gate::from_env(env(3)).unwrap_err().contains("from 1 to the 2 principal"));
        assert!(Gate::from_env(|_| None).unwrap_err().contains("GATE_ALLOWED_SIGNERS is not set"));
    }
}

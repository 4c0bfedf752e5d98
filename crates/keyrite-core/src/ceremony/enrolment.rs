//! The enrolment of a new operational signer: the EIP-712 typed message a recovery key signs
//! to tell a wallet "signer `newSigner` replaces signer `replaces`", and its digest.
//!
//! The message has one fixed shape, so that the digest an approver signs, the one the quorum
//! gate checks and the one the wallet contract recomputes are the same by construction:
//!
//! ```text
//! EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)
//! Enrolment(address wallet,address newSigner,address replaces,uint256 nonce,uint256 deadline)
//! ```
//!
//! The digest is `keccak256(0x19 0x01 ‖ domainSeparator ‖ hashStruct(message))` (EIP-712).
//! On the wire (a gate request, a ceremony's files) the message is the `eth_signTypedData_v4`
//! JSON object, which Ethereum libraries (eth_account, ethers, viem) hash the same way; a
//! reader accepts only this shape: its `types` must be exactly the two above.
//!
//! Approvals of an enrolment are SSHSIG signatures over its 32 digest bytes in the namespace
//! [`NAMESPACE`], so an approver makes one with `ssh-keygen -Y sign -n keyrite-enrolment@v1`
//! over the digest file a rotation writes, and an approval of a plan can never pass for one.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::crypto::{Address, keccak256};

/// The SSHSIG namespace of enrolment approvals.
pub const NAMESPACE: &str = "keyrite-enrolment@v1";

/// The message's EIP-712 primary type.
pub const PRIMARY_TYPE: &str = "Enrolment";

const DOMAIN_TYPE: &str = "EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)";
const ENROLMENT_TYPE: &str =
    "Enrolment(address wallet,address newSigner,address replaces,uint256 nonce,uint256 deadline)";

/// The EIP-712 domain: which wallet contract, on which chain, the enrolment is for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Domain {
    pub name: String,
    pub version: String,
    pub chain_id: u64,
    pub verifying_contract: Address,
}

/// The enrolment itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Enrolment {
    pub wallet: Address,
    pub new_signer: Address,
    pub replaces: Address,
    pub nonce: u64,
    /// Unix seconds after which the enrolment is void.
    pub deadline: u64,
}

/// An enrolment in its domain: what is signed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TypedEnrolment {
    pub domain: Domain,
    pub message: Enrolment,
}

impl Domain {
    /// `hashStruct(domain)`, the domain separator.
    pub fn separator(&self) -> [u8; 32] {
        let mut enc = Vec::with_capacity(5 * 32);
        enc.extend_from_slice(&keccak256(DOMAIN_TYPE.as_bytes()));
        enc.extend_from_slice(&keccak256(self.name.as_bytes()));
        enc.extend_from_slice(&keccak256(self.version.as_bytes()));
        enc.extend_from_slice(&uint(self.chain_id));
        enc.extend_from_slice(&address(&self.verifying_contract));
        keccak256(&enc)
    }
}

impl Enrolment {
    /// `hashStruct(message)`.
    pub fn struct_hash(&self) -> [u8; 32] {
        let mut enc = Vec::with_capacity(6 * 32);
        enc.extend_from_slice(&keccak256(ENROLMENT_TYPE.as_bytes()));
        enc.extend_from_slice(&address(&self.wallet));
        enc.extend_from_slice(&address(&self.new_signer));
        enc.extend_from_slice(&address(&self.replaces));
        enc.extend_from_slice(&uint(self.nonce));
        enc.extend_from_slice(&uint(self.deadline));
        keccak256(&enc)
    }
}

impl TypedEnrolment {
    /// The EIP-712 digest: what approvers approve and the recovery key signs.
    pub fn digest(&self) -> [u8; 32] {
        let mut enc = Vec::with_capacity(2 + 64);
        enc.extend_from_slice(b"\x19\x01");
        enc.extend_from_slice(&self.domain.separator());
        enc.extend_from_slice(&self.message.struct_hash());
        keccak256(&enc)
    }

    /// The `eth_signTypedData_v4` object.
    pub fn to_json(&self) -> Value {
        let field = |name: &str, ty: &str| json!({"name": name, "type": ty});
        json!({
            "types": {
                "EIP712Domain": [
                    field("name", "string"),
                    field("version", "string"),
                    field("chainId", "uint256"),
                    field("verifyingContract", "address"),
                ],
                PRIMARY_TYPE: [
                    field("wallet", "address"),
                    field("newSigner", "address"),
                    field("replaces", "address"),
                    field("nonce", "uint256"),
                    field("deadline", "uint256"),
                ],
            },
            "primaryType": PRIMARY_TYPE,
            "domain": self.domain,
            "message": {
                "wallet": self.message.wallet,
                "newSigner": self.message.new_signer,
                "replaces": self.message.replaces,
                "nonce": self.message.nonce,
                "deadline": self.message.deadline,
            },
        })
    }

    /// Reads an `eth_signTypedData_v4` object of exactly this shape. The error says what is
    /// wrong, for the 400 a gate answers with.
    pub fn from_json(value: &Value) -> Result<TypedEnrolment, String> {
        let object = value.as_object().ok_or("the enrolment must be a JSON object (eth_signTypedData_v4)")?;
        if let Some(extra) =
            object.keys().find(|k| !["types", "primaryType", "domain", "message"].contains(&k.as_str()))
        {
            return Err(format!("the enrolment has an unknown field {extra:?}"));
        }
        let expected = TypedEnrolment::placeholder().to_json();
        if object.get("types") != expected.get("types") {
            return Err(format!(
                "the enrolment's types must be exactly {DOMAIN_TYPE} and {ENROLMENT_TYPE}, nothing else"
            ));
        }
        if object.get("primaryType").and_then(Value::as_str) != Some(PRIMARY_TYPE) {
            return Err(format!("the enrolment's primaryType must be {PRIMARY_TYPE:?}"));
        }
        let domain: Domain = serde_json::from_value(object.get("domain").cloned().unwrap_or(Value::Null))
            .map_err(|e| format!("the enrolment's domain: {e}"))?;
        let message = object.get("message").and_then(Value::as_object).ok_or("the enrolment has no message object")?;
        if let Some(extra) =
            message.keys().find(|k| !["wallet", "newSigner", "replaces", "nonce", "deadline"].contains(&k.as_str()))
        {
            return Err(format!("the enrolment's message has an unknown field {extra:?}"));
        }
        let addr = |name: &str| -> Result<Address, String> {
            let text = message.get(name).and_then(Value::as_str).ok_or(format!("message.{name}: missing address"))?;
            text.parse().map_err(|e| format!("message.{name}: {e}"))
        };
        let number = |name: &str| -> Result<u64, String> {
            match message.get(name) {
                Some(Value::Number(n)) => n.as_u64(),
                Some(Value::String(s)) => s.parse().ok(),
                _ => None,
            }
            .ok_or(format!("message.{name}: missing, or not an integer from 0 to 2^64-1"))
        };
        Ok(TypedEnrolment {
            domain,
            message: Enrolment {
                wallet: addr("wallet")?,
                new_signer: addr("newSigner")?,
                replaces: addr("replaces")?,
                nonce: number("nonce")?,
                deadline: number("deadline")?,
            },
        })
    }

    fn placeholder() -> TypedEnrolment {
        let zero = Address([0; 20]);
        TypedEnrolment {
            domain: Domain { name: String::new(), version: String::new(), chain_id: 0, verifying_contract: zero },
            message: Enrolment { wallet: zero, new_signer: zero, replaces: zero, nonce: 0, deadline: 0 },
        }
    }
}

fn uint(n: u64) -> [u8; 32] {
    let mut word = [0u8; 32];
    word[24..].copy_from_slice(&n.to_be_bytes());
    word
}

fn address(a: &Address) -> [u8; 32] {
    let mut word = [0u8; 32];
    word[12..].copy_from_slice(&a.0);
    word
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> TypedEnrolment {
        TypedEnrolment {
            domain: Domain {
                name: "Treasury".into(),
                version: "1".into(),
                chain_id: 11155111,
                verifying_contract: "0x2c7536E3605D9C16a7a3D7b1898e529396a65c23".parse().unwrap(),
            },
            message: Enrolment {
                wallet: "0x2c7536E3605D9C16a7a3D7b1898e529396a65c23".parse().unwrap(),
                new_signer: Address([0x11; 20]),
                replaces: Address([0x22; 20]),
                nonce: 7,
                deadline: 1_800_000_000,
            },
        }
    }

    #[test]
    fn reads_back_what_it_writes_and_every_field_moves_the_digest() {
        let e = sample();
        let back = TypedEnrolment::from_json(&e.to_json()).unwrap();
        assert_eq!(back, e);
        let digest = e.digest();
        let mut changed = Vec::new();
        let mut m = e.clone();
        m.message.nonce += 1;
        changed.push(m);
        let mut m = e.clone();
        m.message.deadline += 1;
        changed.push(m);
        let mut m = e.clone();
        m.message.new_signer = Address([0x33; 20]);
        changed.push(m);
        let mut m = e.clone();
        m.message.replaces = Address([0x33; 20]);
        changed.push(m);
        let mut m = e.clone();
        m.domain.chain_id = 1;
        changed.push(m);
        let mut m = e.clone();
        m.domain.name = "Other".into();
        changed.push(m);
        for m in changed {
            assert_ne!(m.digest(), digest, "{m:?}");
        }
    }

    #[test]
    fn refuses_another_shape() {
        let mut v = sample().to_json();
        v["types"]["Enrolment"][3]["type"] = json!("uint128");
        assert!(TypedEnrolment::from_json(&v).unwrap_err().contains("types must be exactly"));
        let mut v = sample().to_json();
        v["message"]["amount"] = json!(1);
        assert!(TypedEnrolment::from_json(&v).unwrap_err().contains("unknown field \"amount\""));
        let mut v = sample().to_json();
        v["primaryType"] = json!("Mail");
        assert!(TypedEnrolment::from_json(&v).unwrap_err().contains("primaryType"));
        let mut v = sample().to_json();
        v["message"]["nonce"] = json!(-1);
        assert!(TypedEnrolment::from_json(&v).unwrap_err().contains("message.nonce"));
        let mut v = sample().to_json();
        v["domain"]["salt"] = json!("0x00");
        assert!(TypedEnrolment::from_json(&v).unwrap_err().contains("domain"));
        let mut v = sample().to_json();
        v["message"]["nonce"] = json!("7");
        assert_eq!(TypedEnrolment::from_json(&v).unwrap(), sample());
    }
}

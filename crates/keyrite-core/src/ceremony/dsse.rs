//! Ceremony records for third-party verifiers. A record is wrapped in a DSSE v1 envelope
//! (secure-systems-lab/dsse, protocol.md) so that in-toto and securesystemslib tooling can check it
//! without knowing keyrite. Signatures are raw 64-byte Ed25519 signatures over the PAE bytes (not
//! SSHSIG), base64 standard, made with the operator's OpenSSH Ed25519 key; more signatures can be
//! added later by witnesses.
//!
//! keyid: the OpenSSH SHA-256 fingerprint of the signer's public key (`SHA256:` + unpadded base64,
//! what `ssh-keygen -l` prints), so an operator can match a keyid to a key by eye and with stock
//! tools. DSSE treats keyid as an unauthenticated hint, so verification never trusts it: each
//! signature is tried against every trusted key, and the keyids reported are the fingerprints of
//! the trusted keys that verified. It is always written, and unique per envelope, because
//! securesystemslib refuses a signature without one (its issue #416) and refuses duplicates.

use std::collections::BTreeSet;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use ed25519_dalek::{Signer as _, Verifier as _};
use serde::{Deserialize, Serialize};
use ssh_key::{HashAlg, PrivateKey, PublicKey};
use thiserror::Error;

/// The payloadType of in-toto statements.
pub const IN_TOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";

#[derive(Debug, Error)]
pub enum Error {
    #[error("not a DSSE envelope: {0}")]
    Malformed(String),
    #[error("DSSE signing needs an Ed25519 key, not {0}")]
    UnsupportedKey(String),
    #[error("the envelope already has a signature with keyid {0}")]
    DuplicateKeyId(String),
    #[error("DSSE threshold not met: {found} of {required} trusted keys verified")]
    ThresholdNotMet { found: usize, required: usize },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// Base64 of the payload bytes.
    pub payload: String,
    #[serde(rename = "payloadType")]
    pub payload_type: String,
    pub signatures: Vec<Signature>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signature {
    #[serde(default)]
    pub keyid: String,
    /// Base64 of the raw signature bytes.
    pub sig: String,
}

/// DSSE's pre-authentication encoding: `"DSSEv1" SP LEN(type) SP type SP LEN(body) SP body`.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!("DSSEv1 {} {} {} ", payload_type.len(), payload_type, payload.len()).into_bytes();
    out.extend_from_slice(payload);
    out
}

/// The keyid this module writes for `public`: its OpenSSH SHA-256 fingerprint.
pub fn keyid(public: &PublicKey) -> String {
    public.fingerprint(HashAlg::Sha256).to_string()
}

/// `public` as a securesystemslib key dict (`Key.from_dict(keyid, dict)`): Ed25519 keys are raw
/// 32-byte hex in `keyval.public`, keytype and scheme `ed25519`.
pub fn securesystemslib_key(public: &PublicKey) -> Result<serde_json::Value, Error> {
    let key = ed25519_verifying_key(public)?;
    Ok(
        serde_json::json!({"keytype": "ed25519", "scheme": "ed25519", "keyval": {"public": hex::encode(key.as_bytes())}}),
    )
}

/// Decodes base64 in any of the alphabets DSSE verifiers must accept: standard or URL-safe, padded or not.
fn decode_b64(what: &str, s: &str) -> Result<Vec<u8>, Error> {
    [STANDARD, URL_SAFE, STANDARD_NO_PAD, URL_SAFE_NO_PAD]
        .iter()
        .find_map(|engine| engine.decode(s).ok())
        .ok_or_else(|| Error::Malformed(format!("{what} is not base64")))
}

fn ed25519_signing_key(private: &PrivateKey) -> Result<ed25519_dalek::SigningKey, Error> {
    let unsupported = || Error::UnsupportedKey(private.algorithm().as_str().to_owned());
    let pair = private.key_data().ed25519().ok_or_else(unsupported)?;
    ed25519_dalek::SigningKey::try_from(pair).map_err(|_| unsupported())
}

fn ed25519_verifying_key(public: &PublicKey) -> Result<ed25519_dalek::VerifyingKey, Error> {
    let unsupported = || Error::UnsupportedKey(public.algorithm().as_str().to_owned());
    let key = public.key_data().ed25519().ok_or_else(unsupported)?;
    ed25519_dalek::VerifyingKey::try_from(key).map_err(|_| unsupported())
}

impl Envelope {
    /// An unsigned envelope around `payload`.
    pub fn new(payload_type: &str, payload: &[u8]) -> Self {
        Envelope { payload: STANDARD.encode(payload), payload_type: payload_type.to_owned(), signatures: Vec::new() }
    }

    /// Parses envelope JSON, naming the first missing or mistyped field.
    pub fn from_json(json: &str) -> Result<Self, Error> {
        let value: serde_json::Value = serde_json::from_str(json).map_err(|e| Error::Malformed(e.to_string()))?;
        let obj = value.as_object().ok_or_else(|| Error::Malformed("not a JSON object".into()))?;
        for field in ["payload", "payloadType"] {
            match obj.get(field) {
                None => return Err(Error::Malformed(format!("missing {field}"))),
                Some(v) if !v.is_string() => return Err(Error::Malformed(format!("{field} is not a string"))),
                Some(_) => {}
            }
        }
        let sigs = obj.get("signatures").ok_or_else(|| Error::Malformed("missing signatures".into()))?;
        let sigs = sigs.as_array().ok_or_else(|| Error::Malformed("signatures is not an array".into()))?;
        for (i, s) in sigs.iter().enumerate() {
            if !s.get("sig").is_some_and(serde_json::Value::is_string) {
                return Err(Error::Malformed(format!("signatures[{i}] has no string sig")));
            }
            if s.get("keyid").is_some_and(|k| !k.is_string()) {
                return Err(Error::Malformed(format!("signatures[{i}].keyid is not a string")));
            }
        }
        serde_json::from_value(value).map_err(|e| Error::Malformed(e.to_string()))
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("an envelope of strings always serialises")
    }

    /// The decoded payload.
    pub fn payload_bytes(&self) -> Result<Vec<u8>, Error> {
        decode_b64("payload", &self.payload)
    }

    /// The bytes every signature covers.
    pub fn pae(&self) -> Result<Vec<u8>, Error> {
        Ok(pae(&self.payload_type, &self.payload_bytes()?))
    }

    /// Adds a signature by `private` (Ed25519), keeping those already there; a second signature by
    /// the same key is refused.
    pub fn sign(&mut self, private: &PrivateKey) -> Result<(), Error> {
        let signing = ed25519_signing_key(private)?;
        let id = keyid(private.public_key());
        if self.signatures.iter().any(|s| s.keyid == id) {
            return Err(Error::DuplicateKeyId(id));
        }
        let sig = signing.sign(&self.pae()?);
        self.signatures.push(Signature { keyid: id, sig: STANDARD.encode(sig.to_bytes()) });
        Ok(())
    }

    /// The keyids (see the module header) of the `trusted` Ed25519 keys that verified some signature.
    /// A signature that verifies under no trusted key is skipped, not an error; an undecodable one is.
    pub fn verify(&self, trusted: &[PublicKey]) -> Result<BTreeSet<String>, Error> {
        let keys =
            trusted.iter().map(|k| Ok((keyid(k), ed25519_verifying_key(k)?))).collect::<Result<Vec<_>, Error>>()?;
        let message = self.pae()?;
        let mut verified = BTreeSet::new();
        for (i, s) in self.signatures.iter().enumerate() {
            let raw = decode_b64(&format!("signatures[{i}].sig"), &s.sig)?;
            let Ok(sig) = ed25519_dalek::Signature::from_slice(&raw) else {
                continue;
            };
            verified.extend(keys.iter().filter(|(_, k)| k.verify(&message, &sig).is_ok()).map(|(id, _)| id.clone()));
        }
        Ok(verified)
    }

    /// `verify`, then at least `threshold` distinct trusted keys must have verified.
    pub fn verify_threshold(&self, trusted: &[PublicKey], threshold: usize) -> Result<BTreeSet<String>, Error> {
        let verified = self.verify(trusted)?;
        if verified.len() < threshold.max(1) {
            return Err(Error::ThresholdNotMet { found: verified.len(), required: threshold.max(1) });
        }
        Ok(verified)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ssh_key::private::Ed25519Keypair;

    fn ed(seed: u8) -> PrivateKey {
        PrivateKey::new(Ed25519Keypair::from_seed(&[seed; 32]).into(), "").unwrap()
    }

    #[test]
    fn pae_matches_the_spec_test_vector() {
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
        );
        assert_eq!(pae("", b""), b"DSSEv1 0  0 ");
    }

    #[test]
    fn json_field_names() {
        let mut env = Envelope::new(IN_TOTO_PAYLOAD_TYPE, b"{}");
        env.signatures.push(Signature { keyid: "k".into(), sig: "AA==".into() });
        let v: serde_json::Value = serde_json::from_str(&env.to_json()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"payload": "e30=", "payloadType": IN_TOTO_PAYLOAD_TYPE, "signatures": [{"keyid": "k", "sig": "AA=="}]})
        );
        assert_eq!(Envelope::from_json(&env.to_json()).unwrap(), env);
    }

    #[test]
    fn sign_add_a_witness_and_verify() {
        let (op, witness, stranger) = (ed(1), ed(2), ed(3));
        let mut env = Envelope::new(IN_TOTO_PAYLOAD_TYPE, b"{\"_type\":\"x\"}");
        env.sign(&op).unwrap();
        let mut env = Envelope::from_json(&env.to_json()).unwrap();
        env.sign(&witness).unwrap();
        assert!(matches!(env.sign(&op), Err(Error::DuplicateKeyId(_))));
        assert_eq!(env.signatures.len(), 2);
        assert_eq!(env.signatures[0].keyid, keyid(op.public_key()));
        assert!(env.signatures[0].keyid.starts_with("SHA256:"));
        assert_eq!(STANDARD.decode(&env.signatures[1].sig).unwrap().len(), 64);

        let trusted = [op.public_key().clone(), witness.public_key().clone(), stranger.public_key().clone()];
        let ids = env.verify_threshold(&trusted, 2).unwrap();
        assert_eq!(ids, [keyid(op.public_key()), keyid(witness.public_key())].into_iter().collect());
        assert!(matches!(env.verify_threshold(&trusted, 3), Err(Error::ThresholdNotMet { found: 2, required: 3 })));
        assert!(env.verify(&[stranger.public_key().clone()]).unwrap().is_empty());
    }

    #[test]
    fn tampering_and_lying_keyids_do_not_verify() {
        let op = ed(1);
        let mut env = Envelope::new("text/plain", b"approve");
        env.sign(&op).unwrap();
        let trusted = [op.public_key().clone()];
        let mut tampered = env.clone();
        tampered.payload = STANDARD.encode(b"approve!");
        assert!(tampered.verify(&trusted).unwrap().is_empty());
        let mut retyped = env.clone();
        retyped.payload_type = "text/other".into();
        assert!(retyped.verify(&trusted).unwrap().is_empty());
        // The keyid is a hint only: a wrong one does not stop the real key, nor help another.
        let mut relabelled = env.clone();
        relabelled.signatures[0].keyid = "SHA256:someone-else".into();
        assert_eq!(relabelled.verify(&trusted).unwrap().len(), 1);
        let mut short = env.clone();
        short.signatures[0].sig = STANDARD.encode([0u8; 10]);
        assert!(short.verify(&trusted).unwrap().is_empty());
    }

    #[test]
    fn accepts_url_safe_and_unpadded_base64() {
        let op = ed(1);
        // 0xfb 0xff encodes with + and / in standard base64.
        let mut env = Envelope::new("application/octet-stream", &[0xfb, 0xff, 0xfe]);
        env.sign(&op).unwrap();
        assert!(env.payload.contains(['+', '/']));
        let mut url = env.clone();
        url.payload = URL_SAFE_NO_PAD.encode(env.payload_bytes().unwrap());
        url.signatures[0].sig = URL_SAFE_NO_PAD.encode(STANDARD.decode(&env.signatures[0].sig).unwrap());
        assert_eq!(url.verify(&[op.public_key().clone()]).unwrap().len(), 1);
    }

    #[test]
    fn malformed_envelopes_say_what_is_wrong() {
        let msg = |json: &str| Envelope::from_json(json).unwrap_err().to_string();
        assert_eq!(msg(r#"{"payload": "e30=", "signatures": []}"#), "not a DSSE envelope: missing payloadType");
        assert_eq!(msg(r#"{"payloadType": "t", "signatures": []}"#), "not a DSSE envelope: missing payload");
        assert_eq!(msg(r#"{"payload": "", "payloadType": "t"}"#), "not a DSSE envelope: missing signatures");
        assert_eq!(
            msg(r#"{"payload": 1, "payloadType": "t", "signatures": []}"#),
            "not a DSSE envelope: payload is not a string"
        );
        assert_eq!(
            msg(r#"{"payload": "", "payloadType": "t", "signatures": [{"keyid": "k"}]}"#),
            "not a DSSE envelope: signatures[0] has no string sig"
        );
        assert_eq!(msg("[]"), "not a DSSE envelope: not a JSON object");
        assert!(msg("{").starts_with("not a DSSE envelope: EOF"));
        let env = Envelope { payload: "***".into(), payload_type: "t".into(), signatures: vec![] };
        assert_eq!(env.verify(&[]).unwrap_err().to_string(), "not a DSSE envelope: payload is not base64");
        let no_keyid =
            Envelope::from_json(r#"{"payload": "", "payloadType": "t", "signatures": [{"sig": "AA=="}]}"#).unwrap();
        assert_eq!(no_keyid.signatures[0].keyid, "");
    }

    #[test]
    fn securesystemslib_key_dict() {
        let k = securesystemslib_key(ed(1).public_key()).unwrap();
        assert_eq!(k["keytype"], "ed25519");
        assert_eq!(k["scheme"], "ed25519");
        let raw = ed(1).public_key().key_data().ed25519().unwrap().0;
        assert_eq!(k["keyval"]["public"], hex::encode(raw));
    }

    #[test]
    fn only_ed25519_keys() {
        let ecdsa = PublicKey::from_openssh(
            "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBGSoI/voGtvdyxOP3lS5u98fAZypimh4LbZb5EfjQS/0YPqRLitJGvXXhJJNF5V1lVoo+45mM7cG4DFQyA2vYxc=",
        )
        .unwrap();
        let env = Envelope::new("t", b"x");
        assert!(matches!(securesystemslib_key(&ecdsa), Err(Error::UnsupportedKey(_))));
        assert!(matches!(env.verify(&[ecdsa]), Err(Error::UnsupportedKey(a)) if a == "ecdsa-sha2-nistp256"));
    }
}

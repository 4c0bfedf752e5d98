//! The signer contract's arithmetic, shared by every signer keyrite runs (`keyrite serve`,
//! the Rust Lambda, `keyrite sign`) and by the checks that judge one (`selftest`, ceremony
//! proofs): what is signed for a request digest, and whether a 65-byte r‖s‖v or a KMS's DER
//! signature does what a wallet platform needs.

use crate::crypto::{self, Address};

/// What a signer signs: the EIP-191 personal-message hash of the 32 bytes, or the bytes as
/// given (Hedera, EIP-712 callers).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SigningMode {
    #[default]
    Eip191,
    Digest,
}

impl SigningMode {
    /// The name the manifest, the templates' `SIGNING_MODE` and the audit log use.
    pub fn as_str(self) -> &'static str {
        match self {
            SigningMode::Eip191 => "eip191",
            SigningMode::Digest => "digest",
        }
    }
}

impl std::str::FromStr for SigningMode {
    type Err = String;

    fn from_str(s: &str) -> Result<SigningMode, String> {
        match s {
            "eip191" => Ok(SigningMode::Eip191),
            "digest" => Ok(SigningMode::Digest),
            other => Err(format!("signing mode must be one of eip191, digest: {other:?}")),
        }
    }
}

/// The 32 bytes KMS is asked to sign for a request digest, in the given mode.
pub fn prehash(mode: SigningMode, digest: &[u8; 32]) -> [u8; 32] {
    match mode {
        SigningMode::Eip191 => crypto::eip191_hash(digest),
        SigningMode::Digest => *digest,
    }
}

/// Why a signature does not do what a wallet platform needs.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, serde::Serialize)]
#[serde(tag = "cause", rename_all = "snake_case")]
pub enum SignatureFault {
    #[error("signature is not 65 bytes of 0x-hex: {detail}")]
    Malformed { detail: String },
    #[error("high-s signature (EIP-2 requires s ≤ n/2)")]
    HighS,
    #[error("v is {v}; expected 27 or 28")]
    WrongV { v: u8 },
    #[error("signature recovers to {recovered}, expected {expected}")]
    WrongAddress { expected: String, recovered: String },
}

/// Checks a 65-byte r‖s‖v signature over `prehash` against the expected signer.
pub fn check_rsv(expected: &Address, prehash: &[u8; 32], sig: &[u8]) -> Result<(), SignatureFault> {
    let sig: &[u8; 65] =
        sig.try_into().map_err(|_| SignatureFault::Malformed { detail: format!("{} bytes", sig.len()) })?;
    let v = sig[64];
    if v != 27 && v != 28 {
        return Err(SignatureFault::WrongV { v });
    }
    let s: [u8; 32] = sig[32..64].try_into().unwrap_or([0; 32]);
    if crypto::normalize_low_s(s).1 {
        return Err(SignatureFault::HighS);
    }
    let recovered =
        crypto::recover_address(prehash, sig).map_err(|e| SignatureFault::Malformed { detail: e.to_string() })?;
    if &recovered != expected {
        return Err(SignatureFault::WrongAddress { expected: expected.to_string(), recovered: recovered.to_string() });
    }
    Ok(())
}

/// Checks a raw DER signature from KMS: after low-s normalisation, one of the two recovery
/// ids must give the expected address.
pub fn check_der(expected: &Address, prehash: &[u8; 32], der: &[u8]) -> Result<(), SignatureFault> {
    let (r, s) = crypto::parse_der_signature(der).map_err(|e| SignatureFault::Malformed { detail: e.to_string() })?;
    let (s, _) = crypto::normalize_low_s(s);
    let mut recovered = Vec::new();
    for v in [27u8, 28] {
        let mut sig = [0u8; 65];
        sig[..32].copy_from_slice(&r);
        sig[32..64].copy_from_slice(&s);
        sig[64] = v;
        match crypto::recover_address(prehash, &sig) {
            Ok(a) if &a == expected => return Ok(()),
            Ok(a) => recovered.push(a.to_string()),
            Err(_) => {}
        }
    }
    Err(SignatureFault::WrongAddress { expected: expected.to_string(), recovered: recovered.join(" or ") })
}

/// Parses `0x`-hex of any length.
pub fn parse_hex(s: &str) -> Result<Vec<u8>, String> {
    let s = s.trim();
    hex::decode(s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")).unwrap_or(s)).map_err(|e| format!("not hex: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k256::ecdsa::SigningKey;

    fn key() -> (SigningKey, Address) {
        let sk = SigningKey::from_slice(&[7u8; 32]).unwrap();
        let addr = crypto::evm_address(&k256::PublicKey::from(sk.verifying_key()));
        (sk, addr)
    }

    #[test]
    fn eip191_prehash_differs_from_digest_mode() {
        let d = [1u8; 32];
        assert_eq!(prehash(SigningMode::Digest, &d), d);
        assert_eq!(prehash(SigningMode::Eip191, &d), crypto::eip191_hash(&d));
    }

    #[test]
    fn check_rsv_names_each_fault() {
        let (sk, addr) = key();
        let prehash = [9u8; 32];
        let (sig, recid) = sk.sign_prehash_recoverable(&prehash).unwrap();
        let mut rsv = [0u8; 65];
        rsv[..64].copy_from_slice(&sig.to_bytes());
        rsv[64] = 27 + recid.to_byte();
        assert_eq!(check_rsv(&addr, &prehash, &rsv), Ok(()));

        let mut wrong_v = rsv;
        wrong_v[64] = 1;
        assert_eq!(check_rsv(&addr, &prehash, &wrong_v), Err(SignatureFault::WrongV { v: 1 }));

        let high = k256::ecdsa::Signature::from_scalars(sig.r(), -*sig.s()).unwrap();
        let mut high_s = rsv;
        high_s[32..64].copy_from_slice(&high.to_bytes()[32..]);
        assert_eq!(check_rsv(&addr, &prehash, &high_s), Err(SignatureFault::HighS));

        assert!(matches!(check_rsv(&addr, &[8u8; 32], &rsv), Err(SignatureFault::WrongAddress { .. })));
        assert!(matches!(check_rsv(&addr, &prehash, &rsv[..64]), Err(SignatureFault::Malformed { .. })));
    }

    #[test]
    fn check_der_accepts_high_s_and_rejects_a_signature_over_other_bytes() {
        let (sk, addr) = key();
        let prehash = [5u8; 32];
        let (sig, _) = sk.sign_prehash_recoverable(&prehash).unwrap();
        let high = k256::ecdsa::Signature::from_scalars(sig.r(), -*sig.s()).unwrap();
        assert_eq!(check_der(&addr, &prehash, high.to_der().as_bytes()), Ok(()));
        // What a faulty KMS does: sign SHA-256(digest) instead of the digest.
        use sha2::Digest;
        let wrong: [u8; 32] = sha2::Sha256::digest(prehash).into();
        let (bad, _) = sk.sign_prehash_recoverable(&wrong).unwrap();
        assert!(matches!(
            check_der(&addr, &prehash, bad.to_der().as_bytes()),
            Err(SignatureFault::WrongAddress { .. })
        ));
    }
}

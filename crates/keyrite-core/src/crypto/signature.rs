//! Low-s normalisation, recovery ids and 65-byte `r || s || v` signatures.
//!
//! KMS signers return DER signatures without a recovery id and with `s`
//! in either half of the group order. Ethereum-style verifiers need
//! `r || s || v` with low `s` (EIP-2), so we normalise `s` and find `v`
//! from the nonce point that verification computes against the known
//! public key. All curve arithmetic is delegated to `k256`.

use k256::ecdsa::{RecoveryId, Signature, VerifyingKey};
use k256::elliptic_curve::scalar::IsHigh;
use k256::{FieldBytes, NonZeroScalar, ProjectivePoint, PublicKey, Scalar, U256};

use super::address::{Address, evm_address};
use super::der::parse_der_signature;
use super::error::{CryptoError, SigComponent};
use super::fixed_base::FixedBase;

/// Offset Ethereum adds to a recovery id to form the legacy `v` byte.
const LEGACY_V_OFFSET: u8 = 27;

/// EIP-2 low-s normalisation: if `s > n/2`, returns `n - s`. The flag tells
/// whether `s` was high.
///
/// Input that is not a valid scalar (zero, or `>= n`) is returned
/// unchanged with `false`; [`parse_der_signature`] and [`recover_address`]
/// reject such values before they get here.
#[must_use]
pub fn normalize_low_s(s: [u8; 32]) -> ([u8; 32], bool) {
    match NonZeroScalar::try_from(&s[..]) {
        Ok(scalar) if bool::from(scalar.is_high()) => ((-scalar).to_bytes().into(), true),
        _ => (s, false),
    }
}

/// The Ethereum recovery id (0 or 1) of the low-s form of signature
/// `(r, s)` over `prehash` by `pk`.
///
/// A high `s` is normalised first, so the id returned always belongs to
/// `(r, low_s)`. Recovery ids 2 and 3 (nonce x-coordinate >= n, probability
/// ~2^-128) cannot be expressed in `v = 27/28` and are refused.
///
/// One double-scalar multiplication, the one ECDSA verification makes:
/// `R = (z/s)·G + (r/s)·Q`. The signature is valid for `pk` exactly when
/// `R.x ≡ r (mod n)`, and then `R` is the nonce point, whose `y` parity is
/// the recovery id. Trial recovery would cost up to two recoveries, each a
/// multiplication and a verification.
///
/// # Errors
/// [`CryptoError::SignatureScalarOutOfRange`] if `r` or `s` is not in `1..n`;
/// [`CryptoError::RecoveryIdNotFound`] if the signature is not `pk`'s over `prehash`.
pub fn recovery_id(pk: &PublicKey, prehash: &[u8; 32], r: &[u8; 32], s: &[u8; 32]) -> Result<u8, CryptoError> {
    use k256::elliptic_curve::ops::LinearCombination;
    let (u1, u2, r) = verification_scalars(prehash, r, s)?;
    nonce_parity(&ProjectivePoint::lincomb(&ProjectivePoint::GENERATOR, &u1, &pk.to_projective(), &u2), &r)
}

/// `(u1, u2, r) = (z/s, r/s, r)` for the low-s form of `(r, s)`: the nonce point is
/// `u1·G + u2·Q`. Every input is public, so `s` is inverted in variable time.
fn verification_scalars(
    prehash: &[u8; 32],
    r: &[u8; 32],
    s: &[u8; 32],
) -> Result<(Scalar, Scalar, Scalar), CryptoError> {
    use k256::elliptic_curve::ops::{Invert, Reduce};
    let signature = signature_from_parts(r, s)?;
    let signature = signature.normalize_s().unwrap_or(signature);
    let (r, s) = (*signature.r(), *signature.s());
    let z = <Scalar as Reduce<U256>>::reduce_bytes(&FieldBytes::from(*prehash));
    let s_inv: Scalar = Option::from(s.invert_vartime()).ok_or(CryptoError::RecoveryIdNotFound)?;
    Ok((z * s_inv, r * s_inv, r))
}

/// The recovery id of a nonce point, if it is the one `r` names.
fn nonce_parity(nonce: &ProjectivePoint, r: &Scalar) -> Result<u8, CryptoError> {
    use k256::elliptic_curve::group::Group;
    use k256::elliptic_curve::point::AffineCoordinates;
    if bool::from(nonce.is_identity()) {
        return Err(CryptoError::RecoveryIdNotFound);
    }
    let nonce = nonce.to_affine();
    // R.x must be r itself: R.x ≡ r (mod n) with R.x ≥ n would need recovery id 2 or 3.
    if nonce.x() != r.to_bytes() {
        return Err(CryptoError::RecoveryIdNotFound);
    }
    Ok(nonce.y_is_odd().unwrap_u8())
}

/// A public key prepared to check many signatures (a signer's, for its life): the key
/// and a fixed-base table of it, so that a check is two table walks
/// ([`FixedBase::mul_vartime`]) instead of k256's constant-time `lincomb`, ~4x less
/// CPU for the same answer. Making one costs ~4 ms (the generator's table once more per
/// process).
#[derive(Clone, Debug)]
pub struct PreparedKey {
    key: PublicKey,
    table: std::sync::Arc<FixedBase>,
}

impl PreparedKey {
    pub fn new(key: &PublicKey) -> PreparedKey {
        FixedBase::generator();
        PreparedKey { key: *key, table: std::sync::Arc::new(FixedBase::new(&key.to_projective())) }
    }

    pub fn public_key(&self) -> &PublicKey {
        &self.key
    }

    /// [`recovery_id`], for this key.
    ///
    /// # Errors
    /// As [`recovery_id`].
    pub fn recovery_id(&self, prehash: &[u8; 32], r: &[u8; 32], s: &[u8; 32]) -> Result<u8, CryptoError> {
        let (u1, u2, r) = verification_scalars(prehash, r, s)?;
        nonce_parity(&(FixedBase::generator().mul_vartime(&u1) + self.table.mul_vartime(&u2)), &r)
    }

    /// [`signature_rsv`], for this key.
    ///
    /// # Errors
    /// As [`signature_rsv`].
    pub fn signature_rsv(&self, prehash: &[u8; 32], der: &[u8]) -> Result<[u8; 65], CryptoError> {
        let (r, s) = parse_der_signature(der)?;
        let (s, _was_high) = normalize_low_s(s);
        Ok(rsv(&r, &s, self.recovery_id(prehash, &r, &s)?))
    }
}

/// Converts a KMS DER signature into the 65-byte `r || s || v` form with
/// low `s` and `v = 27 + recovery_id` — what `keyrite sig from-der` prints.
///
/// # Errors
/// Any error of [`parse_der_signature`] or [`recovery_id`].
pub fn signature_rsv(pk: &PublicKey, prehash: &[u8; 32], der: &[u8]) -> Result<[u8; 65], CryptoError> {
    let (r, s) = parse_der_signature(der)?;
    let (s, _was_high) = normalize_low_s(s);
    Ok(rsv(&r, &s, recovery_id(pk, prehash, &r, &s)?))
}

fn rsv(r: &[u8; 32], s: &[u8; 32], id: u8) -> [u8; 65] {
    let mut rsv = [0u8; 65];
    rsv[..32].copy_from_slice(r);
    rsv[32..64].copy_from_slice(s);
    rsv[64] = LEGACY_V_OFFSET + id;
    rsv
}

/// Recovers the signer's EVM address from a 65-byte `r || s || v`
/// signature over `prehash` — `keyrite sig recover`.
///
/// `v` may be 27/28 or 0/1. A high `s` is rejected (EIP-2) rather than
/// silently normalised, because it means the signature was not produced
/// by a conforming signer.
///
/// # Errors
/// [`CryptoError::InvalidRecoveryByte`], [`CryptoError::SignatureScalarOutOfRange`],
/// [`CryptoError::HighS`], or [`CryptoError::PublicKeyNotRecoverable`].
pub fn recover_address(prehash: &[u8; 32], sig65: &[u8; 65]) -> Result<Address, CryptoError> {
    let (r, s, v) = split_rsv(sig65);
    let id = recovery_id_from_v(v)?;
    let signature = signature_from_parts(&r, &s)?;
    if signature.normalize_s().is_some() {
        return Err(CryptoError::HighS);
    }
    let key = VerifyingKey::recover_from_prehash(prehash, &signature, id)
        .map_err(|_| CryptoError::PublicKeyNotRecoverable)?;
    Ok(evm_address(&PublicKey::from(&key)))
}

/// Splits a 65-byte signature into `r`, `s` and `v`.
fn split_rsv(sig65: &[u8; 65]) -> ([u8; 32], [u8; 32], u8) {
    let mut r = [0u8; 32];
    let mut s = [0u8; 32];
    r.copy_from_slice(&sig65[..32]);
    s.copy_from_slice(&sig65[32..64]);
    (r, s, sig65[64])
}

/// Maps a `v` byte (27/28 or 0/1) to a k256 recovery id.
fn recovery_id_from_v(v: u8) -> Result<RecoveryId, CryptoError> {
    let id = match v {
        0 | 1 => v,
        27 | 28 => v - LEGACY_V_OFFSET,
        _ => return Err(CryptoError::InvalidRecoveryByte { v }),
    };
    RecoveryId::from_byte(id).ok_or(CryptoError::InvalidRecoveryByte { v })
}

/// Builds a k256 signature, naming the component that is out of `1..n`.
fn signature_from_parts(r: &[u8; 32], s: &[u8; 32]) -> Result<Signature, CryptoError> {
    ensure_scalar(r, SigComponent::R)?;
    ensure_scalar(s, SigComponent::S)?;
    // Both halves were range-checked above, so this cannot fail in practice.
    Signature::from_scalars(FieldBytes::from(*r), FieldBytes::from(*s))
        .map_err(|_| CryptoError::SignatureScalarOutOfRange { component: SigComponent::R })
}

/// Checks that `bytes` is a scalar in `1..n`.
fn ensure_scalar(bytes: &[u8; 32], component: SigComponent) -> Result<(), CryptoError> {
    NonZeroScalar::try_from(&bytes[..]).map(|_| ()).map_err(|_| CryptoError::SignatureScalarOutOfRange { component })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::test_support::{GROUP_ORDER_HEX, KNOWN_ADDRESS, der_signature, known_signing_key, signing_key};
    use crate::crypto::{eip191_hash, keccak256};
    use k256::ecdsa::signature::hazmat::PrehashSigner;

    /// Half the group order, floor(n/2): the largest low `s`.
    const HALF_ORDER_HEX: &str = "7fffffffffffffffffffffffffffffff5d576e7357a4501ddfe92f46681b20a0";

    fn sign(key_seed: u64, prehash: &[u8; 32]) -> ([u8; 32], [u8; 32]) {
        let signature: Signature = signing_key(key_seed).sign_prehash(prehash).unwrap();
        let (r, s) = signature.split_bytes();
        (r.into(), s.into())
    }

    fn negate(s: &[u8; 32]) -> [u8; 32] {
        let scalar = NonZeroScalar::try_from(&s[..]).unwrap();
        (-scalar).to_bytes().into()
    }

    fn bytes32(hex_str: &str) -> [u8; 32] {
        hex::decode(hex_str).unwrap().try_into().unwrap()
    }

    #[test]
    fn normalize_low_s_flips_only_high_values() {
        let half = bytes32(HALF_ORDER_HEX);
        assert_eq!(normalize_low_s(half), (half, false));
        let mut half_plus_one = half;
        half_plus_one[31] += 1;
        // n - (floor(n/2) + 1) = floor(n/2) because n is odd.
        assert_eq!(normalize_low_s(half_plus_one), (half, true));
        let mut n_minus_1 = bytes32(GROUP_ORDER_HEX);
        n_minus_1[31] -= 1;
        let mut one = [0u8; 32];
        one[31] = 1;
        assert_eq!(normalize_low_s(n_minus_1), (one, true));
        assert_eq!(normalize_low_s(one), (one, false));
    }

    #[test]
    fn normalize_low_s_leaves_invalid_scalars_alone() {
        assert_eq!(normalize_low_s([0u8; 32]), ([0u8; 32], false));
        assert_eq!(normalize_low_s([0xff; 32]), ([0xff; 32], false));
        let n = bytes32(GROUP_ORDER_HEX);
        assert_eq!(normalize_low_s(n), (n, false));
    }

    #[test]
    fn web3_docs_signature_is_reproduced_and_recovers() {
        // web3.js docs: accounts.sign("Some data", 0x4c0883a6…) with RFC 6979.
        let prehash = keccak256(b"\x19Ethereum Signed Message:\n9Some data");
        let expected = hex::decode(
            "b91467e570a6466aa9e9876cbcd013baba02900b8979d43fe208a4a4f339f5fd\
             6007e74cd82e037b800186422fc2da167c747ef045e5d18a5f5d4300f8e1a029\
             1c",
        )
        .unwrap();
        let signature: Signature = known_signing_key().sign_prehash(&prehash).unwrap();
        let der = signature.to_der();
        let pk = known_signing_key().verifying_key().into();
        let rsv = signature_rsv(&pk, &prehash, der.as_bytes()).unwrap();
        assert_eq!(rsv.to_vec(), expected);
        assert_eq!(recover_address(&prehash, &rsv).unwrap().to_string(), KNOWN_ADDRESS);
    }

    #[test]
    fn high_s_der_is_normalised_and_v_recovers_the_signer() {
        let key = signing_key(3);
        let pk: PublicKey = key.verifying_key().into();
        let prehash = eip191_hash(&keccak256(b"high-s"));
        let (r, low_s) = sign(3, &prehash);
        let high_s = negate(&low_s);
        assert_eq!(normalize_low_s(high_s), (low_s, true));

        let rsv = signature_rsv(&pk, &prehash, &der_signature(&r, &high_s)).unwrap();
        assert_eq!(&rsv[..32], &r);
        assert_eq!(&rsv[32..64], &low_s);
        assert_eq!(recover_address(&prehash, &rsv), Ok(evm_address(&pk)));
        // Same result as from the low-s DER.
        assert_eq!(signature_rsv(&pk, &prehash, &der_signature(&r, &low_s)), Ok(rsv));
        // recovery_id is defined on the low-s form whichever s it is given.
        assert_eq!(recovery_id(&pk, &prehash, &r, &high_s), Ok(rsv[64] - 27));
    }

    #[test]
    fn recover_address_rejects_high_s() {
        let prehash = keccak256(b"eip-2");
        let pk: PublicKey = signing_key(4).verifying_key().into();
        let (r, s) = sign(4, &prehash);
        let mut rsv = signature_rsv(&pk, &prehash, &der_signature(&r, &s)).unwrap();
        rsv[32..64].copy_from_slice(&negate(&s));
        assert_eq!(recover_address(&prehash, &rsv), Err(CryptoError::HighS));
        // Flipping the parity as well still does not sneak a high s through.
        rsv[64] = if rsv[64] == 27 { 28 } else { 27 };
        assert_eq!(recover_address(&prehash, &rsv), Err(CryptoError::HighS));
    }

    #[test]
    fn recover_address_accepts_v_0_1_and_27_28_and_rejects_others() {
        let prehash = keccak256(b"v forms");
        let pk: PublicKey = signing_key(5).verifying_key().into();
        let (r, s) = sign(5, &prehash);
        let mut rsv = signature_rsv(&pk, &prehash, &der_signature(&r, &s)).unwrap();
        let signer = evm_address(&pk);
        assert_eq!(recover_address(&prehash, &rsv), Ok(signer));
        rsv[64] -= 27;
        assert_eq!(recover_address(&prehash, &rsv), Ok(signer));
        for v in [2u8, 26, 29, 35, 255] {
            rsv[64] = v;
            assert_eq!(recover_address(&prehash, &rsv), Err(CryptoError::InvalidRecoveryByte { v }));
        }
    }

    #[test]
    fn wrong_v_recovers_a_different_address() {
        let prehash = keccak256(b"parity");
        let pk: PublicKey = signing_key(6).verifying_key().into();
        let (r, s) = sign(6, &prehash);
        let mut rsv = signature_rsv(&pk, &prehash, &der_signature(&r, &s)).unwrap();
        rsv[64] = if rsv[64] == 27 { 28 } else { 27 };
        assert_ne!(recover_address(&prehash, &rsv), Ok(evm_address(&pk)));
    }

    #[test]
    fn recover_address_rejects_out_of_range_scalars() {
        let mut rsv = [0u8; 65];
        rsv[64] = 27;
        rsv[32..64].fill(1);
        assert_eq!(
            recover_address(&[7u8; 32], &rsv),
            Err(CryptoError::SignatureScalarOutOfRange { component: SigComponent::R })
        );
        rsv[..32].fill(1);
        rsv[32..64].copy_from_slice(&bytes32(GROUP_ORDER_HEX));
        assert_eq!(
            recover_address(&[7u8; 32], &rsv),
            Err(CryptoError::SignatureScalarOutOfRange { component: SigComponent::S })
        );
    }

    #[test]
    fn recover_address_reports_unrecoverable_signatures() {
        // r = 5 is not the x-coordinate of any curve point (5^3 + 7 = 132 is
        // a quadratic non-residue mod p), so no key can be recovered.
        let mut rsv = [0u8; 65];
        rsv[31] = 5;
        rsv[63] = 1;
        rsv[64] = 27;
        assert_eq!(recover_address(&[7u8; 32], &rsv), Err(CryptoError::PublicKeyNotRecoverable));
    }

    #[test]
    fn wrong_key_or_digest_has_no_recovery_id() {
        let prehash = keccak256(b"who signed");
        let (r, s) = sign(8, &prehash);
        let other: PublicKey = signing_key(9).verifying_key().into();
        assert_eq!(recovery_id(&other, &prehash, &r, &s), Err(CryptoError::RecoveryIdNotFound));
        let signer: PublicKey = signing_key(8).verifying_key().into();
        let der = der_signature(&r, &s);
        assert_eq!(signature_rsv(&signer, &keccak256(b"other digest"), &der), Err(CryptoError::RecoveryIdNotFound));
    }

    #[test]
    fn signature_rsv_propagates_der_errors() {
        let pk: PublicKey = signing_key(1).verifying_key().into();
        assert_eq!(signature_rsv(&pk, &[0u8; 32], &[0x31, 0x00]), Err(CryptoError::DerNotSequence { found: 0x31 }));
    }

    #[test]
    fn the_recovery_id_is_k256s_trial_recovery_for_low_and_high_s() {
        let mut seen = [0usize; 2];
        for i in 0..300u64 {
            let key = signing_key(5_000 + i);
            let pk: PublicKey = key.verifying_key().into();
            let prehash = keccak256(&i.to_be_bytes());
            let (signature, k256_id) = key.sign_prehash_recoverable(&prehash).unwrap();
            let trial = RecoveryId::trial_recovery_from_prehash(key.verifying_key(), &prehash, &signature).unwrap();
            assert_eq!(trial, k256_id, "case {i}");
            let (r, s) = signature.split_bytes();
            let (r, s): ([u8; 32], [u8; 32]) = (r.into(), s.into());
            let id = recovery_id(&pk, &prehash, &r, &s).unwrap();
            assert_eq!(id, trial.to_byte(), "case {i}");
            // The high-s twin has the same low-s form, so the same id.
            assert_eq!(recovery_id(&pk, &prehash, &r, &negate(&s)).unwrap(), id, "case {i}");
            // Another digest, or another key, has none.
            let other = keccak256(&(i + 1).to_be_bytes());
            assert_eq!(recovery_id(&pk, &other, &r, &s), Err(CryptoError::RecoveryIdNotFound), "case {i}");
            let stranger: PublicKey = signing_key(9_000 + i).verifying_key().into();
            assert_eq!(recovery_id(&stranger, &prehash, &r, &s), Err(CryptoError::RecoveryIdNotFound), "case {i}");
            seen[usize::from(id)] += 1;
        }
        assert!(seen[0] > 100 && seen[1] > 100, "{seen:?}");
    }

    #[test]
    fn a_prepared_key_gives_k256s_recovery_id_and_refuses_what_k256_refuses() {
        let mut seen = [0usize; 2];
        for k in 0..4u64 {
            let key = signing_key(7_000 + k);
            let pk: PublicKey = key.verifying_key().into();
            let prepared = PreparedKey::new(&pk);
            let stranger = PreparedKey::new(&signing_key(8_000 + k).verifying_key().into());
            for i in 0..64u64 {
                let prehash = keccak256(&(k * 1_000 + i).to_be_bytes());
                let (signature, k256_id) = key.sign_prehash_recoverable(&prehash).unwrap();
                let (r, s) = signature.split_bytes();
                let (r, s): ([u8; 32], [u8; 32]) = (r.into(), s.into());
                let id = prepared.recovery_id(&prehash, &r, &s).unwrap();
                assert_eq!(id, k256_id.to_byte(), "key {k}, case {i}");
                assert_eq!(prepared.recovery_id(&prehash, &r, &negate(&s)), Ok(id), "high-s twin");
                let der = der_signature(&r, &negate(&s));
                assert_eq!(prepared.signature_rsv(&prehash, &der), signature_rsv(&pk, &prehash, &der));
                let other = keccak256(b"another digest");
                assert_eq!(prepared.recovery_id(&other, &r, &s), Err(CryptoError::RecoveryIdNotFound));
                assert_eq!(stranger.recovery_id(&prehash, &r, &s), Err(CryptoError::RecoveryIdNotFound));
                seen[usize::from(id)] += 1;
            }
        }
        assert!(seen[0] > 80 && seen[1] > 80, "{seen:?}");
        let prepared = PreparedKey::new(&signing_key(1).verifying_key().into());
        assert_eq!(prepared.signature_rsv(&[0u8; 32], &[0x31, 0x00]), Err(CryptoError::DerNotSequence { found: 0x31 }));
        let zero = [0u8; 32];
        assert!(matches!(
            prepared.recovery_id(&zero, &zero, &[1; 32]),
            Err(CryptoError::SignatureScalarOutOfRange { .. })
        ));
    }

    #[test]
    fn two_hundred_random_keys_and_digests_recover_their_signer() {
        for i in 0..200u64 {
            let key = signing_key(1_000 + i);
            let pk: PublicKey = key.verifying_key().into();
            let prehash = eip191_hash(&keccak256(&i.to_le_bytes()));
            let (r, mut s) = sign(1_000 + i, &prehash);
            if i % 2 == 1 {
                s = negate(&s); // feed half of them in KMS-style high-s form
            }
            let rsv = signature_rsv(&pk, &prehash, &der_signature(&r, &s)).unwrap_or_else(|e| panic!("case {i}: {e}"));
            assert!(matches!(rsv[64], 27 | 28), "case {i}");
            assert!(!bool::from(NonZeroScalar::try_from(&rsv[32..64]).unwrap().is_high()));
            assert_eq!(recover_address(&prehash, &rsv), Ok(evm_address(&pk)), "case {i}");
        }
    }
}

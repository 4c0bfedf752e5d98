//! `SubjectPublicKeyInfo` (X.509 SPKI) import/export for secp256k1 keys.
//!
//! AWS KMS `GetPublicKey` returns the key as SPKI DER and Google Cloud KMS
//! returns the same structure wrapped in PEM. Both must name
//! `id-ecPublicKey` with the named curve secp256k1; anything else is
//! rejected with an error that names the OID that was actually found, so a
//! mis-provisioned key (e.g. `EC_SIGN_P256_SHA256`) is obvious.
//! The ASN.1 structure itself is decoded by the `spki`/`der` crates that
//! `k256` already depends on.

use k256::PublicKey;
use k256::elliptic_curve::sec1::ToEncodedPoint;
use k256::pkcs8::der::{self, asn1::ObjectIdentifier};
use k256::pkcs8::{AlgorithmIdentifierRef, SubjectPublicKeyInfoRef};
use sha2::{Digest, Sha256};

use super::error::CryptoError;

/// `id-ecPublicKey` (RFC 5480).
const ID_EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
/// `secp256k1` (SEC 2).
const SECP256K1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.10");
/// PEM label of an SPKI document.
const PUBLIC_KEY_PEM_LABEL: &str = "PUBLIC KEY";
/// SPKI DER header for an uncompressed secp256k1 point: SEQUENCE {
/// SEQUENCE { id-ecPublicKey, secp256k1 }, BIT STRING (0 unused bits) }.
/// The 65-byte SEC1 point (starting 0x04) follows, 88 bytes in total.
const SPKI_UNCOMPRESSED_HEADER: [u8; 23] = [
    0x30, 0x56, 0x30, 0x10, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x05, 0x2b, 0x81, 0x04, 0x00,
    0x0a, 0x03, 0x42, 0x00,
];

/// Parses a DER `SubjectPublicKeyInfo` (as returned by AWS KMS `GetPublicKey`)
/// into a secp256k1 public key.
///
/// Accepts compressed or uncompressed SEC1 points. Rejects trailing data,
/// non-EC algorithms and EC curves other than secp256k1, naming the OID found.
///
/// # Errors
/// [`CryptoError::MalformedSpki`] for bad DER, [`CryptoError::UnsupportedKeyAlgorithm`],
/// [`CryptoError::CurveNotNamed`] or [`CryptoError::UnsupportedCurve`] for the wrong
/// key type, [`CryptoError::InvalidPublicKeyPoint`] for a point not on the curve.
pub fn public_key_from_spki_der(der: &[u8]) -> Result<PublicKey, CryptoError> {
    let spki = SubjectPublicKeyInfoRef::try_from(der).map_err(|e| CryptoError::MalformedSpki(e.to_string()))?;
    ensure_secp256k1(&spki.algorithm)?;
    let point = spki
        .subject_public_key
        .as_bytes()
        .ok_or_else(|| CryptoError::MalformedSpki("public key BIT STRING has unused bits".into()))?;
    PublicKey::from_sec1_bytes(point).map_err(|_| CryptoError::InvalidPublicKeyPoint)
}

/// Parses a PEM `-----BEGIN PUBLIC KEY-----` block (as returned by Google
/// Cloud KMS `getPublicKey`) into a secp256k1 public key.
///
/// Surrounding whitespace is ignored; any other PEM label is rejected.
///
/// # Errors
/// [`CryptoError::MalformedPem`], [`CryptoError::UnexpectedPemLabel`], or any error of
/// [`public_key_from_spki_der`] for the decoded DER.
pub fn public_key_from_pem(pem: &str) -> Result<PublicKey, CryptoError> {
    let (label, der) =
        der::pem::decode_vec(pem.trim().as_bytes()).map_err(|e| CryptoError::MalformedPem(e.to_string()))?;
    if label != PUBLIC_KEY_PEM_LABEL {
        return Err(CryptoError::UnexpectedPemLabel { found: label.to_owned() });
    }
    public_key_from_spki_der(&der)
}

/// Encodes a public key as the canonical 88-byte SPKI DER with an
/// uncompressed point — byte-for-byte what AWS KMS returns.
///
/// Built from a fixed header rather than a generic encoder so it is
/// infallible.
#[must_use]
pub fn spki_der(pk: &PublicKey) -> Vec<u8> {
    let point = pk.to_encoded_point(false);
    [&SPKI_UNCOMPRESSED_HEADER[..], point.as_bytes()].concat()
}

/// Fingerprint of a key: lowercase hex (64 characters, no `0x`, no colons)
/// of SHA-256 over the SPKI DER bytes.
///
/// Hex over the DER was chosen because anyone can reproduce it with stock
/// tools: `openssl pkey -pubin -outform DER | sha256sum`. Pass the DER from
/// [`spki_der`] so the same key always has the same fingerprint regardless
/// of how the provider encoded its point.
#[must_use]
pub fn spki_fingerprint_sha256(spki_der: &[u8]) -> String {
    hex::encode(Sha256::digest(spki_der))
}

/// Checks that an SPKI algorithm is `id-ecPublicKey` on named curve secp256k1.
fn ensure_secp256k1(algorithm: &AlgorithmIdentifierRef<'_>) -> Result<(), CryptoError> {
    if algorithm.oid != ID_EC_PUBLIC_KEY {
        return Err(CryptoError::UnsupportedKeyAlgorithm {
            oid: algorithm.oid.to_string(),
            known_as: oid_name(&algorithm.oid),
        });
    }
    let curve = algorithm.parameters_oid().map_err(|_| CryptoError::CurveNotNamed)?;
    if curve != SECP256K1 {
        return Err(CryptoError::UnsupportedCurve { oid: curve.to_string(), known_as: oid_name(&curve) });
    }
    Ok(())
}

/// Human-readable name of the algorithm and curve OIDs a KMS might return.
fn oid_name(oid: &ObjectIdentifier) -> &'static str {
    match oid.to_string().as_str() {
        "1.3.132.0.10" => "secp256k1",
        "1.2.840.10045.3.1.7" => "NIST P-256 / prime256v1",
        "1.3.132.0.34" => "NIST P-384",
        "1.3.132.0.35" => "NIST P-521",
        "1.2.840.10045.2.1" => "id-ecPublicKey",
        "1.2.840.113549.1.1.1" => "rsaEncryption",
        "1.3.101.112" => "Ed25519",
        "1.3.101.113" => "Ed448",
        _ => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::test_support::{KNOWN_SECRET_HEX, known_public_key};
    use k256::pkcs8::{EncodePublicKey, LineEnding};

    /// SPKI of the well-known key, produced independently by
    /// `openssl ec -pubout -outform DER`.
    const KNOWN_SPKI_HEX: &str = "3056301006072a8648ce3d020106052b8104000a034200044e3b81af9c\
        2234cad09d679ce6035ed1392347ce64ce405f5dcd36228a25de6e47fd35c4215d1edf53e6f83de3446\
        15ce719bdb0fd878f6ed76f06dd277956de";
    /// A NIST P-256 SPKI generated with `openssl ecparam -name prime256v1`.
    const P256_SPKI_HEX: &str = "3059301306072a8648ce3d020106082a8648ce3d03010703420004\
        41b116ca78c9878d60b4357a3ec7da93f248e9f1460fc90a171e7568bd8689415d727821cf34012e82\
        fafec4903a5b54590d7164dc1eabed234caa51b30be870";
    /// An Ed25519 SPKI generated with `openssl genpkey -algorithm ed25519`.
    const ED25519_SPKI_HEX: &str =
        "302a300506032b657003210050b182c189936af9546128ce9c89d4c3c508efb3e38a603e6da3f451b595ae5e";

    fn known_spki() -> Vec<u8> {
        hex::decode(KNOWN_SPKI_HEX).unwrap()
    }

    #[test]
    fn spki_der_of_known_key_matches_openssl_and_is_88_bytes() {
        assert_eq!(KNOWN_SECRET_HEX.len(), 64);
        let der = spki_der(&known_public_key());
        assert_eq!(der.len(), 88);
        assert_eq!(der, known_spki());
    }

    #[test]
    fn spki_der_matches_k256_pkcs8_encoder() {
        let pk = known_public_key();
        let reference = pk.to_public_key_der().unwrap();
        assert_eq!(spki_der(&pk), reference.as_bytes());
    }

    #[test]
    fn openssl_spki_parses_to_the_known_key() {
        assert_eq!(public_key_from_spki_der(&known_spki()), Ok(known_public_key()));
    }

    #[test]
    fn compressed_point_spki_is_accepted() {
        let compressed = hex::decode(
            "3036301006072a8648ce3d020106052b8104000a032200024e3b81af9c2234cad09d679ce6035ed1\
             392347ce64ce405f5dcd36228a25de6e",
        )
        .unwrap();
        assert_eq!(public_key_from_spki_der(&compressed), Ok(known_public_key()));
    }

    #[test]
    fn fingerprint_matches_sha256sum_of_the_der() {
        // `sha256sum` of the openssl-produced DER file.
        assert_eq!(
            spki_fingerprint_sha256(&known_spki()),
            "54e96548856b1a3951a208fd7bc87823920da795045839dd00d90e478fa8cbdf"
        );
    }

    #[test]
    fn pem_of_generated_key_round_trips() {
        let pk = crate::crypto::test_support::signing_key(7).verifying_key().into();
        let pem = k256::PublicKey::to_public_key_pem(&pk, LineEnding::LF).unwrap();
        assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----"));
        assert_eq!(public_key_from_pem(&pem), Ok(pk));
        let crlf = k256::PublicKey::to_public_key_pem(&pk, LineEnding::CRLF).unwrap();
        assert_eq!(public_key_from_pem(&format!("\n  {crlf}\n")), Ok(pk));
    }

    #[test]
    fn openssl_pem_parses_to_the_known_key() {
        let pem = "-----BEGIN PUBLIC KEY-----\n\
            MFYwEAYHKoZIzj0CAQYFK4EEAAoDQgAETjuBr5wiNMrQnWec5gNe0TkjR85kzkBf\n\
            Xc02Iool3m5H/TXEIV0e31Pm+D3jRGFc5xm9sP2Hj27XbwbdJ3lW3g==\n\
            -----END PUBLIC KEY-----\n";
        assert_eq!(public_key_from_pem(pem), Ok(known_public_key()));
    }

    #[test]
    fn pem_with_wrong_label_is_rejected() {
        let pem = "-----BEGIN CERTIFICATE-----\nMAA=\n-----END CERTIFICATE-----\n";
        assert_eq!(public_key_from_pem(pem), Err(CryptoError::UnexpectedPemLabel { found: "CERTIFICATE".into() }));
    }

    #[test]
    fn garbage_pem_is_rejected() {
        assert!(matches!(public_key_from_pem("not a pem"), Err(CryptoError::MalformedPem(_))));
    }

    #[test]
    fn p256_spki_is_rejected_naming_the_curve_oid() {
        let err = public_key_from_spki_der(&hex::decode(P256_SPKI_HEX).unwrap()).unwrap_err();
        assert_eq!(
            err,
            CryptoError::UnsupportedCurve { oid: "1.2.840.10045.3.1.7".into(), known_as: "NIST P-256 / prime256v1" }
        );
        assert!(err.to_string().contains("1.2.840.10045.3.1.7"));
        assert!(err.to_string().contains("secp256k1"));
    }

    #[test]
    fn ed25519_spki_is_rejected_naming_the_algorithm_oid() {
        let err = public_key_from_spki_der(&hex::decode(ED25519_SPKI_HEX).unwrap()).unwrap_err();
        assert_eq!(err, CryptoError::UnsupportedKeyAlgorithm { oid: "1.3.101.112".into(), known_as: "Ed25519" });
    }

    #[test]
    fn spki_with_trailing_byte_is_rejected() {
        let mut der = known_spki();
        der.push(0);
        assert!(matches!(public_key_from_spki_der(&der), Err(CryptoError::MalformedSpki(_))));
    }

    #[test]
    fn truncated_spki_is_rejected() {
        let der = known_spki();
        assert!(matches!(public_key_from_spki_der(&der[..87]), Err(CryptoError::MalformedSpki(_))));
        assert!(matches!(public_key_from_spki_der(&[]), Err(CryptoError::MalformedSpki(_))));
    }

    #[test]
    fn point_not_on_curve_is_rejected() {
        let mut der = known_spki();
        let last = der.len() - 1;
        der[last] ^= 1; // y no longer matches x
        assert_eq!(public_key_from_spki_der(&der), Err(CryptoError::InvalidPublicKeyPoint));
    }

    #[test]
    fn ec_key_without_curve_parameters_is_rejected() {
        // SEQUENCE { SEQUENCE { id-ecPublicKey }, BIT STRING <point> }
        let point = &known_spki()[23..];
        let mut der = hex::decode("304f300906072a8648ce3d0201034200").unwrap();
        der.extend_from_slice(point);
        assert_eq!(public_key_from_spki_der(&der), Err(CryptoError::CurveNotNamed));
    }
}

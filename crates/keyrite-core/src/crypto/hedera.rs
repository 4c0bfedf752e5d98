//! Hedera representations of an ECDSA secp256k1 key.

use k256::PublicKey;
use k256::elliptic_curve::sec1::ToEncodedPoint;
use serde::Serialize;

use super::address::evm_address;

/// Hedera's DER prefix for an ECDSA secp256k1 public key:
/// `SEQUENCE { SEQUENCE { OID 1.3.132.0.10 }, BIT STRING (33-byte compressed point) }`.
///
/// Unlike X.509 SPKI it names only the curve OID (no `id-ecPublicKey`), and
/// it is what the Hedera SDKs print from `PublicKey.toStringDER()` and what
/// the mirror node and `HashScan` display.
pub const HEDERA_ECDSA_DER_PREFIX: &str = "302d300706052b8104000a032200";

/// The ways Hedera tooling writes one ECDSA secp256k1 public key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HederaKey {
    /// 33-byte SEC1 compressed point, lowercase hex, no `0x`.
    pub compressed_hex: String,
    /// [`HEDERA_ECDSA_DER_PREFIX`] followed by `compressed_hex`.
    pub der_hex: String,
    /// The EIP-55 EVM address of the key. Hedera (HIP-583) derives the EVM
    /// address alias of an ECDSA secp256k1 key exactly as Ethereum does:
    /// the last 20 bytes of keccak256 over the uncompressed point.
    pub evm_alias: String,
}

/// Builds the Hedera compressed, DER and EVM-alias forms of a public key.
#[must_use]
pub fn hedera_key(pk: &PublicKey) -> HederaKey {
    let compressed_hex = hex::encode(pk.to_encoded_point(true).as_bytes());
    HederaKey {
        der_hex: format!("{HEDERA_ECDSA_DER_PREFIX}{compressed_hex}"),
        evm_alias: evm_address(pk).to_string(),
        compressed_hex,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::test_support::{KNOWN_ADDRESS, known_public_key};

    #[test]
    fn known_key_has_expected_hedera_forms() {
        let key = hedera_key(&known_public_key());
        // Compressed point as printed by `openssl ec -conv_form compressed`.
        let compressed = "024e3b81af9c2234cad09d679ce6035ed1392347ce64ce405f5dcd36228a25de6e";
        assert_eq!(key.compressed_hex, compressed);
        assert_eq!(key.der_hex, format!("302d300706052b8104000a032200{compressed}"));
        assert_eq!(key.evm_alias, KNOWN_ADDRESS);
    }

    #[test]
    fn der_form_is_well_formed_and_47_bytes() {
        let der = hex::decode(hedera_key(&known_public_key()).der_hex).unwrap();
        assert_eq!(der.len(), 47);
        assert_eq!(usize::from(der[1]), der.len() - 2); // outer SEQUENCE length
        assert_eq!(usize::from(der[12]), 33 + 1); // BIT STRING: unused-bits byte + point
        assert!(matches!(der[14], 0x02 | 0x03)); // compressed SEC1 tag
    }
}

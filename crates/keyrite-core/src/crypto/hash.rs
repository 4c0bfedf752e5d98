//! Keccak-256 and the EIP-191 "personal message" wrapping of a 32-byte digest.

use sha3::{Digest, Keccak256};

/// The EIP-191 version-0x45 prefix for a 32-byte message.
const EIP191_PREFIX_32: &[u8] = b"\x19Ethereum Signed Message:\n32";

/// SHA-256 as lowercase hex (digests of files, records and findings).
#[must_use]
pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(data))
}

/// Keccak-256 (the pre-standard SHA-3 used by Ethereum, not NIST SHA3-256).
#[must_use]
pub fn keccak256(data: &[u8]) -> [u8; 32] {
    Keccak256::digest(data).into()
}

/// The hash a wallet actually signs for `personal_sign` over a 32-byte
/// digest: `keccak256("\x19Ethereum Signed Message:\n32" || digest)`.
#[must_use]
pub fn eip191_hash(digest: &[u8; 32]) -> [u8; 32] {
    Keccak256::new().chain_update(EIP191_PREFIX_32).chain_update(digest).finalize().into()
}

/// The hash `personal_sign` signs for a message of any length (EIP-191 version 0x45):
/// `keccak256("\x19Ethereum Signed Message:\n" || decimal length || message)`, as
/// `eth_account.messages.encode_defunct` and ethers' `hashMessage` compute it.
#[must_use]
pub fn eip191_message_hash(message: &[u8]) -> [u8; 32] {
    Keccak256::new()
        .chain_update(b"\x19Ethereum Signed Message:\n")
        .chain_update(message.len().to_string().as_bytes())
        .chain_update(message)
        .finalize()
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_32_byte_message_hashes_as_the_digest_form() {
        let digest = [7u8; 32];
        assert_eq!(eip191_message_hash(&digest), eip191_hash(&digest));
        // ethers v6: hashMessage("hello") (EIP-191 test vector).
        assert_eq!(
            hex::encode(eip191_message_hash(b"hello")),
            "50b2c43fd39106bafbba0da34fc430e1f91e3c96ea2acee2bc34119f92b37750"
        );
    }

    #[test]
    fn keccak256_of_empty_input_is_the_known_constant() {
        assert_eq!(hex::encode(keccak256(b"")), "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470");
    }

    #[test]
    fn keccak256_is_not_nist_sha3() {
        // NIST SHA3-256("") = a7ffc6f8...; Ethereum needs the original Keccak padding.
        assert_ne!(hex::encode(keccak256(b"")), "a7ffc6f8bf1ed76651c14756a061d662f580ff4de43b49fa82d80a4b80f8434a");
    }

    #[test]
    fn eip191_hash_equals_keccak_of_prefixed_digest() {
        let digest: [u8; 32] = std::array::from_fn(|i| i as u8);
        let mut concatenated = b"\x19Ethereum Signed Message:\n32".to_vec();
        concatenated.extend_from_slice(&digest);
        assert_eq!(eip191_hash(&digest), keccak256(&concatenated));
        // Independently computed with pycryptodome's Keccak-256.
        assert_eq!(
            hex::encode(eip191_hash(&digest)),
            "04c3a0e6f47dd8889a200887da01ab4fa88d85f15fb01537cd4b7bcc1ef6f991"
        );
    }

    #[test]
    fn personal_message_hash_matches_web3_docs_vector() {
        // web3.js `accounts.hashMessage("Some data")`.
        assert_eq!(
            hex::encode(keccak256(b"\x19Ethereum Signed Message:\n9Some data")),
            "1da44b586eb0729ff70a73c326926f6ed5a25f5b056e7f47fbc6e58d86871655"
        );
    }
}

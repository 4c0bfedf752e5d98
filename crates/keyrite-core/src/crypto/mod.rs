//! Pure secp256k1 key and signature handling for keys that live in a cloud KMS.
//!
//! AWS KMS and Google Cloud KMS never reveal private keys: they hand back a
//! public key as X.509 `SubjectPublicKeyInfo` (DER, or PEM on GCP) and sign
//! 32-byte digests with bare DER ECDSA signatures that carry no recovery id
//! and may have a high `s`. Blockchains want something else: EVM addresses
//! with EIP-55 checksums, Hedera's key encodings, and 65-byte `r || s || v`
//! signatures with low `s` (EIP-2). This module is the bridge between the
//! two worlds. It does no I/O and holds no secrets, every function is
//! deterministic, and every malformed input yields a typed [`CryptoError`]
//! instead of a panic, so the CLI commands built on it (`keyrite sig
//! from-der`, `keyrite sig recover`, key import and inspection) can be
//! tested exhaustively offline.
//!
//! Elliptic-curve arithmetic, SPKI/PEM decoding and signature recovery are
//! delegated to `k256`; only the strict DER signature walker
//! ([`parse_der_signature`]) and EIP-55 ([`Address`]) are hand-written.

mod address;
mod der;
mod error;
mod fixed_base;
mod hash;
mod hedera;
mod input;
mod signature;
mod spki;

pub use address::{Address, evm_address};
pub use der::parse_der_signature;
pub use error::{CryptoError, SigComponent};
pub use hash::{eip191_hash, eip191_message_hash, keccak256, sha256_hex};
pub use hedera::{HEDERA_ECDSA_DER_PREFIX, HederaKey, hedera_key};
pub use input::{parse_digest, parse_hex32};
pub use signature::{PreparedKey, normalize_low_s, recover_address, recovery_id, signature_rsv};
pub use spki::{public_key_from_pem, public_key_from_spki_der, spki_der, spki_fingerprint_sha256};

/// Deterministic fixtures shared by the unit tests of every submodule.
#[cfg(test)]
pub(crate) mod test_support {
    use k256::ecdsa::SigningKey;
    use sha2::{Digest, Sha256};

    /// Private key used throughout the web3.js / ethers documentation.
    pub const KNOWN_SECRET_HEX: &str = "4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318";
    /// Its well-known EIP-55 address.
    pub const KNOWN_ADDRESS: &str = "0x2c7536E3605D9C16a7a3D7b1898e529396a65c23";
    /// The secp256k1 group order n.
    pub const GROUP_ORDER_HEX: &str = "fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141";

    /// The signing key for [`KNOWN_SECRET_HEX`].
    pub fn known_signing_key() -> SigningKey {
        SigningKey::from_slice(&hex::decode(KNOWN_SECRET_HEX).unwrap()).unwrap()
    }

    /// The public key for [`KNOWN_SECRET_HEX`].
    pub fn known_public_key() -> k256::PublicKey {
        known_signing_key().verifying_key().into()
    }

    /// A deterministic pseudo-random signing key: SHA-256 of a counter,
    /// re-hashed in the (~2^-128) case that it is not a valid scalar.
    pub fn signing_key(seed: u64) -> SigningKey {
        let mut bytes: [u8; 32] = Sha256::digest(seed.to_be_bytes()).into();
        loop {
            if let Ok(key) = SigningKey::from_slice(&bytes) {
                return key;
            }
            bytes = Sha256::digest(bytes).into();
        }
    }

    /// Minimal DER INTEGER (tag, length, content) for a 32-byte unsigned value.
    pub fn der_integer(value: &[u8; 32]) -> Vec<u8> {
        let first_nonzero = value.iter().position(|&b| b != 0).unwrap_or(31);
        let magnitude = &value[first_nonzero..];
        let needs_pad = magnitude[0] & 0x80 != 0;
        let len = magnitude.len() + usize::from(needs_pad);
        let mut out = vec![0x02, u8::try_from(len).unwrap()];
        if needs_pad {
            out.push(0x00);
        }
        out.extend_from_slice(magnitude);
        out
    }

    /// Hand-built DER ECDSA signature `SEQUENCE { INTEGER r, INTEGER s }`.
    pub fn der_signature(r: &[u8; 32], s: &[u8; 32]) -> Vec<u8> {
        let body = [der_integer(r), der_integer(s)].concat();
        let mut out = vec![0x30, u8::try_from(body.len()).unwrap()];
        out.extend_from_slice(&body);
        out
    }
}

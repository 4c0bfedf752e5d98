//! EVM addresses and their EIP-55 mixed-case checksum.
//!
//! EIP-55 is hand-written here because it is tiny and no dependency of the
//! crate provides it: the checksum capitalises hex letter `i` of the
//! lowercase address when nibble `i` of `keccak256(lowercase_hex)` is >= 8.

use std::fmt;
use std::str::FromStr;

use k256::PublicKey;
use k256::elliptic_curve::sec1::ToEncodedPoint;

use super::error::CryptoError;
use super::hash::keccak256;

/// A 20-byte EVM account address.
///
/// `Display` renders the EIP-55 checksummed form (`0x5aAeb6…`). `FromStr`
/// requires the `0x` prefix and 40 hex digits; an all-lowercase or
/// all-uppercase address is accepted as is, while a mixed-case one must
/// carry a correct EIP-55 checksum.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Address(pub [u8; 20]);

/// Number of hex digits in an address.
const ADDRESS_HEX_LEN: usize = 40;

/// The EVM address of a public key: the last 20 bytes of keccak256 over
/// the 64-byte uncompressed point (x || y, without the SEC1 `0x04` tag).
#[must_use]
pub fn evm_address(pk: &PublicKey) -> Address {
    let point = pk.to_encoded_point(false);
    let hash = keccak256(&point.as_bytes()[1..]);
    let mut address = [0u8; 20];
    address.copy_from_slice(&hash[12..]);
    Address(address)
}

impl Address {
    /// The EIP-55 checksummed form, `0x`-prefixed.
    #[must_use]
    pub fn to_checksum_string(&self) -> String {
        let lower = hex::encode(self.0);
        let hash = keccak256(lower.as_bytes());
        let body: String = lower
            .chars()
            .enumerate()
            .map(|(i, c)| if nibble(&hash, i) >= 8 { c.to_ascii_uppercase() } else { c })
            .collect();
        format!("0x{body}")
    }
}

/// Nibble `index` of `bytes`, high nibble first.
fn nibble(bytes: &[u8; 32], index: usize) -> u8 {
    let byte = bytes[index / 2];
    if index.is_multiple_of(2) { byte >> 4 } else { byte & 0x0f }
}

/// True when the hex digits contain both upper- and lowercase letters.
fn is_mixed_case(hex_digits: &str) -> bool {
    let has_upper = hex_digits.chars().any(|c| c.is_ascii_uppercase());
    let has_lower = hex_digits.chars().any(|c| c.is_ascii_lowercase());
    has_upper && has_lower
}

impl FromStr for Address {
    type Err = CryptoError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let digits = s.strip_prefix("0x").ok_or(CryptoError::AddressMissingPrefix)?;
        if !digits.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(CryptoError::AddressNotHex);
        }
        if digits.len() != ADDRESS_HEX_LEN {
            return Err(CryptoError::AddressLength { found: digits.len() });
        }
        let mut bytes = [0u8; 20];
        hex::decode_to_slice(digits, &mut bytes).map_err(|_| CryptoError::AddressNotHex)?;
        let address = Address(bytes);
        if is_mixed_case(digits) {
            let expected = address.to_checksum_string();
            if expected[2..] != *digits {
                return Err(CryptoError::AddressChecksumMismatch { expected });
            }
        }
        Ok(address)
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_checksum_string())
    }
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Address({self})")
    }
}

impl serde::Serialize for Address {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Address {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::spki::public_key_from_spki_der;
    use crate::crypto::test_support::{KNOWN_ADDRESS, known_public_key};

    /// Test vectors from the EIP-55 specification.
    const EIP55_VECTORS: [&str; 8] = [
        "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
        "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359",
        "0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB",
        "0xD1220A0cf47c7B9Be7A2E6BA89F429762e7b9aDb",
        "0x52908400098527886E0F7030069857D2E4169EE7",
        "0x8617E340B3D01FA5F11F306F4090FD50E238070D",
        "0xde709f2102306220921060314715629080e2fb77",
        "0x27b1fdb04752bbc536007a920d24acb045561c26",
    ];

    #[test]
    fn eip55_vectors_round_trip_exactly() {
        for vector in EIP55_VECTORS {
            let address: Address = vector.parse().unwrap();
            assert_eq!(address.to_string(), vector);
        }
    }

    #[test]
    fn lowercase_and_uppercase_forms_are_accepted_without_checksum() {
        let canonical = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed";
        let expected: Address = canonical.parse().unwrap();
        let lower = canonical.to_ascii_lowercase();
        let upper = format!("0x{}", canonical[2..].to_ascii_uppercase());
        assert_eq!(lower.parse::<Address>(), Ok(expected));
        assert_eq!(upper.parse::<Address>(), Ok(expected));
    }

    #[test]
    fn wrong_checksum_is_rejected_and_names_the_right_one() {
        // Flip the case of one letter of a valid checksummed address.
        let tampered = "0x5AAeb6053F3E94C9b9A09f33669435E7Ef1BeAed";
        assert_eq!(
            tampered.parse::<Address>(),
            Err(CryptoError::AddressChecksumMismatch { expected: "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed".into() })
        );
    }

    #[test]
    fn malformed_addresses_are_rejected() {
        let forty = "5aaeb6053f3e94c9b9a09f33669435e7ef1beaed";
        assert_eq!(forty.parse::<Address>(), Err(CryptoError::AddressMissingPrefix));
        assert_eq!(format!("0x{}", &forty[..38]).parse::<Address>(), Err(CryptoError::AddressLength { found: 38 }));
        assert_eq!(format!("0x{forty}00").parse::<Address>(), Err(CryptoError::AddressLength { found: 42 }));
        assert_eq!(format!("0x{}zz", &forty[..38]).parse::<Address>(), Err(CryptoError::AddressNotHex));
        assert_eq!(format!("0x{}é", &forty[..39]).parse::<Address>(), Err(CryptoError::AddressNotHex));
    }

    #[test]
    fn known_key_spki_gives_the_known_address() {
        let spki = crate::crypto::spki::spki_der(&known_public_key());
        let pk = public_key_from_spki_der(&spki).unwrap();
        assert_eq!(evm_address(&pk).to_string(), KNOWN_ADDRESS);
    }

    #[test]
    fn serde_deserialize_parses_and_validates_the_checksum() {
        use serde::Deserialize;
        use serde::de::IntoDeserializer;
        use serde::de::value::{Error, StrDeserializer};

        let good: StrDeserializer<'_, Error> = KNOWN_ADDRESS.into_deserializer();
        assert_eq!(Address::deserialize(good).unwrap().to_string(), KNOWN_ADDRESS);
        let bad: StrDeserializer<'_, Error> = "0x2C7536E3605D9C16a7a3D7b1898e529396a65c23".into_deserializer();
        let message = Address::deserialize(bad).unwrap_err().to_string();
        assert!(message.contains("EIP-55"), "{message}");
    }
}

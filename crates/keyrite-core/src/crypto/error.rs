//! The single error type of the crypto module.

use std::fmt;

/// Which half of an ECDSA signature an error refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SigComponent {
    /// The `r` value (x-coordinate of the nonce point, reduced mod n).
    R,
    /// The `s` value (the proof scalar).
    S,
}

impl fmt::Display for SigComponent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::R => "r",
            Self::S => "s",
        })
    }
}

/// Everything that can go wrong when parsing keys, addresses, digests and
/// signatures. Each rejection has its own variant so callers (and users
/// reading CLI output) can tell exactly which rule an input broke.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CryptoError {
    // --- public keys -------------------------------------------------------
    /// The bytes are not a well-formed `SubjectPublicKeyInfo` DER structure.
    #[error("malformed SubjectPublicKeyInfo DER: {0}")]
    MalformedSpki(String),
    /// The SPKI algorithm is not `id-ecPublicKey`.
    #[error(
        "unsupported public key algorithm OID {oid} ({known_as}); \
         expected id-ecPublicKey (1.2.840.10045.2.1) on secp256k1"
    )]
    UnsupportedKeyAlgorithm {
        /// Dotted OID found in the SPKI.
        oid: String,
        /// Human name of that OID, or "unknown".
        known_as: &'static str,
    },
    /// The EC key carries no parameters, or explicit (non-named) curve parameters.
    #[error("EC public key does not name its curve with an OID; expected secp256k1 (1.3.132.0.10)")]
    CurveNotNamed,
    /// The EC key is on a curve other than secp256k1.
    #[error("unsupported elliptic curve OID {oid} ({known_as}); expected secp256k1 (1.3.132.0.10)")]
    UnsupportedCurve {
        /// Dotted curve OID found in the SPKI.
        oid: String,
        /// Human name of that curve, or "unknown".
        known_as: &'static str,
    },
    /// The subject public key bytes are not a valid secp256k1 SEC1 point.
    #[error("public key bytes are not a valid secp256k1 point")]
    InvalidPublicKeyPoint,
    /// The text is not valid PEM.
    #[error("malformed PEM: {0}")]
    MalformedPem(String),
    /// The PEM block is not a `PUBLIC KEY`.
    #[error("unexpected PEM label \"{found}\"; expected \"PUBLIC KEY\"")]
    UnexpectedPemLabel {
        /// The label found after `-----BEGIN `.
        found: String,
    },

    // --- addresses ---------------------------------------------------------
    /// The address does not start with `0x`.
    #[error("EVM address must start with \"0x\"")]
    AddressMissingPrefix,
    /// The address is not 40 hex digits long.
    #[error("EVM address must have 40 hex digits after \"0x\", found {found}")]
    AddressLength {
        /// Number of characters found after `0x`.
        found: usize,
    },
    /// The address contains a non-hex character.
    #[error("EVM address contains a non-hex character")]
    AddressNotHex,
    /// Mixed-case address whose capitalisation is not the EIP-55 checksum.
    #[error("EVM address has mixed case but fails the EIP-55 checksum (expected {expected})")]
    AddressChecksumMismatch {
        /// The correctly checksummed form of the same 20 bytes.
        expected: String,
    },

    // --- strict DER signatures ---------------------------------------------
    /// Zero-length input.
    #[error("DER signature is empty")]
    DerEmpty,
    /// The first byte is not the SEQUENCE tag.
    #[error("DER signature must start with SEQUENCE tag 0x30, found 0x{found:02x}")]
    DerNotSequence {
        /// The tag byte found.
        found: u8,
    },
    /// The SEQUENCE has no length byte.
    #[error("DER signature ends before the SEQUENCE length byte")]
    DerMissingSequenceLength,
    /// The SEQUENCE length uses the long form (signatures are < 128 bytes).
    #[error("DER SEQUENCE uses a long-form length (0x{found:02x}); ECDSA signatures are shorter than 128 bytes")]
    DerSequenceLongFormLength {
        /// The length byte found.
        found: u8,
    },
    /// The SEQUENCE declares more content than the input holds.
    #[error("DER SEQUENCE declares {declared} content bytes but only {available} follow")]
    DerSequenceTruncated {
        /// Length declared in the header.
        declared: usize,
        /// Bytes actually present after the header.
        available: usize,
    },
    /// Bytes follow the end of the SEQUENCE.
    #[error("DER signature has {count} trailing byte(s) after the SEQUENCE")]
    DerTrailingBytes {
        /// How many extra bytes.
        count: usize,
    },
    /// The SEQUENCE ends before an INTEGER starts.
    #[error("DER SEQUENCE ends before INTEGER {component}")]
    DerMissingInteger {
        /// Which INTEGER is missing.
        component: SigComponent,
    },
    /// An element where an INTEGER belongs has another tag.
    #[error("DER INTEGER {component}: expected tag 0x02, found 0x{found:02x}")]
    DerIntegerTag {
        /// Which INTEGER.
        component: SigComponent,
        /// The tag byte found.
        found: u8,
    },
    /// An INTEGER uses a long-form length.
    #[error("DER INTEGER {component} uses a long-form length (0x{found:02x})")]
    DerIntegerLongFormLength {
        /// Which INTEGER.
        component: SigComponent,
        /// The length byte found.
        found: u8,
    },
    /// An INTEGER's header or content runs past the end of the SEQUENCE.
    #[error("DER INTEGER {component} runs past the end of the SEQUENCE")]
    DerIntegerTruncated {
        /// Which INTEGER.
        component: SigComponent,
    },
    /// An INTEGER has zero content bytes.
    #[error("DER INTEGER {component} has zero length")]
    DerIntegerEmpty {
        /// Which INTEGER.
        component: SigComponent,
    },
    /// An INTEGER is longer than any secp256k1 scalar can be.
    #[error("DER INTEGER {component} is {len} bytes long; at most 33 are allowed")]
    DerIntegerTooLong {
        /// Which INTEGER.
        component: SigComponent,
        /// Its declared length.
        len: usize,
    },
    /// An INTEGER has an unnecessary leading `0x00`.
    #[error("DER INTEGER {component} is not minimally encoded (unneeded leading 0x00)")]
    DerIntegerNonMinimal {
        /// Which INTEGER.
        component: SigComponent,
    },
    /// An INTEGER has its sign bit set.
    #[error("DER INTEGER {component} is negative")]
    DerIntegerNegative {
        /// Which INTEGER.
        component: SigComponent,
    },
    /// An INTEGER is zero.
    #[error("DER INTEGER {component} is zero")]
    DerIntegerZero {
        /// Which INTEGER.
        component: SigComponent,
    },
    /// An INTEGER is not below the group order n.
    #[error("DER INTEGER {component} is not less than the secp256k1 group order n")]
    DerIntegerOutOfRange {
        /// Which INTEGER.
        component: SigComponent,
    },
    /// Bytes follow INTEGER s inside the SEQUENCE.
    #[error("DER SEQUENCE has {count} unexpected byte(s) after INTEGER s")]
    DerDataAfterIntegers {
        /// How many extra bytes.
        count: usize,
    },

    // --- signatures and recovery -------------------------------------------
    /// A raw `r` or `s` is zero or not below n.
    #[error("signature {component} must be in the range 1..n-1")]
    SignatureScalarOutOfRange {
        /// Which half.
        component: SigComponent,
    },
    /// A 65-byte signature carries a high `s` (EIP-2 malleable form).
    #[error("signature s is in the upper half of the group order; EIP-2 requires low-s (s <= n/2)")]
    HighS,
    /// The recovery byte `v` is not 27, 28, 0 or 1.
    #[error("signature recovery byte v = {v}; expected 27 or 28 (or 0 or 1)")]
    InvalidRecoveryByte {
        /// The byte found.
        v: u8,
    },
    /// Neither recovery id yields the expected public key.
    #[error(
        "signature does not recover to the expected public key with recovery id 0 or 1 \
         (wrong key, digest or signature)"
    )]
    RecoveryIdNotFound,
    /// No public key can be recovered from this signature and digest.
    #[error("no public key can be recovered from this signature and digest")]
    PublicKeyNotRecoverable,

    // --- hex / digest input --------------------------------------------------
    /// Malformed hexadecimal text.
    #[error("invalid hex: {0}")]
    InvalidHex(#[from] hex::FromHexError),
    /// Decoded to the wrong number of bytes.
    #[error("expected exactly {expected} bytes, got {found}")]
    WrongLength {
        /// Required length.
        expected: usize,
        /// Length decoded.
        found: usize,
    },
    /// Neither `0x`-hex nor base64.
    #[error("digest must be 0x-prefixed hex or base64 (standard or URL-safe alphabet)")]
    DigestEncoding,
    /// Bare hex was given where `0x` is required to disambiguate from base64.
    #[error("digest looks like hex without the \"0x\" prefix; write it as 0x…")]
    DigestBareHex,
}

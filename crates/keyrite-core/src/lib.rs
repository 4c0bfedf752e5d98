//! keyrite's pure core: what a key, a policy and a signature mean, with no cloud in sight.
//!
//! Owns secp256k1 keys and signatures as cloud KMSs give them ([`crypto`]: SPKI, DER,
//! low-s, recovery, EVM and Hedera addresses), IAM policy semantics ([`policy`]: parsing,
//! equivalence by meaning, diffs), the signer endpoint's request and answer ([`contract`])
//! and the signing arithmetic every signer shares ([`signing`]).
//!
//! Must not import: a cloud SDK, an async runtime, anything that does I/O. Everything here
//! is deterministic and testable offline; the crates above it (the Lambda signer, the CLI
//! and its providers) bring the clouds.

pub mod contract;
pub mod crypto;
pub mod policy;
pub mod signing;

//! keyrite's pure core: what a manifest, a plan, a key, a policy and a signature mean, with no
//! cloud in sight.
//!
//! Owns:
//! - the manifest model and its positioned diagnostics ([`manifest`]), validated against the
//!   resource kinds' [`schema`]s, which the provider crates hand in as data;
//! - plans, drift and the permissions a plan needs ([`plan`]), and the state they compare
//!   against, with its local file ([`state`]);
//! - lint rules over declared and deployed resources ([`lint`]);
//! - ceremony formats: approvals, PGP words, in-toto records, DSSE envelopes and their
//!   offline verification ([`ceremony`]);
//! - secp256k1 keys and signatures as cloud KMSs give them ([`crypto`]: SPKI, DER, low-s,
//!   recovery, EVM and Hedera addresses), IAM policy semantics ([`policy`]), the signer
//!   endpoint's request and answer ([`contract`]) and the signing arithmetic every signer
//!   shares ([`signing`]);
//! - the quorum gate's decision, which alone lets a recovery key sign ([`gate`]), and the
//!   rotation of an operational key that it enrols ([`rotation`]).
//!
//! Must not import: a cloud SDK, an async runtime, a network client, or anything above it in
//! the workspace. Its only I/O is the local files it is pointed at (a manifest's allowed
//! signers, the state file and its lock, approvals and records beside a plan); everything
//! else is deterministic and testable offline. The crates above it bring the clouds.

pub mod ceremony;
pub mod contract;
pub mod crypto;
pub mod gate;
pub mod lint;
pub mod manifest;
pub mod plan;
pub mod policy;
pub mod provider;
pub mod rotation;
pub mod schema;
pub mod signing;
pub mod state;

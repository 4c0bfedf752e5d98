//! keyrite: declarative key ceremonies for cloud-KMS secp256k1 signers. The CLI crate, the
//! top of the workspace and the only one that knows every cloud: the resource kinds and
//! their cloud operations ([`provider`]), commands, rendering, apply, discover, selftest,
//! serve and the state's S3 backend. It builds on `keyrite-core` (manifests, plans, drift,
//! lint, ceremony formats, keys, signatures, policies, the signer contract: re-exported
//! below under the names this crate has always used) and on `keyrite-lambda-signer` for the
//! AWS KMS key ([`lambda`]); nothing below imports from it.
//!
//! Data flows one way: YAML → [`manifest`] (validated, positioned diagnostics) → refresh via
//! [`provider`] → pure [`plan`] (changes) and [`plan::drift`] (drift) → [`render`] →
//! [`apply`] (ordered, concurrent, [`state`] saved after every change).

pub mod apply;
pub mod cli;
pub mod commands;
pub mod discover;
pub mod keys;
pub mod manifest;
#[cfg(feature = "aws")]
pub use keyrite_aws::package;
pub mod provider;
pub mod render;
pub mod selftest;
pub mod serve;
pub mod signer;
pub mod state;

#[cfg(test)]
mod core_tests;

// The layers below, under the names the rest of this crate uses.
pub use keyrite_core::{ceremony, contract, crypto, lint, plan, policy, signing};
#[cfg(feature = "aws")]
pub use keyrite_lambda_signer as lambda;

//! keyrite: declarative key ceremonies for cloud-KMS secp256k1 signers. The CLI crate, the
//! top of the workspace: manifests, plans, both clouds' providers, ceremonies, lint, serve.
//! It builds on `keyrite-core` (keys, signatures, policies, the signer contract: re-exported
//! below as [`crypto`], [`policy`], [`contract`], [`signing`]) and on `keyrite-lambda-signer`
//! for the AWS KMS key ([`lambda`]); nothing below imports from it.
//!
//! Data flows one way: YAML → [`manifest`] (validated, positioned diagnostics) → refresh via
//! [`provider`] → pure [`plan`] (changes) and [`plan::drift`] (drift) → [`render`] →
//! [`apply`] (ordered, concurrent, [`state`] saved after every change).

pub mod apply;
pub mod ceremony;
pub mod cli;
pub mod commands;
pub mod discover;
pub mod lint;
pub mod manifest;
pub mod package;
pub mod plan;
pub mod provider;
pub mod render;
pub mod selftest;
pub mod serve;
pub mod signer;
pub mod state;

// The layers below, under the names the rest of this crate uses.
pub use keyrite_core::{contract, crypto, policy, signing};
pub use keyrite_lambda_signer as lambda;

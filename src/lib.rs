//! keyrite: declarative key ceremonies for cloud-KMS secp256k1 signers.
//!
//! Data flows one way: YAML → [`manifest`] (validated, positioned diagnostics) → refresh via
//! [`provider`] → pure [`plan`] (changes) and [`plan::drift`] (drift) → [`render`] →
//! [`apply`] (ordered, concurrent, [`state`] saved after every change).

pub mod apply;
pub mod ceremony;
pub mod cli;
pub mod commands;
pub mod contract;
pub mod crypto;
pub mod discover;
pub mod lambda;
pub mod lint;
pub mod manifest;
pub mod package;
pub mod plan;
pub mod policy;
pub mod provider;
pub mod render;
pub mod selftest;
pub mod serve;
pub mod signer;
pub mod state;

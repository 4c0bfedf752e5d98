//! The integration tests, as one test binary: `tests/common` (the emulators, the fault proxy,
//! the Cloud KMS stand-in) is compiled once, the suite links once, and every test shares one
//! pool of test threads. Each module is one file beside this one.

mod common;

mod adoption;
mod aws_lifecycle;
mod ceremony;
mod ceremony_core;
mod cli;
mod gcp_lifecycle;
mod gcp_standin_conformance;
mod honest_plans;
mod import;
mod invalid_manifests;
mod lambda_handler;
mod layers;
mod lint;
mod quorum_gate;
mod reliability;
mod rotation;
mod rust_signer;
mod signer;
mod signer_stack;
mod state_backends;

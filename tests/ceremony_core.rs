//! The ceremony building blocks against software nobody here wrote: approvals made and
//! checked by the real `ssh-keygen` (OpenSSH), and DSSE envelopes verified by PyPI
//! securesystemslib.

#[path = "ceremony_core/common.rs"]
pub mod common;
#[path = "ceremony_core/securesystemslib.rs"]
mod securesystemslib;
#[path = "ceremony_core/ssh_keygen.rs"]
mod ssh_keygen;

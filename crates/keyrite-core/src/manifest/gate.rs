//! A quorum gate's `gate:` block, the same on every cloud: the approvers (an OpenSSH
//! allowed_signers file), the threshold, and the enrolment scope (EIP-712 domain and wallet).
//! On AWS it sits on the gate's `aws_lambda_function`, whose environment it becomes; on
//! Google Cloud on the recovery signer, whose Cloud Run service (`keyrite serve`, rendered by
//! `render-signer --serve`) runs with it.
//!
//! ```yaml
//! gate:
//!   approvers: recovery.allowed_signers
//!   threshold: 2
//!   enrolment:
//!     domain: {name: Treasury, version: "1", chain_id: 1, verifying_contract: "0x…"}
//!     wallet: "0x…"
//! ```

use std::path::PathBuf;

use super::yaml::Pos;
use super::{Block, SignerGate, Slot, Validation};
use crate::ceremony::enrolment::Domain;
use crate::gate::{self, Gate, Scope};

/// A gate's configuration, validated: what a deployed gate is fixed to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GateSpec {
    /// The approvers file as read, and where it is.
    pub allowed_signers: String,
    pub file: PathBuf,
    pub threshold: usize,
    pub scope: Scope,
}

impl GateSpec {
    /// The environment the gate reads ([`Gate::from_env`]).
    pub fn environment(&self) -> [(&'static str, String); 3] {
        [
            (gate::ENV_ALLOWED_SIGNERS, self.allowed_signers.clone()),
            (gate::ENV_THRESHOLD, self.threshold.to_string()),
            (gate::ENV_ENROLMENT, serde_json::to_string(&self.scope).unwrap_or_default()),
        ]
    }

    /// The gate this configuration makes.
    pub fn gate(&self) -> Result<Gate, String> {
        Gate::new(&self.allowed_signers, self.threshold, self.scope.clone())
    }
}

impl Validation {
    /// Reads a `gate:` block; `None` when any part of it is wrong (each error reported).
    pub fn gate_block(&mut self, mut g: Block<'_>) -> Option<GateSpec> {
        let approvers_pos = g.pos_of("approvers");
        let threshold_pos = g.pos_of("threshold");
        let approvers = g.required_string(self, "approvers");
        let threshold = g.integer(self, "threshold", 1..=32);
        if !g.has("threshold") {
            self.error(
                g.pos(),
                "missing",
                format!("{}: missing required field `threshold`", g.field_path("threshold")),
            );
        }
        let scope = g.block(self, "enrolment").and_then(|e| self.enrolment_scope(e));
        if !g.has("enrolment") {
            self.error(
                g.pos(),
                "missing",
                format!("{}: missing required field `enrolment`", g.field_path("enrolment")),
            );
        }
        let path = g.field_path("approvers");
        g.finish(self);
        let (file, text, signers) =
            approvers.and_then(|a| self.allowed_signers_file(approvers_pos, "gate", &path, &a))?;
        let threshold = threshold.and_then(|t| usize::try_from(t).ok())?;
        let principals = crate::ceremony::allowed_signers::distinct_principals(&signers).len();
        if threshold > principals {
            self.error(
                threshold_pos,
                "value",
                format!(
                    "gate.threshold: {threshold} approvals can never be met: {} names {principals}",
                    file.display()
                ),
            );
            return None;
        }
        Some(GateSpec { allowed_signers: text, file, threshold, scope: scope? })
    }

    fn enrolment_scope(&mut self, mut e: Block<'_>) -> Option<Scope> {
        let address = |b: &mut Block<'_>, cx: &mut Validation, key: &str| {
            let pos = b.pos_of(key);
            let text = b.required_string(cx, key)?;
            text.parse::<crate::crypto::Address>()
                .map_err(|err| {
                    cx.error(pos, "value", format!("{}: {text:?} is not an address: {err}", b.field_path(key)))
                })
                .ok()
        };
        let domain = e.block(self, "domain").and_then(|mut d| {
            let name = d.required_string(self, "name");
            let version = d.required_string(self, "version");
            let chain_id = d.integer(self, "chain_id", 1..=i64::MAX);
            if !d.has("chain_id") {
                self.error(
                    d.pos(),
                    "missing",
                    format!("{}: missing required field `chain_id`", d.field_path("chain_id")),
                );
            }
            let verifying_contract = address(&mut d, self, "verifying_contract");
            d.finish(self);
            Some(Domain {
                name: name?,
                version: version?,
                chain_id: u64::try_from(chain_id?).ok()?,
                verifying_contract: verifying_contract?,
            })
        });
        if !e.has("domain") {
            self.error(e.pos(), "missing", format!("{}: missing required field `domain`", e.field_path("domain")));
        }
        let wallet = address(&mut e, self, "wallet");
        e.finish(self);
        Some(Scope { domain: domain?, wallet: wallet? })
    }
}

impl Validation {
    /// A signer's `gate:`: only a Cloud KMS recovery signer has one (on AWS the gate is an
    /// `aws_lambda_function` with its own `gate:`), with the service account its Cloud Run
    /// service runs as. Its digests are EIP-712's, signed as they are: it takes no `mode`.
    pub(super) fn signer_gate(
        &mut self,
        b: &mut Block<'_>,
        slot: Slot,
        key_kind: Option<&str>,
        mode: Option<Pos>,
    ) -> Option<SignerGate> {
        let at = b.pos_of("gate");
        let path = b.field_path("gate");
        let mut g = b.block(self, "gate")?;
        if slot != Slot::Recovery {
            self.error(
                at,
                "slot",
                format!("{path}: a quorum gate guards a recovery signer, and this one is operational"),
            );
        }
        if key_kind.is_some_and(|k| k != "gcp_kms_crypto_key") {
            self.error(
                at,
                "gate",
                format!(
                    "{path}: on AWS the quorum gate is an aws_lambda_function with a `gate:` block \
                     (see manifests/recovery-gate.yaml); a signer's `gate:` is for Cloud KMS keys"
                ),
            );
        }
        if let Some(pos) = mode {
            self.error(
                pos,
                "gate",
                format!("{path}: a quorum gate signs enrolment digests as they are (EIP-712); remove `mode`"),
            );
        }
        let account_pos = g.pos_of("service_account");
        let account_path = g.field_path("service_account");
        let account = g.required_string(self, "service_account").and_then(|a| {
            let a = a.strip_prefix("serviceAccount:").unwrap_or(&a).to_owned();
            let valid = a
                .split_once('@')
                .is_some_and(|(name, domain)| !name.is_empty() && domain.ends_with(".gserviceaccount.com"));
            if !valid {
                self.error(
                    account_pos,
                    "value",
                    format!("{account_path}: {a:?} is not a service account (name@project.iam.gserviceaccount.com)"),
                );
            }
            valid.then_some(a)
        });
        let spec = self.gate_block(g);
        Some(SignerGate { spec: spec?, service_account: account? })
    }
}

//! Health of the signers a server holds, checked in the background.
//!
//! A task checks every signer's key at an interval ([`KmsSigner::health`]: reachable,
//! enabled, the public key the signer started with) and records the result on a [`Board`].
//! `GET /healthcheck` only reads the board, so a health probe never waits on KMS and never
//! adds KMS load of its own. The answer follows web3signer's shape: an overall `status`, and
//! one entry per check with its own `status`, UP or DOWN.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde_json::{Value, json};

use super::Service;
use crate::signer::KeyHealth;

/// The last check of each signer.
pub struct Board {
    checks: RwLock<BTreeMap<String, Option<(KeyHealth, String)>>>,
}

impl Board {
    /// A board for these signers, none checked yet (which reads as DOWN).
    pub fn new(signers: impl Iterator<Item = String>) -> Board {
        Board { checks: RwLock::new(signers.map(|s| (s, None)).collect()) }
    }

    pub fn record(&self, signer: &str, health: KeyHealth) {
        if let Ok(mut checks) = self.checks.write() {
            checks.insert(signer.to_owned(), Some((health, crate::state::now())));
        }
    }

    /// Whether every signer is healthy, and the report.
    pub fn report(&self) -> (bool, Value) {
        let checks = self.checks.read().map(|c| c.clone()).unwrap_or_default();
        let mut healthy = !checks.is_empty();
        let entries: Vec<Value> = checks
            .iter()
            .map(|(signer, last)| {
                let ok = last.as_ref().is_some_and(|(h, _)| h.ok());
                healthy &= ok;
                let mut entry = json!({"id": format!("signer:{signer}"), "status": if ok { "UP" } else { "DOWN" }});
                match last {
                    Some((h, at)) => {
                        entry["key_reachable"] = json!(h.reachable);
                        entry["key_enabled"] = json!(h.enabled);
                        entry["public_key_matches"] = json!(h.public_key_matches);
                        entry["checked_at"] = json!(at);
                        if let Some(e) = &h.error {
                            entry["error"] = json!(e);
                        }
                    }
                    None => entry["error"] = json!("not checked yet"),
                }
                entry
            })
            .collect();
        let status = if healthy { "UP" } else { "DOWN" };
        (healthy, json!({"status": status, "outcome": status, "checks": entries}))
    }
}

/// Checks every signer once, concurrently, and records the results.
pub async fn check_all(service: &Service) {
    let results = futures_util::future::join_all(
        service.signers.iter().map(|s| async move { (s.name.clone(), s.signer.health().await) }),
    )
    .await;
    for (name, health) in results {
        service.metrics.health(&name, health.ok());
        service.health.record(&name, health);
    }
}

/// Checks every `interval`, for as long as the server runs.
pub fn spawn(service: Arc<Service>, interval: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks.tick().await;
        loop {
            ticks.tick().await;
            check_all(&service).await;
        }
    })
}

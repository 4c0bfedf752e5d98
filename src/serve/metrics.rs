//! Prometheus metrics of `keyrite serve`, in the OpenMetrics text format, on a listener of
//! their own (`--metrics-listen`), with the official `prometheus-client` crate.
//!
//! - `keyrite_sign_requests_total{signer, outcome}`: signing requests, by how they ended
//!   (`signed`, `bad_request`, `unauthorized`, `forbidden`, `not_found`, `rate_limited`,
//!   `kms_error`, `throttled`);
//! - `keyrite_kms_sign_seconds{signer}`: the KMS sign call, with the DER → r‖s‖v check;
//! - `keyrite_request_seconds{signer}`: a signing request from its arrival to its answer;
//! - `keyrite_kms_throttles_total{signer}`: KMS throttling answers (ThrottlingException,
//!   RESOURCE_EXHAUSTED);
//! - `keyrite_rate_limited_total{signer}`: requests refused by a token bucket (`--rate`,
//!   `--client-rate`);
//! - `keyrite_signer_healthy{signer}`: the last background health check, 1 or 0.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Outcome {
    signer: String,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Signer {
    signer: String,
}

fn latency() -> Histogram {
    // 5 ms to about 20 s.
    Histogram::new(exponential_buckets(0.005, 2.0, 12))
}

pub struct Metrics {
    registry: Registry,
    requests: Family<Outcome, Counter>,
    kms: Family<Signer, Histogram, fn() -> Histogram>,
    end_to_end: Family<Signer, Histogram, fn() -> Histogram>,
    throttles: Family<Signer, Counter>,
    rate_limited: Family<Signer, Counter>,
    healthy: Family<Signer, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("keyrite");
        let requests = Family::<Outcome, Counter>::default();
        let kms = Family::<Signer, Histogram, fn() -> Histogram>::new_with_constructor(latency as fn() -> Histogram);
        let end_to_end =
            Family::<Signer, Histogram, fn() -> Histogram>::new_with_constructor(latency as fn() -> Histogram);
        let throttles = Family::<Signer, Counter>::default();
        let healthy = Family::<Signer, Gauge>::default();
        let rate_limited = Family::<Signer, Counter>::default();
        registry.register("sign_requests", "Signing requests, by signer and outcome", requests.clone());
        registry.register("kms_sign_seconds", "The KMS sign call, in seconds", kms.clone());
        registry.register(
            "request_seconds",
            "A signing request from arrival to answer, in seconds",
            end_to_end.clone(),
        );
        registry.register("kms_throttles", "KMS throttling answers", throttles.clone());
        registry.register("rate_limited", "Requests refused by a token bucket", rate_limited.clone());
        registry.register(
            "signer_healthy",
            "The last background health check of the signer's key (1 healthy)",
            healthy.clone(),
        );
        Metrics { registry, requests, kms, end_to_end, throttles, rate_limited, healthy }
    }
}

impl Metrics {
    /// A signing request ended with `outcome` after `elapsed`.
    pub fn request(&self, signer: &str, outcome: &'static str, elapsed: Duration) {
        self.requests.get_or_create(&Outcome { signer: signer.to_owned(), outcome }).inc();
        self.end_to_end.get_or_create(&Signer { signer: signer.to_owned() }).observe(elapsed.as_secs_f64());
    }

    pub fn kms_sign(&self, signer: &str, elapsed: Duration) {
        self.kms.get_or_create(&Signer { signer: signer.to_owned() }).observe(elapsed.as_secs_f64());
    }

    pub fn throttled(&self, signer: &str) {
        self.throttles.get_or_create(&Signer { signer: signer.to_owned() }).inc();
    }

    pub fn rate_limited(&self, signer: &str) {
        self.rate_limited.get_or_create(&Signer { signer: signer.to_owned() }).inc();
    }

    pub fn health(&self, signer: &str, healthy: bool) {
        self.healthy.get_or_create(&Signer { signer: signer.to_owned() }).set(i64::from(healthy));
    }

    /// The exposition text.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

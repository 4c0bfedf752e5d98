//! Prometheus metrics of `keyrite serve`, in the OpenMetrics text format, on a listener of
//! their own (`--metrics-listen`), with the official `prometheus-client` crate.
//!
//! - `keyrite_sign_requests_total{signer, outcome}`: signing requests, by how they ended
//!   (`signed`, `bad_request`, `unauthorized`, `forbidden`, `not_found`, `rate_limited`,
//!   `kms_error`, `throttled`, and a quorum gate's `refused`);
//! - `keyrite_kms_sign_seconds{signer}`: the KMS sign call, with the DER → r‖s‖v check;
//! - `keyrite_request_seconds{signer}`: a signing request from its arrival to its answer;
//! - `keyrite_kms_throttles_total{signer}`: KMS throttling answers (ThrottlingException,
//!   RESOURCE_EXHAUSTED);
//! - `keyrite_rate_limited_total{signer}`: requests refused by a token bucket (`--rate`,
//!   `--client-rate`);
//! - `keyrite_signer_healthy{signer}`: the last background health check, 1 or 0.

use std::net::IpAddr;
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

/// Who may scrape the metrics listener: peers in one of these networks (`10.0.0.0/8`,
/// `192.168.1.7`, `fd00::/8`). With none given, only loopback peers may.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Allowed {
    networks: Vec<(IpAddr, u8)>,
}

impl Allowed {
    pub fn parse(specs: &[String]) -> Result<Allowed, String> {
        let mut networks = Vec::new();
        for spec in specs {
            let (addr, bits) = spec.split_once('/').map_or((spec.as_str(), None), |(a, b)| (a, Some(b)));
            let addr: IpAddr =
                addr.parse().map_err(|_| format!("--metrics-allow {spec}: not an IP address or network"))?;
            let max = if addr.is_ipv4() { 32 } else { 128 };
            let bits = match bits {
                Some(b) => b
                    .parse::<u8>()
                    .ok()
                    .filter(|b| *b <= max)
                    .ok_or_else(|| format!("--metrics-allow {spec}: the prefix length must be 0 to {max}"))?,
                None => max,
            };
            networks.push((addr, bits));
        }
        Ok(Allowed { networks })
    }

    /// True when a network that admits every address was given.
    pub fn is_public(&self) -> bool {
        self.networks.iter().any(|(_, bits)| *bits == 0)
    }

    pub fn admits(&self, peer: IpAddr) -> bool {
        let peer = match peer {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(peer, IpAddr::V4),
            v4 => v4,
        };
        if self.networks.is_empty() {
            return peer.is_loopback();
        }
        self.networks.iter().any(|(net, bits)| match (net, peer) {
            (IpAddr::V4(n), IpAddr::V4(p)) => {
                prefix(u128::from(n.to_bits()) << 96, u128::from(p.to_bits()) << 96, *bits)
            }
            (IpAddr::V6(n), IpAddr::V6(p)) => prefix(n.to_bits(), p.to_bits(), *bits),
            _ => false,
        })
    }
}

/// True when the first `bits` bits of `a` and `b` agree.
fn prefix(a: u128, b: u128, bits: u8) -> bool {
    bits == 0 || (a ^ b) >> (128 - u32::from(bits)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_admit_their_addresses_and_loopback_is_the_default() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let none = Allowed::parse(&[]).unwrap();
        assert!(none.admits(ip("127.0.0.1")) && none.admits(ip("::1")) && !none.admits(ip("10.0.0.1")));
        let some = Allowed::parse(&["10.0.0.0/8".into(), "192.168.1.7".into(), "fd00::/8".into()]).unwrap();
        assert!(some.admits(ip("10.255.0.3")) && some.admits(ip("::ffff:10.1.2.3")));
        assert!(some.admits(ip("192.168.1.7")) && !some.admits(ip("192.168.1.8")));
        assert!(some.admits(ip("fd12::1")) && !some.admits(ip("fe80::1")) && !some.admits(ip("127.0.0.1")));
        assert!(!some.is_public() && Allowed::parse(&["0.0.0.0/0".into()]).unwrap().is_public());
        assert!(Allowed::parse(&["0.0.0.0/0".into()]).unwrap().admits(ip("8.8.8.8")));
        assert!(Allowed::parse(&["10.0.0.0/33".into()]).unwrap_err().contains("0 to 32"));
        assert!(Allowed::parse(&["ten".into()]).unwrap_err().contains("not an IP address"));
    }
}

//! `keyrite sign`, `selftest` and `serve`: everything that uses a signer's key.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use base64::Engine;

use super::{Status, load};
use crate::cli::{ManifestArg, ServeArgs};
use crate::crypto;
use crate::manifest::{Manifest, SignerSpec, SigningMode};
use crate::provider::Cloud;
use crate::render::Format;
use crate::signer::KmsSigner;
use crate::state::State;

/// The signer's key, connected, and the public key recorded for it at apply.
async fn signer(cloud: &Cloud, state: &State, spec: &SignerSpec) -> anyhow::Result<(KmsSigner, Option<Vec<u8>>)> {
    let r = state.resources.get(&spec.key).with_context(|| {
        format!("signer {}: key {} is not in the state; run `keyrite apply` first", spec.name, spec.key)
    })?;
    let spki = r
        .outputs
        .get("public_key")
        .and_then(|v| v.as_str())
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok());
    let signer = crate::keys::signer(cloud, r).await.with_context(|| format!("signer {}", spec.name))?;
    Ok((signer, spki))
}

async fn connect(arg: &ManifestArg) -> anyhow::Result<(Manifest, State, Cloud)> {
    let (manifest, store) = load(arg).await?;
    let Some(state) = super::read_state(&store).await? else {
        bail!("no state at {}: run `keyrite apply` first", store.describe())
    };
    let cloud = Cloud::connect(&manifest.aws, &manifest.gcp).await;
    Ok((manifest, state, cloud))
}

pub async fn sign(
    arg: &ManifestArg,
    signer: Option<&str>,
    hash: &str,
    mode: Option<SigningMode>,
) -> anyhow::Result<Status> {
    let digest = crypto::parse_digest(hash).context("--hash")?;
    let (manifest, state, cloud) = connect(arg).await?;
    let spec = manifest.signer(signer)?;
    let (kms, _) = self::signer(&cloud, &state, spec).await?;
    let sig = kms.sign(&digest, mode.unwrap_or(spec.mode)).await?;
    println!("0x{}", hex::encode(sig));
    Ok(Status::Ok)
}

pub async fn selftest(
    arg: &ManifestArg,
    only: Option<&str>,
    format: Format,
    timeout: f64,
    via: Option<&str>,
) -> anyhow::Result<Status> {
    let (manifest, state, cloud) = connect(arg).await?;
    let specs: Vec<&SignerSpec> = match only {
        Some(name) => vec![manifest.signer(Some(name))?],
        None if manifest.signers.is_empty() => bail!("the manifest declares no `signers:` to test"),
        None => manifest.signers.iter().collect(),
    };
    let reports = run_selftests(&cloud, &state, &specs, Duration::from_secs_f64(timeout.max(0.1)), via).await?;
    let passed = reports.iter().all(|r| r.passed());
    match format {
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(
                &serde_json::json!({"format_version": 1, "kind": "selftest", "passed": passed, "signers": reports})
            )?
        ),
        Format::Human => {
            for r in &reports {
                println!("signer {} ({}, mode {:?})", r.signer, r.address, r.mode);
                for c in &r.checks {
                    let mark = if c.passed { "✓" } else { "✗" };
                    let cause = c.cause.map(|c| format!("[{c}] ")).unwrap_or_default();
                    println!("  {mark} {:<40} {cause}{} ({} ms)", c.target, c.message, c.latency_ms);
                }
            }
            println!("{}", if passed { "Self-test passed." } else { "Self-test FAILED." });
        }
    }
    Ok(if passed { Status::Ok } else { Status::Error })
}

/// Runs the live self-test of each signer: its key directly and every endpoint it declares.
pub async fn run_selftests(
    cloud: &Cloud,
    state: &State,
    specs: &[&SignerSpec],
    timeout: Duration,
    via: Option<&str>,
) -> anyhow::Result<Vec<crate::selftest::Report>> {
    let targets: Vec<Vec<crate::selftest::Target>> =
        specs.iter().map(|spec| crate::selftest::targets(spec, state, via)).collect();
    // AWS credentials only when an endpoint needs SigV4.
    #[cfg(feature = "aws")]
    let sigv4 = match targets.iter().flatten().any(|t| t.sigv4.is_some()) {
        true => crate::selftest::SigV4::of(&cloud.aws).await,
        false => None,
    };
    // Without AWS no endpoint can need SigV4 (its kinds are refused at validation).
    #[cfg(not(feature = "aws"))]
    let sigv4: Option<crate::selftest::SigV4> = None;
    let mut reports = Vec::new();
    for (spec, targets) in specs.iter().zip(&targets) {
        let (kms, spki) = signer(cloud, state, spec).await?;
        use crate::selftest::Direct;
        let direct = match crate::keys::gate_of(state, &spec.key) {
            _ if spec.gate.is_some() => Direct::None,
            #[cfg(feature = "aws")]
            Some(function) => {
                Direct::Gate(crate::selftest::gate_probe(&cloud.aws, function, &kms.address.to_string(), timeout).await)
            }
            _ => Direct::Kms,
        };
        reports
            .push(crate::selftest::run(spec, &kms, spki.as_deref(), targets, sigv4.as_ref(), timeout, direct).await?);
    }
    Ok(reports)
}

/// A signer's key, connected: for a ceremony's proof of possession.
pub async fn key_signer(cloud: &Cloud, state: &State, address: &str) -> anyhow::Result<KmsSigner> {
    let spec = SignerSpec {
        name: address.to_owned(),
        key: address.to_owned(),
        slot: crate::manifest::Slot::Operational,
        mode: SigningMode::Digest,
        endpoints: Vec::new(),
        rotation: None,
        gate: None,
    };
    Ok(signer(cloud, state, &spec).await?.0)
}

/// A rate and its burst from the command line; a rate of 0 is no limit.
fn rate(per_second: f64, burst: Option<f64>, flag: &str) -> anyhow::Result<Option<crate::serve::limit::Rate>> {
    if !per_second.is_finite() || per_second < 0.0 {
        bail!("--{flag} must be a number of requests per second, 0 or more");
    }
    if per_second == 0.0 {
        return Ok(None);
    }
    let burst = burst.unwrap_or((2.0 * per_second).max(1.0));
    if !burst.is_finite() || burst < 1.0 {
        bail!("the burst of --{flag} must be at least 1 request");
    }
    Ok(Some(crate::serve::limit::Rate { per_second, burst }))
}

pub async fn serve(arg: &ManifestArg, options: ServeArgs) -> anyhow::Result<Status> {
    let token = match (&options.token_file, &options.token_env) {
        (Some(path), _) => Some(
            std::fs::read_to_string(path)
                .with_context(|| format!("cannot read token file {}", path.display()))?
                .trim()
                .to_owned(),
        ),
        (None, Some(var)) => Some(
            std::env::var(var).with_context(|| format!("environment variable {var} is not set"))?.trim().to_owned(),
        ),
        (None, None) => None,
    };
    if token.as_deref() == Some("") {
        bail!("the bearer token is empty");
    }
    let signer_rate = rate(options.rate, options.burst, "rate")?;
    // A client's bucket is, unless told otherwise, the size of a signer's.
    let client_rate = match options.client_rate {
        Some(r) => rate(r, options.client_burst, "client-rate")?,
        None => rate(options.rate, options.client_burst.or(options.burst), "client-rate")?,
    };
    let metrics_allowed = crate::serve::metrics::Allowed::parse(&options.metrics_allow).map_err(anyhow::Error::msg)?;
    // TLS first: a bad certificate fails before any KMS call.
    let tls = match (&options.tls_cert, &options.tls_key) {
        (Some(cert), Some(key)) => Some(Arc::new(crate::serve::tls::Tls::load(crate::serve::tls::Files {
            cert: cert.clone(),
            key: key.clone(),
            client_ca: options.client_ca.clone(),
        })?)),
        _ => None,
    };
    #[cfg_attr(not(feature = "aws"), allow(unused_mut))]
    let (manifest, state, mut cloud) = connect(arg).await?;
    #[cfg(feature = "aws")]
    {
        cloud.aws.kms = cloud.aws.serving_kms();
    }
    // The signers to serve: those named, or every operational one. A recovery signer is
    // served only as its quorum gate, when named.
    let specs: Vec<&SignerSpec> = if options.signers.is_empty() {
        if manifest.signers.is_empty() {
            bail!("the manifest declares no `signers:`");
        }
        for s in manifest.signers.iter().filter(|s| s.slot == crate::manifest::Slot::Recovery) {
            eprintln!("keyrite serve: not serving {}, a recovery signer", s.name);
        }
        manifest.signers.iter().filter(|s| s.slot != crate::manifest::Slot::Recovery).collect()
    } else {
        options.signers.iter().map(|n| manifest.signer(Some(n))).collect::<Result<_, _>>()?
    };
    for spec in &specs {
        // A recovery signer is served only as its quorum gate, and only when named.
        if spec.slot == crate::manifest::Slot::Recovery && spec.gate.is_none() {
            bail!(
                "signer {} uses {}, a recovery key: recovery keys are never served; sign with `keyrite sign` as one of \
                 the key's recovery signers",
                spec.name,
                spec.key
            );
        }
    }
    if specs.is_empty() {
        bail!("no operational signer to serve");
    }
    let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
    let access = options.access.as_deref().map(|path| crate::serve::access::Access::load(path, &names)).transpose()?;
    if access.as_ref().is_some_and(|a| a.uses_certificates()) && options.client_ca.is_none() {
        bail!("the access list names client certificates: give --client-ca (and --tls-cert, --tls-key) to verify them");
    }
    // Ready only once every signer's public key is loaded and equal to the state's record.
    let mut signers = Vec::new();
    for spec in &specs {
        let (kms, recorded) = self::signer(&cloud, &state, spec).await?;
        if recorded.as_deref().is_some_and(|r| r != kms.spki.as_slice()) {
            bail!("signer {}: KMS gives a public key other than the one the state records for {}", spec.name, spec.key);
        }
        let gate = spec.gate.as_ref().map(|g| g.spec.gate()).transpose().map_err(anyhow::Error::msg)?;
        if let Some(g) = &gate {
            eprintln!(
                "keyrite serve: {} is a quorum gate: it signs only enrolments {} of its approvers approved (configuration {})",
                spec.name,
                g.threshold(),
                g.fingerprint()
            );
        }
        signers.push(crate::serve::Signer { name: spec.name.clone(), signer: kms, mode: spec.mode, gate });
    }
    let audit = match &options.audit_log {
        Some(path) => crate::serve::audit::Audit::file(path)
            .with_context(|| format!("cannot open the audit log {}", path.display()))?,
        None => crate::serve::audit::Audit::stderr(),
    };
    let policy = crate::serve::Policy { token, access, signer_rate, client_rate };
    let service = Arc::new(crate::serve::Service::new(signers, policy, audit));
    crate::serve::health::check_all(&service).await;
    let listen = match (options.listen, std::env::var("PORT").ok()) {
        (Some(l), _) => l,
        (None, Some(port)) => {
            let port: u16 = port.parse().with_context(|| format!("PORT={port:?} is not a port number"))?;
            SocketAddr::from(([0, 0, 0, 0], port))
        }
        (None, None) => SocketAddr::from(([127, 0, 0, 1], 8080)),
    };
    let mutual = tls.as_ref().is_some_and(|t| t.mutual());
    if !listen.ip().is_loopback() {
        eprintln!(
            "warning: listening on {listen}, which is reachable from other hosts{}{}",
            if service.authenticates() || mutual { "" } else { " WITHOUT authentication" },
            if tls.is_none() { ", over plain HTTP (give --tls-cert and --tls-key)" } else { "" }
        );
    }
    let listener = tokio::net::TcpListener::bind(listen).await.with_context(|| format!("cannot listen on {listen}"))?;
    let local = listener.local_addr()?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    for s in &service.signers {
        eprintln!(
            "keyrite serve: signer {} ({}, mode {:?}) at {scheme}://{local}/sign/{}",
            s.name, s.signer.address, s.mode, s.name
        );
    }
    let mut guards = Vec::new();
    if mutual {
        guards.push("client certificate required");
    }
    if service.access.is_some() {
        guards.push("access list");
    } else if service.token.is_some() {
        guards.push("bearer token required");
    }
    eprintln!(
        "keyrite serve: ready on {scheme}://{local}{}; health every {}s at /healthcheck",
        if guards.is_empty() { String::new() } else { format!(" ({})", guards.join(", ")) },
        options.health_interval
    );
    let health_interval = Duration::from_secs(options.health_interval);
    let checks = crate::serve::health::spawn(service.clone(), health_interval);
    // SIGHUP reads the TLS files again; connections open keep their configuration.
    let reloads = tls.clone().map(|tls| {
        tokio::spawn(async move {
            let Ok(mut hangup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else {
                return;
            };
            while hangup.recv().await.is_some() {
                match tls.reload() {
                    Ok(()) => eprintln!("keyrite serve: TLS certificate reloaded"),
                    Err(e) => eprintln!("keyrite serve: TLS reload failed, keeping the certificate in use: {e:#}"),
                }
            }
        })
    });
    let (metrics_stop, metrics_stopped) = tokio::sync::oneshot::channel::<()>();
    let metrics = match options.metrics_listen {
        Some(addr) => {
            if metrics_allowed.is_public() {
                eprintln!("warning: --metrics-allow admits every address; the metrics name every signer");
            } else if !addr.ip().is_loopback() && options.metrics_allow.is_empty() {
                eprintln!(
                    "keyrite serve: metrics on {addr} answer loopback peers only; admit scrapers with --metrics-allow NETWORK"
                );
            }
            let l = tokio::net::TcpListener::bind(addr).await.with_context(|| format!("cannot listen on {addr}"))?;
            eprintln!("keyrite serve: metrics at http://{}/metrics", l.local_addr()?);
            let service = service.clone();
            Some(tokio::spawn(crate::serve::serve_metrics(l, service, metrics_allowed, async {
                let _ = metrics_stopped.await;
            })))
        }
        None => None,
    };
    let shutdown = async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
        }
        eprintln!("keyrite serve: stopping; requests in flight may finish");
    };
    crate::serve::run(listener, service, tls, shutdown, Duration::from_secs(options.drain_seconds)).await?;
    checks.abort();
    if let Some(r) = reloads {
        r.abort();
    }
    let _ = metrics_stop.send(());
    if let Some(m) = metrics {
        let _ = m.await;
    }
    eprintln!("keyrite serve: stopped");
    Ok(Status::Ok)
}

//! `keyrite serve` under load: its own CPU per signed request, its CPU at a fixed 1,000
//! requests/s, and the latency it adds over the bare KMS `Sign` call, with TLS and mTLS on,
//! side by side in one run. Run by `scripts/bench-serve.sh`:
//!
//!   serve_load <keyrite-binary> [requests] [seconds-at-1000-rps] [baseline-keyrite-binary]
//!
//! With a baseline binary, every path runs for both builds, alternating path by path and
//! round by round, so that the machine's noise falls on both alike.
//!
//! KMS is a stand-in in this process that answers at once: `GetPublicKey`, `DescribeKey` and
//! `Sign` over AWS's JSON protocol, `Sign` from signatures made before the clock starts (real
//! k256 signatures of the very digests the run sends). What is left is serve's own work:
//! HTTP (and TLS), JSON, the SDK's `kms:Sign` call with SigV4, DER → low-s → recovery id,
//! the audit line and the metrics.
//!
//! serve's CPU is read from `/proc/<pid>/task/*/schedstat` (nanoseconds on CPU, every
//! thread) around each phase, so the load generator's and the stand-in's CPU are not in it.

#[allow(dead_code)] // the Sign counter is for the tests
#[path = "../tests/common/kms_standin.rs"]
mod kms_standin;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use k256::ecdsa::SigningKey;
use keyrite::signer::KmsSigner;
use kms_standin::{KEY_ID, KmsStandIn};
use serde_json::json;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let binary = PathBuf::from(args.get(1).map(String::as_str).unwrap_or("target/release/keyrite"));
    let requests: usize = args.get(2).map_or(Ok(5000), |a| a.parse())?;
    let seconds: u64 = args.get(3).map_or(Ok(5), |a| a.parse())?;
    // Another keyrite binary (an earlier commit's), run through every path beside this one.
    let baseline = args.get(4).map(PathBuf::from);
    let work = tempfile::tempdir()?;

    // The stand-in KMS, with the signature of every digest the run will send.
    let key = SigningKey::from_slice(&[0x42; 32])?;
    let digests: Vec<[u8; 32]> = (0..requests.max(1000 * seconds as usize + 1000)).map(digest).collect();
    let signatures: HashMap<[u8; 32], Vec<u8>> = digests
        .iter()
        .map(|d| {
            let sig: k256::ecdsa::Signature = key.sign_prehash_recoverable(d).map(|(s, _)| s).unwrap();
            (*d, sig.to_der().as_bytes().to_vec())
        })
        .collect();
    // What the signature conversion costs alone, in this process: DER → low-s → recovery id
    // with the check that the signature is the key's (one double-scalar multiplication), and
    // k256's trial recovery, which keyrite used before, on the same signatures.
    {
        let public = k256::PublicKey::from(key.verifying_key());
        let sample: Vec<(&[u8; 32], &Vec<u8>)> = digests.iter().take(2000).map(|d| (d, &signatures[d])).collect();
        let t = Instant::now();
        for (d, der) in &sample {
            keyrite::crypto::signature_rsv(&public, d, der)?;
        }
        let ours = t.elapsed().as_secs_f64() / sample.len() as f64;
        let t = Instant::now();
        for (d, der) in &sample {
            let sig = k256::ecdsa::Signature::from_der(der)?;
            k256::ecdsa::RecoveryId::trial_recovery_from_prehash(key.verifying_key(), d.as_slice(), &sig)?;
        }
        let trial = t.elapsed().as_secs_f64() / sample.len() as f64;
        println!(
            "signature conversion, {} signatures: keyrite::crypto::signature_rsv {:.1} µs each; k256 trial recovery {:.1} µs each",
            sample.len(),
            ours * 1e6,
            trial * 1e6
        );
    }
    let kms = {
        use k256::pkcs8::EncodePublicKey;
        let spki = k256::PublicKey::from(key.verifying_key()).to_public_key_der()?;
        KmsStandIn::start(spki.as_bytes(), "ECC_SECG_P256K1", Arc::new(move |d: &[u8; 32]| signatures.get(d).cloned()))
    };

    // A manifest with one key and one signer in digest mode (KMS signs the digest sent), and
    // the state apply would have written for it.
    write_stack(work.path(), &key)?;
    let pki = Pki::new(work.path())?;

    let bare = Arc::new(KmsSigner::connect(kms.client().await, KEY_ID).await?);
    // Every path for this build and, when given, for the baseline build, started alike.
    let mut builds = vec![("", binary.as_path())];
    if let Some(b) = &baseline {
        builds = vec![(" (this build)", binary.as_path()), (" (baseline)", b.as_path())];
    }
    let mut servers: Vec<(String, Serve, bool)> = Vec::new();
    for (suffix, binary) in &builds {
        let mut two_workers = pki.server_args(true);
        two_workers.extend(["--workers".to_owned(), "2".to_owned()]);
        for (name, args, mutual) in [
            ("serve, HTTP", None, false),
            ("serve, HTTPS (TLS 1.3)", Some(pki.server_args(false)), false),
            ("serve, mTLS + access list", Some(pki.server_args(true)), true),
            ("serve, mTLS + access list, --workers 2", Some(two_workers.clone()), true),
        ] {
            let serve = Serve::start(binary, work.path(), &kms.url, args.as_deref().unwrap_or(&[]))?;
            servers.push((format!("{name}{suffix}"), serve, mutual));
        }
    }
    // This build's paths and the baseline's alternate: HTTP, HTTP, HTTPS, HTTPS, ...
    let order: Vec<usize> = (0..4).flat_map(|i| (0..builds.len()).map(move |b| b * 4 + i)).collect();

    println!(
        "{requests} sequential requests per path, interleaved in rounds of 500; {} cores; KMS stand-in answers at once",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let mut runs: Vec<(String, Option<&Serve>, Vec<f64>, f64)> =
        vec![("bare KMS Sign through the SDK".to_owned(), None, Vec::new(), 0.0)];
    let mut conns = vec![None];
    for &i in &order {
        let (name, serve, mutual) = &servers[i];
        let tls = name.contains("TLS").then(|| pki.client(*mutual));
        conns.push(Some(serve.connect(tls.as_ref()).await?));
        runs.push((name.clone(), Some(serve), Vec::new(), 0.0));
    }
    // Warm-up: connections, SDK clients, allocator.
    for conn in conns.iter_mut() {
        for d in &digests[..200] {
            match conn {
                Some(c) => c.sign(d).await?,
                None => drop(bare.sign_der(d).await?),
            }
        }
    }
    let rounds = requests.div_ceil(500);
    for round in 0..rounds {
        for (run, conn) in runs.iter_mut().zip(conns.iter_mut()) {
            let cpu = run.1.map(|s| s.cpu());
            for d in &digests[round * 500..((round + 1) * 500).min(requests)] {
                let t = Instant::now();
                match conn {
                    Some(c) => c.sign(d).await?,
                    None => drop(bare.sign_der(d).await?),
                }
                run.2.push(t.elapsed().as_secs_f64() * 1e3);
            }
            if let (Some(serve), Some(before)) = (run.1, cpu) {
                run.3 += serve.cpu() - before;
            }
        }
    }
    println!("\n| path | p50 | p90 | p99 | serve CPU per request |\n|---|---:|---:|---:|---:|");
    let base = {
        let mut l = runs[0].2.clone();
        l.sort_by(f64::total_cmp);
        l
    };
    for (name, serve, latencies, cpu) in &mut runs {
        latencies.sort_by(f64::total_cmp);
        let cpu = if serve.is_some() { format!("{:.3} ms", *cpu / latencies.len() as f64 * 1e3) } else { "-".into() };
        println!(
            "| {name} | {:.3} ms | {:.3} ms | {:.3} ms | {cpu} |",
            percentile(latencies, 0.5),
            percentile(latencies, 0.9),
            percentile(latencies, 0.99)
        );
    }
    println!("\n| added over the bare KMS call | p50 | p99 |\n|---|---:|---:|");
    for (name, _, latencies, _) in &runs[1..] {
        println!(
            "| {name} | {:+.3} ms | {:+.3} ms |",
            percentile(latencies, 0.5) - percentile(&base, 0.5),
            percentile(latencies, 0.99) - percentile(&base, 0.99)
        );
    }

    // A fixed 1,000 requests/s over mTLS, from 8 connections, for `seconds`: one worker
    // (the default), then two; each build in turn.
    let loaded: Vec<&(String, Serve, bool)> = order.iter().map(|&i| &servers[i]).filter(|s| s.2).collect();
    for (name, serve, _) in &loaded {
        fixed_rate(serve, &pki, &digests, seconds, name).await?;
    }
    // As many as 8 connections get answered, for `seconds`: the throughput ceiling.
    for (name, serve, _) in &loaded {
        let mut tasks = tokio::task::JoinSet::new();
        let deadline = Instant::now() + Duration::from_secs(seconds);
        for w in 0..8usize {
            let mut conn = serve.connect(Some(&pki.client(true))).await?;
            let digests = digests.clone();
            tasks.spawn(async move {
                let mut n = 0usize;
                while Instant::now() < deadline {
                    conn.sign(&digests[(w * 7919 + n) % digests.len()]).await?;
                    n += 1;
                }
                anyhow::Ok(n)
            });
        }
        let mut total = 0;
        while let Some(n) = tasks.join_next().await {
            total += n??;
        }
        println!("\nthroughput, {name}, 8 connections: {:.0} signatures/s", total as f64 / seconds as f64);
    }
    Ok(())
}

/// Holds 1,000 requests/s against `serve` from 8 connections for `seconds`.
async fn fixed_rate(serve: &Serve, pki: &Pki, digests: &[[u8; 32]], seconds: u64, name: &str) -> anyhow::Result<()> {
    let mut pool = Vec::new();
    for _ in 0..8 {
        pool.push(Arc::new(tokio::sync::Mutex::new(serve.connect(Some(&pki.client(true))).await?)));
    }
    let total = 1000 * seconds as usize;
    let (cpu, wall) = (serve.cpu(), Instant::now());
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut sent = tokio::task::JoinSet::new();
    let late = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    for i in 0..total {
        tick.tick().await;
        let (conn, d, late) = (pool[i % pool.len()].clone(), digests[1000 + i % (digests.len() - 1000)], late.clone());
        sent.spawn(async move {
            let t = Instant::now();
            let ok = conn.lock().await.sign(&d).await.is_ok();
            if t.elapsed() > Duration::from_millis(50) {
                late.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            ok
        });
    }
    let mut ok = 0;
    while let Some(r) = sent.join_next().await {
        ok += usize::from(r.unwrap_or(false));
    }
    let (cpu, wall) = (serve.cpu() - cpu, wall.elapsed().as_secs_f64());
    println!(
        "\nfixed rate, {name}: {ok} of {total} signed in {wall:.2} s ({:.0} req/s); serve used {:.1}% of one core \
         ({:.3} ms CPU per request); {} answers took over 50 ms",
        ok as f64 / wall,
        cpu / wall * 100.0,
        cpu / ok.max(1) as f64 * 1e3,
        late.load(std::sync::atomic::Ordering::Relaxed)
    );
    Ok(())
}

fn digest(i: usize) -> [u8; 32] {
    let mut d = [0x5a; 32];
    d[..8].copy_from_slice(&(i as u64).to_be_bytes());
    d
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// The manifest and the state `keyrite serve` reads.
fn write_stack(dir: &Path, key: &SigningKey) -> anyhow::Result<()> {
    use k256::pkcs8::EncodePublicKey;
    std::fs::write(
        dir.join("keyrite.yaml"),
        "version: 1\nprovider:\n  aws:\n    region: us-east-1\nresources:\n  bench_key:\n    type: aws_kms_key\n    \
         policy:\n      generated:\n        signers: [\"arn:aws:iam::000000000000:role/bench\"]\n\
         signers:\n  bench:\n    key: bench_key\n    mode: digest\n",
    )?;
    let public = k256::PublicKey::from(key.verifying_key());
    let spki = public.to_public_key_der()?;
    let mut state = keyrite::state::State::new(None);
    state.resources.insert(
        "bench_key".into(),
        keyrite::state::ResourceState {
            kind: "aws_kms_key".into(),
            id: KEY_ID.into(),
            attrs: Default::default(),
            outputs: serde_json::from_value(json!({
                "arn": format!("arn:aws:kms:us-east-1:000000000000:key/{KEY_ID}"),
                "key_id": KEY_ID,
                "public_key": B64.encode(spki.as_bytes()),
                "address": keyrite::crypto::evm_address(&public).to_string(),
            }))?,
            depends_on: Default::default(),
            updated_at: keyrite::state::now(),
        },
    );
    std::fs::write(dir.join("keyrite.state.json"), serde_json::to_vec_pretty(&state)?)?;
    Ok(())
}

/// Certificates for the server and one client, made here; the access list names the client.
struct Pki {
    dir: PathBuf,
    ca: rcgen::CertifiedIssuer<'static, rcgen::KeyPair>,
    client_cert: rcgen::Certificate,
    client_key: rcgen::KeyPair,
}

impl Pki {
    fn new(dir: &Path) -> anyhow::Result<Pki> {
        use rcgen::{CertificateParams, DnType, KeyPair};
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, "bench CA");
        let ca = rcgen::CertifiedIssuer::self_signed(params, KeyPair::generate()?)?;
        let leaf = |sans: Vec<String>, cn: &str| -> anyhow::Result<(rcgen::Certificate, KeyPair)> {
            let key = KeyPair::generate()?;
            let mut p = CertificateParams::new(sans)?;
            p.distinguished_name = rcgen::DistinguishedName::new();
            p.distinguished_name.push(DnType::CommonName, cn);
            Ok((p.signed_by(&key, &ca)?, key))
        };
        let (server, server_key) = leaf(vec!["localhost".into()], "serve")?;
        let (client_cert, client_key) = leaf(vec!["bundler.internal".into()], "bundler")?;
        std::fs::write(dir.join("ca.pem"), ca.pem())?;
        std::fs::write(dir.join("server.pem"), server.pem())?;
        std::fs::write(dir.join("server.key"), server_key.serialize_pem())?;
        std::fs::write(
            dir.join("access.yaml"),
            "clients:\n  bundler:\n    certificate: {san: dns:bundler.internal}\n    signers: [bench]\n",
        )?;
        Ok(Pki { dir: dir.to_owned(), ca, client_cert, client_key })
    }

    fn server_args(&self, mutual: bool) -> Vec<String> {
        let path = |f: &str| self.dir.join(f).to_string_lossy().into_owned();
        let mut args = vec!["--tls-cert".into(), path("server.pem"), "--tls-key".into(), path("server.key")];
        if mutual {
            args.extend(["--client-ca".into(), path("ca.pem"), "--access".into(), path("access.yaml")]);
        }
        args
    }

    fn client(&self, mutual: bool) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca.der().clone()).unwrap();
        let builder =
            rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots);
        Arc::new(if mutual {
            let key = rustls_pki_types::PrivateKeyDer::try_from(self.client_key.serialize_der()).unwrap();
            builder.with_client_auth_cert(vec![self.client_cert.der().clone()], key).unwrap()
        } else {
            builder.with_no_client_auth()
        })
    }
}

/// A `keyrite serve` process.
struct Serve {
    child: Child,
    addr: SocketAddr,
}

impl Serve {
    fn start(binary: &Path, dir: &Path, kms: &str, extra: &[String]) -> anyhow::Result<Serve> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        drop(listener);
        let audit = dir.join(format!("audit-{}.jsonl", addr.port()));
        let child = Command::new(binary)
            .args(["serve", "--listen", &addr.to_string(), "--rate", "0", "--health-interval", "3600"])
            .arg("--audit-log")
            .arg(&audit)
            .args(extra)
            .current_dir(dir)
            .env("AWS_ENDPOINT_URL", kms)
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(addr).is_err() {
            anyhow::ensure!(Instant::now() < deadline, "keyrite serve did not listen on {addr}");
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(Serve { child, addr })
    }

    /// Seconds on CPU so far, over every thread.
    fn cpu(&self) -> f64 {
        let tasks = format!("/proc/{}/task", self.child.id());
        let mut ns = 0u64;
        for task in std::fs::read_dir(tasks).into_iter().flatten().flatten() {
            if let Ok(text) = std::fs::read_to_string(task.path().join("schedstat")) {
                ns += text.split_whitespace().next().and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
            }
        }
        ns as f64 / 1e9
    }

    async fn connect(&self, tls: Option<&Arc<rustls::ClientConfig>>) -> anyhow::Result<Conn> {
        let tcp = tokio::net::TcpStream::connect(self.addr).await?;
        tcp.set_nodelay(true)?;
        let sender = match tls {
            Some(config) => {
                let name = rustls_pki_types::ServerName::try_from("localhost")?;
                let stream = tokio_rustls::TlsConnector::from(config.clone()).connect(name, tcp).await?;
                let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
                tokio::spawn(conn);
                sender
            }
            None => {
                let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
                tokio::spawn(conn);
                sender
            }
        };
        Ok(Conn { sender })
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One kept-alive connection to serve.
struct Conn {
    sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
}

impl Conn {
    async fn sign(&mut self, digest: &[u8; 32]) -> anyhow::Result<()> {
        let body = format!(r#"{{"hash":"0x{}"}}"#, hex::encode(digest));
        let request = http::Request::post("/sign/bench")
            .header("host", "localhost")
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))?;
        self.sender.ready().await?;
        let response = self.sender.send_request(request).await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        anyhow::ensure!(status.is_success(), "HTTP {status}: {}", String::from_utf8_lossy(&body));
        Ok(())
    }
}

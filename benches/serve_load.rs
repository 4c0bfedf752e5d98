//! Load generator for `keyrite serve`: throughput, and the latency serve adds over the bare
//! KMS `Sign` call it wraps. Run by `scripts/bench-serve.sh`, which starts the emulator,
//! applies a key and starts `keyrite serve`; this program only measures.
//!
//!   serve_load <serve-url> <key-id> <requests> <concurrency>
//!
//! The bare KMS figure uses the same SDK client configuration keyrite uses (environment
//! endpoint and credentials), signing the same kind of 32-byte prehash.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use keyrite::signer::KmsSigner;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, url, key_id, requests, concurrency] = args.as_slice() else {
        anyhow::bail!("usage: serve_load <serve-url> <key-id> <requests> <concurrency>");
    };
    let (requests, concurrency): (usize, usize) = (requests.parse()?, concurrency.parse()?);
    let url = url.clone();
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest()).load().await;
    let signer = Arc::new(KmsSigner::connect(aws_sdk_kms::Client::new(&config), key_id).await?);

    let kms = run(requests, concurrency, {
        let signer = signer.clone();
        move |i| {
            let signer = signer.clone();
            async move { signer.sign_der(&digest(i)).await.map(|_| ()).map_err(|e| e.to_string()) }
        }
    })
    .await;
    report("bare KMS Sign (SDK)", &kms);

    let http = Arc::new(keyrite::selftest::http_client()?);
    let address = signer.address.to_string();
    let served = run(requests, concurrency, move |i| {
        let (http, url, address) = (http.clone(), url.clone(), address.clone());
        async move {
            let body = format!(r#"{{"hash":"0x{}","signerAddress":"{address}"}}"#, hex::encode(digest(i)));
            let req = http::Request::post(url.as_str())
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from(body)))
                .map_err(|e| e.to_string())?;
            let resp = http.request(req).await.map_err(|e| e.to_string())?;
            let status = resp.status();
            let _ = resp.into_body().collect().await.map_err(|e| e.to_string())?;
            if status.is_success() { Ok(()) } else { Err(format!("HTTP {status}")) }
        }
    })
    .await;
    report("keyrite serve (HTTP → KMS → r‖s‖v)", &served);
    let p50 = |r: &Run| percentile(&r.latencies, 0.50);
    println!("added latency at p50: {:.2} ms", p50(&served) - p50(&kms));
    Ok(())
}

fn digest(i: usize) -> [u8; 32] {
    let mut d = [0x5a; 32];
    d[..8].copy_from_slice(&(i as u64).to_be_bytes());
    d
}

struct Run {
    latencies: Vec<f64>,
    errors: usize,
    elapsed: Duration,
}

async fn run<F, Fut>(requests: usize, concurrency: usize, op: F) -> Run
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<(), String>> + Send,
{
    let op = Arc::new(op);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let start = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let (op, next) = (op.clone(), next.clone());
        workers.spawn(async move {
            let (mut lat, mut errors) = (Vec::new(), 0);
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= requests {
                    return (lat, errors);
                }
                let t = Instant::now();
                match op(i).await {
                    Ok(()) => lat.push(t.elapsed().as_secs_f64() * 1e3),
                    Err(_) => errors += 1,
                }
            }
        });
    }
    let (mut latencies, mut errors) = (Vec::new(), 0);
    while let Some(Ok((l, e))) = workers.join_next().await {
        latencies.extend(l);
        errors += e;
    }
    latencies.sort_by(f64::total_cmp);
    Run { latencies, errors, elapsed: start.elapsed() }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn report(name: &str, r: &Run) {
    let ok = r.latencies.len();
    println!(
        "{name:<38} {ok} ok, {} errors, {:.0} req/s, latency ms p50 {:.2} p90 {:.2} p99 {:.2} max {:.2}",
        r.errors,
        ok as f64 / r.elapsed.as_secs_f64(),
        percentile(&r.latencies, 0.50),
        percentile(&r.latencies, 0.90),
        percentile(&r.latencies, 0.99),
        percentile(&r.latencies, 1.0),
    );
}

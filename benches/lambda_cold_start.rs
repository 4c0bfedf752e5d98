//! Cold start, warm latency and maximum resident set of deployed signer functions, on the
//! emulator, which runs them as Lambda would (a `provided.*` bootstrap through the Runtime
//! API, a Node.js handler in its Node runtime). Run by scripts/bench-lambda.sh after it has
//! applied the stacks:
//!
//!     cargo bench --bench lambda_cold_start -- ROUNDS FUNCTION...
//!
//! Each round changes every function's configuration (an environment variable
//! `KEYRITE_BENCH_ROUND`), so that its next invocation starts a new environment, then
//! invokes it twice with the same request: the first answer (cold: process start,
//! initialisation, GetPublicKey, the request) and the second (warm), as the client sees them.
//! It reads the new environment's peak RSS (`VmHWM` of the process whose environment has this
//! function's name and round) and, for the Rust signer, the timings its bootstrap logs.

use std::time::{Duration, Instant};

use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{Environment, LastUpdateStatus, LogType};
use base64::Engine;
use serde_json::json;

#[derive(Default)]
struct Samples {
    cold_ms: Vec<f64>,
    warm_ms: Vec<f64>,
    rss_kib: Vec<u64>,
    logged: Vec<String>,
}

/// The peak RSS of the process serving `function` in `round`, from /proc.
fn peak_rss_kib(function: &str, round: usize) -> Option<u64> {
    let name = format!("AWS_LAMBDA_FUNCTION_NAME={function}");
    let mark = format!("KEYRITE_BENCH_ROUND={round}");
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(environ) = std::fs::read(entry.path().join("environ")) else { continue };
        let vars: Vec<&[u8]> = environ.split(|b| *b == 0).collect();
        if vars.contains(&name.as_bytes()) && vars.contains(&mark.as_bytes()) {
            let status = std::fs::read_to_string(entry.path().join("status")).ok()?;
            let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
            return line.split_whitespace().nth(1)?.parse().ok();
        }
    }
    None
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mut args = std::env::args().skip(1).filter(|a| a != "--bench");
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).expect("usage: ROUNDS FUNCTION...");
    let functions: Vec<String> = args.collect();
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest()).load().await;
    let lambda = aws_sdk_lambda::Client::new(&sdk);
    let mut results: Vec<(String, Samples, i64)> = Vec::new();
    for f in &functions {
        let out = lambda.get_function().function_name(f).send().await.expect("the function exists");
        let size = out.configuration().map(|c| c.code_size()).unwrap_or_default();
        results.push((f.clone(), Samples::default(), size));
    }
    for round in 0..rounds {
        for (function, samples, _) in &mut results {
            let config = lambda.get_function_configuration().function_name(function.as_str()).send().await.unwrap();
            let mut vars = config.environment().and_then(|e| e.variables()).cloned().unwrap_or_default();
            let address = vars.get("EXPECTED_ADDRESS").cloned().unwrap_or_default();
            vars.insert("KEYRITE_BENCH_ROUND".into(), round.to_string());
            lambda
                .update_function_configuration()
                .function_name(function.as_str())
                .environment(Environment::builder().set_variables(Some(vars)).build())
                .send()
                .await
                .unwrap();
            loop {
                let c = lambda.get_function_configuration().function_name(function.as_str()).send().await.unwrap();
                if c.last_update_status().is_none_or(|s| *s == LastUpdateStatus::Successful) {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let body = json!({"hash": format!("0x{}", "ab".repeat(32)), "signerAddress": address}).to_string();
            let event = json!({"version": "2.0", "requestContext": {"http": {"method": "POST"}}, "body": body, "isBase64Encoded": false});
            let payload = Blob::new(event.to_string());
            for cold in [true, false] {
                let t = Instant::now();
                let out = lambda
                    .invoke()
                    .function_name(function.as_str())
                    .log_type(LogType::Tail)
                    .payload(payload.clone())
                    .send()
                    .await
                    .unwrap();
                let ms = t.elapsed().as_secs_f64() * 1000.0;
                let answer: serde_json::Value =
                    serde_json::from_slice(out.payload().map(|p| p.as_ref()).unwrap_or_default()).unwrap_or_default();
                assert!(out.function_error().is_none() && answer["statusCode"] == 200, "{function}: {answer}");
                if cold {
                    samples.cold_ms.push(ms);
                    let log = out.log_result().and_then(|l| base64::engine::general_purpose::STANDARD.decode(l).ok());
                    let log = String::from_utf8_lossy(&log.unwrap_or_default()).into_owned();
                    samples.logged.extend(log.lines().filter(|l| l.contains("keyrite signer:")).map(str::to_owned));
                } else {
                    samples.warm_ms.push(ms);
                }
            }
            samples.rss_kib.extend(peak_rss_kib(function, round));
        }
    }
    println!("| function | code size | cold first answer (median, min-max) | warm answer (median) | peak RSS (max) |");
    println!("| --- | ---: | ---: | ---: | ---: |");
    for (function, s, size) in &mut results {
        let (lo, hi) =
            (s.cold_ms.iter().copied().fold(f64::MAX, f64::min), s.cold_ms.iter().copied().fold(0.0, f64::max));
        let rss = s.rss_kib.iter().max().map_or("not found".to_owned(), |k| format!("{:.1} MiB", *k as f64 / 1024.0));
        println!(
            "| {function} | {:.1} MiB | {:.0} ms ({lo:.0}-{hi:.0}) | {:.1} ms | {rss} |",
            *size as f64 / 1048576.0,
            median(&mut s.cold_ms),
            median(&mut s.warm_ms)
        );
    }
    for (function, s, _) in &results {
        for line in &s.logged {
            println!("{function}: {line}");
        }
    }
}

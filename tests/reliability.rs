//! Reliability, proved by breaking things: an apply of 20 resources through a proxy that
//! injects 5xx, throttling, connection resets (before and after the emulator acted) and
//! delays; and many trials that `kill -9` keyrite at a random moment of an apply and then
//! re-run it. Every trial must converge with exactly one key per declared key, nothing
//! orphaned, and an empty plan. Trial counts and outcomes are printed (run with
//! `--nocapture` to see them) and recorded in RELIABILITY.md.

use crate::common;

use std::collections::BTreeSet;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::fault_proxy::{FaultProxy, Faults};
use common::{Emulator, Workdir};

const GROUPS: usize = 5;

/// 20 resources: per group a role (with a generated inline policy, planned as its own
/// resource), a key whose policy names the role, and an alias.
fn manifest() -> String {
    let mut m = String::from("version: 1\nresources:\n");
    for i in 0..GROUPS {
        m += &format!(
            "  role{i}:\n    type: aws_iam_role\n    name: keyrite-reliability-{i}\n    trust: {{services: [lambda.amazonaws.com]}}\n    policies:\n      sign: {{generated: {{sign_keys: [\"${{key{i}.arn}}\"]}}}}\n    tags: {{group: \"{i}\"}}\n  key{i}:\n    type: aws_kms_key\n    description: reliability key {i}\n    policy: {{generated: {{signers: [\"${{role{i}.arn}}\"]}}}}\n    tags: {{group: \"{i}\"}}\n  alias{i}:\n    type: aws_kms_alias\n    name: alias/reliability-{i}\n    target_key: ${{key{i}.key_id}}\n"
        );
    }
    m
}

/// Keys (not pending deletion) and roles carrying this lineage's ownership tag.
async fn tagged(emu: &Emulator, lineage: &str) -> (BTreeSet<String>, BTreeSet<String>) {
    let (kms, iam) = (emu.kms().await, emu.iam().await);
    let mut keys = BTreeSet::new();
    for key in kms.list_keys().limit(1000).send().await.unwrap().keys() {
        let id = key.key_id().unwrap();
        let tags = kms.list_resource_tags().key_id(id).send().await.unwrap();
        let ours = tags.tags().iter().any(|t| t.tag_key() == "keyrite:lineage" && t.tag_value() == lineage);
        let state = kms
            .describe_key()
            .key_id(id)
            .send()
            .await
            .unwrap()
            .key_metadata()
            .unwrap()
            .key_state()
            .unwrap()
            .as_str()
            .to_owned();
        if ours && state != "PendingDeletion" {
            keys.insert(id.to_owned());
        }
    }
    let mut roles = BTreeSet::new();
    for role in iam.list_roles().send().await.unwrap().roles() {
        let tags = iam.list_role_tags().role_name(role.role_name()).send().await.unwrap();
        if tags.tags().iter().any(|t| t.key() == "keyrite:lineage" && t.value() == lineage) {
            roles.insert(role.role_name().to_owned());
        }
    }
    (keys, roles)
}

/// Asserts the converged end state: empty plan, one key and one role per group, every
/// tagged resource recorded in the state, no create intent left.
async fn assert_converged(emu: &Emulator, w: &Workdir) -> String {
    let plan = w.keyrite(emu, &["plan", "--detailed-exitcode"]);
    assert_eq!(plan.code, 0, "plan after convergence is not empty:\n{}\n{}", plan.stdout, plan.stderr);
    let state = w.state();
    let lineage = state["lineage"].as_str().unwrap().to_owned();
    assert!(state.get("pending").is_none(), "create intents left in state: {}", state["pending"]);
    let resources = state["resources"].as_object().unwrap();
    assert_eq!(resources.len(), GROUPS * 4);
    let (keys, roles) = tagged(emu, &lineage).await;
    assert_eq!(keys.len(), GROUPS, "expected exactly {GROUPS} keys with this lineage, found {keys:?}");
    let recorded: BTreeSet<String> =
        (0..GROUPS).map(|i| resources[&format!("key{i}")]["id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(keys, recorded, "a tagged key is not in the state (orphan) or vice versa");
    assert_eq!(roles.len(), GROUPS, "roles: {roles:?}");
    lineage
}

#[tokio::test(flavor = "multi_thread")]
async fn an_apply_of_twenty_resources_converges_under_injected_faults() {
    let emu = Emulator::start();
    let faults = Faults {
        server_error: 0.04,
        throttle: 0.04,
        reset_before: 0.04,
        reset_after: 0.05,
        delay: 0.04,
        max_delay_ms: 400,
        ..Faults::default()
    };
    let rounds = 4;
    let mut resets_after = 0;
    for round in 0..rounds {
        let seed = 0x5eed_u64 + round;
        let proxy = FaultProxy::start(&emu.endpoint, faults, seed);
        let w = Workdir::with_text(
            &manifest()
                .replace("keyrite-reliability-", &format!("keyrite-r{round}-"))
                .replace("alias/reliability-", &format!("alias/r{round}-")),
        );
        let mut runs = 0;
        let mut first_error = None;
        loop {
            runs += 1;
            let r = w.keyrite_via(&proxy.endpoint, &["apply", "--auto-approve", "--parallelism", "6"]);
            if r.code == 0 {
                break;
            }
            first_error.get_or_insert(r.stderr.clone());
            assert!(r.stderr.contains("re-run apply to converge"), "a failed run must say what to do:\n{}", r.stderr);
            assert!(runs < 3, "round {round}: did not converge in 3 runs under faults; last error:\n{}", r.stderr);
        }
        println!(
            "fault round {round} (seed {seed}): {} — converged after {runs} apply run(s){}",
            proxy.counts,
            first_error
                .map(|e| format!("; first failure: {}", e.lines().last().unwrap_or_default().trim()))
                .unwrap_or_default()
        );
        resets_after += proxy.counts.reset_after.load(std::sync::atomic::Ordering::Relaxed);
        assert_converged(&emu, &w).await;
    }
    assert!(resets_after > 0, "no response was lost after the emulator acted: the hardest case went untested");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lost_create_key_response_never_makes_a_second_key() {
    let emu = Emulator::start();
    let faults = Faults { lose_first_response_of: Some("TrentService.CreateKey"), ..Faults::default() };
    let proxy = FaultProxy::start(&emu.endpoint, faults, 1);
    let w = Workdir::with_text(&manifest());
    // KMS created the key, keyrite never heard: it must find that key, not make another.
    w.keyrite_via(&proxy.endpoint, &["apply", "--auto-approve"]).expect(0);
    assert!(
        proxy.counts.targeted_fired.load(std::sync::atomic::Ordering::Relaxed),
        "the CreateKey response was not lost"
    );
    assert_eq!(proxy.counts.reset_after.load(std::sync::atomic::Ordering::Relaxed), 1);
    assert_converged(&emu, &w).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_dash_nine_at_any_moment_of_an_apply_then_a_rerun_converges_without_duplicates() {
    let trials: usize = std::env::var("KEYRITE_CRASH_TRIALS").ok().and_then(|v| v.parse().ok()).unwrap_or(16);
    let seed: u64 = std::env::var("KEYRITE_CRASH_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64
    });
    let mut rng = seed | 1;
    let mut roll = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        (rng >> 11) as f64 / (1u64 << 53) as f64
    };
    // Kills are placed by progress, not by the clock, so that they cover the whole apply
    // however loaded the machine is: wait until the state records a random number of
    // resources (0–19), then kill after a further random 0–150 ms. Delays on the proxy
    // (some after the emulator acted) widen the windows between a create and its record.
    let slow = Faults { delay: 0.3, delay_after: 0.4, max_delay_ms: 250, ..Faults::default() };
    println!("crash trials: {trials}, seed {seed} (KEYRITE_CRASH_SEED reproduces)");
    println!(
        "{:>5} {:>7} {:>8} {:>10} {:>8} {:>8}  outcome",
        "trial", "wait_n", "kill_ms", "recorded", "intents", "adopted"
    );
    let mut summary = (0usize, 0usize, 0usize);
    for trial in 0..trials {
        let emu = Emulator::start();
        let proxy = FaultProxy::start(&emu.endpoint, slow, seed.wrapping_add(trial as u64));
        let w = Workdir::with_text(&manifest());
        let wait_for = (roll() * (GROUPS * 4) as f64) as usize;
        let extra = Duration::from_millis((roll() * 150.0) as u64);
        let state_path = w.path().join("keyrite.state.json");
        let recorded_now = || {
            std::fs::read_to_string(&state_path)
                .ok()
                .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
                .map_or(0, |s| s["resources"].as_object().map_or(0, |r| r.len()))
        };
        let mut child = w
            .command(&proxy.endpoint, &["apply", "--auto-approve", "--parallelism", "4"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let start = Instant::now();
        let mut reached: Option<Instant> = None;
        let finished = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break Some(status);
            }
            if reached.is_none() && recorded_now() >= wait_for {
                reached = Some(Instant::now());
            }
            if reached.is_some_and(|r| r.elapsed() >= extra) {
                child.kill().unwrap(); // SIGKILL
                child.wait().unwrap();
                break None;
            }
            std::thread::sleep(Duration::from_millis(2));
        };
        let kill_after = start.elapsed();
        let (recorded, intents) = match std::fs::read_to_string(w.path().join("keyrite.state.json")) {
            Ok(text) => {
                let s: serde_json::Value = serde_json::from_str(&text).expect("the state file is never torn");
                (s["resources"].as_object().map_or(0, |r| r.len()), s["pending"].as_object().map_or(0, |p| p.len()))
            }
            Err(_) => (0, 0),
        };
        let rerun = w.keyrite(&emu, &["apply", "--auto-approve"]);
        assert_eq!(rerun.code, 0, "trial {trial}: re-run failed\n{}\n{}", rerun.stdout, rerun.stderr);
        let adopted = rerun
            .stdout
            .lines()
            .find_map(|l| l.strip_prefix("Plan: ").and_then(|r| r.split(" to adopt").next()?.parse::<usize>().ok()))
            .unwrap_or(0);
        assert_converged(&emu, &w).await;
        let outcome =
            if finished.is_some() { "finished before the kill; converged" } else { "killed; re-run converged" };
        println!(
            "{trial:>5} {wait_for:>7} {:>8} {recorded:>10} {intents:>8} {adopted:>8}  {outcome}",
            kill_after.as_millis()
        );
        summary.0 += usize::from(finished.is_none());
        summary.1 += adopted;
        summary.2 += intents;
    }
    println!(
        "crash summary: {trials} trials, {} killed mid-apply, {} create intents found after kills, {} resources adopted on re-run, 0 duplicate keys, 0 orphans",
        summary.0, summary.2, summary.1
    );
    assert!(summary.0 * 4 >= trials * 3, "at least three quarters of the trials should kill keyrite mid-apply");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_key_replacement_interrupted_after_create_key_adopts_the_new_key_and_retires_the_old() {
    let emu = Emulator::start();
    let w = Workdir::with_example("treasury.yaml");
    w.keyrite(&emu, &["apply", "--auto-approve"]).expect(0);
    let old = w.id("treasury_key");
    let lineage = w.state()["lineage"].as_str().unwrap().to_owned();
    let text = std::fs::read_to_string(&w.manifest)
        .unwrap()
        .replace("description: Treasury hot signer", "description: Treasury hot signer\n    key_spec: ECC_NIST_P256");
    std::fs::write(&w.manifest, text).unwrap();

    // What `kill -9` right after CreateKey leaves: the new key, tagged at birth, and the
    // intent in the state; the state still records the old key.
    let kms = emu.kms().await;
    let tag = |k: &str, v: &str| aws_sdk_kms::types::Tag::builder().tag_key(k).tag_value(v).build().unwrap();
    let new = kms
        .create_key()
        .key_spec(aws_sdk_kms::types::KeySpec::EccNistP256)
        .key_usage(aws_sdk_kms::types::KeyUsageType::SignVerify)
        .tags(tag("keyrite:lineage", &lineage))
        .tags(tag("keyrite:address", "treasury_key"))
        .tags(tag("team", "treasury"))
        .tags(tag("purpose", "evm-signing"))
        .send()
        .await
        .unwrap()
        .key_metadata()
        .unwrap()
        .key_id()
        .to_owned();
    let path = w.path().join("keyrite.state.json");
    let mut state = w.state();
    state["pending"] = serde_json::json!({"treasury_key": {"type": "aws_kms_key", "replacing": old, "started_at": "2026-11-21T00:00:00Z"}});
    std::fs::write(&path, serde_json::to_string_pretty(&state).unwrap()).unwrap();

    let plan = w.keyrite(&emu, &["plan"]).expect(0);
    assert!(plan.stdout.contains("found in the cloud by its ownership tags"), "{}", plan.stdout);
    assert!(plan.stdout.contains("treasury_key#replaced"), "{}", plan.stdout);
    assert!(!plan.stdout.contains("will be REPLACED"), "no second new key is planned:\n{}", plan.stdout);
    w.keyrite(&emu, &["apply", "--auto-approve", "--allow-key-deletion"]).expect(0);

    assert_eq!(w.id("treasury_key"), new, "the key made before the crash is the one recorded");
    let state_of = |id: String| {
        let kms = kms.clone();
        async move {
            kms.describe_key()
                .key_id(id)
                .send()
                .await
                .unwrap()
                .key_metadata()
                .unwrap()
                .key_state()
                .unwrap()
                .as_str()
                .to_owned()
        }
    };
    assert_eq!(state_of(old.clone()).await, "PendingDeletion", "the old key is retired with its window");
    let (keys, _) = tagged(&emu, &lineage).await;
    assert_eq!(keys, BTreeSet::from([new.clone()]), "exactly one live key for the address");
    w.keyrite(&emu, &["plan", "--detailed-exitcode"]).expect(0);
    assert!(w.state().get("pending").is_none());
}

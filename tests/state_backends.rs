//! State backends under contention, in separate processes: local file and S3 (on the
//! emulator). Two concurrent applies on the same state: exactly one proceeds, the other
//! fails at once naming the lock holder. Plus S3's optimistic writes and force-unlock.

use crate::common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::fault_proxy::{FaultProxy, Faults};
use common::{Emulator, Workdir};
use keyrite::state::s3::S3Backend;

const MANIFEST: &str = "version: 1\nresources:\n  key:\n    type: aws_kms_key\n    description: contended\n  alias:\n    type: aws_kms_alias\n    name: alias/contended\n    target_key: ${key.key_id}\n";

/// Starts two applies at once through a slow proxy (so they overlap) and returns their
/// outcomes.
fn race(w: &Workdir, endpoint: &str) -> Vec<common::Run> {
    let spawn = || {
        w.command(endpoint, &["apply", "--auto-approve"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    [a, b].into_iter().map(|c| common::Run::from(c.wait_with_output().unwrap())).collect()
}

fn assert_exactly_one_proceeded(runs: &[common::Run], elapsed_loser_bound: Duration, start: Instant) {
    let winners = runs.iter().filter(|r| r.code == 0).count();
    assert_eq!(
        winners,
        1,
        "exactly one apply must proceed:\n{}",
        runs.iter().map(|r| format!("{} {}\n{}", r.code, r.stdout, r.stderr)).collect::<String>()
    );
    let loser = runs.iter().find(|r| r.code != 0).unwrap();
    assert!(
        loser.stderr.contains("is locked by")
            && loser.stderr.contains("keyrite apply")
            && loser.stderr.contains("lock id"),
        "{}",
        loser.stderr
    );
    assert!(start.elapsed() < elapsed_loser_bound + Duration::from_secs(30));
}

#[tokio::test(flavor = "multi_thread")]
async fn two_concurrent_applies_on_local_state_exactly_one_proceeds() {
    let emu = Emulator::start();
    let slow = FaultProxy::start(&emu.endpoint, Faults { delay: 1.0, max_delay_ms: 300, ..Faults::default() }, 7);
    let w = Workdir::with_text(MANIFEST);
    let start = Instant::now();
    let runs = race(&w, &slow.endpoint);
    assert_exactly_one_proceeded(&runs, Duration::from_secs(5), start);
    w.keyrite(&emu, &["plan", "--detailed-exitcode"]).expect(0);
}

#[tokio::test(flavor = "multi_thread")]
async fn s3_state_locks_across_processes_writes_optimistically_and_force_unlocks() {
    let emu = Emulator::start();
    emu.s3().await.create_bucket().bucket("keyrite-state").send().await.unwrap();
    let manifest =
        format!("{MANIFEST}state:\n  s3:\n    bucket: keyrite-state\n    key: ceremony/keyrite.state.json\n");
    let w = Workdir::with_text(&manifest);

    // Concurrent applies: one wins the conditional put of the lock object.
    let slow = FaultProxy::start(&emu.endpoint, Faults { delay: 1.0, max_delay_ms: 300, ..Faults::default() }, 11);
    let start = Instant::now();
    let runs = race(&w, &slow.endpoint);
    assert_exactly_one_proceeded(&runs, Duration::from_secs(5), start);
    assert!(!w.path().join("keyrite.state.json").exists(), "state went to S3, not to disk");
    w.keyrite(&emu, &["plan", "--detailed-exitcode"]).expect(0);
    let show = w.keyrite(&emu, &["show", "--format", "json"]).expect(0).json();
    assert_eq!(show["resources"].as_array().unwrap().len(), 2);

    // A holder that died leaves the lock object behind: applies fail naming it, until
    // force-unlock with its id removes it.
    let backend = S3Backend::new(emu.s3().await, "keyrite-state", "ceremony/keyrite.state.json");
    let lock = backend.lock("apply").await.unwrap();
    let blocked = w.keyrite(&emu, &["apply", "--auto-approve"]).expect(1);
    assert!(blocked.stderr.contains(&lock.info.id), "{}", blocked.stderr);
    let wrong = w.keyrite(&emu, &["force-unlock", "not-the-id"]).expect(1);
    assert!(wrong.stderr.contains("nothing removed"), "{}", wrong.stderr);
    let unlocked = w.keyrite(&emu, &["force-unlock", &lock.info.id]).expect(0);
    assert!(unlocked.stdout.contains("removed lock"), "{}", unlocked.stdout);
    w.keyrite(&emu, &["apply", "--auto-approve"]).expect(0);

    // Optimistic writes: a write based on a stale read is refused, not applied.
    let (a, b) = (
        S3Backend::new(emu.s3().await, "keyrite-state", "ceremony/keyrite.state.json"),
        S3Backend::new(emu.s3().await, "keyrite-state", "ceremony/keyrite.state.json"),
    );
    let mut state_a = a.read().await.unwrap().unwrap();
    let mut state_b = b.read().await.unwrap().unwrap();
    state_b.serial += 1;
    b.write(&state_b).await.unwrap();
    state_a.serial += 1;
    let err = a.write(&state_a).await.unwrap_err().to_string();
    assert!(err.contains("was written by someone else"), "{err}");
    assert_eq!(a.read().await.unwrap().unwrap().serial, state_b.serial, "the other writer's state survived");
}

//! The quorum gate's own CPU per authorization (`cargo bench --bench quorum_gate [--
//! requests]`): [`keyrite_core::gate::Gate::authorize`] over a request as the gate receives
//! it (the enrolment's JSON and k armored SSHSIG approvals), for k = 2, 3 and 5 approvers of
//! five, with ed25519 keys and with ECDSA P-256 keys, all in one run. An authorization is:
//! the JSON, the enrolment's shape and scope, its EIP-712 digest, k SSHSIG decodings and
//! signature checks against the allowed signers, and the tally. The KMS call that follows an
//! authorization is not in it (the Lambda signer's benchmark measures that path).
//!
//! CPU is the process's user + system time (`CLOCK_PROCESS_CPUTIME_ID`): the mean from one
//! reading around a whole run, p50/p99 from a reading around each request.

use keyrite_core::ceremony::approval;
use keyrite_core::ceremony::enrolment::{self, Domain, Enrolment, TypedEnrolment};
use keyrite_core::crypto::Address;
use keyrite_core::gate::{Gate, Scope};
use serde_json::json;
use ssh_key::PrivateKey;
use ssh_key::private::{EcdsaKeypair, Ed25519Keypair, KeypairData};

fn cpu_micros() -> f64 {
    let mut t = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes one timespec through a valid pointer.
    assert_eq!(unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut t) }, 0);
    t.tv_sec as f64 * 1e6 + t.tv_nsec as f64 / 1e3
}

fn key(kind: &str, seed: u8) -> PrivateKey {
    let data: KeypairData = match kind {
        "ed25519" => Ed25519Keypair::from_seed(&[seed; 32]).into(),
        _ => {
            let secret = p256::SecretKey::from_slice(&[seed; 32]).unwrap();
            let public = p256::elliptic_curve::sec1::ToEncodedPoint::to_encoded_point(&secret.public_key(), false);
            KeypairData::Ecdsa(EcdsaKeypair::NistP256 { public, private: secret.into() })
        }
    };
    PrivateKey::new(data, "").unwrap()
}

fn main() {
    let requests: usize = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(5000);
    let wallet: Address = "0x5FbDB2315678afecb367f032d93F642f64180aa3".parse().unwrap();
    let domain =
        Domain { name: "Treasury Wallet".into(), version: "1".into(), chain_id: 11155111, verifying_contract: wallet };
    let now = 1_800_000_000;
    let typed = TypedEnrolment {
        domain: domain.clone(),
        message: Enrolment {
            wallet,
            new_signer: Address([0x11; 20]),
            replaces: Address([0x22; 20]),
            nonce: 8,
            deadline: now + 3600,
        },
    };
    println!("| approvers | keys | requests | mean CPU (µs) | p50 (µs) | p99 (µs) | request bytes |");
    println!("|---|---|---:|---:|---:|---:|---:|");
    for kind in ["ed25519", "ecdsa-p256"] {
        let keys: Vec<PrivateKey> = (1..=5).map(|seed| key(kind, seed)).collect();
        let allowed: String = keys
            .iter()
            .enumerate()
            .map(|(i, k)| format!("approver-{i}@example.com {}\n", k.public_key().to_openssh().unwrap()))
            .collect();
        for k in [2, 3, 5] {
            let gate = Gate::new(&allowed, k, Scope { domain: domain.clone(), wallet }).unwrap();
            let approvals: Vec<String> = keys[..k]
                .iter()
                .map(|key| approval::sign(key, enrolment::NAMESPACE, &typed.digest()).unwrap())
                .collect();
            let body = json!({"enrolment": typed.to_json(), "approvals": approvals}).to_string().into_bytes();
            assert_eq!(gate.authorize(&body, now).unwrap().approvers.len(), k);
            for _ in 0..requests.min(500) {
                std::hint::black_box(gate.authorize(&body, now).is_ok());
            }
            let mut each = Vec::with_capacity(requests);
            let start = cpu_micros();
            for _ in 0..requests {
                let before = cpu_micros();
                std::hint::black_box(gate.authorize(std::hint::black_box(&body), now).is_ok());
                each.push(cpu_micros() - before);
            }
            let mean = (cpu_micros() - start) / requests as f64;
            each.sort_by(f64::total_cmp);
            let at = |q: f64| each[((each.len() as f64 * q) as usize).min(each.len() - 1)];
            println!(
                "| {k} of 5 | {kind} | {requests} | {mean:.1} | {:.1} | {:.1} | {} |",
                at(0.5),
                at(0.99),
                body.len()
            );
        }
    }
}

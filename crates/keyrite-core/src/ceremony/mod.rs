//! Key ceremonies: a plan approved by a quorum of named people, applied, proved, and recorded
//! so that an auditor can check it offline.
//!
//! The pieces, each pure but for reading the files it is given:
//! - [`allowed_signers`]: who may approve (OpenSSH's allowed_signers format);
//! - [`approval`]: an approval is an SSHSIG over the exact plan bytes, in the namespace
//!   `keyrite-plan@v1`, so `ssh-keygen -Y sign` makes one and `ssh-keygen -Y verify` checks
//!   one; approvals count by distinct principal, never by signature;
//! - [`enrolment`]: the EIP-712 message a recovery key signs to enrol a new operational
//!   signer, approved in the namespace `keyrite-enrolment@v1`;
//! - [`words`]: a plan's SHA-256 as PGP words, read aloud and compared out of band;
//! - [`record`]: the in-toto statement a ceremony leaves, with its proofs of possession;
//! - [`dsse`]: the envelope the statement travels in, signed by the operator (and later by
//!   witnesses), which third-party DSSE verifiers accept;
//! - [`verify`]: the offline checks of a record and of a chain of records;
//! - [`keys`]: the operator's and approvers' OpenSSH key files.
//!
//! The commands that run a ceremony live in `commands/ceremony.rs`.

pub mod allowed_signers;
pub mod approval;
pub mod dsse;
pub mod enrolment;
pub mod keys;
pub mod record;
pub mod verify;
pub mod words;

use std::path::{Path, PathBuf};

/// The approvals kept next to a plan: `PLAN.sig` (what `ssh-keygen -Y sign` writes) and
/// `PLAN.<name>.sig` (what `keyrite approve` writes, one per approver), in name order.
pub fn approval_files(plan: &Path) -> std::io::Result<Vec<PathBuf>> {
    let dir = match plan.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let Some(stem) = plan.file_name().and_then(|n| n.to_str()) else { return Ok(Vec::new()) };
    let mut found = Vec::new();
    for entry in std::fs::read_dir(&dir)? {
        let path = entry?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else { continue };
        let Some(rest) = name.strip_prefix(stem) else { continue };
        if rest == ".sig" || (rest.starts_with('.') && rest.ends_with(".sig")) {
            found.push(path);
        }
    }
    found.sort();
    Ok(found)
}

/// Where `keyrite approve` writes an approval: `PLAN.<principal>.sig`, with characters a file
/// name should not hold replaced.
pub fn approval_path(plan: &Path, principal: &str) -> PathBuf {
    let safe: String =
        principal.chars().map(|c| if c.is_ascii_alphanumeric() || "@._-+".contains(c) { c } else { '_' }).collect();
    let mut name = plan.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(format!(".{safe}.sig"));
    plan.with_file_name(name)
}

/// One approval file's verdict.
#[derive(Debug)]
pub struct Checked {
    pub file: PathBuf,
    pub result: Result<approval::Verified, approval::Error>,
    /// The armored signature as read.
    pub armored: String,
}

/// The approvals of a plan, checked: every file next to the plan, against the allowed
/// signers, over the exact plan bytes, at time `now`.
pub fn check_approvals(
    plan_path: &Path,
    plan_bytes: &[u8],
    signers: &[allowed_signers::AllowedSigner],
    now: u64,
) -> std::io::Result<Vec<Checked>> {
    let mut out = Vec::new();
    for file in approval_files(plan_path)? {
        let armored = std::fs::read_to_string(&file)?;
        let result = approval::verify(&armored, plan_bytes, approval::PLAN_NAMESPACE, signers, now, None);
        out.push(Checked { file, result, armored });
    }
    Ok(out)
}

/// Seconds since the Unix epoch, now.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn approvals_sit_next_to_the_plan() {
        let dir = tempfile::tempdir().unwrap();
        let plan = dir.path().join("ceremony.plan");
        for name in [
            "ceremony.plan",
            "ceremony.plan.sig",
            "ceremony.plan.alice@example.com.sig",
            "other.plan.sig",
            "ceremony.planx.sig",
        ] {
            std::fs::write(dir.path().join(name), "x").unwrap();
        }
        let found: Vec<String> = approval_files(&plan)
            .unwrap()
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(found, ["ceremony.plan.alice@example.com.sig", "ceremony.plan.sig"]);
        assert_eq!(approval_path(&plan, "bob/x y").file_name().unwrap(), "ceremony.plan.bob_x_y.sig");
    }
}

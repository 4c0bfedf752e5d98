//! `keyrite policy diff`: the same policy comparison drift uses, on two files.

use std::path::Path;

use anyhow::Context;

use super::Status;
use crate::policy::{Policy, diff as policy_diff};

pub fn diff(a: &Path, b: &Path) -> anyhow::Result<Status> {
    let read = |p: &Path| -> anyhow::Result<Policy> {
        let text = std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))?;
        Policy::from_text(&text).with_context(|| format!("{} is not a valid policy", p.display()))
    };
    let (pa, pb) = (read(a)?, read(b)?);
    let d = policy_diff(&pa, &pb);
    if d.is_empty() {
        println!("The policies are equivalent.");
        Ok(Status::Ok)
    } else {
        println!("The policies differ ({} → {}):", a.display(), b.display());
        print!("{d}");
        Ok(Status::Changes)
    }
}

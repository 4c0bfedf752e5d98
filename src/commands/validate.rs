//! `keyrite validate`: check a manifest offline.

use super::Status;
use crate::cli::ManifestArg;

pub fn run(arg: &ManifestArg) -> anyhow::Result<Status> {
    let manifest = crate::manifest::load(&arg.file)?;
    let n = manifest.resources.len();
    println!("{}: valid ({n} resource{})", arg.file.display(), if n == 1 { "" } else { "s" });
    let findings = crate::lint::manifest(&manifest);
    if !findings.is_empty() {
        eprint!("{}", crate::render::human::lint(&findings));
    }
    Ok(Status::Ok)
}

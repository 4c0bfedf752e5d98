//! `keyrite show`: the state, offline.

use anyhow::bail;

use super::{Status, load};
use crate::cli::ManifestArg;
use crate::render::{Format, json};

pub async fn run(arg: &ManifestArg, format: Format) -> anyhow::Result<Status> {
    let (_, store) = load(arg).await?;
    let Some(state) = super::read_state(&store).await? else { bail!("no state at {}", store.describe()) };
    match format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&json::show(&state))?),
        Format::Human => {
            println!("state {} (lineage {}, serial {})", store.describe(), state.lineage, state.serial);
            for (address, r) in &state.resources {
                match r.kind.as_str() {
                    "aws_kms_key" | "gcp_kms_crypto_key" => println!(
                        "  {address} ({}, {} slot): {}",
                        r.kind,
                        crate::manifest::Slot::of(&r.attrs).as_str(),
                        r.id
                    ),
                    _ => println!("  {address} ({}): {}", r.kind, r.id),
                }
                for (k, v) in &r.outputs {
                    println!("      {k} = {}", v.as_str().map(str::to_owned).unwrap_or_else(|| v.to_string()));
                }
            }
        }
    }
    Ok(Status::Ok)
}

//! The Cloud KMS stand-in as a program, for trying keyrite's GCP provider by hand and for the
//! demo: `cargo run --example gcp-kms-standin -- [PORT]` prints its endpoint and serves until
//! killed.

#[path = "mod.rs"]
mod gcp_standin;

fn main() {
    let port: u16 = std::env::args().nth(1).map(|p| p.parse().expect("PORT must be a number")).unwrap_or(0);
    let kms = gcp_standin::GcpKms::start_on(std::net::SocketAddr::from(([127, 0, 0, 1], port)));
    println!("{}", kms.endpoint);
    kms.wait();
}

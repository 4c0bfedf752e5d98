//! `keyrite-lambda-signer`: the `bootstrap` of a keyrite Rust signer on Lambda's
//! `provided.al2023` runtime: [`keyrite_lambda_signer::run`], the Lambda Runtime API loop
//! around the signer core `keyrite serve` signs with.

use std::process::ExitCode;

fn main() -> ExitCode {
    let started = std::time::Instant::now();
    // One invocation at a time per container: a single thread is all Lambda gives it use for.
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("keyrite signer: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(keyrite_lambda_signer::run(started)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("keyrite signer: {e:#}");
            ExitCode::from(1)
        }
    }
}

//! keyrite's entry point: parse the command line, run, map the result to an exit status.
//! The only place errors are printed.

use std::process::ExitCode;

use clap::Parser;
use keyrite::cli::Cli;
use keyrite::commands;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // keyrite's one TLS backend, for every client that asks rustls for the process's default
    // (Google's clients among them). A build that also compiles rustls's ring backend (the
    // Lambda signer's, when the workspace is built together) would otherwise have none.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    keyrite::provider::set_verbose(cli.verbose);
    // `serve` with one worker (its default) runs on the main thread alone: no scheduler
    // shared between threads, no atomics or queues to hand a task to a worker.
    let mut builder = match &cli.command {
        keyrite::cli::Command::Serve { options, .. } if options.workers == 1 => {
            tokio::runtime::Builder::new_current_thread()
        }
        keyrite::cli::Command::Serve { options, .. } => {
            let mut builder = tokio::runtime::Builder::new_multi_thread();
            builder.worker_threads(usize::from(options.workers));
            builder
        }
        _ => tokio::runtime::Builder::new_multi_thread(),
    };
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(commands::run(cli)) {
        Ok(status) => ExitCode::from(status as u8),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

//! keyrite's entry point: parse the command line, run, map the result to an exit status.
//! The only place errors are printed.

use std::process::ExitCode;

use clap::Parser;
use keyrite::cli::Cli;
use keyrite::commands;

fn main() -> ExitCode {
    let cli = Cli::parse();
    keyrite::provider::set_verbose(cli.verbose);
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let keyrite::cli::Command::Serve { options, .. } = &cli.command {
        builder.worker_threads(usize::from(options.workers));
    }
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

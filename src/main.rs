//! The `rtnode` command line: parsed here, run by the subcommands in
//! [`cli`]; an error prints its chain and exits non-zero.

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    match cli::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("rtnode: {e:#}");
            ExitCode::FAILURE
        }
    }
}

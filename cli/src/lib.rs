//! `sdp`: the deployer CLI of the Streaming Data Platform.
//!
//! Layering: `args` (clap only) → `commands/*` (one module per command) → pure modules
//! (`regions`, `templates`, `render`, `stack`, `probe`, `cost`). Only `aws/` touches the AWS SDK, and only
//! `http` talks to the platform's own APIs (for `sdp verify` and `sdp load`); nothing here depends
//! on the runtime's AWS adapters. `sdp local` runs the platform through `sdp-local`, and
//! `sdp query` reads its lake through `sdp-query`.
//!
//! Cargo features (all on by default): `aws` (the commands that talk to AWS, and `tls`), `tls`
//! (HTTPS for verify and load), `query` (DataFusion). A build without them runs `sdp local`,
//! `render`, and `verify` / `load` against URLs, and names the feature a left-out command needs.
//!
//! Output discipline (CONTRACT.md §1): results go to stdout, progress and errors to stderr, and the
//! exit code says what happened ([`exit::Failure`]).

pub mod args;
#[cfg(feature = "aws")]
pub mod aws;
pub mod commands;
pub mod cost;
pub mod exit;
pub mod http;
pub mod package;
pub mod probe;
pub mod regions;
pub mod render;
pub mod stack;
pub mod templates;
pub mod ui;

use std::ffi::OsString;
use std::process::ExitCode;

use clap::Parser;

/// Runs `sdp` with the given command line and returns the exit code of CONTRACT.md §1.
pub fn run<I, T>(argv: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = match args::Cli::try_parse_from(argv) {
        Ok(cli) => cli,
        Err(err) => {
            // clap prints help/version to stdout (exit 0) and usage errors to stderr (exit 2).
            let _ = err.print();
            return ExitCode::from(if err.use_stderr() { exit::USAGE } else { 0 });
        }
    };
    match commands::dispatch(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("error: {}", failure.describe());
            ExitCode::from(failure.code())
        }
    }
}

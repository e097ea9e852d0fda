//! The command line, declared with clap and nothing else: no I/O, no validation beyond syntax.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// sdp — the Streaming Data Platform deployer.
#[derive(Debug, Parser)]
#[command(name = "sdp", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the exact CloudFormation template that a deploy to REGION would send.
    Render(RenderArgs),
}

#[derive(Debug, clap::Args)]
pub struct RenderArgs {
    /// Region to render for (one of the supported regions; see `regions/`).
    #[arg(long, env = "AWS_REGION")]
    pub region: String,

    /// Write the template to DIR/sdp-REGION.yaml instead of stdout.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

//! The command line, declared with clap and nothing else: no I/O, no validation beyond syntax.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

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
    /// Package the functions, upload them by content hash, and create or update the stack
    /// through a change set; print the platform's URLs.
    Deploy(DeployArgs),
    /// Print the stack's outputs (the platform's URLs and bucket).
    Outputs(OutputsArgs),
    /// Delete the stack; the data bucket, aggregates table and key are kept.
    Destroy(DestroyArgs),
    /// Show the stack's state, its latest operation and its outputs.
    Status(StatusArgs),
    /// Show the changes a deploy would make, without making them.
    Diff(DiffArgs),
    /// Follow the stack's running operation to its end (re-attach after --timeout or Ctrl-C).
    Watch(WatchArgs),
    /// Run the platform on this machine, on loopback, with no AWS account: the ingestion and
    /// report APIs, stream processing and aggregates, kept in DIR across restarts.
    Local(LocalArgs),
}

#[derive(Debug, clap::Args)]
pub struct LocalArgs {
    /// Where the event log and the database live (created if missing; kept across restarts).
    #[arg(long, value_name = "DIR", default_value = ".sdp/local")]
    pub data_dir: PathBuf,

    /// The loopback port of the APIs (0 picks a free one).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,

    /// A processing parameter, as for `sdp deploy`: AggregationPeriod, BidsSessionTimeout or
    /// ClicksSessionTimeout (minutes).
    #[arg(long = "param", value_name = "KEY=VALUE")]
    pub params: Vec<String>,

    /// Retrain the win-probability model every SECONDS when new bids arrived (the trainer Lambda's
    /// schedule); a new model serves only if it is not worse on held-out bids.
    #[arg(long, value_name = "SECONDS", default_value_t = 300)]
    pub train_every: u64,

    /// How to print the URLs on stdout.
    #[arg(long, value_enum, default_value = "table")]
    pub format: OutputFormat,
}

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub stack: StackArgs,
}

#[derive(Debug, clap::Args)]
pub struct DiffArgs {
    #[command(flatten)]
    pub stack: StackArgs,

    /// A stack parameter, as for `sdp deploy`.
    #[arg(long = "param", value_name = "KEY=VALUE")]
    pub params: Vec<String>,

    /// Directory holding `<function>/bootstrap` for every function (scripts/build-lambdas).
    #[arg(long, value_name = "DIR", default_value = "target/lambda")]
    pub artifacts: PathBuf,
}

#[derive(Debug, clap::Args)]
pub struct WatchArgs {
    #[command(flatten)]
    pub stack: StackArgs,

    /// Stop waiting after SECONDS (exit 3); the operation goes on.
    #[arg(long, value_name = "SECONDS")]
    pub timeout: Option<u64>,
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

/// Where a stack is: the region and its name.
#[derive(Debug, Clone, clap::Args)]
pub struct StackArgs {
    /// AWS region (one of the supported regions).
    #[arg(long, env = "AWS_REGION")]
    pub region: String,

    /// Name of the CloudFormation stack.
    #[arg(long, default_value = "sdp", env = "SDP_STACK_NAME")]
    pub stack_name: String,
}

#[derive(Debug, clap::Args)]
pub struct DeployArgs {
    #[command(flatten)]
    pub stack: StackArgs,

    /// A stack parameter, e.g. `--param AggregationPeriod=5` (repeatable). Parameters not given
    /// keep their current value on an update, and their default on a create.
    #[arg(long = "param", value_name = "KEY=VALUE")]
    pub params: Vec<String>,

    /// Apply the change set without asking. Required when not on a terminal.
    #[arg(long)]
    pub yes: bool,

    /// Create a change set even when the template, parameters and code equal what is deployed.
    #[arg(long)]
    pub force: bool,

    /// Skip the pre-flight that asks IAM's policy simulator whether you may create every
    /// resource (it simulates on resource `*`, so grants on named resources only look missing).
    #[arg(long)]
    pub skip_permission_check: bool,

    /// Also write the outputs as JSON to FILE (merged with what it holds, replaced atomically).
    #[arg(long, value_name = "FILE")]
    pub outputs_file: Option<PathBuf>,

    /// Directory holding `<function>/bootstrap` for every function (scripts/build-lambdas).
    #[arg(long, value_name = "DIR", default_value = "target/lambda")]
    pub artifacts: PathBuf,

    /// Stop waiting after SECONDS (exit 3); the stack operation goes on.
    #[arg(long, value_name = "SECONDS")]
    pub timeout: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Table,
    Json,
    Env,
}

#[derive(Debug, clap::Args)]
pub struct OutputsArgs {
    #[command(flatten)]
    pub stack: StackArgs,

    #[arg(long, value_enum, default_value = "table")]
    pub format: OutputFormat,
}

#[derive(Debug, clap::Args)]
pub struct DestroyArgs {
    #[command(flatten)]
    pub stack: StackArgs,

    /// Delete without asking. Required when not on a terminal.
    #[arg(long)]
    pub yes: bool,

    /// Also delete the data the stack keeps: empty and delete the data bucket (every version),
    /// delete the aggregates table, schedule the key's deletion (7 days). Irreversible.
    #[arg(long)]
    pub purge_data: bool,

    /// Stop waiting after SECONDS (exit 3); the deletion goes on.
    #[arg(long, value_name = "SECONDS")]
    pub timeout: Option<u64>,
}

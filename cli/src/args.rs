//! The command line, declared with clap and nothing else: no I/O, no validation beyond syntax.

use std::path::PathBuf;
use std::time::Duration;

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
    /// SQL over the lake of `sdp local`: the raw_* and parquet_* tables, as on Athena. Without
    /// SQL, reads statements from stdin (interactively on a terminal).
    Query(QueryArgs),
    /// Check a running platform end to end: send a tagged run of the integration scenario (with
    /// duplicates and invalid requests), wait for the report to count it exactly, check the
    /// refusals and a prediction. Exit 0 only if everything held.
    Verify(VerifyArgs),
    /// Offer a constant rate of realistic bid/impression/click traffic (an open model) and report
    /// throughput, errors and latency percentiles; then check the reports counted exactly what was
    /// accepted.
    Load(LoadArgs),
    /// Estimate what a deployment costs a month on AWS, line by line: the platform's own units
    /// per event (checked against its handlers) priced from the region's public unit prices,
    /// with the idle cost and the assumptions behind what no test measures.
    Cost(CostArgs),
}

/// Where the platform is: a deployed stack (URLs from its outputs), or URLs given directly (e.g.
/// the ones `sdp local` prints). The URLs win when both are given.
#[derive(Debug, Clone, clap::Args)]
pub struct TargetArgs {
    /// AWS region of the deployed stack.
    #[arg(long, env = "AWS_REGION")]
    pub region: Option<String>,

    /// Name of the deployed stack.
    #[arg(long, default_value = "sdp", env = "SDP_STACK_NAME")]
    pub stack_name: String,

    /// The ingestion API's base URL (UrlForAPI).
    #[arg(long, value_name = "URL", requires_all = ["reports", "predictions"])]
    pub api: Option<String>,

    /// The reports API's base URL (UrlForReports).
    #[arg(long, value_name = "URL", requires_all = ["api", "predictions"])]
    pub reports: Option<String>,

    /// The predictions API's URL (UrlForPredictions).
    #[arg(long, value_name = "URL", requires_all = ["api", "reports"])]
    pub predictions: Option<String>,

    /// The API key, for a stack deployed with ApiAuth=API_KEY.
    #[arg(long, value_name = "KEY", env = "SDP_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub target: TargetArgs,

    /// Bids to send (N).
    #[arg(long, default_value_t = 100)]
    pub bids: usize,

    /// Bids that get an impression (M ≤ N).
    #[arg(long, default_value_t = 60)]
    pub impressions: usize,

    /// Impressions that get a click (K ≤ M).
    #[arg(long, default_value_t = 25)]
    pub clicks: usize,

    /// Requests in flight at once.
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,

    /// How long to wait for the report to count the run exactly, e.g. 120s or 5m.
    #[arg(long, value_name = "DURATION", default_value = "120s", value_parser = parse_duration)]
    pub deadline: Duration,

    /// Progress and result as lines (`text`), or one JSON summary on stdout (`json`).
    #[arg(long, value_enum, default_value = "text")]
    pub format: ReportFormat,
}

#[derive(Debug, clap::Args)]
pub struct LoadArgs {
    #[command(flatten)]
    pub target: TargetArgs,

    /// Requests per second to offer, whatever the answers (constant arrival rate).
    #[arg(long)]
    pub rate: f64,

    /// How long to offer it, e.g. 30s or 5m.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub duration: Duration,

    /// Events per request: 1 posts each to its own route; more post batches of that many to
    /// `{UrlForAPI}/events` (at most 500).
    #[arg(long, default_value_t = 1)]
    pub batch: usize,

    /// Requests in flight at most; an arrival beyond it waits, and the wait counts in its latency.
    #[arg(long, default_value_t = 256)]
    pub connections: usize,

    /// A request with no answer after this long counts as failed, e.g. 10s.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub timeout: Duration,

    /// How long to wait for the reports to count every accepted event, e.g. 120s.
    #[arg(long, value_name = "DURATION", default_value = "120s", value_parser = parse_duration)]
    pub deadline: Duration,

    /// Result as lines (`text`), or one JSON summary on stdout (`json`).
    #[arg(long, value_enum, default_value = "text")]
    pub format: ReportFormat,
}

#[derive(Debug, clap::Args)]
pub struct CostArgs {
    /// Steady events per second to price.
    #[arg(long, value_name = "N", default_value_t = 1000.0)]
    pub events_per_second: f64,

    /// Events per ingestion request: 1 posts each to its own route; more, batches to
    /// `{UrlForAPI}/events` (at most 500).
    #[arg(long, value_name = "B", default_value_t = 1)]
    pub batch_size: usize,

    /// Campaigns with traffic (each processor batch adds to one aggregate per campaign).
    #[arg(long, value_name = "N", default_value_t = 100)]
    pub campaigns: u32,

    /// Region whose prices to use.
    #[arg(long, default_value = "us-east-1")]
    pub region: String,

    /// Shards of the event stream; by default the fewest the rate needs.
    #[arg(long)]
    pub shards: Option<u32>,

    /// Instruction set of the functions (the stack's LambdaArchitecture).
    #[arg(long, value_enum, default_value = "x86-64")]
    pub architecture: CostArchitecture,

    /// How DynamoDB is billed (the stack's StateCapacity).
    #[arg(long, value_enum, default_value = "on-demand")]
    pub capacity: CostCapacity,

    /// The bill as a table (`text`), or one JSON document on stdout (`json`).
    #[arg(long, value_enum, default_value = "text")]
    pub format: ReportFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CostCapacity {
    OnDemand,
    Provisioned,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CostArchitecture {
    #[value(name = "x86-64", alias = "x86_64")]
    X86_64,
    Arm64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    Text,
    Json,
}

#[derive(Debug, clap::Args)]
pub struct QueryArgs {
    /// The data directory of `sdp local`.
    #[arg(long, value_name = "DIR", default_value = ".sdp/local")]
    pub data_dir: PathBuf,

    /// How to print each result.
    #[arg(long, value_enum, default_value = "table")]
    pub format: QueryFormat,

    /// The statements to run, `;`-separated; read from stdin when omitted.
    #[arg(value_name = "SQL")]
    pub sql: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum QueryFormat {
    /// An aligned table with a row count.
    Table,
    /// A JSON array of row objects, every column in every object (null when empty).
    Json,
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

    /// Retrain the win-probability model every DURATION when new compacted data landed (the
    /// trainer Lambda's schedule); a new model serves only if it is not worse on held-out bids.
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = parse_duration)]
    pub train_every: Duration,

    /// Look for closed hours of the raw lake (ended 20 minutes ago or more) every DURATION and
    /// compact them into Parquet (the compactor Lambda's schedule).
    #[arg(long, value_name = "DURATION", default_value = "1m", value_parser = parse_duration)]
    pub compact_every: Duration,

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

    /// Stop waiting after DURATION, e.g. 30m (exit 3); the operation goes on.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub timeout: Option<Duration>,
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

    /// Stop waiting after DURATION, e.g. 30m (exit 3); the stack operation goes on.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub timeout: Option<Duration>,
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

    /// Stop waiting after DURATION, e.g. 30m (exit 3); the deletion goes on.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub timeout: Option<Duration>,
}

/// A duration as every flag of sdp takes one: `500ms`, `30s`, `2m`, `1h`, or a bare number of
/// seconds (`--timeout 600` means ten minutes). Never zero.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(at) => text.split_at(at),
        None => (text, "s"),
    };
    let value: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration like 30s, 2m or 1h"))?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => return Err(format!("`{text}` is not a duration like 30s, 2m or 1h")),
    };
    if !(seconds > 0.0 && seconds.is_finite()) {
        return Err(format!("`{text}` must be more than zero"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("5").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("fast")
            .unwrap_err()
            .contains("not a duration"));
    }
}

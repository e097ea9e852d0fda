//! One module per command. Each turns resolved arguments into effects and a [`Failure`] on error.

mod cost;
#[cfg(feature = "aws")]
mod deploy;
#[cfg(feature = "aws")]
mod destroy;
#[cfg(feature = "aws")]
mod diff;
mod load;
mod local;
mod outputs;
#[cfg(feature = "query")]
mod query;
mod render;
#[cfg(feature = "aws")]
mod status;
mod target;
mod verify;
#[cfg(feature = "aws")]
mod watch;

use anyhow::anyhow;

use crate::args::{Cli, Command};
use crate::exit::Failure;

pub fn dispatch(cli: Cli) -> Result<(), Failure> {
    match cli.command {
        Command::Render(args) => render::run(&args),
        #[cfg(feature = "aws")]
        Command::Deploy(args) => block_on(deploy::run(&args)),
        #[cfg(feature = "aws")]
        Command::Outputs(args) => block_on(outputs::run(&args)),
        #[cfg(feature = "aws")]
        Command::Destroy(args) => block_on(destroy::run(&args)),
        #[cfg(feature = "aws")]
        Command::Status(args) => block_on(status::run(&args)),
        #[cfg(feature = "aws")]
        Command::Diff(args) => block_on(diff::run(&args)),
        #[cfg(feature = "aws")]
        Command::Watch(args) => block_on(watch::run(&args)),
        #[cfg(not(feature = "aws"))]
        Command::Deploy(_)
        | Command::Outputs(_)
        | Command::Destroy(_)
        | Command::Status(_)
        | Command::Diff(_)
        | Command::Watch(_) => Err(left_out("aws")),
        Command::Local(args) => local::run(&args),
        #[cfg(feature = "query")]
        Command::Query(args) => query::run(&args),
        #[cfg(not(feature = "query"))]
        Command::Query(_) => Err(left_out("query")),
        Command::Verify(args) => block_on(verify::run(&args)),
        Command::Load(args) => block_on_threads(load::run(&args)),
        Command::Cost(args) => cost::run(&args),
    }
}

/// The refusal of a command that this build of sdp leaves out (built without cargo `feature`).
#[cfg(not(all(feature = "aws", feature = "query")))]
fn left_out(feature: &str) -> Failure {
    Failure::CouldNotRun(anyhow!(
        "this build of sdp leaves out the `{feature}` feature that this command needs; \
         build sdp with its default features (cargo run --release -p sdp -- ...)"
    ))
}

fn block_on<F: std::future::Future<Output = Result<(), Failure>>>(
    future: F,
) -> Result<(), Failure> {
    run_on(tokio::runtime::Builder::new_current_thread(), future)
}

/// Like [`block_on`], on a runtime with a thread per core: for `sdp load`, whose answers must be
/// read while its clock keeps sending.
fn block_on_threads<F: std::future::Future<Output = Result<(), Failure>>>(
    future: F,
) -> Result<(), Failure> {
    run_on(tokio::runtime::Builder::new_multi_thread(), future)
}

fn run_on<F: std::future::Future<Output = Result<(), Failure>>>(
    mut builder: tokio::runtime::Builder,
    future: F,
) -> Result<(), Failure> {
    builder
        .enable_all()
        .build()
        .map_err(|e| Failure::CouldNotRun(anyhow!("cannot start the async runtime: {e}")))?
        .block_on(future)
}

/// The stack of `args`, which must exist: for the commands that read one (outputs, status, watch).
#[cfg(feature = "aws")]
async fn existing_stack(
    args: &crate::args::StackArgs,
) -> Result<
    (
        crate::aws::cloudformation::CloudFormation,
        crate::aws::cloudformation::Stack,
    ),
    Failure,
> {
    let (stack, region) = (args.stack_name.as_str(), args.region.as_str());
    crate::regions::load(region).map_err(|e| Failure::CouldNotRun(e.into()))?;
    let cfn =
        crate::aws::cloudformation::CloudFormation::new(&crate::aws::sdk_config(region).await);
    let current = cfn
        .describe_stack(stack)
        .await
        .map_err(Failure::Failed)?
        .ok_or_else(|| Failure::Failed(anyhow!("there is no stack `{stack}` in {region}")))?;
    Ok((cfn, current))
}

/// Fails at once, naming `--yes`, when a confirmation would be needed but nobody can answer
/// (CONTRACT.md §1: never prompt without a terminal).
#[cfg(feature = "aws")]
fn require_terminal_or_yes(yes: bool, what: &str) -> Result<(), Failure> {
    use std::io::IsTerminal;
    if yes || std::io::stdin().is_terminal() {
        Ok(())
    } else {
        Err(Failure::CouldNotRun(anyhow!(
            "{what} needs confirmation and there is no terminal to ask on; pass --yes"
        )))
    }
}

/// Asks `question` on the terminal; true only for an explicit yes.
#[cfg(feature = "aws")]
fn confirm(question: &str) -> Result<bool, Failure> {
    use std::io::{BufRead, Write};
    eprint!("{question} [y/N] ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .map_err(|e| Failure::Failed(anyhow!("cannot read the answer: {e}")))?;
    Ok(matches!(
        answer.trim().to_ascii_lowercase().as_str(),
        "y" | "yes"
    ))
}

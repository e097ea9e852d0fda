//! One module per command. Each turns resolved arguments into effects and a [`Failure`] on error.

mod deploy;
mod destroy;
mod diff;
mod load;
mod local;
mod outputs;
mod query;
mod render;
mod status;
mod target;
mod verify;
mod watch;

use std::io::{BufRead, IsTerminal, Write};

use anyhow::anyhow;

use crate::args::{Cli, Command};
use crate::exit::Failure;

pub fn dispatch(cli: Cli) -> Result<(), Failure> {
    match cli.command {
        Command::Render(args) => render::run(&args),
        Command::Deploy(args) => block_on(deploy::run(&args)),
        Command::Outputs(args) => block_on(outputs::run(&args)),
        Command::Destroy(args) => block_on(destroy::run(&args)),
        Command::Status(args) => block_on(status::run(&args)),
        Command::Diff(args) => block_on(diff::run(&args)),
        Command::Watch(args) => block_on(watch::run(&args)),
        Command::Local(args) => local::run(&args),
        Command::Query(args) => query::run(&args),
        Command::Verify(args) => block_on(verify::run(&args)),
        Command::Load(args) => block_on_threads(load::run(&args)),
    }
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
fn require_terminal_or_yes(yes: bool, what: &str) -> Result<(), Failure> {
    if yes || std::io::stdin().is_terminal() {
        Ok(())
    } else {
        Err(Failure::CouldNotRun(anyhow!(
            "{what} needs confirmation and there is no terminal to ask on; pass --yes"
        )))
    }
}

/// Asks `question` on the terminal; true only for an explicit yes.
fn confirm(question: &str) -> Result<bool, Failure> {
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

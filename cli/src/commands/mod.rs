//! One module per command. Each turns resolved arguments into effects and a [`Failure`] on error.

mod deploy;
mod destroy;
mod diff;
mod outputs;
mod render;
mod status;
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
    }
}

fn block_on<F: std::future::Future<Output = Result<(), Failure>>>(
    future: F,
) -> Result<(), Failure> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::CouldNotRun(anyhow!("cannot start the async runtime: {e}")))?
        .block_on(future)
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

//! One module per command. Each turns resolved arguments into effects and a [`Failure`] on error.

mod render;

use crate::args::{Cli, Command};
use crate::exit::Failure;

pub fn dispatch(cli: Cli) -> Result<(), Failure> {
    match cli.command {
        Command::Render(args) => render::run(&args),
    }
}

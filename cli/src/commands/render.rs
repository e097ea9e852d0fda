//! `sdp render`: the exact template a deploy would send, to stdout or a file.

use std::io::Write;

use anyhow::Context;

use crate::args::RenderArgs;
use crate::exit::Failure;
use crate::{regions, render, templates};

pub fn run(args: &RenderArgs) -> Result<(), Failure> {
    let region = regions::load(&args.region).map_err(|e| Failure::CouldNotRun(e.into()))?;
    let template = render::render_platform(&templates::embedded(), &region)
        .map_err(|e| Failure::CouldNotRun(e.into()))?;
    match &args.out {
        None => std::io::stdout()
            .lock()
            .write_all(template.text.as_bytes())
            .context("cannot write the template to stdout")
            .map_err(Failure::Failed),
        Some(dir) => {
            let path = dir.join(format!("sdp-{}.yaml", region.region));
            std::fs::create_dir_all(dir)
                .and_then(|()| std::fs::write(&path, &template.text))
                .with_context(|| format!("cannot write `{}`", path.display()))
                .map_err(Failure::Failed)?;
            eprintln!("wrote {}", path.display());
            Ok(())
        }
    }
}

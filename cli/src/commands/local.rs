//! `sdp local`: the platform on this machine. Prints the URLs as `sdp deploy` prints the stack
//! outputs, serves until Ctrl-C (or SIGTERM), then stops without losing an accepted event.

use anyhow::{anyhow, Context};

use sdp_core::join::JoinConfig;
use sdp_local::platform::{self, Options};

use crate::args::LocalArgs;
use crate::exit::Failure;
use crate::stack::parameters::StackParameters;
use crate::{regions, render, templates};

/// The stack parameters `sdp local` takes (the processing ones); their defaults and bounds are
/// the template's.
const PARAMETERS: &[&str] = &[
    "AggregationPeriod",
    "BidsSessionTimeout",
    "ClicksSessionTimeout",
];

pub fn run(args: &LocalArgs) -> Result<(), Failure> {
    let join = join_config(&args.params).map_err(Failure::CouldNotRun)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::CouldNotRun(anyhow!("cannot start the async runtime: {e}")))?;
    runtime.block_on(async {
        let stop = stop_requested().map_err(|e| {
            Failure::CouldNotRun(anyhow!("cannot listen for Ctrl-C and SIGTERM: {e}"))
        })?;
        let running = platform::start(Options {
            data_dir: args.data_dir.clone(),
            port: args.port,
            join,
            train_every: args.train_every,
            compact_every: args.compact_every,
        })
        .await
        .map_err(|e| Failure::CouldNotRun(e.into()))?;
        let urls = &running.urls;
        super::outputs::print(
            &[
                ("UrlForAPI".to_owned(), urls.api.clone()),
                ("UrlForReports".to_owned(), urls.reports.clone()),
                ("UrlForPredictions".to_owned(), urls.predictions.clone()),
                ("DataDir".to_owned(), args.data_dir.display().to_string()),
            ],
            args.format,
        );
        eprintln!(
            "sdp local is serving on {}; Ctrl-C stops it (accepted events are kept)",
            running.address
        );
        stop.await;
        eprintln!("stopping: finishing requests in flight and processing the log to its end");
        running.shutdown().await;
        eprintln!("stopped");
        Ok(())
    })
}

/// Completes on Ctrl-C or SIGTERM (how service managers and `kill` ask a process to stop). The
/// handlers are installed when this is called, before the URLs are printed: a stop sent the moment
/// they appear (by a test, a script, a service manager) is a clean one too, not the default
/// action's kill.
#[cfg(unix)]
fn stop_requested() -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
    })
}

#[cfg(not(unix))]
fn stop_requested() -> std::io::Result<impl std::future::Future<Output = ()>> {
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
    })
}

/// `KEY=VALUE` pairs of the processing parameters, over the template's defaults.
fn join_config(params: &[String]) -> anyhow::Result<JoinConfig> {
    // Parameters are the same in every region's template.
    let any = *regions::supported()
        .first()
        .context("no region is supported")?;
    let region = regions::load(any)?;
    let template = render::render_platform(&templates::embedded(), &region)?;
    let parameters = StackParameters::of(&template.document);
    let set = parameters.resolve(params, Some(PARAMETERS))?;
    let minutes = |name: &str| -> anyhow::Result<i64> {
        let value = parameters
            .value(&set, name)
            .ok_or_else(|| anyhow!("the template gives `{name}` no default"))?;
        value
            .parse()
            .map_err(|_| anyhow!("--param {name}: `{value}` is not a whole number of minutes"))
    };
    JoinConfig::from_minutes(
        minutes("AggregationPeriod")?,
        minutes("BidsSessionTimeout")?,
        minutes("ClicksSessionTimeout")?,
    )
    .map_err(|e| anyhow!("--param AggregationPeriod: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_default_like_the_stack_and_unknown_ones_are_named() {
        assert!(join_config(&[]).is_ok());
        assert!(join_config(&["AggregationPeriod=5".into()]).is_ok());
        let err = join_config(&["BufSize=5".into()]).unwrap_err().to_string();
        assert!(
            err.contains("`BufSize` is not a parameter of sdp local"),
            "{err}"
        );
        let err = join_config(&["AggregationPeriod=x".into()])
            .unwrap_err()
            .to_string();
        assert!(err.contains("not a number"), "{err}");
        let err = join_config(&["AggregationPeriod=1.5".into()])
            .unwrap_err()
            .to_string();
        assert!(err.contains("not a whole number"), "{err}");
        let err = join_config(&["BidsSessionTimeout=-1".into()])
            .unwrap_err()
            .to_string();
        assert!(err.contains("outside 0..=1440"), "{err}");
    }
}

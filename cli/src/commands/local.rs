//! `sdp local`: the platform on this machine. Prints the URLs as `sdp deploy` prints the stack
//! outputs, serves until Ctrl-C (or SIGTERM), then stops without losing an accepted event.

use anyhow::anyhow;

use sdp_core::join::JoinConfig;
use sdp_local::platform::{self, Options};

use crate::args::LocalArgs;
use crate::exit::Failure;

/// The processing parameters `sdp local` takes, with the stack's defaults (CONTRACT.md §3).
const PARAMETERS: &[(&str, i64)] = &[
    ("AggregationPeriod", 10),
    ("BidsSessionTimeout", 5),
    ("ClicksSessionTimeout", 5),
];

pub fn run(args: &LocalArgs) -> Result<(), Failure> {
    let join = join_config(&args.params).map_err(Failure::CouldNotRun)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::CouldNotRun(anyhow!("cannot start the async runtime: {e}")))?;
    runtime.block_on(async {
        let running = platform::start(Options {
            data_dir: args.data_dir.clone(),
            port: args.port,
            join,
            train_every: std::time::Duration::from_secs(args.train_every.max(1)),
            compact_every: std::time::Duration::from_secs(args.compact_every.max(1)),
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
        stopped().await;
        eprintln!("stopping: finishing requests in flight and processing the log to its end");
        running.shutdown().await;
        eprintln!("stopped");
        Ok(())
    })
}

/// Completes on Ctrl-C or SIGTERM (how service managers and `kill` ask a process to stop).
async fn stopped() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

/// `KEY=VALUE` pairs of the processing parameters, over their defaults.
fn join_config(params: &[String]) -> anyhow::Result<JoinConfig> {
    let mut values: Vec<(&str, i64)> = PARAMETERS.to_vec();
    for raw in params {
        let (key, value) = raw
            .split_once('=')
            .ok_or_else(|| anyhow!("--param `{raw}` is not KEY=VALUE"))?;
        let slot = values
            .iter_mut()
            .find(|(name, _)| *name == key)
            .ok_or_else(|| {
                let names: Vec<&str> = PARAMETERS.iter().map(|(n, _)| *n).collect();
                anyhow!(
                    "`{key}` is not a parameter of sdp local; it takes {}",
                    names.join(", ")
                )
            })?;
        slot.1 = value
            .parse()
            .map_err(|_| anyhow!("--param {key}: `{value}` is not a whole number of minutes"))?;
    }
    let [(_, aggregation), (_, bids), (_, clicks)] = values[..] else {
        return Err(anyhow!("internal: the parameter list changed shape"));
    };
    JoinConfig::from_minutes(aggregation, bids, clicks)
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
        assert!(err.contains("not a whole number"), "{err}");
    }
}

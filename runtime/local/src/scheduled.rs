//! The scheduled half of the platform on one machine: what EventBridge starts on AWS (the
//! compactor and the trainer Lambdas) runs here every so often, as the same `sdp-app` use cases
//! over the lake directory (`<data-dir>/lake`, an `FsObjects` store laid out as the S3 bucket's
//! keys). The only differences are the drivers': the period, and a report on stderr.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use sdp_app::compaction::{self, CompactionError, CompactionSettings};
use sdp_app::model_cache::ModelCache;
use sdp_app::models::ModelStore;
use sdp_app::retraining::{self, RetrainingSettings};
use sdp_core::ports::with_causes;
use sdp_fs::FsObjects;

/// The lake of a data directory: its bucket.
pub type Lake = Arc<FsObjects>;

/// Where models live in the lake, as under the stack's `MODEL_PREFIX`.
const MODEL_PREFIX: &str = "models/";

/// How long the predictions API serves a model before it looks for a newer promotion.
const MODEL_REFRESH: Duration = Duration::from_secs(1);

pub fn lake(data_dir: &Path) -> Lake {
    Arc::new(FsObjects::new(data_dir.join("lake")))
}

pub fn models(lake: &Lake) -> ModelStore<Lake> {
    ModelStore::new(Arc::clone(lake), MODEL_PREFIX)
}

/// The serving model of the predictions API: the promoted one (kept across restarts), else the
/// bootstrap.
pub fn model_cache(lake: &Lake) -> ModelCache<Lake> {
    ModelCache::new(models(lake), MODEL_REFRESH)
}

/// Clears what a process that died (`kill -9`, a crash, a power cut) left in the lake: temporary
/// files of writes it never renamed, its compaction locks, and Parquet files no manifest names,
/// which a query would read beside the partition's current generation. Run at the start that
/// follows one (`platform::RUNNING` was left behind), before anything else uses the lake; the
/// caller holds the data directory's lock, so no other process writes to it. A failure is
/// reported and the platform starts all the same: the next compaction run sweeps a partition's
/// older generations too.
pub async fn recover_after_crash(lake: &Lake) {
    match lake.remove_dead_temporaries() {
        Ok(0) => {}
        Ok(n) => eprintln!("recovery: removed {n} temporary file(s) of writes cut off by a crash"),
        Err(err) => eprintln!("recovery: looking for temporary files failed: {err}"),
    }
    match compaction::recover_after_crash(lake.as_ref()).await {
        Ok(removed) if removed.is_empty() => {}
        Ok(removed) => eprintln!(
            "recovery: removed what a compaction cut off by a crash left: {}",
            removed.join(", ")
        ),
        Err(err) => eprintln!("recovery: {}", with_causes(&err)),
    }
}

/// Compacts closed hours of the lake every `period` until `stop` turns true.
pub async fn compaction(lake: Lake, period: Duration, stop: watch::Receiver<bool>) {
    let settings = CompactionSettings::default();
    every(period, stop, move |now_ms| {
        match block_here(compaction::run(lake.as_ref(), &settings, now_ms)) {
            Ok(Ok(summary)) => report_compaction(&summary),
            Ok(Err(err)) => {
                // The partitions that did not fail were compacted all the same.
                if let CompactionError::Partitions { summary, .. } = &err {
                    report_compaction(summary);
                }
                eprintln!("compaction: {}", with_causes(&err));
            }
            Err(err) => eprintln!("compaction: {err}"),
        }
    })
    .await;
}

/// Retrains the model every `period` (a run without new compacted data does nothing).
pub async fn retraining(lake: Lake, period: Duration, stop: watch::Receiver<bool>) {
    let (settings, models) = (RetrainingSettings::default(), models(&lake));
    every(period, stop, move |now_ms| {
        match run_here(retraining::run(lake.as_ref(), &models, &settings, now_ms)) {
            Ok(record) if record["outcome"] != "no new data" => {
                eprintln!("retraining: {record}");
            }
            Ok(_) => {}
            Err(err) => eprintln!("retraining: {err}"),
        }
    })
    .await;
}

/// Calls `job` with the time every `period`, on a blocking thread (the lake's I/O and training
/// block), until `stop` turns true; a run in progress then finishes first.
async fn every(
    period: Duration,
    mut stop: watch::Receiver<bool>,
    job: impl Fn(i64) + Send + Sync + 'static,
) {
    let job = Arc::new(job);
    loop {
        tokio::select! {
            () = tokio::time::sleep(period) => {}
            _ = stop.changed() => return,
        }
        let (job, now_ms) = (Arc::clone(&job), crate::now_ms());
        if let Err(err) = tokio::task::spawn_blocking(move || job(now_ms)).await {
            eprintln!("a scheduled run failed: {err}");
        }
    }
}

/// Runs a future to its end on this (blocking) thread.
fn block_here<F: Future>(future: F) -> Result<F::Output, String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start a runtime: {e}"))?;
    Ok(runtime.block_on(future))
}

/// Runs a use case to its end on this (blocking) thread; its error with causes.
fn run_here<T, E: std::error::Error>(
    future: impl Future<Output = Result<T, E>>,
) -> Result<T, String> {
    block_here(future)?.map_err(|e| with_causes(&e))
}

/// One line per partition compacted and per line rejected.
fn report_compaction(summary: &serde_json::Value) {
    let entries = |name: &str| summary[name].as_array().cloned().unwrap_or_default();
    for partition in entries("compacted") {
        eprintln!(
            "compaction: {} holds {} rows in {}",
            partition["partition"].as_str().unwrap_or_default(),
            partition["rows"],
            partition["files"]
        );
    }
    for partition in entries("swept") {
        eprintln!(
            "compaction: {} had files of an older generation, removed: {}",
            partition["partition"].as_str().unwrap_or_default(),
            partition["removed"]
        );
    }
    for line in entries("rejected") {
        eprintln!(
            "compaction: {} line {}: {}",
            line["input"].as_str().unwrap_or_default(),
            line["line"],
            line["reason"].as_str().unwrap_or_default()
        );
    }
}

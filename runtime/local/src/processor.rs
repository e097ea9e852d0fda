//! The local stream processor, in place of the Kinesis-triggered Lambda: it reads the log after
//! the last processed sequence number, runs the Lambda's use case on each batch
//! (`sdp_app::processing`: count, then land in the raw lake, keeping a record that can never be
//! processed under `lake/dead-letter/`), and then saves the offset. A batch
//! processed again after a crash (before its offset was saved) changes nothing: the join state
//! records what was counted, as it does for Lambda's retries.

use std::time::{Duration, Instant};

use tokio::sync::watch;

use sdp_app::processing::{process_and_land, StreamRecord};
use sdp_app::raw_lake::RawLake;
use sdp_core::join::JoinConfig;
use sdp_core::ports::with_causes;

use crate::log::LogReader;
use crate::scheduled::Lake;
use crate::state::LocalState;

/// Events per batch at most (a log record holds one append: up to 500 events). Larger than a
/// Lambda's batch: each batch is one commit of the state store, synced, so under load the
/// sync is shared by thousands of events, and when the load is light batches stay small.
const BATCH: usize = 5_000;

/// The shortest time between the starts of two batches. Each batch syncs its lake files and its
/// state commit to disk, and those syncs share the disk with the log's: back to back under a
/// stream of single events, batches of a few dozen events synced ~600 times a second and doubled
/// the log's commit time (`bench/local.sh`). The Lambda's batching window plays the same part.
const MIN_BATCH_INTERVAL: Duration = Duration::from_millis(20);

/// Runs until `stop` turns true and every committed event has been processed.
pub async fn run(
    log: LogReader,
    state: LocalState,
    lake: Lake,
    config: JoinConfig,
    mut stop: watch::Receiver<bool>,
) {
    // The lake directory takes the raw rows and the dead letters, in the S3 lake's layout.
    let raw_lake = RawLake::new(std::sync::Arc::clone(&lake));
    let mut appended = log.watch_last();
    let mut offset = loop {
        match state.processed() {
            Ok(offset) => break offset,
            Err(err) => {
                eprintln!("processor: reading the offset failed, retrying: {err}");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    };
    let mut backoff = Duration::from_millis(100);
    let mut last_batch: Option<Instant> = None;
    loop {
        // Under load, batches start at most every MIN_BATCH_INTERVAL, so each gathers what
        // arrived meanwhile; an event after a quiet spell is processed at once.
        if let Some(started) = last_batch {
            tokio::time::sleep(MIN_BATCH_INTERVAL.saturating_sub(started.elapsed())).await;
        }
        let batch = match log.read_after(offset, BATCH) {
            Ok(batch) => batch,
            Err(err) => {
                eprintln!("processor: reading the log failed, retrying: {err}");
                tokio::time::sleep(backoff).await;
                continue;
            }
        };
        let (Some(&(first, _)), Some(&(last, _))) = (batch.first(), batch.last()) else {
            if *stop.borrow() {
                return;
            }
            tokio::select! {
                _ = appended.changed() => {}
                _ = stop.changed() => {}
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
            continue;
        };
        last_batch = Some(Instant::now());
        let records: Vec<StreamRecord> = batch
            .into_iter()
            .map(|(seq, data)| StreamRecord {
                id: format!("log-{seq:020}"),
                data,
            })
            .collect();
        // The batch's files in the raw lake are named by its sequence numbers.
        let name = format!("{first:020}-{last:020}");
        let processed = process_and_land(&state, &raw_lake, &lake, &config, &name, records);
        let saved = match processed.await {
            Ok(processed) => {
                sdp_core::crash::point("processor.after_landing");
                if processed.dead_letters > 0 {
                    eprintln!(
                        "processor: {} record(s) up to {last} can never be processed; kept in lake/dead-letter/",
                        processed.dead_letters
                    );
                }
                state.set_processed(last).map_err(|e| with_causes(&e))
            }
            Err(err) => Err(with_causes(&err)),
        };
        match saved {
            Ok(()) => {
                offset = last;
                backoff = Duration::from_millis(100);
            }
            Err(err) => {
                eprintln!("processor: events up to {last} failed, retrying: {err}");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

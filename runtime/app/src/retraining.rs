//! Retraining: one run over the compacted lake, by the trainer Lambda on S3 and by `sdp local` on
//! its lake directory.
//!
//! The schedule fires it often (hourly by default), and it is debounced by data: a run that finds
//! no `parquet_bcns` or `parquet_impressions` file newer than the last run's ends at once, so idle
//! costs one listing. Otherwise it reads the last `TRAINING_DAYS` of both tables, runs one
//! `sdp_core::retrain` round against the serving model, promotes a candidate that is not worse
//! (`ModelStore::promote`), records the run in `models/last-run.json`, and, given a namespace,
//! prints the run's figures as CloudWatch metrics in the embedded metric format (a log line: no
//! API call and no permission needed). Memory holds at most `max_bids` transactions, however large
//! the lake. Any failure fails the run: the schedule retries it (and on AWS the failure alarm
//! fires).

use bytes::Bytes;
use serde_json::{json, Value};

use sdp_core::lake::{Format, DATASETS};
use sdp_core::model::stable_hash;
use sdp_core::ports::{Fetched, Listed, ObjectStore, StoreError};
use sdp_core::retrain::{round, LabelledBids, Round, DEFAULT_MAX_BIDS};
use sdp_core::train::TrainConfig;

use crate::metrics::{emf_line, Metric};
use crate::models::{bootstrap, ModelStore, Promotion, Serving};

/// What a run needs besides its stores.
#[derive(Debug, Clone)]
pub struct RetrainingSettings {
    /// Days of data, back from the run's date, that training reads.
    pub training_days: u32,
    pub config: TrainConfig,
    /// The namespace of the run's CloudWatch metrics; None writes none.
    pub metrics_namespace: Option<String>,
    /// Transactions a run learns from at most; beyond, a sample of whole transactions
    /// (`LabelledBids`), so memory does not grow with the lake.
    pub max_bids: usize,
}

impl Default for RetrainingSettings {
    /// The stack's defaults: two weeks of data, at most a million transactions, no metrics.
    fn default() -> Self {
        RetrainingSettings {
            training_days: 14,
            config: TrainConfig::default(),
            metrics_namespace: None,
            max_bids: DEFAULT_MAX_BIDS,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RetrainingError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{location}/{key}: {source}")]
    Read {
        location: String,
        key: String,
        source: sdp_lake::training::ReadError,
    },
}

/// The first `dt` a run reads: `days` before `now_ms`'s date (UTC).
fn first_date(now_ms: i64, days: u32) -> String {
    let day_ms = 86_400_000_i64;
    let first = now_ms - i64::from(days) * day_ms;
    jiff::Timestamp::from_millisecond(first)
        .map(|t| t.strftime("%Y-%m-%d").to_string())
        .unwrap_or_else(|_| sdp_core::lake::FIRST_DATE.to_owned())
}

/// The compacted files of `dataset` from `first_date` on.
async fn recent<O: ObjectStore>(
    objects: &O,
    dataset: &str,
    first_date: &str,
) -> Result<Vec<Listed>, StoreError> {
    let Some(dataset) = DATASETS.iter().find(|d| d.name == dataset) else {
        return Ok(Vec::new());
    };
    let prefix = dataset.prefix(Format::Parquet);
    Ok(objects
        .list(&prefix)
        .await?
        .into_iter()
        .filter(|o| o.key.ends_with(".parquet"))
        .filter(|o| {
            o.key
                .strip_prefix(&prefix)
                .and_then(|rest| rest.strip_prefix("dt="))
                .is_some_and(|rest| rest.get(..10).is_some_and(|dt| dt >= first_date))
        })
        .collect())
}

/// A listed file's bytes; None if a compaction replaced it since the listing (its rows are in
/// the newer generation, which this run did not list).
async fn read<O: ObjectStore>(objects: &O, key: &str) -> Result<Option<Bytes>, RetrainingError> {
    match objects.get(key, None).await? {
        Fetched::Found(object) => Ok(Some(Bytes::from(object.bytes))),
        Fetched::Missing | Fetched::Unchanged => Ok(None),
    }
}

/// One run at `now_ms`; its record (also the invocation's answer), stored as the last run's
/// unless the run was skipped (no new data, or the lake changed while it read).
pub async fn run<O: ObjectStore, M: ObjectStore>(
    objects: &O,
    models: &ModelStore<M>,
    settings: &RetrainingSettings,
    now_ms: i64,
) -> Result<Value, RetrainingError> {
    let first_date = first_date(now_ms, settings.training_days);
    let bcns = recent(objects, "bcns", &first_date).await?;
    let impressions = recent(objects, "impressions", &first_date).await?;
    let data_through_ms = bcns
        .iter()
        .chain(&impressions)
        .map(|o| o.last_modified_ms)
        .max()
        .unwrap_or(0);
    // The files the run reads, each named with its entity tag: what the last run read, unless a
    // file was added or replaced. (Not their times: S3's are to the second, so a file written in
    // the second of the last run's newest one would never be trained on.)
    let inputs: String = bcns
        .iter()
        .chain(&impressions)
        .map(|o| format!("{} {}\n", o.key, o.etag))
        .collect();
    let inputs_hash = format!("{:016x}", stable_hash(inputs.as_bytes()));
    let last_run = models.last_run().await?;
    let last_inputs = last_run.as_ref().and_then(|r| r["inputs"].as_str());
    if last_inputs == Some(inputs_hash.as_str()) {
        return Ok(skipped(json!({
            "outcome": "no new data",
            "files": bcns.len() + impressions.len(),
            "data_through_ms": last_run.as_ref().and_then(|r| r["data_through_ms"].as_i64()),
        })));
    }

    let (current, current_etag) = match models.serving(None).await? {
        Serving::Model { model, etag } => (model, Some(etag)),
        Serving::NoneYet | Serving::Unchanged => (bootstrap(), None),
    };
    // A file replaced while the run reads leaves it a partial view of the lake: a model trained
    // on part of the data must not be compared, let alone promoted. The run ends without a record,
    // so the next scheduled one reads the lake again. (Compaction rewrites a partition only when
    // late data arrives for it, so a run is cut short rarely, not every time.)
    let changed = |key: &str| {
        skipped(json!({
            "at_ms": now_ms,
            "outcome": "the lake changed during the run; the next run reads it again",
            "replaced": key,
        }))
    };
    let mut data = LabelledBids::with_max_bids(settings.max_bids);
    for object in &bcns {
        let Some(bytes) = read(objects, &object.key).await? else {
            return Ok(changed(&object.key));
        };
        sdp_lake::training::add_bids(bytes, &mut data)
            .map_err(|source| read_error(objects, &object.key, source))?;
    }
    for object in &impressions {
        let Some(bytes) = read(objects, &object.key).await? else {
            return Ok(changed(&object.key));
        };
        sdp_lake::training::add_wins(bytes, &mut data)
            .map_err(|source| read_error(objects, &object.key, source))?;
    }

    // The version sorts by time, to the millisecond (`sdp local` may promote twice in a second,
    // and pruning keeps the newest names), and names its input: the same files give the same
    // suffix.
    let version = format!(
        "{}-{}",
        jiff::Timestamp::from_millisecond(now_ms)
            .map(|t| format!(
                "{}{:03}Z",
                t.strftime("%Y%m%dT%H%M%S"),
                now_ms.rem_euclid(1000)
            ))
            .unwrap_or_default(),
        inputs_hash
    );
    let config = settings.config;
    let (bids, won, sample_rate) = (data.bids().len(), data.wins(), data.sample_rate());
    let serving_version = current.version.clone();
    // CPU for seconds, on the caller's thread: a Lambda invocation has nothing else to serve, and
    // `sdp local` runs its schedule on a thread of its own.
    let outcome = round(&data, &current, &config, &version);

    let mut record = json!({
        "at_ms": now_ms,
        "data_through_ms": data_through_ms,
        "inputs": inputs_hash,
        "first_date": first_date,
        "files": bcns.len() + impressions.len(),
        "bids": bids,
        "won": won,
        "sample_rate": sample_rate,
        "serving": serving_version,
    });
    let promoted = match outcome {
        Round::NotEnoughData { .. } => {
            record["outcome"] = json!("not enough data");
            false
        }
        Round::Kept { candidate, current } => {
            record["outcome"] = json!("kept the serving model");
            record["candidate"] = json!(candidate);
            record["current"] = json!(current);
            false
        }
        Round::Promoted { model, current } => {
            record["candidate"] = json!(model.metrics);
            record["current"] = json!(current);
            match models.promote(&model, current_etag.as_deref()).await? {
                Promotion::Promoted { .. } => {
                    record["outcome"] = json!("promoted");
                    record["serving"] = json!(model.version);
                    true
                }
                Promotion::Superseded => {
                    record["outcome"] = json!("superseded by a concurrent promotion");
                    false
                }
            }
        }
    };
    models.record_run(&record).await?;
    tracing::info!(%record, "retraining finished");
    if let Some(namespace) = &settings.metrics_namespace {
        println!("{}", metrics_line(namespace, now_ms, &record, promoted));
    }
    Ok(record)
}

/// The record of a run that trained nothing and is not stored as the last run, logged.
fn skipped(record: Value) -> Value {
    tracing::info!(%record, "retraining skipped");
    record
}

fn read_error<O: ObjectStore>(
    objects: &O,
    key: &str,
    source: sdp_lake::training::ReadError,
) -> RetrainingError {
    RetrainingError::Read {
        location: objects.location(),
        key: key.to_owned(),
        source,
    }
}

/// The run's figures as one CloudWatch embedded-metric-format line. The candidate's metrics are
/// there only if a candidate was trained (EMF takes numbers, not nulls).
pub fn metrics_line(namespace: &str, now_ms: i64, record: &Value, promoted: bool) -> Value {
    let mut metrics = vec![
        Metric {
            name: "TrainingBids",
            value: json!(record["bids"].as_u64().unwrap_or(0)),
            unit: "Count",
        },
        Metric {
            name: "ModelPromoted",
            value: json!(u8::from(promoted)),
            unit: "Count",
        },
    ];
    for (name, field) in [("CandidateAuc", "auc"), ("CandidateLogLoss", "log_loss")] {
        if let Some(value) = record["candidate"][field].as_f64() {
            metrics.push(Metric {
                name,
                value: json!(value),
                unit: "None",
            });
        }
    }
    emf_line(namespace, "trainer", now_ms, &metrics)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use sdp_core::memory::{ready, Call, MemoryObjects};

    #[test]
    fn a_file_replaced_during_the_run_ends_it_untrained_and_unrecorded_for_the_next_to_retry() {
        let lake = MemoryObjects::default();
        let key = "parquet/bcns/dt=2026-11-22/hour=10/part-0-00000.parquet";
        lake.insert_at(key, b"not read", 1_795_341_600_000);
        lake.fail_once(Call::GetVanished, key);
        let models = ModelStore::new(MemoryObjects::default(), "models/");
        let record = ready(run(
            &lake,
            &models,
            &RetrainingSettings::default(),
            1_795_341_600_000,
        ))
        .unwrap();
        assert_eq!(
            record["outcome"],
            "the lake changed during the run; the next run reads it again"
        );
        assert_eq!(record["replaced"], key);
        assert!(ready(models.last_run()).unwrap().is_none());
    }

    #[test]
    fn a_file_landed_in_the_same_second_as_the_last_runs_newest_is_still_read() {
        // S3 times objects to the second: the last run read files up to `at`, and a new file
        // written in that same second is new data all the same.
        let at = 1_795_341_600_000;
        let models = ModelStore::new(MemoryObjects::default(), "models/");
        ready(models.record_run(&json!({"data_through_ms": at, "inputs": "0000000000000001"})))
            .unwrap();
        let lake = MemoryObjects::default();
        let key = "parquet/bcns/dt=2026-11-22/hour=10/part-0-00000.parquet";
        lake.insert_at(key, b"not parquet", at);
        let outcome = ready(run(&lake, &models, &RetrainingSettings::default(), at));
        let message = match outcome {
            Ok(record) => panic!("the new file was not read: {record}"),
            Err(err) => sdp_core::ports::with_causes(&err),
        };
        assert!(message.contains(key), "{message}");
    }

    #[test]
    fn the_window_starts_whole_days_back() {
        // 2026-11-22T10:00:00Z
        assert_eq!(first_date(1_795_341_600_000, 14), "2026-11-08");
        assert_eq!(first_date(1_795_341_600_000, 0), "2026-11-22");
    }

    #[test]
    fn metrics_are_one_embedded_metric_format_line() {
        let record = json!({"bids": 1200, "candidate": {"auc": 0.8, "log_loss": 0.4}});
        let line = metrics_line("sdp/s", 5, &record, true);
        assert_eq!(line["_aws"]["CloudWatchMetrics"][0]["Namespace"], "sdp/s");
        assert_eq!(line["TrainingBids"], 1200);
        assert_eq!(line["ModelPromoted"], 1);
        assert_eq!(line["CandidateAuc"], 0.8);
        assert_eq!(
            line["_aws"]["CloudWatchMetrics"][0]["Metrics"]
                .as_array()
                .map(Vec::len),
            Some(4)
        );
        let skipped = metrics_line("sdp/s", 5, &json!({"bids": 0}), false);
        assert!(skipped.get("CandidateAuc").is_none(), "{skipped}");
        assert_eq!(
            skipped["_aws"]["CloudWatchMetrics"][0]["Metrics"]
                .as_array()
                .map(Vec::len),
            Some(2)
        );
    }
}

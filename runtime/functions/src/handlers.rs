//! One handler per function, over the ports so tests can run them against moto or in memory.

use aws_lambda_events::apigw::{ApiGatewayProxyRequest, ApiGatewayProxyResponse};
use aws_lambda_events::kinesis::KinesisEvent;
use aws_lambda_events::streams::KinesisEventResponse;
use sdp_core::join::JoinConfig;
use sdp_core::ports::{AggregateReader, EventLog, LakeSink, ObjectStore, StateStore};
use sdp_core::processor::ProcessError;

use crate::apigw;
use sdp_app::compaction::{self, CompactionError, CompactionSettings};
use sdp_app::metrics::{emf_line, Metric};
use sdp_app::model_cache::ModelCache;
use sdp_app::models::ModelStore;
use sdp_app::processing::{process_and_land, StreamRecord};
use sdp_app::retraining::{self, RetrainingError, RetrainingSettings};
use sdp_aws::S3Objects;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// `ingest`: an API Gateway event to a stored event and its answer.
pub async fn ingest<L: EventLog>(
    log: &L,
    event: ApiGatewayProxyRequest,
) -> ApiGatewayProxyResponse {
    match apigw::request(&event) {
        Some(request) => apigw::response(sdp_api::ingest::handle(log, &request, now_ms()).await),
        None => apigw::undecodable(),
    }
}

/// `reports`: an API Gateway event to a report.
pub async fn reports<R: AggregateReader>(
    reader: &R,
    event: ApiGatewayProxyRequest,
) -> ApiGatewayProxyResponse {
    match apigw::request(&event) {
        Some(request) => {
            apigw::response(sdp_api::reports::handle(reader, &request, now_ms() / 1000).await)
        }
        None => apigw::undecodable(),
    }
}

/// `predict`: an API Gateway event to a prediction with the cached model.
pub async fn predict(
    models: &ModelCache<S3Objects>,
    event: ApiGatewayProxyRequest,
) -> ApiGatewayProxyResponse {
    match apigw::request(&event) {
        Some(request) => {
            let model = models.model().await;
            apigw::response(sdp_api::predict::handle(&model, &request, now_ms()))
        }
        None => apigw::undecodable(),
    }
}

/// How long before its invocation's deadline a compactor run starts no more partitions: time
/// for the partition in hand (a large hour takes minutes) and the run's answer.
const COMPACTION_MARGIN_MS: i64 = 5 * 60 * 1000;

/// `compactor`: a scheduled run (the event's content does not matter) that starts no partition
/// within [`COMPACTION_MARGIN_MS`] of `deadline_ms` (the invocation's, epoch milliseconds): the
/// rest waits for the next run, instead of the run being killed mid-partition at its timeout.
pub async fn compactor(
    objects: &S3Objects,
    settings: &CompactionSettings,
    deadline_ms: i64,
) -> Result<serde_json::Value, CompactionError> {
    let out_of_time = move || now_ms() + COMPACTION_MARGIN_MS >= deadline_ms;
    compaction::run_until(objects, settings, now_ms(), &out_of_time).await
}

/// `trainer`: a scheduled run (the event's content does not matter).
pub async fn trainer(
    objects: &S3Objects,
    models: &ModelStore<S3Objects>,
    settings: &RetrainingSettings,
) -> Result<serde_json::Value, RetrainingError> {
    retraining::run(objects, models, settings, now_ms()).await
}

/// `processor`: a Kinesis batch, counted exactly once, and then landed in the lake: the joined
/// impressions and clicks and the aggregate snapshots of the batch go to their Firehose streams
/// (`sdp_app::processing`). A record that can never be processed is kept in the lake's
/// `dead-letter/` prefix with its payload; any other failure fails the invocation, and the event
/// source mapping delivers the batch again until it succeeds (what was already committed is
/// recognised, so nothing is counted twice and nothing is discarded).
pub async fn processor<S, L, D>(
    store: &S,
    config: &JoinConfig,
    lake: &L,
    dead_letters: &D,
    metrics_namespace: &str,
    event: KinesisEvent,
) -> Result<KinesisEventResponse, ProcessError>
where
    S: StateStore + AggregateReader + Sync,
    L: LakeSink + Sync,
    D: ObjectStore,
{
    let records: Vec<StreamRecord> = event
        .records
        .into_iter()
        .map(|record| StreamRecord {
            // The event id names the shard and the sequence number: unique across the stream.
            id: record.event_id.unwrap_or(record.kinesis.sequence_number),
            data: record.kinesis.data.0,
        })
        .collect();
    let received = records.len();
    let batch = records.first().map(|r| r.id.clone()).unwrap_or_default();
    let processed = process_and_land(store, lake, dead_letters, config, &batch, records).await?;
    tracing::info!(
        records = received,
        duplicates = processed.result.duplicates,
        aggregates = processed.result.increments.len(),
        joined = processed.result.joined,
        dead_letters = processed.dead_letters,
        landed = processed.landed,
        "batch committed"
    );
    if processed.dead_letters > 0 {
        // The dead-letter alarm's metric.
        let metric = Metric {
            name: "DeadLetters",
            value: serde_json::json!(processed.dead_letters),
            unit: "Count",
        };
        println!(
            "{}",
            emf_line(metrics_namespace, "processor", now_ms(), &[metric])
        );
    }
    Ok(KinesisEventResponse::default())
}

//! One handler per function, over the ports so tests can run them against moto or in memory.

use aws_lambda_events::apigw::{ApiGatewayProxyRequest, ApiGatewayProxyResponse};
use aws_lambda_events::kinesis::KinesisEvent;
use aws_lambda_events::streams::{KinesisBatchItemFailure, KinesisEventResponse};
use sdp_core::events::Event;
use sdp_core::join::JoinConfig;
use sdp_core::ports::{AggregateReader, EventLog, LakeSink, StateStore};
use sdp_core::processor::ProcessError;

use crate::apigw;
use sdp_app::compaction::{self, CompactionError, CompactionSettings};
use sdp_app::model_cache::ModelCache;
use sdp_app::models::ModelStore;
use sdp_app::processing::process_and_land;
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

/// `compactor`: a scheduled run (the event's content does not matter).
pub async fn compactor(
    objects: &S3Objects,
    settings: &CompactionSettings,
) -> Result<serde_json::Value, CompactionError> {
    compaction::run(objects, settings, now_ms()).await
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
/// (`sdp_app::processing`). A record that is not a valid stored event (it cannot become one by
/// retrying) is reported as a batch item failure, so Lambda retries it alone and finally hands it
/// to the on-failure destination, while every good record of the batch is committed now. A
/// storage failure fails the invocation: the batch is delivered again and what was already
/// committed is recognised.
pub async fn processor<S, L>(
    store: &S,
    config: &JoinConfig,
    lake: &L,
    event: KinesisEvent,
) -> Result<KinesisEventResponse, ProcessError>
where
    S: StateStore + AggregateReader + Sync,
    L: LakeSink + Sync,
{
    let mut events = Vec::with_capacity(event.records.len());
    let mut poison = Vec::new();
    for record in event.records {
        match serde_json::from_slice::<Event>(&record.kinesis.data.0) {
            Ok(decoded) => events.push(decoded),
            Err(err) => {
                tracing::error!(
                    sequence_number = %record.kinesis.sequence_number,
                    partition_key = %record.kinesis.partition_key,
                    error = %err,
                    "record is not a stored event; reporting it as failed"
                );
                poison.push(record.kinesis.sequence_number);
            }
        }
    }
    let received = events.len();
    let processed = process_and_land(store, lake, config, "", events).await?;
    tracing::info!(
        records = received,
        duplicates = processed.result.duplicates,
        aggregates = processed.result.increments.len(),
        joined = processed.result.joined.len(),
        poison = poison.len(),
        landed = processed.landed,
        "batch committed"
    );
    let mut response = KinesisEventResponse::default();
    for sequence_number in poison {
        let mut failure = KinesisBatchItemFailure::default();
        failure.item_identifier = Some(sequence_number);
        response.batch_item_failures.push(failure);
    }
    Ok(response)
}

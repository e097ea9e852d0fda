//! Lambda `ingest`: behind the ingestion API, writes each valid event to the Kinesis stream.

// The handler's future nests the API's, the log's (its shard map read, then its puts) and the
// SDK's; its layout is deeper than the compiler's default query depth.
#![recursion_limit = "256"]

use aws_lambda_events::apigw::ApiGatewayProxyRequest;
use lambda_runtime::{service_fn, LambdaEvent};
use sdp_aws::KinesisLog;
use sdp_functions::{handlers, settings, telemetry};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    telemetry::init();
    let config = settings::aws().await;
    let log = KinesisLog::new(
        aws_sdk_kinesis::Client::new(&config),
        settings::required("STREAM_NAME")?,
    );
    let log = &log;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<ApiGatewayProxyRequest>| async move {
            Ok::<_, lambda_runtime::Error>(handlers::ingest(log, event.payload).await)
        },
    ))
    .await
}

//! Lambda `reports`: behind the reports API, reads the aggregates table.

use aws_lambda_events::apigw::ApiGatewayProxyRequest;
use lambda_runtime::{service_fn, LambdaEvent};
use sdp_aws::DynamoAggregates;
use sdp_functions::{handlers, settings, telemetry};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    telemetry::init();
    let config = settings::aws().await;
    let aggregates = DynamoAggregates::new(
        aws_sdk_dynamodb::Client::new(&config),
        settings::required("AGGREGATES_TABLE")?,
    );
    let aggregates = &aggregates;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<ApiGatewayProxyRequest>| async move {
            Ok::<_, lambda_runtime::Error>(handlers::reports(aggregates, event.payload).await)
        },
    ))
    .await
}

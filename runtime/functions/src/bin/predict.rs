//! Lambda `predict`: behind the predictions API, scores bids with the promoted model.

use std::time::Duration;

use aws_lambda_events::apigw::ApiGatewayProxyRequest;
use lambda_runtime::{service_fn, LambdaEvent};
use sdp_app::model_cache::ModelCache;
use sdp_functions::{handlers, settings, telemetry};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    telemetry::init();
    let config = settings::aws().await;
    let (_, models) = settings::lake(&config)?;
    let refresh = settings::integer_or("MODEL_REFRESH_SECONDS", 60)?;
    let cache = ModelCache::new(models, Duration::from_secs(refresh.unsigned_abs()));
    let cache = &cache;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<ApiGatewayProxyRequest>| async move {
            Ok::<_, lambda_runtime::Error>(handlers::predict(cache, event.payload).await)
        },
    ))
    .await
}

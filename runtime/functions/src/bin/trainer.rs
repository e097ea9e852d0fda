//! Lambda `trainer`: on a schedule, retrains the win-probability model from the compacted lake and
//! promotes it only if it is not worse than the serving one.

use lambda_runtime::{service_fn, LambdaEvent};
use sdp_core::retrain::DEFAULT_MAX_BIDS;
use sdp_core::train::TrainConfig;
use sdp_functions::trainer::TrainerSettings;
use sdp_functions::{handlers, settings, telemetry};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    telemetry::init();
    let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let (objects, models) = settings::lake(&config)?;
    let training_days = settings::integer_or("TRAINING_DAYS", 14)?;
    let max_bids = settings::integer_or(
        "MAX_TRAINING_BIDS",
        i64::try_from(DEFAULT_MAX_BIDS).unwrap_or(i64::MAX),
    )?;
    let trainer = TrainerSettings {
        max_bids: usize::try_from(max_bids)
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| {
                format!("MAX_TRAINING_BIDS must be a positive number; got {max_bids}")
            })?,
        training_days: u32::try_from(training_days)
            .map_err(|_| format!("TRAINING_DAYS must be a number of days; got {training_days}"))?,
        config: TrainConfig::default(),
        metrics_namespace: std::env::var("METRICS_NAMESPACE")
            .ok()
            .filter(|v| !v.is_empty()),
    };
    let (objects, models, trainer) = (&objects, &models, &trainer);
    lambda_runtime::run(service_fn(
        move |_: LambdaEvent<serde_json::Value>| async move {
            handlers::trainer(objects, models, trainer)
                .await
                .map_err(|e| lambda_runtime::Error::from(sdp_core::ports::with_causes(&e)))
        },
    ))
    .await
}

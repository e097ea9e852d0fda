//! Lambda `trainer`: on a schedule, retrains the win-probability model from the compacted lake and
//! promotes it only if it is not worse than the serving one.

use lambda_runtime::{service_fn, LambdaEvent};
use sdp_app::retraining::RetrainingSettings;
use sdp_functions::{handlers, settings, telemetry};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    telemetry::init();
    let config = settings::aws().await;
    let (objects, models) = settings::lake(&config)?;
    let defaults = RetrainingSettings::default();
    let max_bids: u32 = settings::positive_or(
        "MAX_TRAINING_BIDS",
        u32::try_from(defaults.max_bids).unwrap_or(u32::MAX),
    )?;
    let retraining = RetrainingSettings {
        training_days: settings::positive_or("TRAINING_DAYS", defaults.training_days)?,
        max_bids: usize::try_from(max_bids).unwrap_or(usize::MAX),
        metrics_namespace: std::env::var("METRICS_NAMESPACE")
            .ok()
            .filter(|v| !v.is_empty()),
        ..defaults
    };
    let (objects, models, retraining) = (&objects, &models, &retraining);
    lambda_runtime::run(service_fn(
        move |_: LambdaEvent<serde_json::Value>| async move {
            handlers::trainer(objects, models, retraining)
                .await
                .map_err(|e| lambda_runtime::Error::from(sdp_core::ports::with_causes(&e)))
        },
    ))
    .await
}

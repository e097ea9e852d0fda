//! Lambda `compactor`: on a schedule, compacts each closed partition of the raw lake into Parquet
//! files of up to about 128 MB, merging late data into the partitions it belongs to.

use lambda_runtime::{service_fn, LambdaEvent};
use sdp_app::compaction::CompactionSettings;
use sdp_functions::{handlers, settings, telemetry};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    telemetry::init();
    let config = settings::aws().await;
    let objects = settings::bucket(&config)?;
    let defaults = CompactionSettings::default();
    let close_after_minutes: u32 = settings::positive_or(
        "CLOSE_AFTER_MINUTES",
        u32::try_from(defaults.close_after_ms / 60_000).unwrap_or(20),
    )?;
    let compaction = CompactionSettings {
        close_after_ms: i64::from(close_after_minutes) * 60_000,
        ..defaults
    };
    let (objects, compaction) = (&objects, &compaction);
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<serde_json::Value>| async move {
            let deadline_ms = i64::try_from(event.context.deadline).unwrap_or(i64::MAX);
            handlers::compactor(objects, compaction, deadline_ms)
                .await
                .map_err(|e| lambda_runtime::Error::from(sdp_core::ports::with_causes(&e)))
        },
    ))
    .await
}

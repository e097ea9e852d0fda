//! Lambda `compactor`: on a schedule, compacts each closed partition of the raw lake into Parquet
//! files of up to about 128 MB, merging late data into the partitions it belongs to.

use lambda_runtime::{service_fn, LambdaEvent};
use sdp_aws::S3Objects;
use sdp_functions::compactor::CompactorSettings;
use sdp_functions::{handlers, settings, telemetry};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    telemetry::init();
    let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let objects = S3Objects::new(
        aws_sdk_s3::Client::new(&config),
        settings::required("BUCKET")?,
    );
    let defaults = CompactorSettings::default();
    let close_after =
        settings::integer_or("CLOSE_AFTER_MINUTES", defaults.close_after_ms / 60_000)?;
    let close_after = u32::try_from(close_after).map_err(|_| {
        format!("CLOSE_AFTER_MINUTES must be a number of minutes; got {close_after}")
    })?;
    let compactor = CompactorSettings {
        close_after_ms: i64::from(close_after) * 60_000,
        ..defaults
    };
    let (objects, compactor) = (&objects, &compactor);
    lambda_runtime::run(service_fn(
        move |_: LambdaEvent<serde_json::Value>| async move {
            handlers::compactor(objects, compactor)
                .await
                .map_err(|e| lambda_runtime::Error::from(sdp_core::ports::with_causes(&e)))
        },
    ))
    .await
}

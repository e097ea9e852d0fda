//! Function settings from environment variables, with errors that name the variable.

use std::time::Duration;

use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};
use sdp_app::models::ModelStore;
use sdp_aws::S3Objects;
use sdp_core::join::JoinConfig;

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("environment variable `{0}` is not set")]
    Missing(&'static str),
    #[error("environment variable `{name}` must be an integer; got `{value}`")]
    NotAnInteger { name: &'static str, value: String },
    #[error("environment variable `{name}` must be a positive integer; got `{value}`")]
    NotPositive { name: &'static str, value: i64 },
    #[error("invalid aggregation settings")]
    Window(#[from] sdp_core::window::InvalidWindowLength),
}

pub fn required(name: &'static str) -> Result<String, SettingsError> {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .ok_or(SettingsError::Missing(name))
}

fn integer(name: &'static str) -> Result<i64, SettingsError> {
    let value = required(name)?;
    value
        .parse()
        .map_err(|_| SettingsError::NotAnInteger { name, value })
}

/// An optional integer setting: `default` when unset.
pub fn integer_or(name: &'static str, default: i64) -> Result<i64, SettingsError> {
    match std::env::var(name).ok().filter(|v| !v.is_empty()) {
        None => Ok(default),
        Some(_) => integer(name),
    }
}

/// An optional count, size or number of days, minutes or seconds: `default` when unset, and
/// refused unless it is at least 1 and fits `T`.
pub fn positive_or<T: TryFrom<i64> + Into<i64> + Copy>(
    name: &'static str,
    default: T,
) -> Result<T, SettingsError> {
    let value = integer_or(name, default.into())?;
    T::try_from(value)
        .ok()
        .filter(|_| value > 0)
        .ok_or(SettingsError::NotPositive { name, value })
}

/// The one SDK configuration a function builds its clients from, once per process: region and
/// credentials from the Lambda environment, and deadlines, so a call that hangs fails and is
/// retried instead of using up the invocation. An attempt gets 30 s (a 128 MB Parquet PUT from
/// the compactor takes a few), an operation with its retries 60 s.
pub async fn aws() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(3))
                .operation_attempt_timeout(Duration::from_secs(30))
                .operation_timeout(Duration::from_secs(60))
                .build(),
        )
        .load()
        .await
}

/// The lake bucket (`BUCKET`).
pub fn bucket(config: &SdkConfig) -> Result<S3Objects, SettingsError> {
    Ok(S3Objects::new(
        aws_sdk_s3::Client::new(config),
        required("BUCKET")?,
    ))
}

/// The lake bucket (`BUCKET`) and its model store (`MODEL_PREFIX`).
pub fn lake(config: &SdkConfig) -> Result<(S3Objects, ModelStore<S3Objects>), SettingsError> {
    let objects = bucket(config)?;
    let models = ModelStore::new(objects.clone(), required("MODEL_PREFIX")?);
    Ok((objects, models))
}

/// The Firehose stream of each dataset the processor lands (`<DATASET>_DELIVERY_STREAM`; every
/// dataset but `bcns`, which Firehose reads from the event stream itself).
pub fn delivery_streams() -> Result<Vec<(String, String)>, SettingsError> {
    const DELIVERED: [(&str, &str); 3] = [
        ("impressions", "IMPRESSIONS_DELIVERY_STREAM"),
        ("clicks", "CLICKS_DELIVERY_STREAM"),
        ("aggregates", "AGGREGATES_DELIVERY_STREAM"),
    ];
    DELIVERED
        .iter()
        .map(|(dataset, variable)| Ok(((*dataset).to_owned(), required(variable)?)))
        .collect()
}

/// The join settings the template passes to the processor.
pub fn join_config() -> Result<JoinConfig, SettingsError> {
    Ok(JoinConfig::from_minutes(
        integer("AGGREGATION_PERIOD_MINUTES")?,
        integer("BIDS_SESSION_TIMEOUT_MINUTES")?,
        integer("CLICKS_SESSION_TIMEOUT_MINUTES")?,
    )?)
}

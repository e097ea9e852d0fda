//! Function settings from environment variables, with errors that name the variable.

use sdp_aws::{S3ModelStore, S3Objects};
use sdp_core::join::JoinConfig;

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("environment variable `{0}` is not set")]
    Missing(&'static str),
    #[error("environment variable `{name}` must be an integer; got `{value}`")]
    NotAnInteger { name: &'static str, value: String },
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

/// The S3 clients of the lake bucket (`BUCKET`) and its model store (`MODEL_PREFIX`).
pub fn lake(config: &aws_config::SdkConfig) -> Result<(S3Objects, S3ModelStore), SettingsError> {
    let objects = S3Objects::new(aws_sdk_s3::Client::new(config), required("BUCKET")?);
    let models = S3ModelStore::new(objects.clone(), required("MODEL_PREFIX")?);
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

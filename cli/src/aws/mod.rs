//! The only part of the CLI that talks to AWS. Every call has a timeout (a hung endpoint must not
//! hang a CI job) and every failure names the service, the AWS error code and its message.

pub mod artifacts;
pub mod cloudformation;
pub mod iam;
pub mod purge;

use std::time::Duration;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_s3::error::SdkError;
use aws_smithy_runtime_api::http::Response as HttpResponse;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

/// The SDK configuration from the standard chain (profile, environment, SSO, ...), in `region`.
/// `AWS_ENDPOINT_URL` and friends apply as they do for the AWS CLI.
pub async fn sdk_config(region: &str) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(region.to_owned()))
        .timeout_config(
            aws_config::timeout::TimeoutConfig::builder()
                .operation_attempt_timeout(Duration::from_secs(30))
                .operation_timeout(Duration::from_secs(120))
                .build(),
        )
        .load()
        .await
}

/// The S3 endpoint override, if any (`AWS_ENDPOINT_URL_S3`, else `AWS_ENDPOINT_URL`): an emulator
/// or a proxy, reached path-style.
pub fn s3_endpoint_override() -> Option<String> {
    std::env::var("AWS_ENDPOINT_URL_S3")
        .or_else(|_| std::env::var("AWS_ENDPOINT_URL"))
        .ok()
}

/// An S3 client: path-style addressing when an endpoint override is set (emulators answer
/// nothing else), virtual-hosted otherwise.
pub fn s3_client(config: &SdkConfig) -> aws_sdk_s3::Client {
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(config)
            .force_path_style(s3_endpoint_override().is_some())
            .build(),
    )
}

/// Who the credentials belong to: the account (which names the artifact bucket) and the caller's
/// ARN (whose permissions the pre-flight checks).
pub struct Identity {
    pub account: String,
    pub arn: String,
}

pub async fn caller_identity(config: &SdkConfig) -> anyhow::Result<Identity> {
    let identity = aws_sdk_sts::Client::new(config)
        .get_caller_identity()
        .send()
        .await
        .map_err(|e| describe("STS GetCallerIdentity", &e))?;
    match (identity.account(), identity.arn()) {
        (Some(account), Some(arn)) => Ok(Identity {
            account: account.to_owned(),
            arn: arn.to_owned(),
        }),
        _ => Err(anyhow::anyhow!(
            "STS GetCallerIdentity returned no account or ARN"
        )),
    }
}

/// An SDK error as `operation failed: Code: message`, never a bare "service error"; when AWS
/// sent no code (a HEAD request has no body), the HTTP status stands in for it.
pub fn describe<E>(operation: &str, err: &SdkError<E, HttpResponse>) -> anyhow::Error
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let status = err.raw_response().map(|r| r.status().as_u16());
    match (err.code(), err.message(), status) {
        (Some(code), Some(message), _) => anyhow::anyhow!("{operation} failed: {code}: {message}"),
        (Some(code), None, _) => anyhow::anyhow!("{operation} failed: {code}"),
        (None, _, Some(status)) => anyhow::anyhow!("{operation} failed: HTTP {status}"),
        _ => anyhow::anyhow!("{operation} failed: {}", sdp_core::ports::with_causes(err)),
    }
}

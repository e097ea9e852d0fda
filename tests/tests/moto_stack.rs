//! The rendered template creates on moto server (DESIGN.md §3) through the real AWS SDK for Rust:
//! `CreateStack` reaches `CREATE_COMPLETE` with the contract's outputs, well formed. This is the
//! guard that the one template serves both AWS and moto (no reference to a type moto skips).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test file: a panic is the failure report

use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use aws_sdk_cloudformation::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_cloudformation::types::{Capability, Parameter, StackStatus};
use aws_sdk_s3::primitives::ByteStream;

use sdp::{regions, render, templates};
use sdp_scenarios::MotoServer;

const FUNCTIONS: [&str; 6] = [
    "Ingest",
    "Processor",
    "Reports",
    "Compactor",
    "Trainer",
    "Predict",
];
const CALL_TIMEOUT: Duration = Duration::from_secs(20);

fn credentials() -> Credentials {
    Credentials::new("testing", "testing", None, None, "moto")
}

fn cloudformation(endpoint: &str, region: &str) -> aws_sdk_cloudformation::Client {
    let config = aws_sdk_cloudformation::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new(region.to_owned()))
        .credentials_provider(credentials())
        .timeout_config(
            aws_sdk_cloudformation::config::timeout::TimeoutConfig::builder()
                .operation_timeout(CALL_TIMEOUT)
                .build(),
        )
        .build();
    aws_sdk_cloudformation::Client::from_conf(config)
}

fn s3(endpoint: &str, region: &str) -> aws_sdk_s3::Client {
    let config = aws_sdk_s3::Config::builder()
        .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(aws_sdk_s3::config::Region::new(region.to_owned()))
        .credentials_provider(credentials())
        .force_path_style(true)
        .timeout_config(
            aws_sdk_s3::config::timeout::TimeoutConfig::builder()
                .operation_timeout(CALL_TIMEOUT)
                .build(),
        )
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

/// Uploads a placeholder zip per function (moto's Lambda reads the code object on create) and
/// returns the stack parameters that point at them.
async fn upload_code(s3: &aws_sdk_s3::Client, region: &str) -> Result<Vec<Parameter>> {
    let bucket = format!("sdp-artifacts-test-{region}");
    // S3 refuses a location constraint for us-east-1, and requires one everywhere else.
    let location = (region != "us-east-1").then(|| {
        aws_sdk_s3::types::CreateBucketConfiguration::builder()
            .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::from(region))
            .build()
    });
    s3.create_bucket()
        .bucket(&bucket)
        .set_create_bucket_configuration(location)
        .send()
        .await
        .context("creating the artifact bucket")?;
    let mut parameters = vec![Parameter::builder()
        .parameter_key("ArtifactBucket")
        .parameter_value(&bucket)
        .build()];
    for function in FUNCTIONS {
        let key = format!("functions/{function}.zip");
        s3.put_object()
            .bucket(&bucket)
            .key(&key)
            .body(ByteStream::from_static(
                b"PK\x05\x06\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0",
            ))
            .send()
            .await
            .with_context(|| format!("uploading {key}"))?;
        parameters.push(
            Parameter::builder()
                .parameter_key(format!("{function}CodeKey"))
                .parameter_value(key)
                .build(),
        );
    }
    Ok(parameters)
}

async fn create_and_wait(endpoint: &str, region: &str) -> Result<Vec<(String, String)>> {
    let template = render::render_platform(&templates::embedded(), &regions::load(region)?)?;
    let parameters = upload_code(&s3(endpoint, region), region).await?;
    let cfn = cloudformation(endpoint, region);
    cfn.create_stack()
        .stack_name("sdp")
        .template_body(template)
        .set_parameters(Some(parameters))
        .capabilities(Capability::CapabilityIam)
        .send()
        .await
        .context("CreateStack")?;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let described = cfn.describe_stacks().stack_name("sdp").send().await?;
        let stack = described
            .stacks()
            .first()
            .context("DescribeStacks returned no stack")?;
        match stack.stack_status() {
            Some(StackStatus::CreateComplete) => {
                return Ok(stack
                    .outputs()
                    .iter()
                    .map(|o| {
                        (
                            o.output_key().unwrap_or_default().to_owned(),
                            o.output_value().unwrap_or_default().to_owned(),
                        )
                    })
                    .collect())
            }
            Some(StackStatus::CreateInProgress) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            other => bail!(
                "stack in {region} ended in {other:?}: {}",
                stack.stack_status_reason().unwrap_or("no reason given")
            ),
        }
    }
}

fn output<'a>(outputs: &'a [(String, String)], key: &str) -> Result<&'a str> {
    outputs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .with_context(|| format!("output `{key}` is missing; outputs: {outputs:?}"))
}

fn is_api_url(url: &str, region: &str) -> bool {
    let Some(rest) = url.strip_prefix("https://") else {
        return false;
    };
    let Some((api_id, host_and_path)) = rest.split_once('.') else {
        return false;
    };
    !api_id.is_empty()
        && api_id.chars().all(|c| c.is_ascii_alphanumeric())
        && host_and_path == format!("execute-api.{region}.amazonaws.com/{}", render::STAGE)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rendered_template_creates_on_moto_with_well_formed_outputs_in_every_region(
) -> Result<()> {
    let moto = MotoServer::start()?;
    for region in regions::supported() {
        let outputs = create_and_wait(&moto.endpoint, region).await?;
        for key in ["UrlForAPI", "UrlForReports", "UrlForPredictions"] {
            let url = output(&outputs, key)?;
            ensure!(
                is_api_url(url, region),
                "{region} {key} is not an API base URL: {url}"
            );
        }
        let urls: std::collections::BTreeSet<&str> =
            ["UrlForAPI", "UrlForReports", "UrlForPredictions"]
                .iter()
                .map(|k| output(&outputs, k))
                .collect::<Result<_>>()?;
        ensure!(urls.len() == 3, "the three APIs share a URL: {urls:?}");
        // The bucket output names a bucket that really exists.
        let bucket = output(&outputs, "Bucket")?;
        s3(&moto.endpoint, region)
            .head_bucket()
            .bucket(bucket)
            .send()
            .await
            .with_context(|| format!("the Bucket output `{bucket}` does not exist"))?;
    }
    Ok(())
}

#[test]
fn api_url_shape_is_checked_strictly() {
    assert!(is_api_url(
        "https://abc123.execute-api.us-west-2.amazonaws.com/v1",
        "us-west-2"
    ));
    assert!(!is_api_url(
        "https://abc123.execute-api.us-west-2.amazonaws.com/v1/",
        "us-west-2"
    ));
    assert!(!is_api_url(
        "http://abc123.execute-api.us-west-2.amazonaws.com/v1",
        "us-west-2"
    ));
    assert!(!is_api_url(
        "https://.execute-api.us-west-2.amazonaws.com/v1",
        "us-west-2"
    ));
    assert!(!is_api_url(
        "https://abc123.execute-api.eu-west-1.amazonaws.com/v1",
        "us-west-2"
    ));
}

//! The platform on moto: SDK clients pointed at a moto server, and the rendered template created
//! as a stack, so tests run against the resources the template really declares.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_cloudformation::types::{Capability, Parameter, StackStatus};
use aws_sdk_s3::primitives::ByteStream;

use sdp::{regions, render, templates};

/// Every SDK call in tests has a deadline: moto can hang, and a hung test is worse than a failure.
const CALL_TIMEOUT: Duration = Duration::from_secs(20);

/// An SDK configuration for moto at `endpoint` in `region`, with static test credentials.
pub async fn sdk_config(endpoint: &str, region: &str) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new(region.to_owned()))
        .credentials_provider(aws_sdk_s3::config::Credentials::new(
            "testing", "testing", None, None, "moto",
        ))
        .timeout_config(
            aws_config::timeout::TimeoutConfig::builder()
                .operation_timeout(CALL_TIMEOUT)
                .build(),
        )
        .load()
        .await
}

/// An S3 client for an emulator: path-style addressing, as moto needs.
pub fn s3_client(config: &SdkConfig) -> aws_sdk_s3::Client {
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(config)
            .force_path_style(true)
            .build(),
    )
}

/// The Firehose delivery streams the processor lands rows in, created by the names the template
/// gives them (`<stack>-raw-<dataset>`), each writing to `raw/<dataset>/` of `bucket`: moto's
/// CloudFormation skips Firehose resources (DESIGN.md §3), and moto does no dynamic partitioning,
/// so its objects sit under `raw/<dataset>/YYYY/MM/DD/HH/`. Returns (dataset, stream) pairs.
pub async fn create_delivery_streams(
    config: &SdkConfig,
    stack_name: &str,
    bucket: &str,
) -> Result<Vec<(String, String)>> {
    use aws_sdk_firehose::types::{DeliveryStreamType, ExtendedS3DestinationConfiguration};
    let firehose = aws_sdk_firehose::Client::new(config);
    let mut streams = Vec::new();
    for dataset in ["impressions", "clicks", "aggregates"] {
        let name = format!("{stack_name}-raw-{dataset}");
        firehose
            .create_delivery_stream()
            .delivery_stream_name(&name)
            .delivery_stream_type(DeliveryStreamType::DirectPut)
            .extended_s3_destination_configuration(
                ExtendedS3DestinationConfiguration::builder()
                    .bucket_arn(format!("arn:aws:s3:::{bucket}"))
                    .role_arn("arn:aws:iam::123456789012:role/delivery")
                    .prefix(format!("raw/{dataset}/"))
                    .build()?,
            )
            .send()
            .await
            .with_context(|| format!("CreateDeliveryStream {name}"))?;
        streams.push((dataset.to_owned(), name));
    }
    Ok(streams)
}

/// Every JSON line of the objects under `prefix` of `bucket`.
pub async fn lines_under(config: &SdkConfig, bucket: &str, prefix: &str) -> Result<Vec<String>> {
    let s3 = s3_client(config);
    let listed = s3
        .list_objects_v2()
        .bucket(bucket)
        .prefix(prefix)
        .send()
        .await?;
    let mut lines = Vec::new();
    for object in listed.contents() {
        let key = object.key().context("an object without a key")?;
        let body = s3
            .get_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await?
            .body
            .collect()
            .await?;
        let text = String::from_utf8(body.to_vec())?;
        lines.extend(
            text.lines()
                .filter(|l| !l.trim().is_empty())
                .map(str::to_owned),
        );
    }
    Ok(lines)
}

/// A created stack: its outputs and the physical id of each resource, by logical id.
#[derive(Debug, Clone)]
pub struct Platform {
    pub outputs: BTreeMap<String, String>,
    pub resources: BTreeMap<String, String>,
    /// The moto endpoint and region it was created in.
    endpoint: String,
    region: String,
}

impl Platform {
    pub fn output(&self, key: &str) -> Result<&str> {
        self.outputs
            .get(key)
            .map(String::as_str)
            .with_context(|| format!("output `{key}` is missing; outputs: {:?}", self.outputs))
    }

    pub fn resource(&self, logical_id: &str) -> Result<&str> {
        self.resources
            .get(logical_id)
            .map(String::as_str)
            .with_context(|| format!("resource `{logical_id}` was not created"))
    }

    /// The environment variables CloudFormation gave the function `<prefix>Function` (`Ingest`,
    /// `Processor`, …), read back from moto's Lambda: what the function would start with on AWS,
    /// so a test of a binary proves the template's names, not a list written in the test.
    pub fn function_environment(&self, prefix: &str) -> Result<FunctionEnvironment> {
        let name = self.resource(&format!("{prefix}Function"))?;
        let path = format!("/2015-03-31/functions/{name}/configuration");
        // moto routes by the service and region of the credential scope; it checks no signature.
        let authorization = format!(
            "AWS4-HMAC-SHA256 Credential=testing/20260101/{}/lambda/aws4_request, SignedHeaders=host, Signature=0",
            self.region
        );
        let body = crate::http_get(&self.endpoint, &path, &[("Authorization", &authorization)])
            .with_context(|| format!("GetFunctionConfiguration {name}"))?;
        let configuration: serde_json::Value = serde_json::from_str(&body)
            .with_context(|| format!("GetFunctionConfiguration {name}: {body}"))?;
        let variables = configuration["Environment"]["Variables"]
            .as_object()
            .with_context(|| format!("{name} has no environment: {body}"))?
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    v.as_str().map_or_else(|| v.to_string(), str::to_owned),
                )
            })
            .collect();
        Ok(FunctionEnvironment {
            function: prefix.to_owned(),
            variables,
        })
    }
}

/// A function's environment as the stack gives it.
#[derive(Debug, Clone)]
pub struct FunctionEnvironment {
    function: String,
    pub variables: BTreeMap<String, String>,
}

impl FunctionEnvironment {
    /// Replaces the value of `key`, which the stack must already set: a test may shorten a
    /// refresh interval, never supply a name the template forgot.
    pub fn with(mut self, key: &str, value: &str) -> Result<FunctionEnvironment> {
        if !self.variables.contains_key(key) {
            bail!(
                "the stack gives {} no `{key}` to override; it sets {:?}",
                self.function,
                self.variables.keys()
            );
        }
        self.variables.insert(key.to_owned(), value.to_owned());
        Ok(self)
    }

    /// The pairs, for a process environment.
    pub fn pairs(&self) -> Vec<(String, String)> {
        self.variables
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

/// Renders the template for the config's region, uploads placeholder code, creates the stack
/// `stack_name` and waits for `CREATE_COMPLETE`.
pub async fn deploy_platform(config: &SdkConfig, stack_name: &str) -> Result<Platform> {
    deploy_platform_with(config, stack_name, &[]).await
}

/// [`deploy_platform`] with stack parameters (`AggregationPeriod`, …) besides the code keys.
pub async fn deploy_platform_with(
    config: &SdkConfig,
    stack_name: &str,
    stack_parameters: &[(&str, &str)],
) -> Result<Platform> {
    let region = config
        .region()
        .map(ToString::to_string)
        .context("the SDK config has no region")?;
    let endpoint = config
        .endpoint_url()
        .context("the SDK config has no endpoint")?
        .to_owned();
    let template = render::render_platform(&templates::embedded(), &regions::load(&region)?)?;
    let mut parameters = upload_code(&s3_client(config), &region, stack_name).await?;
    parameters.extend(stack_parameters.iter().map(|(key, value)| {
        Parameter::builder()
            .parameter_key(*key)
            .parameter_value(*value)
            .build()
    }));
    let cfn = aws_sdk_cloudformation::Client::new(config);
    cfn.create_stack()
        .stack_name(stack_name)
        .template_body(template.text)
        .set_parameters(Some(parameters))
        .capabilities(Capability::CapabilityIam)
        .send()
        .await
        .context("CreateStack")?;
    let deadline = Instant::now() + Duration::from_secs(120);
    let stack = loop {
        let described = cfn.describe_stacks().stack_name(stack_name).send().await?;
        let stack = described
            .stacks()
            .first()
            .cloned()
            .context("DescribeStacks returned no stack")?;
        match stack.stack_status() {
            Some(StackStatus::CreateComplete) => break stack,
            Some(StackStatus::CreateInProgress) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            other => bail!(
                "stack `{stack_name}` in {region} ended in {other:?}: {}",
                stack.stack_status_reason().unwrap_or("no reason given")
            ),
        }
    };
    let outputs = stack
        .outputs()
        .iter()
        .map(|o| {
            (
                o.output_key().unwrap_or_default().to_owned(),
                o.output_value().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let described = cfn
        .describe_stack_resources()
        .stack_name(stack_name)
        .send()
        .await?;
    let resources = described
        .stack_resources()
        .iter()
        .map(|r| {
            (
                r.logical_resource_id().unwrap_or_default().to_owned(),
                r.physical_resource_id().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    Ok(Platform {
        outputs,
        resources,
        endpoint,
        region,
    })
}

/// Uploads a placeholder zip per function (moto's Lambda reads the code object on create) and
/// returns the stack parameters that point at them.
async fn upload_code(
    s3: &aws_sdk_s3::Client,
    region: &str,
    stack_name: &str,
) -> Result<Vec<Parameter>> {
    let bucket = format!("sdp-artifacts-{stack_name}-{region}").to_lowercase();
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
    for function in render::FUNCTIONS {
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

/// Every record of a Kinesis stream, oldest first per shard: (sequence number, partition key, data).
pub async fn read_stream(
    config: &SdkConfig,
    stream: &str,
) -> Result<Vec<(String, String, Vec<u8>)>> {
    let kinesis = aws_sdk_kinesis::Client::new(config);
    let mut records = Vec::new();
    for shard in kinesis
        .list_shards()
        .stream_name(stream)
        .send()
        .await?
        .shards()
    {
        let mut iterator = kinesis
            .get_shard_iterator()
            .stream_name(stream)
            .shard_id(shard.shard_id())
            .shard_iterator_type(aws_sdk_kinesis::types::ShardIteratorType::TrimHorizon)
            .send()
            .await?
            .shard_iterator()
            .map(str::to_owned);
        while let Some(current) = iterator {
            let page = kinesis
                .get_records()
                .shard_iterator(current)
                .limit(10_000)
                .send()
                .await?;
            for record in page.records() {
                records.push((
                    record.sequence_number().to_owned(),
                    record.partition_key().unwrap_or_default().to_owned(),
                    record.data().as_ref().to_vec(),
                ));
            }
            iterator = if page.records().is_empty() {
                None
            } else {
                page.next_shard_iterator().map(str::to_owned)
            };
        }
    }
    Ok(records)
}

/// A moto server with the platform deployed as `stack_name` in us-west-2, and the bucket of its
/// lake: what a test of a use case on S3 starts from. The server stops when dropped.
pub async fn lake_bucket_on_moto(
    stack_name: &str,
) -> Result<(crate::MotoServer, sdp_aws::S3Objects)> {
    let moto = crate::MotoServer::start()?;
    let config = sdk_config(&moto.endpoint, "us-west-2").await;
    let platform = deploy_platform(&config, stack_name).await?;
    let objects = sdp_aws::S3Objects::new(s3_client(&config), platform.resource("DataBucket")?);
    Ok((moto, objects))
}

//! `sdp cost`'s units per event are not guessed: `sdp load`'s traffic runs through the real
//! ingestion and processor handlers against moto, with a counting layer on the SDK clients that
//! weighs every call by the rules AWS bills by (Kinesis's 25 KB payload units, DynamoDB's
//! capacity units per item size, two per transactional write, Firehose's 5 KB steps), and what
//! the calls consumed must equal the model's table for the same traffic. The stack settings the
//! model prices are checked against the rendered template, and the price files against the list
//! `sdp cost` embeds.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test file: a panic is the failure report

use std::sync::{Arc, Mutex};

use aws_lambda_events::apigw::ApiGatewayProxyRequest;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::BeforeSerializationInterceptorContextRef;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_types::config_bag::ConfigBag;
use serde_yaml_ng::Value;

use sdp::cost::prices;
use sdp::cost::sizes::Sizes;
use sdp::cost::usage::{
    self, aws, number_attribute, stack, steps, string_attribute, PerEvent, Workload,
};
use sdp::probe::load::{batch_body, Arrival, Workload as Traffic};
use sdp::probe::scenario::Tag;
use sdp::{regions, render, templates};
use sdp_aws::{DynamoStore, FirehoseLake, KinesisLog};
use sdp_core::join::JoinConfig;
use sdp_core::memory::T0;
use sdp_functions::handlers;
use sdp_scenarios::platform::{
    create_delivery_streams, deploy_platform, read_stream, s3_client, sdk_config,
};
use sdp_scenarios::{fixtures, repo_root, stems, MotoServer};

/// What the calls consumed, in billed units.
#[derive(Debug, Default, Clone, Copy)]
struct Consumed {
    stream_records: f64,
    put_payload_units: f64,
    read_request_units: f64,
    write_request_units: f64,
    aggregate_read_units: f64,
    aggregate_write_units: f64,
    stream_delivery_billed_bytes: f64,
    processor_delivery_billed_bytes: f64,
}

/// The counting layer: an interceptor on each SDK client that weighs the requests it sends;
/// it knows the aggregates table, to tell its reads and writes from the join state's.
#[derive(Debug, Clone, Default)]
struct Meter(Arc<Mutex<Consumed>>, Arc<String>);

impl Meter {
    fn consumed(&self) -> Consumed {
        *self.0.lock().unwrap()
    }
}

fn item_bytes(
    item: &std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>,
) -> f64 {
    use aws_sdk_dynamodb::types::AttributeValue;
    item.iter()
        .map(|(name, value)| match value {
            AttributeValue::S(s) => string_attribute(name, s),
            AttributeValue::N(n) => number_attribute(name, n),
            other => panic!("the model weighs strings and numbers; `{name}` is {other:?}"),
        })
        .sum::<usize>() as f64
}

impl Intercept for Meter {
    fn name(&self) -> &'static str {
        "cost meter"
    }

    fn read_before_execution(
        &self,
        context: &BeforeSerializationInterceptorContextRef<'_>,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let input = context.input();
        let mut c = self.0.lock().unwrap();
        if let Some(put) = input.downcast_ref::<aws_sdk_kinesis::operation::put_records::PutRecordsInput>() {
            for record in put.records() {
                let data = record.data().as_ref().len() as f64;
                c.stream_records += 1.0;
                c.put_payload_units += steps(data + record.partition_key().unwrap_or_default().len() as f64, aws::PUT_PAYLOAD_UNIT_BYTES);
                // Firehose reads each stream record for `bcns`, rounded up to 5 KB.
                c.stream_delivery_billed_bytes += steps(data, aws::FIREHOSE_STEP_BYTES) * aws::FIREHOSE_STEP_BYTES;
            }
        } else if let Some(get) = input.downcast_ref::<aws_sdk_dynamodb::operation::batch_get_item::BatchGetItemInput>() {
            for (table, keys) in get.request_items().into_iter().flatten() {
                assert_eq!(keys.consistent_read(), Some(true), "state is read strongly consistent");
                // A strongly consistent read: a unit per key (state items are far below 4 KB).
                c.read_request_units += keys.keys().len() as f64;
                if table == self.1.as_str() {
                    c.aggregate_read_units += keys.keys().len() as f64;
                }
            }
        } else if input.downcast_ref::<aws_sdk_dynamodb::operation::query::QueryInput>().is_some() {
            // One aggregate window, a few numbers: one unit.
            c.read_request_units += 1.0;
            c.aggregate_read_units += 1.0;
        } else if let Some(tx) = input.downcast_ref::<aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsInput>() {
            for item in tx.transact_items() {
                let units = match (item.put(), item.update()) {
                    (Some(put), _) => 2.0 * steps(item_bytes(put.item()), aws::WRITE_UNIT_BYTES),
                    // An aggregate: two keys and three counts, far below 1 KB.
                    (None, Some(_)) => {
                        c.aggregate_write_units += 2.0;
                        2.0
                    }
                    _ => panic!(
                        "the processor's transactions hold puts and updates only: {item:?}"
                    ),
                };
                c.write_request_units += units;
            }
        } else if let Some(batch) = input.downcast_ref::<aws_sdk_firehose::operation::put_record_batch::PutRecordBatchInput>() {
            for record in batch.records() {
                c.processor_delivery_billed_bytes +=
                    steps(record.data().as_ref().len() as f64, aws::FIREHOSE_STEP_BYTES) * aws::FIREHOSE_STEP_BYTES;
            }
        }
        Ok(())
    }
}

/// `sdp load`'s traffic in stream order: its bids, then the impressions they made due, then the
/// clicks (so no two events of a transaction share a processor batch, as the model takes it),
/// in requests of 50 lines.
fn traffic() -> Vec<Vec<Arrival>> {
    let arrivals = Traffic::new(Tag::new("cost", T0, 0)).by_kind(1000).concat();
    arrivals.chunks(50).map(<[Arrival]>::to_vec).collect()
}

fn batch_request(lines: &[Arrival]) -> ApiGatewayProxyRequest {
    let mut request: ApiGatewayProxyRequest =
        serde_json::from_value(fixtures::post("events", &batch_body(lines)).unwrap()).unwrap();
    request
        .headers
        .insert("content-type", "application/x-ndjson".parse().unwrap());
    request
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_handlers_consume_the_units_per_event_that_sdp_cost_prices() {
    let moto = MotoServer::start().unwrap();
    let config = sdk_config(&moto.endpoint, "us-west-2").await;
    let platform = deploy_platform(&config, "cost").await.unwrap();
    let bucket = platform.resource("DataBucket").unwrap();
    let streams = create_delivery_streams(&config, "cost", bucket)
        .await
        .unwrap();

    let meter = Meter(
        Arc::default(),
        Arc::new(platform.resource("AggregatesTable").unwrap().to_owned()),
    );
    let kinesis = aws_sdk_kinesis::Client::from_conf(
        aws_sdk_kinesis::config::Builder::from(&config)
            .interceptor(meter.clone())
            .build(),
    );
    let dynamodb = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&config)
            .interceptor(meter.clone())
            .build(),
    );
    let firehose = aws_sdk_firehose::Client::from_conf(
        aws_sdk_firehose::config::Builder::from(&config)
            .interceptor(meter.clone())
            .build(),
    );
    let log = KinesisLog::new(kinesis, platform.resource("EventStream").unwrap());
    let store = DynamoStore::new(
        dynamodb,
        platform.resource("StateTable").unwrap(),
        platform.resource("AggregatesTable").unwrap(),
    );
    let lake = FirehoseLake::new(firehose, streams);
    let dead_letters = sdp_aws::S3Objects::new(s3_client(&config), bucket);

    // Ingestion: batches of 50 through the ingest handler, each packed into one record.
    let requests = traffic();
    let mut events = 0;
    for lines in &requests {
        let response = handlers::ingest(&log, batch_request(lines)).await;
        assert_eq!(response.status_code, 200, "{:?}", response.body);
        events += lines.len();
    }
    assert_eq!(events, 1600);

    // Processing: the stream in batches of ten records (500 events), what one shard gathers in
    // the mapping's one-second window at 500 events a second.
    let records = read_stream(&config, platform.resource("EventStream").unwrap())
        .await
        .unwrap();
    assert_eq!(
        records.len(),
        requests.len(),
        "a record per request: one shard"
    );
    let join = JoinConfig::from_minutes(60, 60, 60).unwrap();
    let mut batch_events = Vec::new();
    for batch in records.chunks(10) {
        batch_events.push(50.0 * batch.len() as f64);
        let event = serde_json::from_value(fixtures::kinesis_batch(batch).unwrap()).unwrap();
        handlers::processor(&store, &join, &lake, &dead_letters, "sdp/cost", event)
            .await
            .unwrap();
    }

    let c = meter.consumed();
    let n = events as f64;
    let measured = PerEvent {
        api_requests: requests.len() as f64 / n,
        stream_records: c.stream_records / n,
        put_payload_units: c.put_payload_units / n,
        read_request_units: c.read_request_units / n,
        write_request_units: c.write_request_units / n,
        aggregate_read_units: c.aggregate_read_units / n,
        aggregate_write_units: c.aggregate_write_units / n,
        stream_delivery_billed_bytes: c.stream_delivery_billed_bytes / n,
        processor_delivery_billed_bytes: c.processor_delivery_billed_bytes / n,
    };
    let workload = Workload {
        events_per_second: 500.0,
        batch_size: 50.0,
        campaigns: sdp::probe::load::CAMPAIGNS as f64,
        shards: 1.0,
    };
    let sizes = Sizes::of_load_traffic().unwrap();
    assert_eq!(workload.processor_batch(&sizes), 500.0);
    let model = usage::per_event(&workload, &sizes);
    // The requests here each hold one kind of event (bids, then impressions, then clicks: 20,
    // 10 and 2 requests of 50), where the model packs the steady mix: Firehose's 5 KB steps
    // over the stream's records are checked on the same composition, kind by kind.
    let of_one_kind = |kind: usize| {
        let mut one = sizes.clone();
        one.share = [0.0; 3];
        one.share[kind] = 1.0;
        usage::per_event(&workload, &one).stream_delivery_billed_bytes * sizes.share[kind]
    };
    let bcns_as_sent: f64 = (0..3).map(of_one_kind).sum();
    eprintln!("measured {measured:?}\nmodel    {model:?}");
    // Requests, records, payload units and the stream's Firehose bytes exactly. Capacity units
    // within 3%: they differ only where the traffic's first and last batches are not the steady
    // mix the model prices. The processor's Firehose bytes within 25%: each batch's rows are
    // rounded up to 5 KB once per dataset, and how many a batch carries varies around the mean.
    let close = |name: &str, measured: f64, model: f64, tolerance: f64| {
        assert!(
            (measured - model).abs() <= tolerance * model,
            "{name}: the handlers consumed {measured:.4} per event, the model prices {model:.4}"
        );
    };
    close(
        "API requests",
        measured.api_requests,
        model.api_requests,
        0.0,
    );
    close(
        "stream records",
        measured.stream_records,
        model.stream_records,
        0.0,
    );
    close(
        "PUT payload units",
        measured.put_payload_units,
        model.put_payload_units,
        0.0,
    );
    close(
        "read request units",
        measured.read_request_units,
        model.read_request_units,
        0.03,
    );
    close(
        "write request units",
        measured.write_request_units,
        model.write_request_units,
        0.03,
    );
    // The aggregates' share, on the batches as they came (three of 500 events and one of 100).
    let aggregate_reads: f64 = batch_events
        .iter()
        .map(|&b| workload.aggregates_in(b))
        .sum();
    let aggregate_writes: f64 = batch_events
        .iter()
        .map(|&b| workload.aggregate_writes(b))
        .sum();
    close(
        "aggregate read units",
        measured.aggregate_read_units,
        aggregate_reads / n,
        0.01,
    );
    close(
        "aggregate write units",
        measured.aggregate_write_units,
        2.0 * aggregate_writes / n,
        0.01,
    );
    close(
        "Firehose bytes of bcns",
        measured.stream_delivery_billed_bytes,
        bcns_as_sent,
        0.0,
    );
    close(
        "Firehose bytes of the processor's rows",
        measured.processor_delivery_billed_bytes,
        model.processor_delivery_billed_bytes,
        0.25,
    );
}

/// The settings the model prices are the rendered template's.
#[test]
fn the_stack_settings_sdp_cost_prices_are_the_templates() {
    let region = regions::load("us-east-1").unwrap();
    let text = render::render_platform(&templates::embedded(), &region)
        .unwrap()
        .text;
    let template: Value = serde_yaml_ng::from_str(&text).unwrap();
    let resources = template["Resources"].as_mapping().unwrap();
    let memory = |id: &str| template["Resources"][id]["Properties"]["MemorySize"].as_f64();
    assert_eq!(memory("IngestFunction"), Some(stack::INGEST_MEMORY_MB));
    assert_eq!(
        memory("ProcessorFunction"),
        Some(stack::PROCESSOR_MEMORY_MB)
    );
    assert_eq!(memory("TrainerFunction"), Some(stack::TRAINER_MEMORY_MB));
    let default = |name: &str| template["Parameters"][name]["Default"].clone();
    assert_eq!(
        default("CompactorMemory").as_f64(),
        Some(stack::COMPACTOR_MEMORY_MB)
    );
    assert_eq!(
        default("CompactionSchedule").as_str(),
        Some("rate(15 minutes)")
    );
    assert_eq!(default("TrainingSchedule").as_str(), Some("rate(1 hour)"));
    assert_eq!(default("BufInterval").as_f64(), Some(stack::BUFFER_SECONDS));
    assert_eq!(default("BufSize").as_f64(), Some(stack::BUFFER_MB));
    assert_eq!(
        default("RawRetentionDays").as_f64(),
        Some(stack::RAW_RETENTION_DAYS)
    );
    assert_eq!(
        default("LogRetentionDays").as_f64(),
        Some(stack::LOG_RETENTION_DAYS)
    );
    let mapping = &template["Resources"]["ProcessorEventSource"]["Properties"];
    assert_eq!(
        mapping["BatchSize"].as_f64(),
        Some(stack::PROCESSOR_BATCH_RECORDS)
    );
    assert_eq!(
        mapping["MaximumBatchingWindowInSeconds"].as_f64(),
        Some(stack::BATCHING_WINDOW_SECONDS)
    );
    let count = |kind: &str| {
        resources
            .values()
            .filter(|r| r["Type"].as_str() == Some(kind))
            .count() as f64
    };
    assert_eq!(count("AWS::CloudWatch::Alarm"), stack::ALARMS);
    assert_eq!(count("AWS::CloudWatch::Dashboard"), stack::DASHBOARDS);
    assert_eq!(
        count("AWS::KinesisFirehose::DeliveryStream"),
        stack::DELIVERY_STREAMS
    );
    assert_eq!(count("AWS::Lambda::Function"), stack::FUNCTIONS);
    assert_eq!(count("AWS::KMS::Key"), 1.0);
    // Provisioned capacity: both tables, writes and reads, tracked at the priced use.
    assert_eq!(default("StateCapacity").as_str(), Some("ON_DEMAND"));
    assert_eq!(count("AWS::DynamoDB::Table"), stack::TABLES);
    assert_eq!(
        count("AWS::ApplicationAutoScaling::ScalableTarget"),
        2.0 * stack::TABLES
    );
    for (id, resource) in resources {
        let properties = &resource["Properties"];
        match resource["Type"].as_str() {
            Some("AWS::ApplicationAutoScaling::ScalableTarget") => {
                assert_eq!(
                    properties["MinCapacity"].as_f64(),
                    Some(stack::MIN_CAPACITY_UNITS),
                    "{id:?}"
                );
            }
            Some("AWS::ApplicationAutoScaling::ScalingPolicy") => {
                let target =
                    properties["TargetTrackingScalingPolicyConfiguration"]["TargetValue"].as_f64();
                assert_eq!(target, Some(stack::TARGET_UTILISATION * 100.0), "{id:?}");
            }
            _ => {}
        }
    }
}

/// Every price file is embedded, and each parses.
#[test]
fn the_price_files_and_the_embedded_list_agree() {
    let files = stems(&repo_root().join("regions/prices"), ".yaml").unwrap();
    assert_eq!(files, prices::priced());
    for region in prices::priced() {
        prices::load(region).unwrap();
        assert!(
            regions::supported().contains(&region),
            "{region} has prices but no region file"
        );
    }
}

/// With `StateCapacity=PROVISIONED` the stack creates both tables with provisioned capacity
/// (moto has no Application Auto Scaling in CloudFormation: the scaling targets are checked in
/// the rendered template above, and by cfn-lint and checkov).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provisioned_capacity_creates_the_tables_with_provisioned_throughput() {
    let moto = MotoServer::start().unwrap();
    let config = sdk_config(&moto.endpoint, "us-west-2").await;
    let platform = sdp_scenarios::platform::deploy_platform_with(
        &config,
        "provisioned",
        &[("StateCapacity", "PROVISIONED")],
    )
    .await
    .unwrap();
    let dynamodb = aws_sdk_dynamodb::Client::new(&config);
    for table in ["StateTable", "AggregatesTable"] {
        let described = dynamodb
            .describe_table()
            .table_name(platform.resource(table).unwrap())
            .send()
            .await
            .unwrap();
        let throughput = described.table().unwrap().provisioned_throughput().unwrap();
        assert_eq!(
            (
                throughput.read_capacity_units(),
                throughput.write_capacity_units()
            ),
            (Some(5), Some(5)),
            "{table}"
        );
    }
}

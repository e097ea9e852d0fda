//! The Lambda handlers with real event JSON (API Gateway proxy events, Kinesis batches) against
//! moto, on the stream and tables the template creates: the original's integration scenario
//! counts exactly and lands its joined rows and aggregate snapshots in the lake through Firehose, a
//! redelivered batch changes nothing, a record that is not an event is kept with its payload in the
//! lake while its batch counts, a compressed batch is counted once when sent twice, and bad
//! requests get the documented status with the field named.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test file: a panic is the failure report

use std::sync::Arc;

use aws_lambda_events::apigw::{ApiGatewayProxyRequest, ApiGatewayProxyResponse};
use aws_lambda_events::encodings::Body;
use aws_lambda_events::kinesis::KinesisEvent;
use base64::Engine;
use serde_json::{json, Value};

use sdp_aws::{DynamoStore, FirehoseLake, KinesisLog, S3Objects};
use sdp_core::events::Event;
use sdp_core::join::JoinConfig;
use sdp_core::landing::LandedRow;
use sdp_core::ports::{LakeSink, StoreError};
use sdp_functions::handlers;
use sdp_scenarios::platform::{
    create_delivery_streams, deploy_platform, lines_under, read_stream, s3_client, sdk_config,
    Platform,
};
use sdp_scenarios::{fixtures, MotoServer};

fn post(route: &str, body: &str) -> ApiGatewayProxyRequest {
    serde_json::from_value(fixtures::post(route, body).unwrap()).unwrap()
}

fn get_report(campaign: i64) -> ApiGatewayProxyRequest {
    serde_json::from_value(fixtures::get_report(campaign).unwrap()).unwrap()
}

fn kinesis_batch(records: &[(String, String, Vec<u8>)]) -> KinesisEvent {
    serde_json::from_value(fixtures::kinesis_batch(records).unwrap()).unwrap()
}

fn body(response: &ApiGatewayProxyResponse) -> Value {
    match &response.body {
        Some(Body::Text(text)) => serde_json::from_str(text).unwrap(),
        other => panic!("unexpected body {other:?}"),
    }
}

struct Stack {
    _moto: MotoServer,
    config: aws_config::SdkConfig,
    platform: Platform,
}

async fn stack() -> Stack {
    let moto = MotoServer::start().unwrap();
    let config = sdk_config(&moto.endpoint, "us-west-2").await;
    let platform = deploy_platform(&config, "functions").await.unwrap();
    Stack {
        _moto: moto,
        config,
        platform,
    }
}

impl Stack {
    fn log(&self) -> KinesisLog {
        KinesisLog::new(
            aws_sdk_kinesis::Client::new(&self.config),
            self.platform.resource("EventStream").unwrap(),
        )
    }

    /// The lake bucket, where the processor keeps dead letters.
    fn bucket(&self) -> S3Objects {
        S3Objects::new(
            s3_client(&self.config),
            self.platform.resource("DataBucket").unwrap(),
        )
    }

    fn store(&self) -> DynamoStore {
        DynamoStore::new(
            aws_sdk_dynamodb::Client::new(&self.config),
            self.platform.resource("StateTable").unwrap(),
            self.platform.resource("AggregatesTable").unwrap(),
        )
    }

    async fn records(&self) -> Vec<(String, String, Vec<u8>)> {
        read_stream(&self.config, self.platform.resource("EventStream").unwrap())
            .await
            .unwrap()
    }
}

/// A lake that takes every batch and keeps nothing: for tests of counting alone.
struct NoLake;

impl LakeSink for NoLake {
    async fn deliver(
        &self,
        _batch: &str,
        _events: &[Event],
        _rows: &[LandedRow],
    ) -> Result<(), StoreError> {
        Ok(())
    }
}

fn join() -> JoinConfig {
    JoinConfig::from_minutes(2, 5, 5).unwrap()
}

/// The original's integration test (ORIGINAL.md §7.2), posted concurrently, some requests twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_originals_integration_scenario_counts_exactly_through_the_handlers() {
    let stack = stack().await;
    let (n, m, k) = (317_usize, 113_usize, 31_usize);
    let campaign = 1_463_517;
    let requests: Vec<ApiGatewayProxyRequest> = fixtures::integration_scenario(n, m, k, campaign)
        .iter()
        .map(|(route, body)| post(route, body))
        .collect();

    let log = Arc::new(stack.log());
    let tasks: Vec<_> = requests
        .into_iter()
        .map(|request| {
            let log = Arc::clone(&log);
            tokio::spawn(async move { handlers::ingest(log.as_ref(), request).await })
        })
        .collect();
    for task in tasks {
        let response = task.await.unwrap();
        assert_eq!(response.status_code, 200, "{:?}", response.body);
    }

    // Deliver the stream to the processor in batches of 100; the first batch twice.
    // and land each batch in the lake through the Firehose streams.
    let bucket = stack.platform.resource("DataBucket").unwrap();
    let streams = create_delivery_streams(&stack.config, "functions", bucket)
        .await
        .unwrap();
    let lake = FirehoseLake::new(aws_sdk_firehose::Client::new(&stack.config), streams);
    let records = stack.records().await;
    let store = stack.store();
    let mut batches: Vec<&[(String, String, Vec<u8>)]> = records.chunks(100).collect();
    batches.insert(1, batches[0]);
    let dead_letters = stack.bucket();
    for batch in batches {
        handlers::processor(
            &store,
            &join(),
            &lake,
            &dead_letters,
            "sdp/functions",
            kinesis_batch(batch),
        )
        .await
        .unwrap();
    }
    assert!(
        lines_under(&stack.config, bucket, "dead-letter/")
            .await
            .unwrap()
            .is_empty(),
        "no dead letters"
    );

    let report = handlers::reports(&store, get_report(campaign)).await;
    assert_eq!(report.status_code, 200);
    assert_eq!(
        body(&report),
        json!({"campaign_item_id": campaign, "bids": n, "imps": m, "clicks": k})
    );

    // The lake: each joined impression and click once (the redelivered batch repeats exact
    // lines), with its bid's campaign; and aggregate snapshots whose latest totals are the report.
    let distinct = |lines: Vec<String>| -> Vec<Value> {
        let set: std::collections::BTreeSet<String> = lines.into_iter().collect();
        set.iter()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    for (dataset, expected) in [("impressions", m), ("clicks", k)] {
        let rows = distinct(
            lines_under(&stack.config, bucket, &format!("raw/{dataset}/"))
                .await
                .unwrap(),
        );
        assert_eq!(rows.len(), expected, "{dataset}");
        assert!(
            rows.iter()
                .all(|r| r["campaign_item_id"] == campaign && r["app_uid"].is_string()),
            "{dataset}: {rows:?}"
        );
    }
    let snapshots = distinct(
        lines_under(&stack.config, bucket, "raw/aggregates/")
            .await
            .unwrap(),
    );
    let mut latest: std::collections::BTreeMap<String, [i64; 3]> = Default::default();
    for s in &snapshots {
        assert_eq!(s["campaign_item_id"], campaign);
        let totals = latest
            .entry(s["period"].as_str().unwrap().to_owned())
            .or_default();
        for (i, counter) in ["bids", "imps", "clicks"].iter().enumerate() {
            totals[i] = totals[i].max(s[counter].as_i64().unwrap());
        }
    }
    let summed = latest
        .values()
        .fold([0; 3], |a, t| [a[0] + t[0], a[1] + t[1], a[2] + t[2]]);
    assert_eq!(summed, [n as i64, m as i64, k as i64], "{latest:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_that_is_not_an_event_is_kept_with_its_payload_in_the_lake_and_its_batch_counts() {
    let stack = stack().await;
    let log = stack.log();
    for body in [
        r#"{"tx_id":"p1","app_uid":"u","campaign_item_id":77}"#,
        r#"{"tx_id":"p2","app_uid":"u","campaign_item_id":77}"#,
    ] {
        assert_eq!(
            handlers::ingest(&log, post("bid", body)).await.status_code,
            200
        );
    }
    let mut records = stack.records().await;
    records.insert(
        1,
        ("99999".into(), "poison".into(), b"{not an event".to_vec()),
    );

    // The batch succeeds: nothing is left for the event source mapping to retry or discard.
    let dead_letters = stack.bucket();
    for _ in 0..2 {
        handlers::processor(
            &stack.store(),
            &join(),
            &NoLake,
            &dead_letters,
            "sdp/functions",
            kinesis_batch(&records),
        )
        .await
        .unwrap();
    }
    let report = handlers::reports(&stack.store(), get_report(77)).await;
    assert_eq!(body(&report)["bids"], 2);

    // The record is kept whole in the lake bucket, under its shard and sequence number, once.
    let bucket = stack.platform.resource("DataBucket").unwrap();
    let letters = lines_under(&stack.config, bucket, "dead-letter/")
        .await
        .unwrap();
    assert_eq!(letters.len(), 1, "{letters:?}");
    let letter: Value = serde_json::from_str(&letters[0]).unwrap();
    assert_eq!(letter["id"], "shardId-000000000000:99999");
    assert_eq!(letter["data_text"], "{not an event");
    assert!(letter["reason"]
        .as_str()
        .unwrap()
        .contains("not a stored event"));
}

/// A batch through API Gateway (gzip, so base64 in the proxy event, as `BinaryMediaTypes` makes
/// it), packed into one record on the stream (one shard), then sent again; both processed, each
/// event counted once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compressed_batch_is_stored_line_by_line_and_counted_once_when_sent_twice() {
    let stack = stack().await;
    let log = stack.log();
    let campaign = 77;
    let mut lines = fixtures::batch_lines(campaign, 40);
    lines.push(json!({"type": "click"}).to_string()); // no tx_id: rejected
    let mut request = post("events", "");
    request.body = Some(
        base64::engine::general_purpose::STANDARD
            .encode(fixtures::gzip(lines.join("\n").as_bytes())),
    );
    request.is_base64_encoded = true;
    request
        .headers
        .insert("content-type", "application/x-ndjson".parse().unwrap());
    request
        .headers
        .insert("content-encoding", "gzip".parse().unwrap());

    for _ in 0..2 {
        let response = handlers::ingest(&log, request.clone()).await;
        assert_eq!(response.status_code, 207, "{:?}", response.body);
        let answer = body(&response);
        assert_eq!(
            (answer["accepted"].as_u64(), answer["rejected"].as_u64()),
            (Some(70), Some(1))
        );
        assert_eq!(answer["lines"][70]["field"], "tx_id", "{answer}");
    }
    let records = stack.records().await;
    assert_eq!(
        records.len(),
        2,
        "each batch packed into one record (the stream has one shard)"
    );
    let lines: Vec<Value> = records
        .iter()
        .flat_map(|(_, _, data)| data.split(|&b| b == b'\n'))
        .map(|line| serde_json::from_slice(line).unwrap())
        .collect();
    assert_eq!(lines.len(), 140, "each accepted line, twice");
    let store = stack.store();
    for batch in records.chunks(50) {
        handlers::processor(
            &store,
            &join(),
            &NoLake,
            &stack.bucket(),
            "sdp/functions",
            kinesis_batch(batch),
        )
        .await
        .unwrap();
    }
    let report = handlers::reports(&store, get_report(campaign)).await;
    assert_eq!(
        body(&report),
        json!({"campaign_item_id": campaign, "bids": 40, "imps": 20, "clicks": 10})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_the_documented_status_with_the_field_named_and_store_nothing() {
    let stack = stack().await;
    let log = stack.log();
    let cases = [
        (
            post("bid", r#"{"tx_id":"x","app_uid":"u"}"#),
            400,
            Some("campaign_item_id"),
        ),
        (
            post("impression", r#"{"tx_id":"x","win_price":-5}"#),
            400,
            Some("win_price"),
        ),
        (
            post("click", r#"{"tx_id":"x","type":"bid"}"#),
            400,
            Some("type"),
        ),
        (post("click", "{oops"), 400, None),
        (post("location", r#"{"tx_id":"x"}"#), 404, None),
    ];
    for (request, status, field) in cases {
        let response = handlers::ingest(&log, request).await;
        assert_eq!(response.status_code, status, "{:?}", response.body);
        assert_eq!(body(&response)["field"].as_str(), field);
    }
    let mut form = post("click", r#"{"tx_id":"x"}"#);
    form.headers.insert(
        "content-type",
        "application/x-www-form-urlencoded".parse().unwrap(),
    );
    assert_eq!(handlers::ingest(&log, form).await.status_code, 415);
    assert!(
        stack.records().await.is_empty(),
        "nothing refused was stored"
    );

    // A body API Gateway passes base64-encoded is decoded first.
    let mut encoded = post("click", "");
    encoded.body = Some(base64::engine::general_purpose::STANDARD.encode(r#"{"tx_id":"b64"}"#));
    encoded.is_base64_encoded = true;
    assert_eq!(handlers::ingest(&log, encoded).await.status_code, 200);

    let report = handlers::reports(&stack.store(), get_report(1)).await;
    assert_eq!(
        body(&report),
        json!({"campaign_item_id": 1, "bids": 0, "imps": 0, "clicks": 0})
    );
    let mut bad = get_report(1);
    bad.path = Some("/reports/campaigns/abc".into());
    let response = handlers::reports(&stack.store(), bad).await;
    assert_eq!(
        (response.status_code, body(&response)["field"].as_str()),
        (400, Some("campaign_item_id"))
    );
}

//! The Lambda handlers with real event JSON (API Gateway proxy events, Kinesis batches) against
//! moto, on the stream and tables the template creates: the original's integration scenario
//! counts exactly, a redelivered batch changes nothing, a poison record is reported alone, and bad
//! requests get the documented status with the field named.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test file: a panic is the failure report

use std::sync::Arc;

use aws_lambda_events::apigw::{ApiGatewayProxyRequest, ApiGatewayProxyResponse};
use aws_lambda_events::encodings::Body;
use aws_lambda_events::kinesis::KinesisEvent;
use base64::Engine;
use serde_json::{json, Value};

use sdp_aws::{DynamoStore, KinesisLog};
use sdp_core::join::JoinConfig;
use sdp_functions::handlers;
use sdp_scenarios::platform::{deploy_platform, read_stream, sdk_config, Platform};
use sdp_scenarios::{repo_root, MotoServer};

fn fixture(name: &str) -> Value {
    let path = repo_root().join("tests/fixtures").join(name);
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// The recorded POST /bid event with another route and body.
fn post(route: &str, body: &str) -> ApiGatewayProxyRequest {
    let mut event = fixture("apigw-post-bid.json");
    event["resource"] = json!(format!("/{route}"));
    event["path"] = json!(format!("/{route}"));
    event["requestContext"]["resourcePath"] = json!(format!("/{route}"));
    event["body"] = json!(body);
    serde_json::from_value(event).unwrap()
}

/// The recorded GET report event for another campaign.
fn get_report(campaign: i64) -> ApiGatewayProxyRequest {
    let mut event = fixture("apigw-get-report.json");
    event["path"] = json!(format!("/reports/campaigns/{campaign}"));
    event["pathParameters"] = json!({ "campaign_item_id": campaign.to_string() });
    serde_json::from_value(event).unwrap()
}

/// A Kinesis batch as the event source mapping delivers it, from the recorded record's shape.
fn kinesis_batch(records: &[(String, String, Vec<u8>)]) -> KinesisEvent {
    let template = fixture("kinesis-batch.json")["Records"][0].clone();
    let records: Vec<Value> = records
        .iter()
        .map(|(sequence, key, data)| {
            let mut record = template.clone();
            record["kinesis"]["sequenceNumber"] = json!(sequence);
            record["kinesis"]["partitionKey"] = json!(key);
            record["kinesis"]["data"] =
                json!(base64::engine::general_purpose::STANDARD.encode(data));
            record["eventID"] = json!(format!("shardId-000000000000:{sequence}"));
            record
        })
        .collect();
    serde_json::from_value(json!({ "Records": records })).unwrap()
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

fn join() -> JoinConfig {
    JoinConfig::from_minutes(2, 5, 5).unwrap()
}

/// The original's integration test (ORIGINAL.md §7.2): N bids, the first M of them with an
/// impression, the first K of those with a click, all posted concurrently, some twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_originals_integration_scenario_counts_exactly_through_the_handlers() {
    let stack = stack().await;
    let (n, m, k) = (317_usize, 113_usize, 31_usize);
    let campaign = 1_463_517;
    let mut requests = Vec::new();
    for i in 0..n {
        let tx = format!("it-{i:04}");
        requests.push(post(
            "bid",
            &json!({"tx_id": tx, "app_uid": "app", "campaign_item_id": campaign, "domain": "www.google.com",
                    "creative_id": "creative", "creative_category": "testCreativeCategory"})
            .to_string(),
        ));
        if i < m {
            requests.push(post(
                "impression",
                &json!({"tx_id": tx, "win_price": 1000 + i}).to_string(),
            ));
        }
        if i < k {
            requests.push(post("click", &json!({"tx_id": tx}).to_string()));
        }
    }
    // Every seventh request is posted twice, as a client retry would.
    let retries: Vec<ApiGatewayProxyRequest> = requests.iter().step_by(7).cloned().collect();
    requests.extend(retries);

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
    let records = stack.records().await;
    let store = stack.store();
    let mut batches: Vec<&[(String, String, Vec<u8>)]> = records.chunks(100).collect();
    batches.insert(1, batches[0]);
    for batch in batches {
        let response = handlers::processor(&store, &join(), kinesis_batch(batch))
            .await
            .unwrap();
        assert!(response.batch_item_failures.is_empty());
    }

    let report = handlers::reports(&store, get_report(campaign)).await;
    assert_eq!(report.status_code, 200);
    assert_eq!(
        body(&report),
        json!({"campaign_item_id": campaign, "bids": n, "imps": m, "clicks": k})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_record_is_reported_alone_while_the_good_records_of_its_batch_count() {
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

    let response = handlers::processor(&stack.store(), &join(), kinesis_batch(&records))
        .await
        .unwrap();
    let failed: Vec<Option<String>> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect();
    assert_eq!(failed, [Some("99999".to_owned())]);
    let report = handlers::reports(&stack.store(), get_report(77)).await;
    assert_eq!(body(&report)["bids"], 2);
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

//! Real Lambda event JSON, from the recorded fixtures in `tests/fixtures/`, varied per test; and
//! the original's integration scenario.

use base64::Engine;
use serde_json::{json, Value};

use crate::repo_root;

fn fixture(name: &str) -> anyhow::Result<Value> {
    let path = repo_root().join("tests/fixtures").join(name);
    Ok(serde_json::from_str(&std::fs::read_to_string(&path)?)?)
}

/// The recorded API Gateway `POST /bid` event, with another route and body.
pub fn post(route: &str, body: &str) -> anyhow::Result<Value> {
    let mut event = fixture("apigw-post-bid.json")?;
    event["resource"] = json!(format!("/{route}"));
    event["path"] = json!(format!("/{route}"));
    event["requestContext"]["resourcePath"] = json!(format!("/{route}"));
    event["requestContext"]["path"] = json!(format!("/v1/{route}"));
    event["body"] = json!(body);
    Ok(event)
}

/// The recorded API Gateway `POST` event as the predictions API sends it: `POST /` on its
/// `predictions` stage, with `body`.
pub fn post_prediction(body: &str) -> anyhow::Result<Value> {
    let mut event = post("", body)?;
    event["requestContext"]["path"] = json!("/predictions/");
    event["requestContext"]["stage"] = json!("predictions");
    Ok(event)
}

/// The recorded EventBridge scheduled event that starts the trainer and the compactor.
pub fn scheduled() -> anyhow::Result<Value> {
    fixture("eventbridge-scheduled.json")
}

/// The recorded API Gateway report request, for another campaign.
pub fn get_report(campaign: i64) -> anyhow::Result<Value> {
    let mut event = fixture("apigw-get-report.json")?;
    event["path"] = json!(format!("/reports/campaigns/{campaign}"));
    event["requestContext"]["path"] = json!(format!("/v1/reports/campaigns/{campaign}"));
    event["pathParameters"] = json!({ "campaign_item_id": campaign.to_string() });
    Ok(event)
}

/// A Kinesis event as the event source mapping delivers `records` (sequence, key, data).
pub fn kinesis_batch(records: &[(String, String, Vec<u8>)]) -> anyhow::Result<Value> {
    let template = fixture("kinesis-batch.json")?["Records"][0].clone();
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
    Ok(json!({ "Records": records }))
}

/// `bytes` gzip-compressed: a client's compressed batch (`Content-Encoding: gzip`), an object
/// Firehose delivers.
pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    // Writing to a Vec cannot fail.
    let _ = encoder.write_all(bytes);
    encoder.finish().unwrap_or_default()
}

/// The lines of a batch (`POST {UrlForAPI}/events`) for `transactions` transactions of
/// `campaign`, `batch-<i>`: every one a bid, every second an impression, every fourth a click.
pub fn batch_lines(campaign: i64, transactions: usize) -> Vec<String> {
    let mut lines = Vec::new();
    for i in 0..transactions {
        let tx = format!("batch-{i}");
        lines.push(
            json!({"type": "bid", "tx_id": tx, "app_uid": "u", "campaign_item_id": campaign})
                .to_string(),
        );
        if i % 2 == 0 {
            lines.push(json!({"type": "imp", "tx_id": tx, "win_price": 5}).to_string());
        }
        if i % 4 == 0 {
            lines.push(json!({"type": "click", "tx_id": tx}).to_string());
        }
    }
    lines
}

/// The original's integration test (ORIGINAL.md §7.2): `n` bids for `campaign`, the first `m` with
/// an impression, the first `k` of those with a click; every seventh request repeated, as a client
/// retry would. Returns (route, body) pairs.
pub fn integration_scenario(
    n: usize,
    m: usize,
    k: usize,
    campaign: i64,
) -> Vec<(&'static str, String)> {
    let mut requests = Vec::new();
    for i in 0..n {
        let tx = format!("it-{campaign}-{i:04}");
        requests.push((
            "bid",
            json!({"tx_id": tx, "app_uid": "app", "campaign_item_id": campaign, "domain": "www.google.com",
                   "creative_id": "creative", "creative_category": "testCreativeCategory"})
            .to_string(),
        ));
        if i < m {
            requests.push((
                "impression",
                json!({"tx_id": tx, "win_price": 1000 + i}).to_string(),
            ));
        }
        if i < k {
            requests.push(("click", json!({"tx_id": tx}).to_string()));
        }
    }
    let retries: Vec<(&'static str, String)> = requests.iter().step_by(7).cloned().collect();
    requests.extend(retries);
    requests
}

//! `sdp local` end to end, with the real binary over real HTTP: the original's integration scenario
//! counted exactly; the documented 4xx answers; one process per data directory; a clean stop and a
//! `kill -9` under load, each followed by a restart that loses no event answered 200 and counts
//! none twice; a batch answered line by line and counted once when sent again; `sdp query` over
//! the lake it wrote, agreeing with the reports.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test file: a panic is the failure report

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use sdp_scenarios::fixtures::{self, batch_lines, integration_scenario};

use crate::common::{agent, data_dir, get, post, query, query_rows, Local};

/// Polls the report until `done` holds for it, or fails after a generous deadline.
fn wait_for(
    local: &Local,
    campaign: i64,
    done: impl Fn((i64, i64, i64)) -> bool,
) -> (i64, i64, i64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let counts = local.totals(campaign);
        if done(counts) {
            return counts;
        }
        assert!(Instant::now() < deadline, "the report stayed at {counts:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Sends `requests` from `threads` concurrent clients; the (route, body) pairs answered 200.
fn send_all(local: &Local, requests: &[(&'static str, String)], threads: usize) -> usize {
    let queue = Arc::new(Mutex::new(requests.to_vec()));
    let accepted = Arc::new(Mutex::new(0));
    std::thread::scope(|scope| {
        for _ in 0..threads {
            let (queue, accepted, api) = (
                Arc::clone(&queue),
                Arc::clone(&accepted),
                local.api().to_owned(),
            );
            scope.spawn(move || {
                let agent = agent();
                while let Some((route, body)) = queue.lock().unwrap().pop() {
                    let (status, answer) = post(&agent, &format!("{api}/{route}"), &body);
                    assert_eq!(status, 200, "{route} {body}: {answer}");
                    *accepted.lock().unwrap() += 1;
                }
            });
        }
    });
    let accepted = *accepted.lock().unwrap();
    accepted
}

#[test]
fn the_integration_scenario_is_counted_exactly_and_survives_a_restart() {
    let dir = data_dir("scenario");
    let local = Local::start(&dir);
    for key in ["UrlForAPI", "UrlForReports", "UrlForPredictions"] {
        assert!(
            local.urls[key].starts_with("http://127.0.0.1:"),
            "{:?}",
            local.urls
        );
    }

    // The original's scenario: 100 bids, 60 impressions, 25 clicks, posted concurrently, every
    // seventh request sent twice.
    let campaign = 1_463_517;
    let requests = integration_scenario(100, 60, 25, campaign);
    assert!(requests.len() > 185, "duplicates are included");
    assert_eq!(send_all(&local, &requests, 8), requests.len());
    assert_eq!(
        wait_for(&local, campaign, |c| c == (100, 60, 25)),
        (100, 60, 25)
    );
    // Nothing more arrives later: duplicates were not counted late either.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(local.totals(campaign), (100, 60, 25));

    // A second `sdp local` on the same data directory is refused, naming the reason.
    let second = Command::new(env!("CARGO_BIN_EXE_sdp"))
        .args(["local", "--port", "0", "--data-dir"])
        .arg(&dir)
        .output()
        .unwrap();
    assert_eq!(second.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(
        stderr.contains("is in use by another process (is another `sdp local` running"),
        "{stderr}"
    );

    // A clean stop, then a restart on the same directory: the same counts, none twice.
    assert!(local.stop().success());
    // The raw lake under the data directory, once a clean stop has processed the log to its end
    // (a batch is counted before it is landed, so a report can be ahead of the lake for a
    // moment): every accepted event in `bcns`, and the joined impressions and clicks with their
    // bid's campaign; compacted, exactly 60 and 25 rows.
    let raw = |dataset: &str| -> Vec<(String, Vec<u8>)> {
        let mut files = Vec::new();
        let mut dirs = vec![dir.join("lake/raw").join(dataset)];
        while let Some(d) = dirs.pop() {
            for entry in std::fs::read_dir(&d).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    dirs.push(path);
                } else if path.extension().is_some_and(|e| e == "json") {
                    files.push((path.display().to_string(), std::fs::read(&path).unwrap()));
                }
            }
        }
        files
    };
    let bcns_lines: usize = raw("bcns")
        .iter()
        .map(|(_, b)| b.iter().filter(|c| **c == b'\n').count())
        .sum();
    assert_eq!(
        bcns_lines,
        requests.len(),
        "every accepted event is in raw/bcns"
    );
    for (name, expected) in [("impressions", 60), ("clicks", 25)] {
        let dataset = sdp_core::lake::DATASETS
            .iter()
            .find(|d| d.name == name)
            .unwrap();
        let compacted = sdp_lake::compact::compact(dataset, &raw(name)).unwrap();
        assert_eq!(
            (compacted.rows, compacted.rejected.len()),
            (expected, 0),
            "{name}"
        );
    }
    let impressions = raw("impressions");
    let first_row: Value =
        serde_json::from_slice(impressions[0].1.split(|c| *c == b'\n').next().unwrap()).unwrap();
    assert_eq!(first_row["campaign_item_id"], campaign, "{first_row}");
    assert_eq!(first_row["domain"], "www.google.com", "{first_row}");

    let local = Local::start(&dir);
    assert_eq!(local.totals(campaign), (100, 60, 25));
    assert!(local.stop().success());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_requests_get_the_documented_status_with_the_field_named() {
    let dir = data_dir("errors");
    let local = Local::start(&dir);
    let agent = agent();
    let api = local.api().to_owned();
    let error = |status: u16, body: &str, route: &str| {
        let (got, text) = post(&agent, &format!("{api}/{route}"), body);
        assert_eq!(got, status, "{route} {body}: {text}");
        serde_json::from_str::<Value>(&text).unwrap()
    };
    assert_eq!(
        error(400, r#"{"tx_id":"a","campaign_item_id":1}"#, "bid")["field"],
        "app_uid"
    );
    assert_eq!(
        error(
            400,
            r#"{"tx_id":"a","app_uid":"u","campaign_item_id":"x"}"#,
            "bid"
        )["field"],
        "campaign_item_id"
    );
    assert_eq!(
        error(400, r#"{"tx_id":"a","win_price":-1}"#, "impression")["field"],
        "win_price"
    );
    error(400, "{not json", "click");
    error(404, r#"{"tx_id":"a"}"#, "bids");
    let (status, _) = match agent
        .post(format!("{api}/click"))
        .header("content-type", "text/plain")
        .send(r#"{"tx_id":"a"}"#)
    {
        Ok(r) => (r.status().as_u16(), ()),
        Err(e) => panic!("{e}"),
    };
    assert_eq!(status, 415);
    let (status, _) = post(&agent, &format!("{api}/click"), &"x".repeat(1_048_577));
    assert_eq!(status, 413);
    let (status, body) = get(
        &agent,
        &format!("{}/reports/campaigns/abc", local.reports()),
    );
    assert_eq!(status, 400, "{body}");
    let (status, body) = get(
        &agent,
        &format!(
            "{}/reports/campaigns/1/period?period=FORTNIGHTS",
            local.reports()
        ),
    );
    assert_eq!(
        (status, body["field"].as_str()),
        (400, Some("period")),
        "{body}"
    );
    let (status, body) = get(&agent, &format!("{}/reports/campaigns/9", local.reports()));
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({"campaign_item_id": 9, "bids": 0, "imps": 0, "clicks": 0})
    );
    assert!(local.stop().success());
    let _ = std::fs::remove_dir_all(&dir);
}

/// A bid, its impression and its click.
fn transaction(tx: &str, campaign: i64) -> [(&'static str, String); 3] {
    [
        (
            "bid",
            json!({"tx_id": tx, "app_uid": "u", "campaign_item_id": campaign}).to_string(),
        ),
        (
            "impression",
            json!({"tx_id": tx, "win_price": 5}).to_string(),
        ),
        ("click", json!({"tx_id": tx}).to_string()),
    ]
}

/// POSTs a batch (newline-delimited JSON), gzip-compressed if `gzip`; (status, answer).
fn post_batch(local: &Local, lines: &[String], gzip: bool) -> (u16, Value) {
    let mut body = lines.join("\n").into_bytes();
    let mut request = agent()
        .post(&format!("{}/events", local.api()))
        .header("content-type", "application/x-ndjson");
    if gzip {
        body = fixtures::gzip(&body);
        request = request.header("content-encoding", "gzip");
    }
    let mut response = request.send(&body[..]).unwrap();
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string().unwrap();
    (status, serde_json::from_str(&text).unwrap())
}

#[test]
fn a_batch_is_answered_line_by_line_and_counted_once_even_when_sent_again_compressed() {
    let dir = data_dir("batch");
    let local = Local::start(&dir);
    let campaign = 4242;
    let mut lines = batch_lines(campaign, 100);
    let valid = lines.len();
    lines.push(json!({"type": "bid", "tx_id": "no-campaign", "app_uid": "u"}).to_string());
    lines.push(lines[0].clone()); // a duplicate: stored again, counted once

    let (status, answer) = post_batch(&local, &lines, false);
    assert_eq!(status, 207, "{answer}");
    assert_eq!(answer["accepted"], valid + 1, "{answer}");
    assert_eq!(answer["rejected"], 1, "{answer}");
    let rejected = &answer["lines"][valid];
    assert_eq!(
        (&rejected["line"], &rejected["status"], &rejected["field"]),
        (
            &json!(valid + 1),
            &json!("rejected"),
            &json!("campaign_item_id")
        ),
        "{answer}"
    );
    assert_eq!(
        wait_for(&local, campaign, |c| c == (100, 50, 25)),
        (100, 50, 25)
    );

    // The same batch again, compressed, as a client retrying after a lost answer would send it;
    // then one new bid, counted after it (the log is processed in order).
    assert_eq!(post_batch(&local, &lines, true).0, 207);
    let marker = vec![
        json!({"type": "bid", "tx_id": "marker", "app_uid": "u", "campaign_item_id": campaign})
            .to_string(),
    ];
    assert_eq!(post_batch(&local, &marker, true).0, 200);
    assert_eq!(wait_for(&local, campaign, |c| c.0 == 101), (101, 50, 25));
    assert!(local.stop().success());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn kill_9_under_load_loses_no_event_answered_200_and_counts_none_twice() {
    let dir = data_dir("crash");
    let local = Local::start(&dir);
    let campaign = 77;
    let api = local.api().to_owned();
    let stop = AtomicBool::new(false);
    // Every transaction begun (answered or not) and the bids answered 200.
    let begun: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let acked_bids = Mutex::new(0_i64);
    std::thread::scope(|scope| {
        for client in 0..6 {
            let (api, stop, begun, acked_bids) = (&api, &stop, &begun, &acked_bids);
            scope.spawn(move || {
                let agent = agent();
                for i in 0.. {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    let tx = format!("crash-{client}-{i}");
                    begun.lock().unwrap().push(tx.clone());
                    for (route, body) in transaction(&tx, campaign) {
                        let (status, _) = post(&agent, &format!("{api}/{route}"), &body);
                        match status {
                            200 if route == "bid" => *acked_bids.lock().unwrap() += 1,
                            200 => {}
                            0 => return, // the server is gone
                            other => panic!("{route}: status {other}"),
                        }
                    }
                }
            });
        }
        std::thread::sleep(Duration::from_millis(1500));
        local.kill_9();
        stop.store(true, Ordering::Relaxed);
    });
    let acked_bids = *acked_bids.lock().unwrap();
    let begun = begun.into_inner().unwrap();
    assert!(
        acked_bids > 50,
        "the load was real: {acked_bids} bids accepted"
    );
    eprintln!(
        "killed with -9 after {acked_bids} bids answered 200, {} transactions begun",
        begun.len()
    );

    // After the restart, every bid answered 200 is counted (some not answered may be too: they
    // were stored before the kill cut the answer off).
    let local = Local::start(&dir);
    let bids_sent = begun.len() as i64;
    let (bids, _, _) = wait_for(&local, campaign, |(bids, _, _)| bids >= acked_bids);
    assert!(bids <= bids_sent, "{bids} counted of {bids_sent} sent");

    // Clients retry every transaction they began; now each is complete, and counted once.
    let retries: Vec<_> = begun
        .iter()
        .flat_map(|tx| transaction(tx, campaign))
        .collect();
    send_all(&local, &retries, 6);
    let expected = (bids_sent, bids_sent, bids_sent);
    assert_eq!(wait_for(&local, campaign, |c| c == expected), expected);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(local.totals(campaign), expected, "no event counted twice");
    assert!(local.stop().success());
    let _ = std::fs::remove_dir_all(&dir);
}

/// The score `sdp local` predicts for a bid of `campaign` on `domain`.
fn predict(local: &Local, campaign: &str, domain: &str) -> f64 {
    let body = json!({"campaignItemId": campaign, "domain": domain, "creativeId": "c",
                      "creativeCategory": "cat", "winPrice": 100});
    let (status, text) = post(
        &agent(),
        &local.urls["UrlForPredictions"],
        &body.to_string(),
    );
    assert_eq!(status, 200, "{text}");
    let answer: Value = serde_json::from_str(&text).unwrap();
    assert!(
        matches!(answer["predictions"][0]["predicted_label"].as_f64(), Some(l) if l == 0.0 || l == 1.0),
        "{answer}"
    );
    answer["predictions"][0]["score"].as_f64().unwrap()
}

#[test]
fn predictions_answer_from_the_start_and_learn_from_the_lake() {
    let dir = data_dir("predict");
    let local = Local::start_with(&dir, &["--train-every", "1", "--compact-every", "1"]);
    // The bootstrap model: an answer in the documented shape before any data.
    assert_eq!(predict(&local, "1", "win.example"), 0.5);
    let (status, text) = post(
        &agent(),
        &local.urls["UrlForPredictions"],
        r#"{"campaignItemId":"1","domain":"d","creativeId":"c","creativeCategory":"x"}"#,
    );
    assert_eq!(status, 400);
    assert!(text.contains(r#""field":"winPrice""#), "{text}");

    // Campaign 1's bids on win.example all win an impression; campaign 2's on lose.example none.
    // Two hours ago: training reads the compacted lake, as the trainer Lambda does, and an hour
    // is compacted once it has closed.
    let ts = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
        - 2 * 3_600_000;
    let mut requests = Vec::new();
    for i in 0..300 {
        let (campaign, domain) = if i % 2 == 0 {
            (1, "win.example")
        } else {
            (2, "lose.example")
        };
        let tx = format!("p-{i}");
        requests.push((
            "bid",
            json!({"tx_id": tx, "app_uid": "u", "campaign_item_id": campaign, "domain": domain,
                   "creative_id": "c", "creative_category": "cat", "win_price": 100, "ts": ts})
            .to_string(),
        ));
        if campaign == 1 {
            requests.push((
                "impression",
                json!({"tx_id": tx, "win_price": 90, "ts": ts + 1_000}).to_string(),
            ));
        }
    }
    send_all(&local, &requests, 4);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (winner, loser) = (
            predict(&local, "1", "win.example"),
            predict(&local, "2", "lose.example"),
        );
        if winner > 0.7 && loser < 0.3 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the model did not learn: {winner} vs {loser}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // The promoted model is on disk: after a restart it serves at once.
    assert!(local.stop().success());
    let local = Local::start_with(&dir, &["--train-every", "3600"]);
    assert!(predict(&local, "1", "win.example") > 0.7);
    assert!(local.stop().success());
    let _ = std::fs::remove_dir_all(&dir);
}

/// Polls a one-statement query until it answers `expected`: the lake follows the reports (a batch
/// is counted, then landed; an hour is compacted when it has closed), so it may lag them a moment.
fn query_until(dir: &Path, sql: &str, expected: &[Value]) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let rows = query_rows(dir, sql);
        if rows == expected {
            return;
        }
        assert!(Instant::now() < deadline, "{sql} stayed at {rows:?}");
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn sdp_query_answers_sql_over_the_lake_that_agrees_with_the_reports() {
    let dir = data_dir("query");
    let local = Local::start_with(&dir, &["--compact-every", "1"]);

    // The integration scenario, two hours ago: its hours are closed, so they get compacted.
    let campaign = 1_463_518;
    let base = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
        - 2 * 3_600_000;
    let requests: Vec<(&'static str, String)> = integration_scenario(100, 60, 25, campaign)
        .into_iter()
        .map(|(route, body)| {
            let mut event: Value = serde_json::from_str(&body).unwrap();
            let tx = event["tx_id"].as_str().unwrap().to_owned();
            let index: i64 = tx.rsplit('-').next().unwrap().parse().unwrap();
            let step = match route {
                "bid" => 0,
                "impression" => 100,
                _ => 200,
            };
            event["ts"] = json!(base + index * 5_000 + step);
            (route, event.to_string())
        })
        .collect();
    assert_eq!(send_all(&local, &requests, 8), requests.len());
    assert_eq!(
        wait_for(&local, campaign, |c| c == (100, 60, 25)),
        (100, 60, 25)
    );

    // The raw layer: every accepted event, the joined impressions with their campaign.
    query_until(
        &dir,
        &format!("SELECT (SELECT count(*) FROM raw_bcns WHERE tx_id LIKE 'it-{campaign}-%') AS events, \
                  (SELECT count(DISTINCT tx_id) FROM raw_impressions WHERE campaign_item_id = {campaign}) AS imps"),
        &[json!({"events": requests.len(), "imps": 60})],
    );

    // The Parquet layer, once the compactor has been through the closed hours: every accepted
    // event (a client's retry is an event of its own, with its own receive time), the joined
    // impressions and clicks once each, and the aggregates equal to what the reports serve, in
    // total and hour by hour.
    let totals_sql = format!(
        "SELECT sum(bids) AS bids, sum(imps) AS imps, sum(clicks) AS clicks \
         FROM parquet_aggregates WHERE campaign_item_id = {campaign}"
    );
    query_until(
        &dir,
        &totals_sql,
        &[json!({"bids": 100, "imps": 60, "clicks": 25})],
    );
    query_until(
        &dir,
        &format!("SELECT (SELECT count(*) FROM parquet_bcns WHERE tx_id LIKE 'it-{campaign}-%') AS events, \
                  (SELECT count(DISTINCT concat(tx_id, '/', type)) FROM parquet_bcns WHERE tx_id LIKE 'it-{campaign}-%') AS distinct_events, \
                  (SELECT count(*) FROM parquet_impressions WHERE campaign_item_id = {campaign}) AS imps, \
                  (SELECT count(*) FROM parquet_clicks WHERE campaign_item_id = {campaign} AND domain = 'www.google.com') AS clicks"),
        &[json!({"events": requests.len(), "distinct_events": 185, "imps": 60, "clicks": 25})],
    );
    let by_hour = query_rows(
        &dir,
        &format!(
            "SELECT CAST(extract(epoch FROM date_trunc('hour', to_timestamp(period))) AS BIGINT) AS period, \
             sum(bids) AS bids, sum(imps) AS imps, sum(clicks) AS clicks \
             FROM parquet_aggregates WHERE campaign_item_id = {campaign} GROUP BY 1 ORDER BY 1"
        ),
    );
    let (status, report) = get(
        &agent(),
        &format!(
            "{}/reports/campaigns/{campaign}/period?period=HOURS&desc=false",
            local.reports()
        ),
    );
    assert_eq!(status, 200, "{report}");
    let report: Vec<Value> = report
        .as_array()
        .unwrap()
        .iter()
        .map(|bucket| {
            json!({"period": bucket["period"], "bids": bucket["bids"], "imps": bucket["imps"],
                   "clicks": bucket["clicks"]})
        })
        .collect();
    assert!(!report.is_empty());
    assert_eq!(by_hour, report);

    // A table for people; statements from stdin.
    let (code, stdout, stderr) = query(
        &dir,
        &[],
        Some("SELECT count(*) AS clicks FROM parquet_clicks;\nSELECT 'x' AS y;"),
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("| clicks |"), "{stdout}");
    assert!(stdout.contains("| 25     |"), "{stdout}");
    assert!(stdout.contains("(1 row)"), "{stdout}");
    assert!(
        stdout.contains("| x |"),
        "two statements, two answers: {stdout}"
    );

    // Bad SQL exits 2 naming what is wrong; writes are refused and change nothing.
    for (sql, named) in [
        ("SELECT nope FROM parquet_clicks", "nope"),
        ("SELECT * FROM raw_nothing", "raw_nothing"),
        ("SELEC 1", "SELEC"),
        ("CREATE TABLE t AS SELECT 1", "DDL"),
        (
            "INSERT INTO parquet_clicks SELECT * FROM parquet_clicks",
            "DML",
        ),
        (
            "COPY parquet_clicks TO '/tmp/sdp-query-copy.parquet'",
            "DML",
        ),
    ] {
        let (code, _, stderr) = query(&dir, &[sql], None);
        assert_eq!(code, 2, "{sql}: {stderr}");
        assert!(stderr.contains(named), "{sql}: {stderr}");
    }
    assert!(!Path::new("/tmp/sdp-query-copy.parquet").exists());
    assert_eq!(
        query_rows(&dir, "SELECT count(*) AS n FROM parquet_clicks"),
        [json!({"n": 25})]
    );
    let (code, _, stderr) = query(&dir.join("missing"), &["SELECT 1"], None);
    assert_eq!(code, 2);
    assert!(stderr.contains("missing is not a directory"), "{stderr}");

    assert!(local.stop().success());
    let _ = std::fs::remove_dir_all(&dir);
}

//! `sdp verify` and `sdp load` with the real binary over real HTTP: both pass against `sdp local`;
//! against deliberately broken servers (one that loses events it answered 200, one that answers
//! 200 to invalid input, one that is slow) they fail, saying what was wrong.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test file: a panic is the failure report

use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use sdp_scenarios::fake_platform::{FakePlatform, Faults};

use crate::common::{data_dir, Local};

/// Runs `sdp` with `args`, as a CI step would (no terminal, `CI` set); (exit code, stdout, stderr).
fn sdp(args: &[String]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_sdp"))
        .args(args)
        .env("CI", "true")
        .env_remove("AWS_REGION")
        .env_remove("SDP_API_KEY")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn command(
    name: &str,
    (api, reports, predictions): (&str, &str, &str),
    extra: &[&str],
) -> Vec<String> {
    let mut args: Vec<String> = [
        name,
        "--api",
        api,
        "--reports",
        reports,
        "--predictions",
        predictions,
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    args
}

fn urls(fake: &FakePlatform) -> (String, String, String) {
    (fake.api_url(), fake.reports_url(), fake.predictions_url())
}

#[test]
fn verify_and_load_pass_against_sdp_local() {
    let dir = data_dir("verify");
    let local = Local::start(&dir);
    let target = local.target();

    let (code, stdout, stderr) = sdp(&command("verify", target, &["--format", "json"]));
    assert_eq!(code, 0, "{stderr}");
    let summary: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(summary["ok"], true, "{summary}");
    let checks = summary["checks"].as_array().unwrap();
    let names: Vec<&str> = checks.iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        ["ingestion", "refusals", "batches", "counts", "predictions"]
    );
    assert!(checks.iter().all(|c| c["ok"] == true), "{summary}");
    assert!(
        stderr.contains("ok   batches: all 4 batches answered line by line as documented"),
        "{stderr}"
    );
    assert!(
        stderr
            .contains("ok   counts: the report counts exactly 120 bids, 70 impressions, 29 clicks"),
        "{stderr}"
    );

    // A rate this machine keeps up with easily: the rate is held and every accepted event counted.
    let (code, stdout, stderr) = sdp(&command(
        "load",
        target,
        &["--rate", "100", "--duration", "3s", "--format", "json"],
    ));
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let summary: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(summary["planned"], 300, "{summary}");
    assert_eq!(summary["answered"], 300, "{summary}");
    assert_eq!(summary["statuses"]["200"], 300, "{summary}");
    let achieved = summary["achieved_rate"].as_f64().unwrap();
    assert!((95.0..=105.0).contains(&achieved), "{summary}");
    assert!(
        summary["accepted"]["imps"].as_i64().unwrap() > 0,
        "follow-ups were sent: {summary}"
    );
    assert!(
        summary["problems"].as_array().unwrap().is_empty(),
        "{summary}"
    );

    assert!(local.stop().success());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn load_in_batches_is_counted_exactly_by_sdp_local() {
    let dir = data_dir("load-batches");
    let local = Local::start(&dir);
    let target = local.target();
    let (code, stdout, stderr) = sdp(&command(
        "load",
        target,
        &[
            "--rate",
            "20",
            "--batch",
            "50",
            "--duration",
            "2s",
            "--format",
            "json",
        ],
    ));
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let summary: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(summary["batch"], 50, "{summary}");
    assert_eq!(summary["statuses"]["200"], 40, "{summary}");
    let accepted = &summary["accepted"];
    let events = ["bids", "imps", "clicks"].map(|k| accepted[k].as_i64().unwrap());
    assert_eq!(events.iter().sum::<i64>(), 2000, "{summary}");
    assert!(
        events[1] > 0,
        "follow-ups were sent in later batches: {summary}"
    );
    assert!(
        summary["problems"].as_array().unwrap().is_empty(),
        "{summary}"
    );

    let (code, _, stderr) = sdp(&command(
        "load",
        target,
        &["--rate", "1", "--duration", "1s", "--batch", "501"],
    ));
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("--batch: must be 1 to 500"), "{stderr}");
    assert!(local.stop().success());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn verify_fails_against_a_server_that_loses_events_it_accepted() {
    let fake = FakePlatform::start(Faults {
        lose_every: Some(10),
        ..Faults::default()
    })
    .unwrap();
    let (api, reports, predictions) = urls(&fake);
    let (code, _, stderr) = sdp(&command(
        "verify",
        (&api, &reports, &predictions),
        &["--deadline", "3s"],
    ));
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("ok   ingestion: all"), "{stderr}");
    assert!(
        stderr.contains("FAIL counts: after 3s, the report has bids"),
        "{stderr}"
    );
    // The scenario's 100, 60, 25 and the batches' 20, 10, 4.
    assert!(stderr.contains("expected 120, 70, 29"), "{stderr}");
    assert!(
        stderr.contains("verification failed: 1 of 5 checks (counts)"),
        "{stderr}"
    );
}

#[test]
fn verify_fails_against_a_server_that_accepts_invalid_input() {
    let fake = FakePlatform::start(Faults {
        accept_invalid: true,
        ..Faults::default()
    })
    .unwrap();
    let (api, reports, predictions) = urls(&fake);
    let (code, stdout, stderr) = sdp(&command(
        "verify",
        (&api, &reports, &predictions),
        &["--deadline", "3s", "--format", "json"],
    ));
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("FAIL refusals: "), "{stderr}");
    assert!(
        stderr.contains("a bid without tx_id was answered 200, not 400"),
        "{stderr}"
    );
    assert!(
        stderr.contains("a bid sent as text/plain was answered 200, not 415"),
        "{stderr}"
    );
    assert!(
        stderr.contains("a request without winPrice was answered 200, not a 400 naming winPrice"),
        "{stderr}"
    );
    assert!(
        stderr.contains("FAIL batches: a batch with a repeated line and invalid lines was answered 200, not 207"),
        "{stderr}"
    );
    let summary: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(summary["ok"], false);
}

#[test]
fn load_reports_the_shortfall_of_a_server_that_cannot_keep_up() {
    // One request at a time, 50 ms each: 20 requests/s at most, against 100 offered.
    let fake = FakePlatform::start(Faults {
        serial_delay: Some(Duration::from_millis(50)),
        ..Faults::default()
    })
    .unwrap();
    let (api, reports, predictions) = urls(&fake);
    let (code, stdout, stderr) = sdp(&command(
        "load",
        (&api, &reports, &predictions),
        &[
            "--rate",
            "100",
            "--duration",
            "2s",
            "--timeout",
            "3s",
            "--deadline",
            "60s",
            "--format",
            "json",
        ],
    ));
    assert_eq!(code, 1, "{stdout}\n{stderr}");
    let summary: Value = serde_json::from_str(stdout.trim()).unwrap();
    let achieved = summary["achieved_rate"].as_f64().unwrap();
    assert!(achieved < 30.0, "{summary}");
    let problems: Vec<&str> = summary["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    assert!(
        problems
            .iter()
            .any(|p| p.starts_with("shortfall: the server answered")),
        "{problems:?}"
    );
    assert!(
        problems
            .iter()
            .any(|p| p.contains("requests got no answer")),
        "{problems:?}"
    );
    // Latency is measured from each arrival's due time, so the backlog shows in the tail.
    assert!(
        summary["latency_ms"]["p99"].as_f64().unwrap() > 1000.0,
        "{summary}"
    );
    // What the server accepted it counted, and the requests abandoned without an answer may or
    // may not have been stored: the counts check allows for exactly that, and passes.
    assert!(
        !problems.iter().any(|p| p.starts_with("campaign ")),
        "{problems:?}"
    );
    let accepted = summary["accepted"]["bids"].as_u64().unwrap()
        + summary["accepted"]["imps"].as_u64().unwrap()
        + summary["accepted"]["clicks"].as_u64().unwrap();
    assert_eq!(accepted, summary["answered"].as_u64().unwrap());
    assert!(fake.valid_events() as u64 >= accepted);
}

#[test]
fn verify_without_a_target_says_how_to_give_one() {
    let (code, _, stderr) = sdp(&["verify".to_owned()]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("--region R [--stack-name S]"), "{stderr}");
    assert!(
        stderr.contains("--api URL --reports URL --predictions URL"),
        "{stderr}"
    );
}

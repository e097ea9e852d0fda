//! `sdp load`: a constant arrival rate of realistic traffic against any running platform, then a
//! check that the reports counted exactly what was accepted. The workload and the verdict are
//! `probe::load`; this module runs the clock and the requests.
//!
//! Each arrival is a task started at its due time; it waits for one of `--connections` slots and
//! sends one event, or with `--batch N` one batch of N events to the batch route. Latency runs
//! from the due time, so waiting for a slot, a slow server and a backlog all show in the
//! percentiles (no coordinated omission). Requests still unanswered `--timeout` after
//! the last due time are abandoned and counted as unanswered.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::anyhow;
use hdrhistogram::Histogram;
use serde_json::json;
use tokio::sync::Semaphore;
use tokio::time::Instant;

use sdp_core::events::{BATCH_ROUTE, MAX_BATCH_EVENTS};

use crate::args::{LoadArgs, ReportFormat};
use crate::exit::Failure;
use crate::http::Client;
use crate::probe::load::{
    batch_body, count_mismatches, counted_too_many, problems, Arrival, Expected, Measured, Workload,
};
use crate::probe::scenario::Tag;
use crate::ui::Steps;

use super::target::{resolve, Target};

/// What the requests found, shared by their tasks.
struct Tally {
    workload: Workload,
    expected: Expected,
    statuses: BTreeMap<u16, u64>,
    failures: BTreeMap<String, u64>,
    /// Microseconds from due time to answer.
    latency: Histogram<u64>,
    /// The same, of the answers 200 alone: what a server that sheds load still gives the
    /// requests it accepts.
    accepted_latency: Histogram<u64>,
    /// Microseconds from due time to the task starting.
    send_lag: Histogram<u64>,
    last_answer: Option<Instant>,
}

pub async fn run(args: &LoadArgs) -> Result<(), Failure> {
    let bad = |flag: &str, e: String| Failure::CouldNotRun(anyhow!("{flag}: {e}"));
    let (duration, timeout, deadline) = (args.duration, args.timeout, args.deadline);
    if !(args.rate.is_finite() && args.rate > 0.0) {
        return Err(bad(
            "--rate",
            format!(
                "{} is not a positive number of requests per second",
                args.rate
            ),
        ));
    }
    if !(1..=MAX_BATCH_EVENTS).contains(&args.batch) {
        return Err(bad(
            "--batch",
            format!("must be 1 to {MAX_BATCH_EVENTS} events per request"),
        ));
    }
    if args.connections == 0 {
        return Err(bad("--connections", "must be at least 1".to_owned()));
    }
    let planned = (args.rate * duration.as_secs_f64()).round().max(1.0) as u64;
    let target = resolve(&args.target).await?;
    let client = Client::new(target.api_key.clone(), timeout).map_err(Failure::CouldNotRun)?;
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let workload = Workload::new(Tag::new("load", now_ms, std::process::id()));
    let campaigns = workload.campaigns();
    let histogram = || Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3);
    let tally = Arc::new(Mutex::new(Tally {
        workload,
        expected: Expected::default(),
        statuses: BTreeMap::new(),
        failures: BTreeMap::new(),
        latency: histogram().map_err(|e| Failure::CouldNotRun(anyhow!("{e}")))?,
        accepted_latency: histogram().map_err(|e| Failure::CouldNotRun(anyhow!("{e}")))?,
        send_lag: histogram().map_err(|e| Failure::CouldNotRun(anyhow!("{e}")))?,
        last_answer: None,
    }));

    let mut steps = Steps::new();
    steps.start(&format!(
        "offering {:.1} requests/s{} for {duration:?} ({planned} requests, at most {} in flight)",
        args.rate,
        batched(args.batch),
        args.connections
    ));
    let slots = Arc::new(Semaphore::new(args.connections));
    let start = Instant::now() + Duration::from_millis(20);
    let mut tasks = tokio::task::JoinSet::new();
    let mut last_progress = Instant::now();
    for i in 0..planned {
        let due = start + Duration::from_secs_f64(i as f64 / args.rate);
        tokio::time::sleep_until(due).await;
        tasks.spawn(arrival(
            Arc::clone(&tally),
            Arc::clone(&slots),
            client.clone(),
            target.api.clone(),
            due,
            args.batch,
        ));
        if last_progress.elapsed() >= Duration::from_millis(500) {
            last_progress = Instant::now();
            let answered: u64 = lock(&tally).statuses.values().sum();
            steps.update(&format!("{}/{planned} sent, {answered} answered", i + 1));
        }
        // Reap finished tasks as we go, so the set holds only those in flight.
        while tasks.try_join_next().is_some() {}
    }
    let last_due = start + Duration::from_secs_f64((planned - 1) as f64 / args.rate);
    steps.update("waiting for the last answers");
    let drained = tokio::time::timeout_at(last_due + timeout, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
    }

    let measured = {
        let tally = lock(&tally);
        let mut failures = tally.failures.clone();
        let finished: u64 = tally.statuses.values().sum::<u64>() + failures.values().sum::<u64>();
        if finished < planned {
            failures.insert(
                format!("still unanswered {timeout:?} after the last arrival"),
                planned - finished,
            );
        }
        Measured {
            rate: args.rate,
            duration,
            planned,
            statuses: tally.statuses.clone(),
            failures,
            elapsed: tally
                .last_answer
                .map_or(Duration::ZERO, |t| t.saturating_duration_since(start)),
            send_lag_p99: Duration::from_micros(tally.send_lag.value_at_quantile(0.99)),
        }
    };
    let found = problems(&measured);
    steps.result(
        found.is_empty(),
        &format!(
            "rate: {:.1} requests/s answered of {:.1} offered",
            measured.achieved(),
            args.rate
        ),
    );

    steps.start("waiting for the reports to count every accepted event");
    let expected = lock(&tally).expected.clone();
    let mismatches = counts(
        &client, &target, &campaigns, &expected, deadline, &mut steps,
    )
    .await;
    let accepted_total = expected.accepted_total();
    steps.result(
        mismatches.is_empty(),
        &if mismatches.is_empty() {
            format!(
                "counts: the reports count exactly the {} bids, {} impressions and {} clicks accepted",
                accepted_total.bids, accepted_total.imps, accepted_total.clicks
            )
        } else {
            format!("counts: {}", mismatches.join("; "))
        },
    );
    steps.finish();

    let tally = lock(&tally);
    let ms = |us: u64| us as f64 / 1000.0;
    let quantiles = [("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("p99.9", 0.999)];
    let percentiles = quantiles.map(|(name, q)| (name, ms(tally.latency.value_at_quantile(q))));
    let max = ms(tally.latency.max());
    let accepted_percentiles =
        quantiles.map(|(name, q)| (name, ms(tally.accepted_latency.value_at_quantile(q))));
    let accepted_max = ms(tally.accepted_latency.max());
    let ok = found.is_empty() && mismatches.is_empty();
    match args.format {
        ReportFormat::Json => {
            let as_json = |percentiles: &[(&str, f64)], max: f64| {
                percentiles
                    .iter()
                    .map(|(name, v)| ((*name).to_owned(), json!(v)))
                    .chain([("max".to_owned(), json!(max))])
                    .collect::<serde_json::Map<String, serde_json::Value>>()
            };
            let latency = as_json(&percentiles, max);
            let accepted_latency = as_json(&accepted_percentiles, accepted_max);
            println!(
                "{}",
                json!({
                    "ok": ok,
                    "offered_rate": args.rate,
                    "batch": args.batch,
                    "duration_s": duration.as_secs_f64(),
                    "planned": planned,
                    "answered": measured.answered(),
                    "achieved_rate": measured.achieved(),
                    "statuses": measured.statuses,
                    "unanswered": measured.failures,
                    "latency_ms": latency,
                    "accepted_latency_ms": accepted_latency,
                    "send_lag_p99_ms": measured.send_lag_p99.as_secs_f64() * 1000.0,
                    "accepted": accepted_total,
                    "problems": found.iter().chain(mismatches.iter()).collect::<Vec<_>>(),
                })
            );
        }
        ReportFormat::Text => {
            let statuses: Vec<String> = measured
                .statuses
                .iter()
                .map(|(s, n)| format!("{s}: {n}"))
                .collect();
            println!(
                "offered    {:.1} requests/s{} for {:.1}s ({planned} requests)",
                args.rate,
                batched(args.batch),
                duration.as_secs_f64()
            );
            println!(
                "answered   {} ({}), {:.1} requests/s",
                measured.answered(),
                statuses.join(", "),
                measured.achieved()
            );
            let line = |percentiles: &[(&str, f64)]| {
                percentiles
                    .iter()
                    .map(|(name, v)| format!("{name} {v:.2} ms"))
                    .collect::<Vec<_>>()
                    .join("  ")
            };
            println!("latency    {}  max {max:.2} ms", line(&percentiles));
            println!(
                "  of 200s  {}  max {accepted_max:.2} ms",
                line(&accepted_percentiles)
            );
            println!(
                "send lag   p99 {:.2} ms",
                measured.send_lag_p99.as_secs_f64() * 1000.0
            );
            for problem in found.iter().chain(mismatches.iter()) {
                println!("problem    {problem}");
            }
        }
    }
    if ok {
        Ok(())
    } else {
        Err(Failure::Failed(anyhow!(
            "load: {}",
            found
                .iter()
                .chain(mismatches.iter())
                .cloned()
                .collect::<Vec<_>>()
                .join("; ")
        )))
    }
}

/// ` of N events each` for batches, nothing for single events.
fn batched(batch: usize) -> String {
    if batch > 1 {
        format!(" of {batch} events each")
    } else {
        String::new()
    }
}

/// One arrival: due at `due`, whatever happened to the ones before it. With `batch` over 1, one
/// request to the batch route carrying that many events.
async fn arrival(
    tally: Arc<Mutex<Tally>>,
    slots: Arc<Semaphore>,
    client: Client,
    api: String,
    due: Instant,
    batch: usize,
) {
    let events: Vec<Arrival> = {
        let mut tally = lock(&tally);
        let lag = Instant::now().saturating_duration_since(due);
        let _ = tally.send_lag.record(micros(lag));
        (0..batch).map(|_| tally.workload.next_arrival()).collect()
    };
    let Ok(_slot) = slots.acquire_owned().await else {
        return;
    };
    let campaigns: Vec<i64> = {
        let mut tally = lock(&tally);
        // From here on the events may be stored, even if this task is abandoned.
        events
            .iter()
            .map(|event| {
                let campaign = tally.workload.campaign_of(event.tx);
                tally.expected.sent(campaign, event.route);
                campaign
            })
            .collect()
    };
    let answer = match events.as_slice() {
        [event] => {
            client
                .post_json(&format!("{api}/{}", event.route), event.body.clone())
                .await
        }
        _ => {
            client
                .post(
                    &format!("{api}/{BATCH_ROUTE}"),
                    "application/x-ndjson",
                    batch_body(&events),
                )
                .await
        }
    };
    let now = Instant::now();
    let mut tally = lock(&tally);
    match answer {
        Ok(answer) => {
            let latency = micros(now.saturating_duration_since(due));
            let _ = tally.latency.record(latency);
            if answer.status == 200 {
                let _ = tally.accepted_latency.record(latency);
            }
            *tally.statuses.entry(answer.status).or_default() += 1;
            tally.last_answer = Some(tally.last_answer.map_or(now, |t| t.max(now)));
            let outcomes = outcomes(&answer, events.len());
            for ((event, campaign), outcome) in events.iter().zip(campaigns).zip(outcomes) {
                match outcome {
                    Some(true) => {
                        tally.expected.accepted(campaign, event.route);
                        tally.workload.accepted(event.route, event.tx);
                    }
                    Some(false) => tally.expected.refused(campaign, event.route),
                    None => {}
                }
            }
        }
        Err(err) => *tally.failures.entry(err.to_string()).or_default() += 1,
    }
}

/// What became of each of the `n` events of a request: stored (`Some(true)`), not stored
/// (`Some(false)`), or either (`None`). A single event is stored exactly when answered 200. A
/// batch says so line by line when answered 200 or 207; refused whole with a 4xx it stored
/// nothing; a 5xx may come after part of it was stored (on AWS a batch is one or more
/// `PutRecords` calls).
fn outcomes(answer: &crate::http::Answer, n: usize) -> Vec<Option<bool>> {
    if n == 1 {
        return vec![Some(answer.status == 200)];
    }
    match answer.status {
        200 | 207 => {
            let lines = serde_json::from_slice::<serde_json::Value>(&answer.body)
                .ok()
                .and_then(|body| body["lines"].as_array().cloned())
                .unwrap_or_default();
            let mut outcomes = vec![None; n];
            for line in lines {
                let index = line["line"].as_u64().and_then(|l| usize::try_from(l).ok());
                if let Some(outcome) = index.and_then(|l| outcomes.get_mut(l.wrapping_sub(1))) {
                    *outcome = Some(line["status"] == "accepted");
                }
            }
            outcomes
        }
        400..=499 => vec![Some(false); n],
        _ => vec![None; n],
    }
}

/// Polls each campaign's report until every one is within what the outcomes allow (exactly the
/// accepted counts when every answer came), one counts more than could have been stored, or the
/// deadline passes; the differences left.
async fn counts(
    client: &Client,
    target: &Target,
    campaigns: &[i64],
    expected: &Expected,
    deadline: Duration,
    steps: &mut Steps,
) -> Vec<String> {
    let started = Instant::now();
    loop {
        let mut reported = BTreeMap::new();
        let mut unreadable = Vec::new();
        for campaign in campaigns {
            match target.campaign_totals(client, *campaign).await {
                Ok(counts) => {
                    reported.insert(*campaign, counts);
                }
                Err(reason) => unreadable.push(format!("campaign {campaign}: {reason}")),
            }
        }
        let mismatches = count_mismatches(expected, &reported);
        if mismatches.is_empty() && unreadable.is_empty() {
            return Vec::new();
        }
        if counted_too_many(expected, &reported) || started.elapsed() >= deadline {
            let mut all = unreadable;
            all.extend(mismatches);
            return all;
        }
        steps.update(&format!(
            "{} campaigns not yet exact",
            mismatches.len() + unreadable.len()
        ));
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1)
}

fn lock(tally: &Mutex<Tally>) -> std::sync::MutexGuard<'_, Tally> {
    tally
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

//! `sdp verify`: the original's integration test as a command, against any running platform. It
//! sends a tagged run of the scenario (`probe::scenario`) concurrently, then checks five things and
//! exits 0 only if all held:
//! 1. every valid request was accepted (a 503 or a dropped connection is retried, as a client
//!    should; the platform counts each event once however often it arrives);
//! 2. every invalid request was refused with its documented status, naming the field;
//! 3. batches (a repeated line, invalid lines, the same batch resent) are answered line by line;
//! 4. the report counts the run exactly, within the deadline (never more, never fewer);
//! 5. a prediction answers in the documented shape, and one without `winPrice` is a 400.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::anyhow;
use serde::Serialize;
use serde_json::json;

use crate::args::{ReportFormat, VerifyArgs};
use crate::exit::Failure;
use crate::http::{Answer, Client, HttpError};
use sdp_core::events::BATCH_ROUTE;

use crate::probe::scenario::{self, Batch, Counts, Expect, Line, Post, Tag};
use crate::ui::Steps;

use super::target::{resolve, Target};

/// How often a refused-for-now request (503, 429, no answer) is sent again.
const ATTEMPTS: usize = 4;

/// One check's outcome.
#[derive(Debug, Clone, Serialize)]
struct Check {
    name: &'static str,
    ok: bool,
    detail: String,
}

pub async fn run(args: &VerifyArgs) -> Result<(), Failure> {
    let deadline = args.deadline;
    if args.concurrency == 0 {
        return Err(Failure::CouldNotRun(anyhow!(
            "--concurrency must be at least 1"
        )));
    }
    let target = resolve(&args.target).await?;
    let client = Client::new(target.api_key.clone(), Duration::from_secs(30))
        .map_err(Failure::CouldNotRun)?;
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let tag = Tag::new("verify", now_ms, std::process::id());
    let (posts, expected) = scenario::requests(&tag, args.bids, args.impressions, args.clicks);

    let mut steps = Steps::new();
    steps.start(&format!(
        "sending {} requests ({} concurrent) for campaign {}",
        posts.len(),
        args.concurrency,
        tag.campaign
    ));
    let sent = send_all(&client, &target, posts, args.concurrency, &mut steps).await;
    let mut checks = vec![accepted(&sent), refused(&sent)];
    report(&mut steps, &checks[0]);
    report(&mut steps, &checks[1]);

    let (batches, batched) = scenario::batches(&tag);
    steps.start(&format!("sending {} batches", batches.len()));
    let answered = batches_answered(&client, &target, &batches).await;
    report(&mut steps, &answered);
    checks.push(answered);
    let expected = expected + batched;

    steps.start("waiting for the report to count the run");
    let counted = counts(
        &client,
        &target,
        tag.campaign,
        expected,
        deadline,
        &mut steps,
    )
    .await;
    report(&mut steps, &counted);
    checks.push(counted);

    steps.start("asking for predictions");
    let predicted = predictions(&client, &target, &tag).await;
    report(&mut steps, &predicted);
    checks.push(predicted);
    steps.finish();

    let failed: Vec<&Check> = checks.iter().filter(|c| !c.ok).collect();
    if args.format == ReportFormat::Json {
        let summary = json!({
            "ok": failed.is_empty(),
            "campaign_item_id": tag.campaign,
            "tx_id_prefix": tag.prefix,
            "expected": expected,
            "urls": {"api": target.api, "reports": target.reports, "predictions": target.predictions},
            "checks": checks,
        });
        println!("{summary}");
    }
    if failed.is_empty() {
        eprintln!("verified: all {} checks held", checks.len());
        Ok(())
    } else {
        let names: Vec<&str> = failed.iter().map(|c| c.name).collect();
        Err(Failure::Failed(anyhow!(
            "verification failed: {} of {} checks ({})",
            failed.len(),
            checks.len(),
            names.join(", ")
        )))
    }
}

fn report(steps: &mut Steps, check: &Check) {
    steps.result(check.ok, &format!("{}: {}", check.name, check.detail));
}

/// A request and the answer it finally got.
struct Sent {
    post: Post,
    answer: Result<Answer, HttpError>,
}

/// Sends every post from `concurrency` workers; valid ones are retried while the answer says
/// "not now" (503, 429) or there is none.
async fn send_all(
    client: &Client,
    target: &Target,
    posts: Vec<Post>,
    concurrency: usize,
    steps: &mut Steps,
) -> Vec<Sent> {
    let total = posts.len();
    let queue = Arc::new(Mutex::new(posts.into_iter().rev().collect::<Vec<_>>()));
    let done = Arc::new(Mutex::new(Vec::with_capacity(total)));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let (queue, done, client, api) = (
            Arc::clone(&queue),
            Arc::clone(&done),
            client.clone(),
            target.api.clone(),
        );
        workers.spawn(async move {
            loop {
                let Some(post) = queue.lock().ok().and_then(|mut q| q.pop()) else {
                    return;
                };
                let answer = send(&client, &api, &post).await;
                if let Ok(mut done) = done.lock() {
                    done.push(Sent { post, answer });
                }
            }
        });
    }
    let mut ticker = tokio::time::interval(Duration::from_millis(200));
    loop {
        tokio::select! {
            joined = workers.join_next() => if joined.is_none() { break },
            _ = ticker.tick() => {
                let n = done.lock().map(|d| d.len()).unwrap_or_default();
                steps.update(&format!("{n}/{total} answered"));
            }
        }
    }
    let sent = std::mem::take(&mut *done.lock().unwrap_or_else(|e| e.into_inner()));
    sent
}

async fn send(client: &Client, api: &str, post: &Post) -> Result<Answer, HttpError> {
    let url = format!("{api}/{}", post.route);
    let mut backoff = Duration::from_millis(200);
    let mut attempt = 1;
    loop {
        let answer = client
            .post(&url, post.content_type, post.body.clone())
            .await;
        let again = match &answer {
            Ok(a) => matches!(a.status, 429 | 503),
            Err(HttpError::Url(_)) => false,
            Err(_) => true,
        };
        if !again || post.expect != Expect::Stored || attempt == ATTEMPTS {
            return answer;
        }
        tokio::time::sleep(backoff).await;
        backoff *= 2;
        attempt += 1;
    }
}

fn accepted(sent: &[Sent]) -> Check {
    let valid: Vec<&Sent> = sent
        .iter()
        .filter(|s| s.post.expect == Expect::Stored)
        .collect();
    let mut problems: BTreeMap<String, (usize, String)> = BTreeMap::new();
    for s in &valid {
        let (kind, example) = match &s.answer {
            Ok(a) if a.status == 200 => continue,
            Ok(a) => (format!("status {}", a.status), a.excerpt()),
            Err(e) => ("no answer".to_owned(), e.to_string()),
        };
        let entry = problems.entry(kind).or_insert((0, example));
        entry.0 += 1;
    }
    let refused: usize = problems.values().map(|(n, _)| n).sum();
    Check {
        name: "ingestion",
        ok: refused == 0,
        detail: if refused == 0 {
            format!("all {} valid requests accepted", valid.len())
        } else {
            let kinds: Vec<String> = problems
                .iter()
                .map(|(kind, (n, example))| format!("{n} × {kind} (e.g. {})", example))
                .collect();
            format!(
                "{refused} of {} valid requests not accepted after {ATTEMPTS} attempts: {}",
                valid.len(),
                kinds.join("; ")
            )
        },
    }
}

/// Sends each batch (a 503 or no answer retried, as for single events) and checks its answer:
/// the status, and each line accepted or rejected (naming the field) as the contract says.
async fn batches_answered(client: &Client, target: &Target, batches: &[Batch]) -> Check {
    let mut wrong = Vec::new();
    for batch in batches {
        let post = Post {
            route: BATCH_ROUTE,
            content_type: "application/x-ndjson",
            body: batch.lines.join("\n"),
            expect: Expect::Stored,
        };
        match send(client, &target.api, &post).await {
            Err(e) => wrong.push(format!("{}: no answer ({e})", batch.what)),
            Ok(a) if a.status != batch.status => wrong.push(format!(
                "{} was answered {}, not {}: {}",
                batch.what,
                a.status,
                batch.status,
                a.excerpt()
            )),
            Ok(a) => {
                let lines = a
                    .json()
                    .and_then(|body| body["lines"].as_array().cloned())
                    .unwrap_or_default();
                if lines.len() != batch.expect.len() {
                    wrong.push(format!(
                        "{}: the answer has {} lines for {} sent: {}",
                        batch.what,
                        lines.len(),
                        batch.expect.len(),
                        a.excerpt()
                    ));
                    continue;
                }
                for (n, (line, expect)) in lines.iter().zip(&batch.expect).enumerate() {
                    let (status, field) = (line["status"].as_str(), line["field"].as_str());
                    let ok = match expect {
                        Line::Accepted => status == Some("accepted"),
                        Line::Rejected { field: wanted } => {
                            status == Some("rejected") && (wanted.is_none() || field == *wanted)
                        }
                    };
                    if !ok {
                        wrong.push(format!(
                            "{}: line {} should be {expect:?}, the answer says {line}",
                            batch.what,
                            n + 1
                        ));
                    }
                }
            }
        }
    }
    Check {
        name: "batches",
        ok: wrong.is_empty(),
        detail: if wrong.is_empty() {
            format!(
                "all {} batches answered line by line as documented ({} lines)",
                batches.len(),
                batches.iter().map(|b| b.lines.len()).sum::<usize>()
            )
        } else {
            wrong.join("; ")
        },
    }
}

fn refused(sent: &[Sent]) -> Check {
    let mut wrong = Vec::new();
    let mut total = 0;
    for s in sent {
        let Expect::Refused {
            what,
            status,
            field,
        } = &s.post.expect
        else {
            continue;
        };
        total += 1;
        match &s.answer {
            Err(e) => wrong.push(format!("{what}: no answer ({e})")),
            Ok(a) if a.status != *status => wrong.push(format!(
                "{what} was answered {}, not {status}: {}",
                a.status,
                a.excerpt()
            )),
            Ok(a) => {
                let named = a
                    .json()
                    .and_then(|body| body["field"].as_str().map(str::to_owned));
                if let Some(field) = field {
                    if named.as_deref() != Some(field) {
                        wrong.push(format!(
                            "{what} was refused without naming `{field}`: {}",
                            a.excerpt()
                        ));
                    }
                }
            }
        }
    }
    Check {
        name: "refusals",
        ok: wrong.is_empty(),
        detail: if wrong.is_empty() {
            format!("all {total} invalid requests refused with the documented status and field")
        } else {
            wrong.join("; ")
        },
    }
}

/// Polls the campaign's report until it equals `expected`, goes past it, or the deadline passes.
async fn counts(
    client: &Client,
    target: &Target,
    campaign: i64,
    expected: Counts,
    deadline: Duration,
    steps: &mut Steps,
) -> Check {
    let started = Instant::now();
    loop {
        let last = match target.campaign_totals(client, campaign).await {
            Ok(got) if got == expected => {
                return Check {
                    name: "counts",
                    ok: true,
                    detail: format!(
                    "the report counts exactly {} bids, {} impressions, {} clicks (after {:.1}s)",
                    got.bids,
                    got.imps,
                    got.clicks,
                    started.elapsed().as_secs_f64()
                ),
                }
            }
            Ok(got) => {
                let last = format!(
                    "the report has bids {}, imps {}, clicks {}; expected {}, {}, {}",
                    got.bids, got.imps, got.clicks, expected.bids, expected.imps, expected.clicks
                );
                // Counts only grow: past the expected values, waiting cannot help.
                if got.bids > expected.bids
                    || got.imps > expected.imps
                    || got.clicks > expected.clicks
                {
                    return Check {
                        name: "counts",
                        ok: false,
                        detail: format!("{last}: counted more than was sent (double counting, or invalid input stored)"),
                    };
                }
                last
            }
            Err(reason) => reason,
        };
        if started.elapsed() >= deadline {
            return Check {
                name: "counts",
                ok: false,
                detail: format!("after {deadline:?}, {last}"),
            };
        }
        steps.update(&last);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn predictions(client: &Client, target: &Target, tag: &Tag) -> Check {
    let (valid, without_price) = scenario::prediction_requests(tag);
    let mut wrong = Vec::new();
    match client.post_json(&target.predictions, valid).await {
        Ok(a) if a.status == 200 => match a.json() {
            Some(body) => {
                if let Err(reason) = scenario::check_prediction(&body) {
                    wrong.push(reason);
                }
            }
            None => wrong.push(format!("the answer is not JSON: {}", a.excerpt())),
        },
        Ok(a) => wrong.push(format!(
            "a valid request was answered {}: {}",
            a.status,
            a.excerpt()
        )),
        Err(e) => wrong.push(format!("no answer: {e}")),
    }
    match client.post_json(&target.predictions, without_price).await {
        Ok(a) if a.status == 400 && a.json().is_some_and(|b| b["field"] == "winPrice") => {}
        Ok(a) => wrong.push(format!(
            "a request without winPrice was answered {}, not a 400 naming winPrice: {}",
            a.status,
            a.excerpt()
        )),
        Err(e) => wrong.push(format!("no answer to a request without winPrice: {e}")),
    }
    Check {
        name: "predictions",
        ok: wrong.is_empty(),
        detail: if wrong.is_empty() {
            "a prediction in the documented shape; a request without winPrice refused".to_owned()
        } else {
            wrong.join("; ")
        },
    }
}

//! Crash torture: `sdp local` stopped by `SIGKILL` at least [`CRASHES`] times, at every crash
//! point of `sdp_core::crash` (the log's commit, the processor's count, landing and checkpoint,
//! any write into the lake directory, compaction between its files, manifest and removals, model
//! promotion) and at random moments, under a load of transactions in closed and open hours. After
//! each crash a restart is checked against the clients' ledger:
//! - every event answered 200 is counted, and once all unanswered ones are resent (as clients
//!   retry), every event is counted exactly once in the reports;
//! - the raw tables hold every event, and the Parquet tables (which `sdp query` reads) hold each
//!   event of the closed hours once, every joined impression and click once, and aggregates
//!   equal to the clients' ledger: no torn file, no second generation, no lost or doubled row;
//! - the promoted model (`models/current.json`, what the predictions API serves) is never older
//!   than the one promoted before the crash, and is a whole file;
//! - no temporary file of a write the crash cut off is left once it has restarted.
//!
//! `SDP_CRASH_SEED` replays a run (the seed is printed); `SDP_CRASH_CYCLES` changes its length
//! when debugging (CI runs the default).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test file: a panic is the failure report

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use sdp_core::window::partition_of;

use crate::common::{agent, data_dir, post, query_rows, Local};

/// Crashes in a run, at least as many as the issue asks of it.
const CRASHES: usize = 200;
/// Crashes on one data directory before the next starts afresh (the lake stays small).
const CRASHES_PER_DIRECTORY: usize = 10;
/// How long a crash point may take to be reached before the process is killed from outside; a
/// promotion waits for the load to be processed, compacted and trained on, on a busy machine.
const POINT_DEADLINE: Duration = Duration::from_secs(5);
const PROMOTION_DEADLINE: Duration = Duration::from_secs(15);
/// Campaign 1 bids on win.example and always wins an impression; campaign 2 on lose.example never
/// does: a model can learn it, so retraining promotes.
const CAMPAIGNS: [(i64, &str); 2] = [(1, "win.example"), (2, "lose.example")];
const HOUR_MS: i64 = 3_600_000;

/// The scheduled runs as often as a torture needs them.
const SCHEDULE: &[&str] = &["--compact-every", "50ms", "--train-every", "200ms"];
/// The crash points of a model's promotion.
const PROMOTION_POINTS: [&str; 2] = ["promotion.after_version", "promotion.after_current"];

/// A small deterministic generator: the run replays from its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// One transaction of the ledger: its events (route, body) and which were answered 200.
struct Transaction {
    campaign: i64,
    /// Whether it lies in a closed hour (compacted into Parquet).
    closed: bool,
    events: Vec<(&'static str, String)>,
    acked: Vec<bool>,
}

impl Transaction {
    fn new(id: &str, campaign: i64, domain: &str, ts: i64, closed: bool, click: bool) -> Self {
        let mut events = vec![(
            "bid",
            json!({"tx_id": id, "app_uid": "u", "campaign_item_id": campaign, "domain": domain,
                   "creative_id": "c", "creative_category": "cat", "win_price": 100, "ts": ts})
            .to_string(),
        )];
        if campaign == CAMPAIGNS[0].0 {
            events.push((
                "impression",
                json!({"tx_id": id, "win_price": 90, "ts": ts + 100}).to_string(),
            ));
            if click {
                events.push(("click", json!({"tx_id": id, "ts": ts + 200}).to_string()));
            }
        }
        let acked = vec![false; events.len()];
        Transaction {
            campaign,
            closed,
            events,
            acked,
        }
    }

    /// (bids, imps, clicks) of this transaction.
    fn counts(&self) -> [i64; 3] {
        let has = |route: &str| i64::from(self.events.iter().any(|(r, _)| *r == route));
        [has("bid"), has("impression"), has("click")]
    }
}

/// What the clients sent on one data directory.
#[derive(Default)]
struct Ledger {
    transactions: Vec<Transaction>,
}

impl Ledger {
    /// (bids, imps, clicks) of `campaign`, over the closed hours only if `closed_only`.
    fn totals(&self, campaign: Option<i64>, closed_only: bool) -> [i64; 3] {
        let mut totals = [0; 3];
        for t in &self.transactions {
            if campaign.is_some_and(|c| c != t.campaign) || (closed_only && !t.closed) {
                continue;
            }
            for (total, count) in totals.iter_mut().zip(t.counts()) {
                *total += count;
            }
        }
        totals
    }

    fn events(&self, closed_only: bool) -> usize {
        self.transactions
            .iter()
            .filter(|t| t.closed || !closed_only)
            .map(|t| t.events.len())
            .sum()
    }
}

/// The hours the load writes into: two closed ones (compacted at once) and the current one.
struct Hours {
    closed: [i64; 2],
}

impl Hours {
    fn new() -> Hours {
        let hour = now_ms() / HOUR_MS * HOUR_MS;
        Hours {
            closed: [hour - 3 * HOUR_MS, hour - 2 * HOUR_MS],
        }
    }

    /// `sdp query`'s filter for the closed hours' partitions.
    fn filter(&self) -> String {
        let parts: Vec<String> = self
            .closed
            .iter()
            .map(|&start| {
                let (dt, hour) = partition_of(start);
                format!("(dt = '{dt}' AND hour = '{hour}')")
            })
            .collect();
        format!("({})", parts.join(" OR "))
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// How one crash was brought about.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Crash {
    /// A crash point armed for its `n`-th hit.
    Point(&'static str),
    /// `kill -9` from outside after a random time.
    Anywhere,
}

/// Sends the transactions' unanswered events in order until each is answered 200 (or the server
/// goes away, or `stop`); panics on any answer but 200 and 503.
fn send_unacked(api: &str, ledger: &Mutex<Ledger>, indexes: &[usize], stop: &AtomicBool) -> bool {
    let agent = agent();
    for &i in indexes {
        let pending: Vec<(usize, &'static str, String)> = {
            let ledger = ledger.lock().unwrap();
            let t = &ledger.transactions[i];
            (0..t.events.len())
                .filter(|&e| !t.acked[e])
                .map(|e| (e, t.events[e].0, t.events[e].1.clone()))
                .collect()
        };
        for (e, route, body) in pending {
            loop {
                if stop.load(Ordering::Relaxed) {
                    return false;
                }
                match post(&agent, &format!("{api}/{route}"), &body) {
                    (200, _) => {
                        ledger.lock().unwrap().transactions[i].acked[e] = true;
                        break;
                    }
                    (0, _) => return false, // the server is gone
                    (503, _) => std::thread::sleep(Duration::from_millis(20)),
                    (status, answer) => panic!("{route} {body}: {status} {answer}"),
                }
            }
        }
    }
    true
}

/// Load until the server dies, `stop`, or `budget` transactions are begun: clients add
/// transactions to the ledger and send them. (A small budget keeps each directory's lake small,
/// so that the checks stay quick; the crash may come after the load, while the processor,
/// compaction or training are still at work.)
fn load(
    api: &str,
    ledger: &Mutex<Ledger>,
    hours: &Hours,
    seed: u64,
    budget: usize,
    stop: &AtomicBool,
) {
    let begun = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for client in 0..4_u64 {
            let begun = &begun;
            scope.spawn(move || {
                let mut rng = Rng(seed ^ (client + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
                while begun.fetch_add(1, Ordering::Relaxed) < budget {
                    let index = {
                        let mut ledger = ledger.lock().unwrap();
                        let (campaign, domain) = CAMPAIGNS[rng.below(2) as usize];
                        let slot = rng.below(3);
                        let (ts, closed) = match slot {
                            0 | 1 => (
                                hours.closed[slot as usize] + rng.below(50 * 60_000) as i64,
                                true,
                            ),
                            _ => (now_ms() - 1_000, false),
                        };
                        let id =
                            format!("t{}-{client}-{}", seed % 100_000, ledger.transactions.len());
                        let click = rng.below(3) == 0;
                        ledger
                            .transactions
                            .push(Transaction::new(&id, campaign, domain, ts, closed, click));
                        ledger.transactions.len() - 1
                    };
                    if !send_unacked(api, ledger, &[index], stop) {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
            });
        }
    });
}

/// Files a crash left in the lake that a clean stop would not: temporaries, compaction locks,
/// Parquet files their partition's manifest does not name.
#[derive(Default, Debug)]
struct Leftovers {
    temporaries: usize,
    locks: usize,
    unnamed_parquet: usize,
}

fn leftovers(lake: &Path, found: &mut Leftovers) {
    leftovers_of_others(lake, None, found);
}

/// [`leftovers`], but not the temporaries of the process `this` (pid).
fn leftovers_of_others(lake: &Path, this: Option<u32>, found: &mut Leftovers) {
    // `.<name>.<pid>.<n>.tmp`
    let writer = |name: &str| {
        name.rsplit('.')
            .nth(2)
            .and_then(|pid| pid.parse::<u32>().ok())
    };
    let mut pending = vec![lake.to_owned()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let names: Vec<String> = entries
            .flatten()
            .map(|e| {
                if e.path().is_dir() {
                    pending.push(e.path());
                }
                e.file_name().to_string_lossy().into_owned()
            })
            .collect();
        found.temporaries += names
            .iter()
            .filter(|n| n.starts_with('.') && n.ends_with(".tmp"))
            .filter(|n| this.is_none() || writer(n) != this)
            .count();
        found.locks += names.iter().filter(|n| *n == "_compacting").count();
        let named: Vec<String> = std::fs::read(dir.join("_manifest.json"))
            .ok()
            .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok())
            .map(|m| {
                m["files"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|f| f.as_str().unwrap().to_owned())
                    .collect()
            })
            .unwrap_or_default();
        found.unnamed_parquet += names
            .iter()
            .filter(|n| n.starts_with("part-") && !named.contains(n))
            .count();
    }
}

/// The version of the promoted model of the lake, if any; panics on a torn file.
fn promoted_version(lake: &Path) -> Option<String> {
    let bytes = std::fs::read(lake.join("models/current.json")).ok()?;
    let model: Value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|e| panic!("models/current.json is not a whole model: {e}"));
    Some(model["version"].as_str().unwrap().to_owned())
}

/// Polls `check` every 50 ms until it gives None, or panics with its last complaint.
fn eventually(what: &str, deadline: Duration, mut check: impl FnMut() -> Option<String>) {
    let end = Instant::now() + deadline;
    loop {
        let Some(complaint) = check() else { return };
        if std::env::var_os("SDP_CRASH_DEBUG").is_some() {
            eprintln!("{what}: {complaint}");
        }
        assert!(Instant::now() < end, "{what}: {complaint}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// After a crash: a restart, the clients' retries, and every invariant of the module's header;
/// how many figures were checked.
fn check_after_crash(
    dir: &Path,
    ledger: &Mutex<Ledger>,
    hours: &Hours,
    newest_model: &mut Option<String>,
    timing: &mut Timing,
) -> usize {
    let started = Instant::now();
    let local = Local::try_start(dir, SCHEDULE, &[], server_log()).unwrap();
    timing.restart += started.elapsed();
    let promoted = promoted_version(&dir.join("lake"));
    assert!(
        promoted >= *newest_model,
        "the promoted model went back from {newest_model:?} to {promoted:?}"
    );
    *newest_model = promoted;
    // Cleared before it serves: any temporary now is one of this process's writes in flight.
    let mut found = Leftovers::default();
    leftovers_of_others(&dir.join("lake"), Some(local.child.id()), &mut found);
    assert_eq!(
        found.temporaries, 0,
        "temporaries of the crashed process are left"
    );
    let mut checked = 2;

    let started = Instant::now();
    // Clients resend what was never answered 200; then every event is stored.
    let all: Vec<usize> = (0..ledger.lock().unwrap().transactions.len()).collect();
    assert!(send_unacked(
        local.api(),
        ledger,
        &all,
        &AtomicBool::new(false)
    ));
    let ledger = ledger.lock().unwrap();

    // The reports: every event counted exactly once.
    for (campaign, _) in CAMPAIGNS {
        let expected = ledger.totals(Some(campaign), false);
        eventually("the reports", Duration::from_secs(30), || {
            let (bids, imps, clicks) = local.totals(campaign);
            let counted = [bids, imps, clicks];
            for (kind, (c, e)) in ["bids", "imps", "clicks"]
                .iter()
                .zip(counted.iter().zip(&expected))
            {
                assert!(
                    c <= e,
                    "campaign {campaign}: {c} {kind} counted of {e} sent"
                );
            }
            (counted != expected)
                .then(|| format!("campaign {campaign} at {counted:?} of {expected:?}"))
        });
        checked += expected.len();
    }

    timing.reports += started.elapsed();
    let started = Instant::now();

    // The lake, as a query sees it.
    let closed = hours.filter();
    let sql = format!(
        "SELECT \
         (SELECT count(*) FROM (SELECT DISTINCT tx_id, type FROM raw_bcns)) AS raw_events, \
         (SELECT count(DISTINCT tx_id) FROM raw_impressions) AS raw_imps, \
         (SELECT count(DISTINCT tx_id) FROM raw_clicks) AS raw_clicks, \
         (SELECT count(*) FROM (SELECT DISTINCT * FROM raw_bcns WHERE {closed})) AS raw_closed_rows, \
         (SELECT count(*) FROM parquet_bcns) AS parquet_rows, \
         (SELECT count(*) FROM (SELECT DISTINCT tx_id, type FROM parquet_bcns)) AS parquet_events, \
         (SELECT count(*) FROM parquet_impressions) AS parquet_imps, \
         (SELECT count(*) FROM parquet_clicks) AS parquet_clicks, \
         (SELECT coalesce(sum(bids), 0) FROM parquet_aggregates) AS agg_bids, \
         (SELECT coalesce(sum(imps), 0) FROM parquet_aggregates) AS agg_imps, \
         (SELECT coalesce(sum(clicks), 0) FROM parquet_aggregates) AS agg_clicks"
    );
    let [_, imps, clicks] = ledger.totals(None, false);
    let [closed_bids, closed_imps, closed_clicks] = ledger.totals(None, true);
    let mut lake_figures = 0;
    eventually("the lake", Duration::from_secs(30), || {
        let rows = query_rows(dir, &sql);
        let row = &rows[0];
        let n = |k: &str| row[k].as_i64().unwrap();
        let expected = json!({
            "raw_events": ledger.events(false), "raw_imps": imps, "raw_clicks": clicks,
            "raw_closed_rows": n("raw_closed_rows"), "parquet_rows": n("raw_closed_rows"),
            "parquet_events": ledger.events(true), "parquet_imps": closed_imps,
            "parquet_clicks": closed_clicks, "agg_bids": closed_bids, "agg_imps": closed_imps,
            "agg_clicks": closed_clicks,
        });
        lake_figures = expected.as_object().map_or(0, |o| o.len());
        (*row != expected).then(|| format!("{row} where {expected} was expected"))
    });
    checked += lake_figures;
    drop(ledger);
    timing.lake += started.elapsed();
    local.kill_9();
    checked
}

/// Where the servers' stderr goes: hundreds of starts would drown the test's output. Kept when
/// the test fails.
fn server_log_path() -> std::path::PathBuf {
    std::env::temp_dir().join(format!("sdp-crash-torture-{}.log", std::process::id()))
}

fn server_log() -> Stdio {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(server_log_path())
        .unwrap();
    Stdio::from(file)
}

/// Where a run's time goes.
#[derive(Default, Debug)]
struct Timing {
    crashing: Duration,
    restart: Duration,
    reports: Duration,
    lake: Duration,
}

#[test]
fn sdp_local_killed_at_200_points_loses_no_acknowledged_event_and_keeps_the_lake_consistent() {
    let seed: u64 = std::env::var("SDP_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| now_ms() as u64);
    let crashes: usize = std::env::var("SDP_CRASH_CYCLES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(CRASHES);
    eprintln!(
        "crash torture: seed {seed} (SDP_CRASH_SEED={seed} replays it), {crashes} crashes; the \
         servers' stderr goes to {}",
        server_log_path().display()
    );
    let mut rng = Rng(seed | 1);
    let hours = Hours::new();
    let others: Vec<Crash> = sdp_core::crash::POINTS
        .iter()
        .filter(|p| !PROMOTION_POINTS.contains(p))
        .map(|&p| Crash::Point(p))
        .chain([Crash::Anywhere])
        .collect();
    // Per kind of crash: (brought about, reached by the point itself).
    let mut tally: BTreeMap<Crash, (usize, usize)> = BTreeMap::new();
    let mut found = Leftovers::default();
    let started = Instant::now();
    let (mut checks, mut figures) = (0, 0);
    let mut timing = Timing::default();
    for directory in 0..crashes.div_ceil(CRASHES_PER_DIRECTORY) {
        let dir = data_dir(&format!("torture-{directory}"));
        let ledger = Mutex::new(Ledger::default());
        let mut newest_model = None;
        for cycle in 0..CRASHES_PER_DIRECTORY.min(crashes - directory * CRASHES_PER_DIRECTORY) {
            // A model is promoted when one does better than the serving one: surely the first
            // time, over the bootstrap model; later, only as the data happens to fall. So each
            // directory's first crash is at a promotion point, the rest anywhere else.
            let kind = if cycle == 0 {
                Crash::Point(PROMOTION_POINTS[directory % PROMOTION_POINTS.len()])
            } else {
                others[rng.below(others.len() as u64) as usize]
            };
            let (armed, deadline) = match kind {
                Crash::Point(point) => {
                    let most = match point.split('.').next().unwrap() {
                        "log" | "objects" => 30,
                        "processor" => 8,
                        "compaction" => 2,
                        _ => 1,
                    };
                    let deadline = if PROMOTION_POINTS.contains(&point) {
                        PROMOTION_DEADLINE
                    } else {
                        POINT_DEADLINE
                    };
                    (
                        vec![("SDP_CRASH_AT", format!("{point}:{}", 1 + rng.below(most)))],
                        deadline,
                    )
                }
                Crash::Anywhere => (Vec::new(), Duration::from_millis(20 + rng.below(500))),
            };
            // A first promotion needs 100 bids compacted (`sdp_core::retrain::MIN_BIDS`).
            let budget = if cycle == 0 { 300 } else { 60 };
            let env: Vec<(&str, &str)> = armed.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let entry = tally.entry(kind).or_default();
            entry.0 += 1;
            let stop = AtomicBool::new(false);
            let crashing = Instant::now();
            // The point may be reached while it starts (the processor catching up): a crash too.
            match Local::try_start(&dir, SCHEDULE, &env, server_log()) {
                Ok(mut local) => {
                    let api = local.api().to_owned();
                    let load_seed = rng.next();
                    let ended = std::thread::scope(|scope| {
                        scope.spawn(|| load(&api, &ledger, &hours, load_seed, budget, &stop));
                        let end = Instant::now() + deadline;
                        let ended = loop {
                            let ended = local.exited();
                            if ended.is_some() || Instant::now() >= end {
                                break ended;
                            }
                            std::thread::sleep(Duration::from_millis(5));
                        };
                        local.kill_9();
                        stop.store(true, Ordering::Relaxed);
                        ended
                    });
                    if let Some(status) = ended {
                        assert!(
                            kind != Crash::Anywhere && status.signal() == Some(9),
                            "sdp local ended by itself ({status}) under {kind:?}"
                        );
                        entry.1 += 1;
                    }
                }
                Err(err) => {
                    assert!(err.contains("SIGKILL"), "{kind:?}: {err}");
                    entry.1 += 1;
                }
            }
            timing.crashing += crashing.elapsed();
            leftovers(&dir.join("lake"), &mut found);
            figures += check_after_crash(&dir, &ledger, &hours, &mut newest_model, &mut timing);
            checks += 1;
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    // Straight to stderr, past the test harness's capture: the counts belong in every run's log.
    let mut summary = format!(
        "crash torture: {} crashes in {:.0?}, each followed by a restart and a check of the \
         reports, the lake and the promoted model: {checks} checks, {figures} figures compared\n",
        tally.values().map(|t| t.0).sum::<usize>(),
        started.elapsed()
    );
    for (kind, (crashes, reached)) in &tally {
        summary += &format!("  {kind:?}: {crashes} crashes, {reached} at the point itself\n");
    }
    summary += &format!("  left behind by the crashes (cleared on restart): {found:?}\n");
    summary += &format!("  {timing:?}\n");
    let _ = std::io::stderr().write_all(summary.as_bytes());
    if crashes >= CRASHES {
        for point in sdp_core::crash::POINTS {
            let reached = tally.get(&Crash::Point(point)).map_or(0, |t| t.1);
            assert!(reached > 0, "the crash point {point} was never reached");
        }
    }
    let _ = std::fs::remove_file(server_log_path());
}

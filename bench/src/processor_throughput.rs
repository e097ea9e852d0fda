//! Processor core throughput: decode, join and aggregate a realistic mixed stream on one thread.
//!
//! `processor-throughput generate FILE N` writes N transactions as NDJSON stored events (bids;
//! 60% with an impression, a fifth of those with a click; 3% of events repeated; a fifth of the
//! impressions beyond the session timeout). `processor-throughput run FILE OUT` processes the file
//! with sdp-core's join (state kept in memory, as one processor invocation would see it) and
//! writes the aggregates as CSV for comparison with the reference. Timing is printed on stderr.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufWriter, Write};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use sdp_core::events::Event;
use sdp_core::join::{self, AggregateKey, Counts, JoinConfig, Transaction};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        [_, "generate", file, n] => generate(file, n.parse().context("N must be a number")?),
        [_, "run", file, out] => run(file, out),
        _ => bail!("usage: processor-throughput generate FILE N | run FILE OUT"),
    }
}

/// A small deterministic generator (xorshift), so every run sees the same stream.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn generate(file: &str, transactions: usize) -> Result<()> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut out = BufWriter::new(std::fs::File::create(file)?);
    let start = 1_763_780_400_000_i64;
    let write = |line: String, rng: &mut Rng, out: &mut BufWriter<std::fs::File>| -> Result<()> {
        writeln!(out, "{line}")?;
        if rng.below(100) < 3 {
            writeln!(out, "{line}")?; // a redelivery
        }
        Ok(())
    };
    for i in 0..transactions {
        let tx = format!("{:016x}-{i}", rng.next());
        let ts = start + (i as i64) * 20 + rng.below(1000) as i64;
        let campaign = 1_000_000 + rng.below(500) as i64;
        write(
            format!(
                r#"{{"tx_id":"{tx}","ts":{ts},"received_at":{ts},"type":"bid","campaign_item_id":{campaign},"app_uid":"app-{}","creative_id":"cr-{}","creative_category":"cat-{}","domain":"site{}.example","win_price":{}}}"#,
                rng.below(100_000),
                rng.below(2000),
                rng.below(40),
                rng.below(3000),
                rng.below(500)
            ),
            &mut rng,
            &mut out,
        )?;
        if rng.below(100) < 60 {
            // A fifth of the impressions come too late to join (over 5 minutes).
            let delay = if rng.below(5) == 0 {
                360_000
            } else {
                rng.below(240_000) as i64
            };
            let imp_ts = ts + delay;
            write(
                format!(
                    r#"{{"tx_id":"{tx}","ts":{imp_ts},"received_at":{imp_ts},"type":"imp","win_price":{}}}"#,
                    rng.below(500)
                ),
                &mut rng,
                &mut out,
            )?;
            if rng.below(100) < 20 {
                let click_ts = imp_ts + rng.below(120_000) as i64;
                write(
                    format!(
                        r#"{{"tx_id":"{tx}","ts":{click_ts},"received_at":{click_ts},"type":"click"}}"#
                    ),
                    &mut rng,
                    &mut out,
                )?;
            }
        }
    }
    out.flush()?;
    Ok(())
}

fn run(file: &str, out: &str) -> Result<()> {
    let config = JoinConfig::from_minutes(10, 5, 5)?;
    let input = std::fs::read(file)?;
    let started = Instant::now();
    // The transactions' state, as a state table in memory would hold it: keyed by a fast hash
    // (std's SipHash took a third of the time; foldhash is hashbrown's own default, seeded per
    // process).
    let mut states: HashMap<String, Transaction, foldhash::fast::RandomState> = HashMap::default();
    let mut aggregates: BTreeMap<AggregateKey, Counts> = BTreeMap::new();
    let mut events = 0_u64;
    // As the processor reads a record: JSON bytes decoded in place, no copy into a string.
    for line in input.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let event = Event::decode(line)?;
        events += 1;
        // The state is moved out of the map and back, the event moved into it: nothing copied.
        let transition = match states.get_mut(&event.tx_id) {
            Some(slot) => {
                let stored = std::mem::replace(slot, Transaction::new(""));
                let transition = join::apply_owned(&config, Some(stored), [event]);
                *slot = transition.state;
                transition.increments
            }
            None => {
                let tx_id = event.tx_id.clone();
                let transition = join::apply_owned(&config, None, [event]);
                states.insert(tx_id, transition.state);
                transition.increments
            }
        };
        for (key, counts) in transition {
            aggregates.entry(key).or_default().add(counts);
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    eprintln!(
        "sdp-core: {events} events in {elapsed:.3} s = {:.0} events/s (one thread, {:.1} MB input)",
        events as f64 / elapsed,
        input.len() as f64 / 1e6
    );
    let mut csv = BufWriter::new(std::fs::File::create(out)?);
    for (key, counts) in aggregates {
        writeln!(
            csv,
            "{},{},{},{},{}",
            key.campaign_item_id, key.period, counts.bids, counts.imps, counts.clicks
        )?;
    }
    csv.flush()?;
    Ok(())
}

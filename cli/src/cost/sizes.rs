//! The sizes the cost model prices, measured rather than guessed: a sample of `sdp load`'s
//! traffic is run through the platform's own code in memory (validation, the join, the lake
//! rows a committed batch lands), and every record, state item and row it makes is weighed.

use sdp_core::events::{self, Event, EventType};
use sdp_core::join::JoinConfig;
use sdp_core::landing::{rows_after_commit, LandedRow};
use sdp_core::memory::{ready, MemoryState, T0};
use sdp_core::processor::process_batch;

use super::usage::state_item_bytes;
use crate::probe::load::{Arrival, Workload};
use crate::probe::scenario::Tag;

/// Bids in the sample (with their impressions and clicks, 1,600 events).
const SAMPLE_BIDS: usize = 1000;

/// Averages over the sample, each by event type in [`EventType::ALL`] order.
#[derive(Debug, Clone, PartialEq)]
pub struct Sizes {
    /// Each type's share of the events.
    pub share: [f64; 3],
    /// A stream record: the stored event's JSON (what Firehose rounds to 5 KB steps).
    pub record_bytes: [f64; 3],
    /// The record's partition key (the `tx_id`), which counts in Kinesis's 25 KB payload units.
    pub partition_key_bytes: f64,
    /// The DynamoDB state item once the event has joined its transaction.
    pub state_item_bytes: [f64; 3],
    /// The lake row (a JSON line with its newline) the processor lands for the event, if any:
    /// none for a bid, an `impressions` row for an impression, a `clicks` row for a click.
    pub joined_row_bytes: [f64; 3],
    /// An `aggregates` snapshot row.
    pub aggregate_row_bytes: f64,
}

impl Sizes {
    /// The traffic's mean of a per-type figure.
    pub fn mean(&self, by_type: &[f64; 3]) -> f64 {
        (0..3).map(|i| self.share[i] * by_type[i]).sum()
    }

    /// Measures `sdp load`'s traffic, as in `sdp load`: every bid, then the impressions and
    /// clicks they made due, each kind processed as one batch.
    pub fn of_load_traffic() -> anyhow::Result<Sizes> {
        let [bids, impressions, clicks] =
            Workload::new(Tag::new("load", T0, 0)).by_kind(SAMPLE_BIDS);

        let store = MemoryState::default();
        // Windows of an hour, so that every event of the sample joins and aggregates in one.
        let config = JoinConfig::from_minutes(60, 60, 60)?;
        let total = (bids.len() + impressions.len() + clicks.len()) as f64;
        let mut sizes = Sizes {
            share: [0.0; 3],
            record_bytes: [0.0; 3],
            partition_key_bytes: 0.0,
            state_item_bytes: [0.0; 3],
            joined_row_bytes: [0.0; 3],
            aggregate_row_bytes: 0.0,
        };
        let mut aggregate_rows = Vec::new();
        for (i, arrivals) in [bids, impressions, clicks].iter().enumerate() {
            let events = arrivals
                .iter()
                .map(stored)
                .collect::<Result<Vec<Event>, _>>()?;
            let n = events.len() as f64;
            sizes.share[i] = n / total;
            sizes.record_bytes[i] = mean(events.iter().map(json_bytes));
            sizes.partition_key_bytes +=
                events.iter().map(|e| e.tx_id.len() as f64).sum::<f64>() / total;
            let result = ready(process_batch(&store, &config, &events))?;
            sizes.state_item_bytes[i] =
                mean(result.states.values().map(|s| state_item_bytes(s) as f64));
            let rows = ready(rows_after_commit(&store, &config, &events, &result.states))?;
            let line_bytes = |r: &LandedRow| (r.line.len() + 1) as f64;
            let (aggregates, joined): (Vec<&LandedRow>, Vec<&LandedRow>) =
                rows.iter().partition(|r| r.dataset == "aggregates");
            sizes.joined_row_bytes[i] = joined.into_iter().map(line_bytes).sum::<f64>() / n;
            aggregate_rows.extend(aggregates.into_iter().map(line_bytes));
        }
        sizes.aggregate_row_bytes = mean(aggregate_rows.into_iter());
        Ok(sizes)
    }
}

/// The event as the ingestion function stores it.
fn stored(arrival: &Arrival) -> anyhow::Result<Event> {
    let event_type = EventType::ALL
        .into_iter()
        .find(|t| t.route() == arrival.route)
        .ok_or_else(|| anyhow::anyhow!("no event type has the route `{}`", arrival.route))?;
    Ok(events::validate(event_type, arrival.body.as_bytes(), T0)?)
}

fn json_bytes(event: &Event) -> f64 {
    serde_json::to_vec(event).map_or(0.0, |json| json.len() as f64)
}

fn mean(values: impl Iterator<Item = f64>) -> f64 {
    let (sum, n) = values.fold((0.0, 0usize), |(sum, n), v| (sum + v, n + 1));
    if n == 0 {
        0.0
    } else {
        sum / n as f64
    }
}

//! What a processed batch lands in the lake besides its events (which the `bcns` dataset takes
//! as they are): the `impressions` and `clicks` rows of the transactions it joined, carrying their
//! bid's attributes, and `aggregates` snapshots, the totals of every aggregate its transactions
//! counted into.
//!
//! Both are derived after the batch's commit, from the stored state and totals, so a batch landed
//! again (a crash, a retried delivery) repeats exact rows, which compaction drops, and snapshots
//! with the same or larger totals, of which compaction keeps the largest. The same code lands the
//! batch in `sdp local` (files) and on AWS (Firehose).

use std::collections::{BTreeSet, HashMap, HashSet};

use crate::events::{Event, EventType};
use crate::join::{aggregate_keys, joined_rows, AggregateKey, JoinConfig, Transaction};
use crate::ports::{AggregateReader, StoreError};
use crate::window::format_period;

/// One lake row: its dataset, the event time that places it in a partition, and its JSON line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LandedRow {
    pub dataset: &'static str,
    pub ts_ms: i64,
    pub line: String,
}

/// The derived rows of a committed batch of `events`, from `states` (each of their transactions
/// as the store holds it after the commit: `BatchResult::states`) and the totals in `store`.
pub async fn rows_after_commit<S: AggregateReader + Sync>(
    store: &S,
    config: &JoinConfig,
    events: &[Event],
    states: &HashMap<String, Transaction>,
) -> Result<Vec<LandedRow>, StoreError> {
    let mut rows = Vec::new();
    let mut keys: BTreeSet<AggregateKey> = BTreeSet::new();
    let present: HashSet<(&str, EventType)> = events
        .iter()
        .map(|e| (e.tx_id.as_str(), e.event_type()))
        .collect();
    for state in states.values() {
        keys.extend(aggregate_keys(config, state));
        let in_batch = |t: EventType| present.contains(&(state.tx_id.as_str(), t));
        for row in joined_rows(state) {
            // An impression's row lands with the batch of its bid or of itself, not again with
            // its click's; a click's row with the click's batch, where it joined.
            let dataset = match row.event_type {
                Some(EventType::Click) => "clicks",
                _ if in_batch(EventType::Bid) || in_batch(EventType::Impression) => "impressions",
                _ => continue,
            };
            rows.push(LandedRow {
                dataset,
                ts_ms: row.ts,
                line: serde_json::to_string(&row).map_err(serialising)?,
            });
        }
    }
    let keys: Vec<AggregateKey> = keys.into_iter().collect();
    for (key, counts) in store.windows(&keys).await? {
        // The aggregate record of CONTRACT §5.2, `period` as the lake's UTC string.
        let row = serde_json::json!({
            "campaign_item_id": key.campaign_item_id,
            "period": format_period(key.period),
            "bids": counts.bids,
            "imps": counts.imps,
            "clicks": counts.clicks,
        });
        rows.push(LandedRow {
            dataset: "aggregates",
            ts_ms: key.period.saturating_mul(1000),
            line: row.to_string(),
        });
    }
    Ok(rows)
}

fn serialising(err: serde_json::Error) -> StoreError {
    StoreError::Permanent {
        message: format!("serialising a lake row failed: {err}"),
        source: Some(Box::new(err)),
    }
}

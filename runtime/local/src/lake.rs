//! The raw layer of the local lake: every processed batch lands as JSON lines under
//! `<data-dir>/lake/raw/<dataset>/dt=YYYY-MM-DD/hour=HH/`, the layout Firehose gives the S3 lake,
//! partitioned by event time. `bcns` rows are the log's events; `impressions` and `clicks` rows
//! are rebuilt from the join state after the batch's commit, so a batch written again after a
//! crash repeats exact rows, which compaction drops. A joined row is written with the batch that
//! holds an event that could have joined it (an impression's row with its bid or itself, not
//! again with its click). `aggregates` rows are snapshots: the totals, read after the commit, of
//! every aggregate the batch's transactions counted into; compaction keeps the latest of each.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use sdp_core::events::{Event, EventType};
use sdp_core::join::{joined_rows, AggregateKey, Counts, Transaction};
use sdp_core::lake::{Format, DATASETS};
use sdp_core::window::{format_period, partition_of};

pub struct RawLake {
    root: PathBuf,
}

impl RawLake {
    /// The lake under `data_dir/lake`.
    pub fn new(data_dir: &Path) -> RawLake {
        RawLake {
            root: data_dir.join("lake"),
        }
    }

    /// Writes the rows of one batch (log sequence numbers `first..=last`): one file per dataset
    /// and partition, named after the batch, written whole (temporary file, sync, rename) so a
    /// reader never sees half of it. `aggregates` holds the current totals of the aggregates the
    /// batch's transactions counted into.
    pub fn write_batch(
        &self,
        (first, last): (u64, u64),
        events: &[Event],
        states: &[Transaction],
        aggregates: &[(AggregateKey, Counts)],
    ) -> std::io::Result<()> {
        // (dataset, dt, hour) → lines
        let mut files: BTreeMap<(&str, String, String), Vec<String>> = BTreeMap::new();
        let mut add = |dataset: &'static str, ts: i64, line: String| {
            let (dt, hour) = partition_of(ts);
            files.entry((dataset, dt, hour)).or_default().push(line);
        };
        for event in events {
            add("bcns", event.ts, serde_json::to_string(event)?);
        }
        for state in states {
            let in_batch = |t: EventType| {
                events
                    .iter()
                    .any(|e| e.tx_id == state.tx_id && e.event_type() == t)
            };
            for row in joined_rows(state) {
                let dataset = match row.event_type {
                    Some(EventType::Click) => "clicks",
                    _ if in_batch(EventType::Bid) || in_batch(EventType::Impression) => {
                        "impressions"
                    }
                    _ => continue,
                };
                add(dataset, row.ts, serde_json::to_string(&row)?);
            }
        }
        for (key, counts) in aggregates {
            // The aggregate record of CONTRACT §5.2, `period` as the lake's UTC string.
            let row = serde_json::json!({
                "campaign_item_id": key.campaign_item_id,
                "period": format_period(key.period),
                "bids": counts.bids,
                "imps": counts.imps,
                "clicks": counts.clicks,
            });
            add(
                "aggregates",
                key.period.saturating_mul(1000),
                row.to_string(),
            );
        }
        for ((name, dt, hour), lines) in files {
            let Some(dataset) = DATASETS.iter().find(|d| d.name == name) else {
                continue;
            };
            let dir = self
                .root
                .join(dataset.partition_prefix(Format::Raw, &dt, &hour));
            std::fs::create_dir_all(&dir)?;
            let path = dir.join(format!("{first:020}-{last:020}.json"));
            let temporary = path.with_extension("json.tmp");
            let mut file = std::fs::File::create(&temporary)?;
            file.write_all((lines.join("\n") + "\n").as_bytes())?;
            file.sync_all()?;
            std::fs::rename(&temporary, &path)?;
        }
        Ok(())
    }
}

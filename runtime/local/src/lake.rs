//! The raw layer of the local lake: every processed batch lands as JSON lines under
//! `<data-dir>/lake/raw/<dataset>/dt=YYYY-MM-DD/hour=HH/`, the layout Firehose gives the S3 lake,
//! partitioned by event time. `bcns` rows are the log's events; `impressions`, `clicks` and
//! `aggregates` rows are derived from the batch's commit, as on AWS (`sdp_core::landing`).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use sdp_core::events::Event;
use sdp_core::lake::{Format, DATASETS};
use sdp_core::landing::LandedRow;
use sdp_core::ports::{LakeSink, StoreError};
use sdp_core::window::partition_of;

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

    /// Writes the rows of the batch named `batch`: its events, and the rows derived from its
    /// commit (`sdp_core::landing`). One file per dataset and partition, named after the batch,
    /// written whole (temporary file, sync, rename) so a reader never sees half of it.
    fn write_batch(
        &self,
        batch: &str,
        events: &[Event],
        derived: &[LandedRow],
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
        for row in derived {
            add(row.dataset, row.ts_ms, row.line.clone());
        }
        for ((name, dt, hour), lines) in files {
            let Some(dataset) = DATASETS.iter().find(|d| d.name == name) else {
                continue;
            };
            let dir = self
                .root
                .join(dataset.partition_prefix(Format::Raw, &dt, &hour));
            std::fs::create_dir_all(&dir)?;
            let path = dir.join(format!("{batch}.json"));
            // Hidden while written: listings of the lake (compaction's, `sdp query`'s) skip it.
            let temporary = dir.join(format!(".{batch}.json.tmp"));
            let mut file = std::fs::File::create(&temporary)?;
            file.write_all((lines.join("\n") + "\n").as_bytes())?;
            file.sync_all()?;
            std::fs::rename(&temporary, &path)?;
        }
        Ok(())
    }
}

/// The lake directory in place of Firehose: it takes the batch's events too (`bcns`), which on AWS
/// a delivery stream reads from the event stream.
impl LakeSink for RawLake {
    async fn deliver(
        &self,
        batch: &str,
        events: &[Event],
        rows: &[LandedRow],
    ) -> Result<(), StoreError> {
        self.write_batch(batch, events, rows)
            .map_err(|e| StoreError::Transient {
                message: format!("writing batch {batch} to the raw lake failed"),
                source: Some(Box::new(e)),
            })
    }
}

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

    /// Writes the rows of one batch (log sequence numbers `first..=last`): its events, and the
    /// rows derived from its commit (`sdp_core::landing`). One file per dataset and partition,
    /// named after the batch, written whole (temporary file, sync, rename) so a reader never sees
    /// half of it.
    pub fn write_batch(
        &self,
        (first, last): (u64, u64),
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

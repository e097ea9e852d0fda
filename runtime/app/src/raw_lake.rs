//! The raw layer of a lake kept in an object store, in place of Firehose: each processed batch
//! lands as JSON lines under `raw/<dataset>/dt=YYYY-MM-DD/hour=HH/<batch>.json`, the layout Firehose
//! gives the S3 lake, partitioned by event time. `bcns` rows are the batch's events (on AWS a
//! delivery stream reads them from the event stream itself); `impressions`, `clicks` and
//! `aggregates` rows are derived from the batch's commit, as on AWS (`sdp_core::landing`).
//! `sdp local` lands its batches so, in its lake directory (`sdp_fs::FsObjects`).

use std::collections::BTreeMap;

use sdp_core::events::Event;
use sdp_core::lake::{Format, DATASETS};
use sdp_core::landing::LandedRow;
use sdp_core::ports::{LakeSink, ObjectStore, Precondition, StoreError};
use sdp_core::window::partition_of;

/// A [`LakeSink`] that writes the raw objects itself.
pub struct RawLake<O> {
    objects: O,
}

impl<O: ObjectStore> RawLake<O> {
    pub fn new(objects: O) -> RawLake<O> {
        RawLake { objects }
    }
}

/// One object per dataset and partition, named after the batch and written whole, so a reader
/// never sees half of it and a retried batch replaces its own objects.
impl<O: ObjectStore + Send> LakeSink for RawLake<O> {
    async fn deliver(
        &self,
        batch: &str,
        events: &[Event],
        rows: &[LandedRow],
    ) -> Result<(), StoreError> {
        let mut objects: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut add = |dataset: &str, ts_ms: i64, line: String| {
            if let Some(dataset) = DATASETS.iter().find(|d| d.name == dataset) {
                let (dt, hour) = partition_of(ts_ms);
                let key = format!(
                    "{}{batch}.json",
                    dataset.partition_prefix(Format::Raw, &dt, &hour)
                );
                objects.entry(key).or_default().push(line);
            }
        };
        for event in events {
            let line = serde_json::to_string(event).map_err(|e| StoreError::Permanent {
                message: format!("cannot encode an event of batch {batch}: {e}"),
                source: None,
            })?;
            add("bcns", event.ts, line);
        }
        for row in rows {
            add(row.dataset, row.ts_ms, row.line.clone());
        }
        for (key, lines) in objects {
            let bytes = (lines.join("\n") + "\n").into_bytes();
            self.objects
                .put(&key, bytes, "application/json", Precondition::None)
                .await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use sdp_core::memory::{ready, scenario, MemoryObjects, T0};

    #[test]
    fn a_batch_lands_as_one_object_per_dataset_and_hour_named_after_it_and_a_retry_replaces_it() {
        let lake = RawLake::new(MemoryObjects::default());
        let objects = &lake.objects;
        let events = scenario(2);
        let later = LandedRow {
            dataset: "clicks",
            ts_ms: T0 + 3_600_000,
            line: "{\"tx_id\":\"tx-0\"}".into(),
        };
        for _ in 0..2 {
            ready(lake.deliver("b7", &events, std::slice::from_ref(&later))).unwrap();
        }
        let (dt, hour) = partition_of(T0);
        let (_, next_hour) = partition_of(T0 + 3_600_000);
        assert_eq!(
            objects.keys(),
            [
                format!("raw/bcns/dt={dt}/hour={hour}/b7.json"),
                format!("raw/clicks/dt={dt}/hour={next_hour}/b7.json"),
            ]
        );
        let bcns = String::from_utf8(objects.bytes(&objects.keys()[0]).unwrap()).unwrap();
        assert_eq!(bcns.lines().count(), events.len());
        let first: Event = serde_json::from_str(bcns.lines().next().unwrap()).unwrap();
        assert_eq!(first, events[0]);
    }
}

//! A synthetic lake, for tests and benchmarks: bids drawn from a known logistic world
//! (`sdp_core::synthetic`), each with an impression if it won, as the JSON lines the raw lake
//! holds, by dataset and hour of one day, and as the Parquet the compactor makes of them. Pure:
//! the objects' keys and bytes; the caller puts them in a store.

use std::collections::BTreeMap;

use serde_json::json;

use sdp_core::lake::{Format, DATASETS};
use sdp_core::model::BidFeatures;
use sdp_core::synthetic::{Rng, World};

use crate::compact::{compact, CompactError};

/// 2026-11-21T00:00:00Z, the day the partitions are in: in the past of every run, so each of its
/// hours is closed for a compactor on the real clock.
pub const DAY_MS: i64 = 1_795_219_200_000;
pub const DAY: &str = "2026-11-21";

/// Drawn bids: the JSON lines by (dataset, hour of [`DAY`]), and each bid with whether it won.
#[derive(Debug, Clone, Default)]
pub struct Drawn {
    pub lines: BTreeMap<(&'static str, u8), String>,
    pub labelled: Vec<(BidFeatures, bool)>,
}

/// `n` bids of `world` drawn with `seed`, transactions `<tag>-<i>`.
pub fn draw(world: &World, seed: u64, n: usize, tag: &str) -> Drawn {
    let mut rng = Rng(seed);
    let mut drawn = Drawn::default();
    for i in 0..n {
        let (bid, won, _) = world.sample(&mut rng);
        let within_hour = i64::try_from(i % 3_600_000).unwrap_or(0);
        let ts = DAY_MS + i64::from(bid.hour) * 3_600_000 + within_hour;
        let tx_id = format!("{tag}-{i}");
        let attributes = json!({
            "campaign_item_id": bid.campaign_item_id.parse::<i64>().unwrap_or(0),
            "domain": bid.domain,
            "creative_id": bid.creative_id,
            "creative_category": bid.creative_category,
        });
        let row = |fields: serde_json::Value| {
            let mut row = attributes.clone();
            if let (Some(row), Some(fields)) = (row.as_object_mut(), fields.as_object()) {
                row.extend(fields.clone());
            }
            format!("{row}\n")
        };
        drawn
            .lines
            .entry(("bcns", bid.hour))
            .or_default()
            .push_str(&row(json!({
                "tx_id": tx_id, "type": "bid", "ts": ts, "received_at": ts,
                "win_price": bid.win_price as i64,
            })));
        if won {
            drawn
                .lines
                .entry(("impressions", bid.hour))
                .or_default()
                .push_str(&row(json!({
                    "tx_id": tx_id, "ts": ts + 50, "received_at": ts + 60, "win_price": 40,
                })));
        }
        drawn.labelled.push((bid, won));
    }
    drawn
}

/// The drawn lines compacted, as the Parquet objects of the lake: keys
/// `parquet/<dataset>/dt=…/hour=…/<tag>-<n>.parquet`.
pub fn parquet_objects(drawn: &Drawn, tag: &str) -> Result<Vec<(String, Vec<u8>)>, CompactError> {
    let mut objects = Vec::new();
    for ((name, hour), text) in &drawn.lines {
        let Some(dataset) = DATASETS.iter().find(|d| d.name == *name) else {
            continue;
        };
        let compacted = compact(dataset, &[("in".into(), text.clone().into_bytes())])?;
        let prefix = dataset.partition_prefix(Format::Parquet, DAY, &format!("{hour:02}"));
        for (index, file) in compacted.files.into_iter().enumerate() {
            objects.push((format!("{prefix}{tag}-{index}.parquet"), file));
        }
    }
    Ok(objects)
}

/// The raw objects Firehose would write for the drawn lines (not yet gzipped): keys
/// `raw/<dataset>/dt=…/hour=…/sdp-raw-<dataset>-<tag>.gz`.
pub fn raw_objects(drawn: &Drawn, tag: &str) -> Vec<(String, Vec<u8>)> {
    drawn
        .lines
        .iter()
        .filter_map(|((name, hour), text)| {
            let dataset = DATASETS.iter().find(|d| d.name == *name)?;
            let prefix = dataset.partition_prefix(Format::Raw, DAY, &format!("{hour:02}"));
            Some((
                format!("{prefix}sdp-raw-{name}-{tag}.gz"),
                text.clone().into_bytes(),
            ))
        })
        .collect()
}

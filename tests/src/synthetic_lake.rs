//! A compacted lake of synthetic bids in S3: bids drawn from a known logistic world
//! (`sdp_core::synthetic`), each with an impression if it won, written as JSON lines and compacted
//! by `sdp-lake` into one Parquet file per table and hour, at the keys the compactor uses.

use std::collections::BTreeMap;

use anyhow::{ensure, Context, Result};
use serde_json::json;

use sdp_aws::s3::Precondition;
use sdp_aws::S3Objects;
use sdp_core::lake::{Format, DATASETS};
use sdp_core::model::BidFeatures;
use sdp_core::synthetic::{Rng, World};

/// 2026-11-22T00:00:00Z, the day the landed partitions are in.
pub const DAY_MS: i64 = 1_795_305_600_000;
const DAY: &str = "2026-11-22";

/// Lands `n` bids of `world` drawn with `seed` (transactions `<tag>-<i>`) in [`DAY_MS`]'s
/// partitions, files named `<tag>.parquet`. Returns each bid and whether it won.
pub async fn land(
    objects: &S3Objects,
    world: &World,
    seed: u64,
    n: usize,
    tag: &str,
) -> Result<Vec<(BidFeatures, bool)>> {
    let mut rng = Rng(seed);
    let mut lines: BTreeMap<(&str, u8), String> = BTreeMap::new();
    let mut labelled = Vec::with_capacity(n);
    for i in 0..n {
        let (bid, won, _) = world.sample(&mut rng);
        let ts = DAY_MS + i64::from(bid.hour) * 3_600_000 + i64::try_from(i)? % 3_600_000;
        let tx_id = format!("{tag}-{i}");
        let attributes = json!({
            "campaign_item_id": bid.campaign_item_id.parse::<i64>()?,
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
        lines
            .entry(("bcns", bid.hour))
            .or_default()
            .push_str(&row(json!({
                "tx_id": tx_id, "type": "bid", "ts": ts, "received_at": ts,
                "win_price": bid.win_price as i64,
            })));
        if won {
            lines
                .entry(("impressions", bid.hour))
                .or_default()
                .push_str(&row(json!({
                    "tx_id": tx_id, "ts": ts + 50, "received_at": ts + 60, "win_price": 40,
                })));
        }
        labelled.push((bid, won));
    }
    for ((name, hour), text) in lines {
        let dataset = DATASETS
            .iter()
            .find(|d| d.name == name)
            .context("no such dataset")?;
        let compacted = sdp_lake::compact::compact(dataset, &[("in".into(), text.into_bytes())])?;
        ensure!(compacted.rejected.is_empty(), "{:?}", compacted.rejected);
        let key = format!(
            "{}{tag}.parquet",
            dataset.partition_prefix(Format::Parquet, DAY, &format!("{hour:02}"))
        );
        objects
            .put(
                &key,
                compacted.parquet,
                "application/vnd.apache.parquet",
                Precondition::None,
            )
            .await?;
    }
    Ok(labelled)
}

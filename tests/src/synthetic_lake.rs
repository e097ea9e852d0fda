//! A compacted lake of synthetic bids in S3: bids drawn from a known logistic world
//! (`sdp_core::synthetic`), each with an impression if it won, written as JSON lines, and landed
//! raw (gzipped, as Firehose does) or compacted by `sdp-lake` (as the compactor does), one object
//! per table and hour.

use std::collections::BTreeMap;
use std::io::Write;

use anyhow::{ensure, Context, Result};
use flate2::write::GzEncoder;
use flate2::Compression;
use serde_json::json;

use sdp_aws::s3::Precondition;
use sdp_aws::S3Objects;
use sdp_core::lake::{Format, DATASETS};
use sdp_core::model::BidFeatures;
use sdp_core::synthetic::{Rng, World};

/// 2026-11-21T00:00:00Z, the day the landed partitions are in: in the past of every run, so each
/// of its hours is closed for a compactor on the real clock.
pub const DAY_MS: i64 = 1_795_219_200_000;
const DAY: &str = "2026-11-21";

/// The JSON lines of `n` bids of `world` drawn with `seed` (transactions `<tag>-<i>`) and of the
/// impressions of those that won, by (dataset, hour of [`DAY_MS`]); and each bid, labelled.
type Lines = BTreeMap<(&'static str, u8), String>;

fn lines(
    world: &World,
    seed: u64,
    n: usize,
    tag: &str,
) -> Result<(Lines, Vec<(BidFeatures, bool)>)> {
    let mut rng = Rng(seed);
    let mut lines = Lines::new();
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
    Ok((lines, labelled))
}

fn dataset(name: &str) -> Result<&'static sdp_core::lake::Dataset> {
    DATASETS
        .iter()
        .find(|d| d.name == name)
        .context("no such dataset")
}

/// Lands `n` bids of `world` drawn with `seed` (transactions `<tag>-<i>`) in [`DAY_MS`]'s
/// partitions, compacted, files named `<tag>.parquet`. Returns each bid and whether it won.
pub async fn land(
    objects: &S3Objects,
    world: &World,
    seed: u64,
    n: usize,
    tag: &str,
) -> Result<Vec<(BidFeatures, bool)>> {
    let (lines, labelled) = lines(world, seed, n, tag)?;
    for ((name, hour), text) in lines {
        let dataset = dataset(name)?;
        let compacted = sdp_lake::compact::compact(dataset, &[("in".into(), text.into_bytes())])?;
        ensure!(compacted.rejected.is_empty(), "{:?}", compacted.rejected);
        for (index, file) in compacted.files.into_iter().enumerate() {
            let key = format!(
                "{}{tag}-{index}.parquet",
                dataset.partition_prefix(Format::Parquet, DAY, &format!("{hour:02}"))
            );
            objects
                .put(
                    &key,
                    file,
                    "application/vnd.apache.parquet",
                    Precondition::None,
                )
                .await?;
        }
    }
    Ok(labelled)
}

/// As [`land`], but raw: gzipped JSON lines at the keys Firehose writes, for the compactor.
pub async fn land_raw(
    objects: &S3Objects,
    world: &World,
    seed: u64,
    n: usize,
    tag: &str,
) -> Result<Vec<(BidFeatures, bool)>> {
    let (lines, labelled) = lines(world, seed, n, tag)?;
    for ((name, hour), text) in lines {
        let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
        encoder.write_all(text.as_bytes())?;
        let key = format!(
            "{}sdp-raw-{name}-{tag}.gz",
            dataset(name)?.partition_prefix(Format::Raw, DAY, &format!("{hour:02}"))
        );
        objects
            .put(
                &key,
                encoder.finish()?,
                "application/octet-stream",
                Precondition::None,
            )
            .await?;
    }
    Ok(labelled)
}

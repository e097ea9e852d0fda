//! A compacted lake of synthetic bids in an object store (S3, or a directory): `sdp_lake::synthetic`
//! draws the bids and makes the objects; this puts them, raw (gzipped, as Firehose does) or
//! compacted (as the compactor does).

use anyhow::{ensure, Result};

use sdp_core::model::BidFeatures;
use sdp_core::ports::{ObjectStore, Precondition};
use sdp_core::synthetic::World;
use sdp_lake::synthetic::{draw, parquet_objects, raw_objects};

pub use sdp_lake::synthetic::DAY_MS;

/// Lands `n` bids of `world` drawn with `seed` (transactions `<tag>-<i>`) in
/// [`DAY_MS`]'s partitions, compacted, files named `<tag>-<n>.parquet`. Returns each bid and whether it won.
pub async fn land<O: ObjectStore>(
    objects: &O,
    world: &World,
    seed: u64,
    n: usize,
    tag: &str,
) -> Result<Vec<(BidFeatures, bool)>> {
    let drawn = draw(world, seed, n, tag);
    for (key, bytes) in parquet_objects(&drawn, tag)? {
        objects
            .put(
                &key,
                bytes,
                "application/vnd.apache.parquet",
                Precondition::None,
            )
            .await?;
    }
    Ok(drawn.labelled)
}

/// As [`land`], but raw: gzipped JSON lines at the keys Firehose writes, for the compactor.
pub async fn land_raw<O: ObjectStore>(
    objects: &O,
    world: &World,
    seed: u64,
    n: usize,
    tag: &str,
) -> Result<Vec<(BidFeatures, bool)>> {
    let drawn = draw(world, seed, n, tag);
    let raw = raw_objects(&drawn, tag);
    ensure!(!raw.is_empty(), "nothing was drawn");
    for (key, text) in raw {
        objects
            .put(
                &key,
                crate::fixtures::gzip(&text),
                "application/octet-stream",
                Precondition::None,
            )
            .await?;
    }
    Ok(drawn.labelled)
}

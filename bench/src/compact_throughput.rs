//! Compaction throughput: the raw JSON-lines files of one partition (a directory) into one Parquet
//! file with sdp-lake's compactor, as the compactor Lambda runs it (one thread).
//! Usage: compact-throughput DIR OUT. Prints `rows input_bytes output_bytes seconds` on stdout.

use std::time::Instant;

use anyhow::{bail, Context, Result};
use sdp_core::lake::DATASETS;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, dir, out] = args.as_slice() else {
        bail!("usage: compact-throughput DIR OUT");
    };
    let started = Instant::now();
    let mut names: Vec<_> = std::fs::read_dir(dir)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    names.sort();
    let inputs: Vec<(String, Vec<u8>)> = names
        .iter()
        .map(|p| Ok((p.display().to_string(), std::fs::read(p)?)))
        .collect::<Result<_>>()?;
    let input_bytes: usize = inputs.iter().map(|(_, b)| b.len()).sum();
    let bcns = DATASETS
        .iter()
        .find(|d| d.name == "bcns")
        .context("no bcns dataset")?;
    let compacted = sdp_lake::compact::compact(bcns, &inputs)?;
    std::fs::write(out, &compacted.parquet)?;
    let seconds = started.elapsed().as_secs_f64();
    anyhow::ensure!(
        compacted.rejected.is_empty(),
        "rejected lines: {:?}",
        compacted.rejected.first()
    );
    println!(
        "{} {input_bytes} {} {seconds:.3}",
        compacted.rows,
        compacted.parquet.len()
    );
    Ok(())
}

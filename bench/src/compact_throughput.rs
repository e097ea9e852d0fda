//! Compaction throughput: the raw JSON-lines files of one partition (a directory) into Parquet
//! files with sdp-lake's compactor, as the compactor Lambda runs it: one thread, one input read
//! and added at a time.
//! Usage: compact-throughput DIR OUT_DIR. Prints `rows input_bytes output_bytes seconds` on
//! stdout; the files are OUT_DIR/part-NNNNN.parquet.

use std::time::Instant;

use anyhow::{bail, Context, Result};
use sdp_core::lake::DATASETS;
use sdp_lake::compact::{Partition, TARGET_FILE_BYTES};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, dir, out] = args.as_slice() else {
        bail!("usage: compact-throughput DIR OUT_DIR");
    };
    let started = Instant::now();
    let mut names: Vec<_> = std::fs::read_dir(dir)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    names.sort();
    let bcns = DATASETS
        .iter()
        .find(|d| d.name == "bcns")
        .context("no bcns dataset")?;
    let mut partition = Partition::new(bcns);
    let mut input_bytes = 0;
    for name in &names {
        let bytes = std::fs::read(name)?;
        input_bytes += bytes.len();
        partition.add_raw(&name.display().to_string(), &bytes)?;
    }
    let compacted = partition.finish(TARGET_FILE_BYTES)?;
    std::fs::create_dir_all(out)?;
    for (index, file) in compacted.files.iter().enumerate() {
        std::fs::write(format!("{out}/part-{index:05}.parquet"), file)?;
    }
    let seconds = started.elapsed().as_secs_f64();
    anyhow::ensure!(
        compacted.rejected.is_empty(),
        "rejected lines: {:?}",
        compacted.rejected.first()
    );
    let output_bytes: usize = compacted.files.iter().map(Vec::len).sum();
    let sizes: Vec<String> = compacted
        .files
        .iter()
        .map(|f| format!("{:.1} MB", f.len() as f64 / 1e6))
        .collect();
    eprintln!(
        "sdp-lake wrote {} file(s): {}",
        sizes.len(),
        sizes.join(", ")
    );
    println!(
        "{} {input_bytes} {output_bytes} {seconds:.3}",
        compacted.rows
    );
    Ok(())
}

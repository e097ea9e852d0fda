//! Local compaction: each closed hour of the raw lake becomes Parquet files (one, unless it is
//! large) under `<data-dir>/lake/parquet/<dataset>/dt=…/hour=…/`, written by `sdp-lake` as the
//! compactor Lambda writes S3. The files are named by a fingerprint of their inputs: a rerun with
//! the same raw files finds them and does nothing; a late raw file changes the fingerprint, so the
//! partition is compacted again, whole, and the previous files are removed once the new ones are
//! in place.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use sdp_core::lake::{Format, DATASETS};
use sdp_lake::compact::{Partition, TARGET_FILE_BYTES};

/// How long after its hour ends a partition counts as closed: late events still land in it after
/// that (and cause a new compaction), but most arrive within the session timeouts.
pub const GRACE_MS: i64 = 15 * 60 * 1000;

/// Compacts closed partitions `every` so often until `stop` turns true.
pub async fn run(
    data_dir: PathBuf,
    every: std::time::Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            _ = stop.changed() => return,
        }
        let dir = data_dir.clone();
        let now_ms = crate::now_ms();
        match tokio::task::spawn_blocking(move || compact_closed(&dir, now_ms)).await {
            Ok(Ok(written)) => {
                for w in written {
                    for file in &w.files {
                        eprintln!(
                            "compactor: wrote {} ({} rows in the partition)",
                            file.display(),
                            w.rows
                        );
                    }
                }
            }
            Ok(Err(err)) => eprintln!("compactor: {err}"),
            Err(err) => eprintln!("compactor: {err}"),
        }
    }
}

/// What one compaction wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    /// In sort order.
    pub files: Vec<PathBuf>,
    pub rows: usize,
    pub rejected: usize,
}

/// Compacts every closed partition whose inputs changed since its last compaction, at `now_ms`.
pub fn compact_closed(data_dir: &Path, now_ms: i64) -> std::io::Result<Vec<Written>> {
    let lake = data_dir.join("lake");
    let mut written = Vec::new();
    for dataset in &DATASETS {
        for (dt, hour) in partitions(&lake.join(dataset.prefix(Format::Raw)))? {
            if !closed(&dt, &hour, now_ms) {
                continue;
            }
            let raw = lake.join(dataset.partition_prefix(Format::Raw, &dt, &hour));
            let out = lake.join(dataset.partition_prefix(Format::Parquet, &dt, &hour));
            if let Some(w) = compact_partition(&lake, dataset, &raw, &out)? {
                written.push(w);
            }
        }
    }
    Ok(written)
}

fn compact_partition(
    lake: &Path,
    dataset: &sdp_core::lake::Dataset,
    raw: &Path,
    out: &Path,
) -> std::io::Result<Option<Written>> {
    let mut inputs: Vec<PathBuf> = files(raw, "json")?;
    inputs.sort();
    let mut fingerprint = Sha256::new();
    for input in &inputs {
        fingerprint.update(
            input
                .file_name()
                .map(|n| n.as_encoded_bytes())
                .unwrap_or_default(),
        );
        fingerprint.update(std::fs::metadata(input)?.len().to_le_bytes());
    }
    let name: String = fingerprint.finalize()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let path = |index: usize| out.join(format!("part-{name}-{index:05}.parquet"));
    // The first file is renamed into place last, so finding it means all of them are there.
    if path(0).exists() {
        return Ok(None);
    }
    let failed = |e: sdp_lake::compact::CompactError| std::io::Error::other(e.to_string());
    // One input in memory at a time, as the compactor Lambda reads S3.
    let mut partition = Partition::new(dataset);
    for input in &inputs {
        partition
            .add_raw(&input.display().to_string(), &std::fs::read(input)?)
            .map_err(failed)?;
    }
    let compacted = partition.finish(TARGET_FILE_BYTES).map_err(failed)?;
    for bad in &compacted.rejected {
        eprintln!("compactor: {} line {}: {}", bad.input, bad.line, bad.reason);
    }
    std::fs::create_dir_all(out)?;
    let mut written = Vec::with_capacity(compacted.files.len());
    for (index, bytes) in compacted.files.iter().enumerate() {
        // A leading dot hides the file being written from readers of the directory.
        let temporary = out.join(format!(".part-{name}-{index:05}.parquet.tmp"));
        let file = std::fs::File::create(&temporary)?;
        std::io::Write::write_all(&mut &file, bytes)?;
        file.sync_all()?;
        written.push((temporary, path(index)));
    }
    // The new files in and the old ones out, with no reader in between (see `swap`).
    let swap = crate::swap::exclusive(lake)?;
    for (temporary, path) in written.iter().rev() {
        std::fs::rename(temporary, path)?;
    }
    let new_files: Vec<PathBuf> = written.into_iter().map(|(_, path)| path).collect();
    for older in files(out, "parquet")?
        .into_iter()
        .filter(|p| !new_files.contains(p))
    {
        std::fs::remove_file(older)?;
    }
    drop(swap);
    Ok(Some(Written {
        files: new_files,
        rows: compacted.rows,
        rejected: compacted.rejected.len(),
    }))
}

/// The (dt, hour) partitions under a dataset's raw prefix.
fn partitions(root: &Path) -> std::io::Result<Vec<(String, String)>> {
    let mut found = Vec::new();
    for day in subdirs(root)? {
        let Some(dt) = strip(&day, "dt=") else {
            continue;
        };
        for hour in subdirs(&day)? {
            if let Some(hour) = strip(&hour, "hour=") {
                found.push((dt.clone(), hour));
            }
        }
    }
    found.sort();
    Ok(found)
}

/// Whether the hour `dt`/`hour` (UTC) ended more than [`GRACE_MS`] before `now_ms`.
fn closed(dt: &str, hour: &str, now_ms: i64) -> bool {
    let parsed = format!("{dt}T{hour}:00:00Z").parse::<jiff::Timestamp>();
    parsed.is_ok_and(|start| start.as_millisecond() + 3_600_000 + GRACE_MS <= now_ms)
}

fn strip(dir: &Path, prefix: &str) -> Option<String> {
    dir.file_name()?
        .to_str()?
        .strip_prefix(prefix)
        .map(str::to_owned)
}

fn subdirs(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    match std::fs::read_dir(dir) {
        Ok(entries) => Ok(entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_dir())
            .collect()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

fn files(dir: &Path, extension: &str) -> std::io::Result<Vec<PathBuf>> {
    match std::fs::read_dir(dir) {
        Ok(entries) => Ok(entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.extension().is_some_and(|e| e == extension)
                    && !p
                        .file_name()
                        .is_some_and(|n| n.as_encoded_bytes().starts_with(b"."))
            })
            .collect()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const HOUR_2023: &str = "lake/raw/bcns/dt=2023-11-14/hour=22";
    const NOW: i64 = 1_763_780_400_000; // 2025-11-22

    fn raw(dir: &Path, partition: &str, name: &str, lines: &[&str]) {
        let path = dir.join(partition);
        std::fs::create_dir_all(&path).unwrap();
        std::fs::write(path.join(name), lines.join("\n") + "\n").unwrap();
    }

    fn event(tx: &str) -> String {
        format!(
            r#"{{"tx_id":"{tx}","type":"click","ts":1700000000000,"received_at":1700000000000}}"#
        )
    }

    #[test]
    fn closed_hours_are_compacted_once_and_again_when_late_data_lands() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b, c) = (event("a"), event("b"), event("c"));
        raw(dir.path(), HOUR_2023, "1-2.json", &[&a, &b]);
        raw(
            dir.path(),
            "lake/raw/bcns/dt=2025-11-22/hour=03",
            "3-3.json",
            &[&c],
        ); // still open
        let first = compact_closed(dir.path(), NOW).unwrap();
        assert_eq!(first.len(), 1, "{first:?}");
        assert_eq!(first[0].rows, 2);
        assert_eq!(first[0].files.len(), 1);
        assert!(first[0].files[0]
            .starts_with(dir.path().join("lake/parquet/bcns/dt=2023-11-14/hour=22")));
        assert!(
            compact_closed(dir.path(), NOW).unwrap().is_empty(),
            "nothing changed"
        );

        // A late file (with a redelivered line): the hour is compacted again, whole, once.
        raw(dir.path(), HOUR_2023, "7-9.json", &[&c, &a]);
        let second = compact_closed(dir.path(), NOW).unwrap();
        assert_eq!(second.len(), 1);
        assert_eq!(second[0].rows, 3);
        let left = files(
            &dir.path().join("lake/parquet/bcns/dt=2023-11-14/hour=22"),
            "parquet",
        )
        .unwrap();
        assert_eq!(left, second[0].files, "the older file is gone");
    }
}

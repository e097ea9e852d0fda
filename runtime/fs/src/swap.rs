//! The swap lock of a lake on local disk. Compaction replaces a partition's Parquet file in two
//! steps, renaming the new file in and then removing the old one, and a reader that listed the
//! directory in between would read both (every row twice). The compactor holds this lock
//! exclusively for the two steps; a reader (`sdp query`) holds it shared for a whole query, from
//! listing the files to reading the last one, so it sees each partition before the swap or after
//! it. An advisory `flock` on a file beside the data: released by the kernel when its holder
//! exits, even by `kill -9`.
//!
//! S3 has no such lock; there the compaction protocol (`sdp_app::compaction`) lives with the
//! window it documents. `FsObjects::hold_readers` takes this lock for that protocol.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

/// The lock file of the lake rooted at `lake` (`<data-dir>/lake`).
pub fn path(lake: &Path) -> PathBuf {
    lake.join("parquet").join(".swap.lock")
}

/// Blocks until no reader holds the lock, then holds it until the file is dropped.
pub fn exclusive(lake: &Path) -> std::io::Result<File> {
    let file = open(lake)?;
    file.lock()?;
    Ok(file)
}

/// Blocks while a swap is under way, then holds the lock shared until the file is dropped.
pub fn shared(lake: &Path) -> std::io::Result<File> {
    let file = open(lake)?;
    file.lock_shared()?;
    Ok(file)
}

fn open(lake: &Path) -> std::io::Result<File> {
    let path = path(lake);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_reader_waits_for_a_swap_and_a_swap_waits_for_readers() {
        let dir = tempfile::tempdir().unwrap();
        let lake = dir.path().join("lake");
        let swap = exclusive(&lake).unwrap();
        let other = open(&lake).unwrap();
        assert!(
            other.try_lock_shared().is_err(),
            "a reader must not start during a swap"
        );
        drop(swap);
        let reader = shared(&lake).unwrap();
        let second_reader = open(&lake).unwrap();
        assert!(second_reader.try_lock_shared().is_ok(), "readers share");
        let swapper = open(&lake).unwrap();
        assert!(
            swapper.try_lock().is_err(),
            "a swap must wait for the readers"
        );
        drop((reader, second_reader));
        assert!(swapper.try_lock().is_ok(), "and then goes ahead");
    }
}

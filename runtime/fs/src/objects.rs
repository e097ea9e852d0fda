//! The object-store port on a directory: key `a/b/c` is the file `<root>/a/b/c`.
//!
//! What S3 guarantees, and how a directory keeps it:
//! - a reader sees a whole object or none: every write goes to a hidden temporary file beside the
//!   target (`.<name>.<pid>.<n>.tmp`), is synced, and is renamed over it; listings skip names
//!   that start with a dot;
//! - a write conditional on absence or on an entity tag is decided and done with no other
//!   conditional write between: both take an exclusive `flock` on `<root>/.objects.lock` around
//!   the check and the rename (never across an await);
//! - entity tags are the quoted MD5 of the bytes, as S3's for a single-part PUT. A listing
//!   computes them from the files, once per file version (size and modification time).

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use md5::{Digest, Md5};
use sdp_core::ports::{Fetched, Listed, Object, ObjectStore, Precondition, StoreError, Written};

/// Objects in a directory.
#[derive(Debug)]
pub struct FsObjects {
    root: PathBuf,
    /// Entity tags already computed, by path: (size, modified, tag).
    etags: Mutex<HashMap<PathBuf, (u64, SystemTime, String)>>,
    temporaries: AtomicU64,
    /// The swap lock while writers of this process hold readers off.
    swapping: Arc<Mutex<Swapping>>,
}

/// Writers that hold readers off, and the exclusive swap lock they share: writers exclude
/// readers, not each other (each partition has a lock of its own), and two compactions of one
/// process, awaited together, must not wait for each other's lock.
#[derive(Debug, Default)]
struct Swapping {
    writers: usize,
    lock: Option<File>,
}

/// Readers are held off until the last of these is dropped.
#[derive(Debug)]
pub struct ReadersHeld {
    swapping: Arc<Mutex<Swapping>>,
}

impl Drop for ReadersHeld {
    fn drop(&mut self) {
        let mut swapping = lock(&self.swapping);
        swapping.writers = swapping.writers.saturating_sub(1);
        if swapping.writers == 0 {
            swapping.lock = None; // closing the file releases the flock
        }
    }
}

/// A mutex whose holder panicked still guards consistent data here (a count and a file).
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl FsObjects {
    pub fn new(root: impl Into<PathBuf>) -> FsObjects {
        FsObjects {
            root: root.into(),
            etags: Mutex::new(HashMap::new()),
            temporaries: AtomicU64::new(0),
            swapping: Arc::default(),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Removes the temporary files that writers left when they died between writing and renaming
    /// (`kill -9`, a crash, a power cut); how many. Invisible to readers, they would otherwise only
    /// take space. Call it before this process writes here, where no other process writes either
    /// (`sdp local` holds its data directory's lock). Every temporary is a dead writer's then, even
    /// one that bears this process's id: ids are reused (a container's first process is always 1).
    pub fn remove_dead_temporaries(&self) -> std::io::Result<usize> {
        let mut removed = 0;
        walk_files(&self.root, |path, name, _| {
            // `.<name>.<pid>.<n>.tmp`
            let name = name.to_string_lossy();
            if name.starts_with('.') && name.ends_with(".tmp") {
                std::fs::remove_file(path)?;
                removed += 1;
            }
            Ok(())
        })?;
        Ok(removed)
    }

    /// The file of `key`. A key is relative, its segments plain names: no `..`, no empty or
    /// hidden segment (hidden names are this store's own files).
    fn path(&self, key: &str) -> Result<PathBuf, StoreError> {
        let plain = |segment: &str| !segment.is_empty() && !segment.starts_with('.');
        if key.split('/').all(plain) {
            Ok(self.root.join(key))
        } else {
            Err(permanent(format!(
                "`{key}` is not an object key of {}",
                self.location()
            )))
        }
    }

    fn key_of(&self, path: &Path) -> Option<String> {
        let relative = path.strip_prefix(&self.root).ok()?;
        let parts: Option<Vec<&str>> = relative.iter().map(|p| p.to_str()).collect();
        Some(parts?.join("/"))
    }

    /// The entity tag of the file at `path` with `metadata`, from the cache when the file is
    /// unchanged since.
    fn etag_of(&self, path: &Path, metadata: &std::fs::Metadata) -> std::io::Result<String> {
        let modified = metadata.modified()?;
        let size = metadata.len();
        if let Some((s, m, tag)) = self.cached().get(path) {
            if (*s, *m) == (size, modified) {
                return Ok(tag.clone());
            }
        }
        let tag = etag(&std::fs::read(path)?);
        self.cached()
            .insert(path.to_owned(), (size, modified, tag.clone()));
        Ok(tag)
    }

    fn cached(&self) -> std::sync::MutexGuard<'_, HashMap<PathBuf, (u64, SystemTime, String)>> {
        lock(&self.etags)
    }

    /// Held around a conditional write's check and rename.
    fn conditional_writes(&self) -> std::io::Result<File> {
        std::fs::create_dir_all(&self.root)?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(self.root.join(".objects.lock"))?;
        file.lock()?;
        Ok(file)
    }

    fn put_file(
        &self,
        key: &str,
        bytes: &[u8],
        precondition: Precondition<'_>,
    ) -> std::io::Result<Written> {
        let path = self.path(key).map_err(std::io::Error::other)?;
        let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
            return Err(std::io::Error::other(format!("`{key}` names no file")));
        };
        std::fs::create_dir_all(dir)?;
        let temporary = dir.join(format!(
            ".{}.{}.{}.tmp",
            name.to_string_lossy(),
            std::process::id(),
            self.temporaries.fetch_add(1, Ordering::Relaxed)
        ));
        let written = self.write_temporary(&temporary, &path, bytes, precondition);
        if written.is_err() {
            // A write that fails at any step (a full disk, a failing sync, a failed rename)
            // leaves no temporary behind.
            let _ = std::fs::remove_file(&temporary);
        }
        let written = written?;
        if matches!(written, Written::Done(_)) {
            // The rename is durable once the directory is.
            File::open(dir)?.sync_all()?;
        }
        Ok(written)
    }

    /// Writes `bytes` to `temporary`, syncs it, and renames it over `path` if `precondition` holds.
    fn write_temporary(
        &self,
        temporary: &Path,
        path: &Path,
        bytes: &[u8],
        precondition: Precondition<'_>,
    ) -> std::io::Result<Written> {
        let mut file = File::create(temporary)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        let held = match precondition {
            Precondition::None => None,
            Precondition::Absent | Precondition::Matches(_) => Some(self.conditional_writes()?),
        };
        let holds = match precondition {
            Precondition::None => true,
            Precondition::Absent => !path.try_exists()?,
            Precondition::Matches(expected) => match std::fs::metadata(path) {
                Ok(metadata) => self.etag_of(path, &metadata)? == expected,
                Err(e) if e.kind() == ErrorKind::NotFound => false,
                Err(e) => return Err(e),
            },
        };
        if !holds {
            std::fs::remove_file(temporary)?;
            return Ok(Written::Conflict);
        }
        sdp_core::crash::point("objects.before_rename");
        std::fs::rename(temporary, path)?;
        drop(held);
        Ok(Written::Done(etag(bytes)))
    }

    fn list_files(&self, prefix: &str) -> std::io::Result<Vec<Listed>> {
        // Walk from the deepest directory the prefix names whole.
        let start = match prefix.rfind('/') {
            Some(end) => self.root.join(&prefix[..end]),
            None => self.root.clone(),
        };
        let mut found = Vec::new();
        walk_files(&start, |path, name, metadata| {
            if name.as_encoded_bytes().starts_with(b".") {
                return Ok(());
            }
            let Some(key) = self.key_of(path).filter(|k| k.starts_with(prefix)) else {
                return Ok(());
            };
            let etag = match self.etag_of(path, metadata) {
                Ok(etag) => etag,
                Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
                Err(e) => return Err(e),
            };
            found.push(Listed {
                key,
                size: metadata.len(),
                etag,
                last_modified_ms: metadata
                    .modified()?
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
            });
            Ok(())
        })?;
        found.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(found)
    }
}

/// Calls `file` with the path, name and metadata of every file under `start`, descending into
/// every directory whose name is not hidden (this store keeps none of its own in directories).
/// An entry removed while the walk reads it is passed over, as a missing `start` is.
fn walk_files(
    start: &Path,
    mut file: impl FnMut(&Path, &std::ffi::OsStr, &std::fs::Metadata) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let mut pending = vec![start.to_owned()];
    while let Some(dir) = pending.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory) => {
                continue
            }
            Err(e) => return Err(e),
        };
        for entry in entries {
            let entry = entry?;
            let metadata = match entry.metadata() {
                Ok(metadata) => metadata,
                Err(e) if e.kind() == ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            let name = entry.file_name();
            if metadata.is_dir() {
                if !name.as_encoded_bytes().starts_with(b".") {
                    pending.push(entry.path());
                }
            } else {
                file(&entry.path(), &name, &metadata)?;
            }
        }
    }
    Ok(())
}

/// S3's entity tag of a single-part object: the MD5 of its bytes in hex, quoted.
fn etag(bytes: &[u8]) -> String {
    let digest = Md5::digest(bytes);
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("\"{hex}\"")
}

fn permanent(message: String) -> StoreError {
    StoreError::Permanent {
        message,
        source: None,
    }
}

/// A failed file operation, its cause in `source`. A full disk may clear up; the rest will not by
/// retrying alone.
fn io_failure(operation: &str, key: &str, err: std::io::Error) -> StoreError {
    let message = format!("{operation} `{key}` failed");
    let transient = matches!(
        err.kind(),
        ErrorKind::StorageFull | ErrorKind::Interrupted | ErrorKind::TimedOut
    );
    let source: Option<Box<dyn std::error::Error + Send + Sync>> = Some(Box::new(err));
    if transient {
        StoreError::Transient { message, source }
    } else {
        StoreError::Permanent { message, source }
    }
}

impl ObjectStore for FsObjects {
    type ReadersHeld = ReadersHeld;

    fn location(&self) -> String {
        self.root.display().to_string()
    }

    async fn list(&self, prefix: &str) -> Result<Vec<Listed>, StoreError> {
        self.list_files(prefix)
            .map_err(|e| io_failure("listing", prefix, e))
    }

    async fn get(&self, key: &str, known_etag: Option<&str>) -> Result<Fetched, StoreError> {
        let path = self.path(key)?;
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::IsADirectory) => {
                return Ok(Fetched::Missing)
            }
            Err(e) => return Err(io_failure("reading", key, e)),
        };
        let etag = etag(&bytes);
        if known_etag == Some(etag.as_str()) {
            return Ok(Fetched::Unchanged);
        }
        Ok(Fetched::Found(Object { bytes, etag }))
    }

    async fn put(
        &self,
        key: &str,
        bytes: Vec<u8>,
        _content_type: &str,
        precondition: Precondition<'_>,
    ) -> Result<Written, StoreError> {
        self.put_file(key, &bytes, precondition)
            .map_err(|e| io_failure("writing", key, e))
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        match std::fs::remove_file(self.path(key)?) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_failure("removing", key, e)),
        }
    }

    async fn hold_readers(&self) -> Result<ReadersHeld, StoreError> {
        let mut swapping = lock(&self.swapping);
        if swapping.lock.is_none() {
            let location = self.location();
            swapping.lock = Some(
                crate::swap::exclusive(&self.root)
                    .map_err(|e| io_failure("taking the swap lock of", &location, e))?,
            );
        }
        swapping.writers += 1;
        Ok(ReadersHeld {
            swapping: Arc::clone(&self.swapping),
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]

    use super::*;

    #[tokio::test]
    async fn a_directory_keeps_the_conditional_semantics_of_s3() {
        let dir = tempfile::tempdir().unwrap();
        let objects = FsObjects::new(dir.path());
        let key = "parquet/bcns/dt=2026-11-22/hour=10/_compacting";
        let first = objects
            .put(key, b"one".to_vec(), "", Precondition::Absent)
            .await
            .unwrap();
        // S3's ETag of "one": its MD5, quoted.
        assert_eq!(
            first,
            Written::Done("\"f97c5d29941bfb1b2fdab0874906ab82\"".into())
        );
        let Written::Done(tag) = first else {
            unreachable!()
        };
        assert_eq!(
            objects
                .put(key, b"two".to_vec(), "", Precondition::Absent)
                .await
                .unwrap(),
            Written::Conflict,
            "created only if absent"
        );
        assert_eq!(
            objects
                .put(key, b"two".to_vec(), "", Precondition::Matches("\"other\""))
                .await
                .unwrap(),
            Written::Conflict,
            "replaced only if unchanged"
        );
        assert!(matches!(
            objects
                .put(key, b"two".to_vec(), "", Precondition::Matches(&tag))
                .await
                .unwrap(),
            Written::Done(_)
        ));
        match objects.get(key, None).await.unwrap() {
            Fetched::Found(object) => assert_eq!(object.bytes, b"two"),
            other => panic!("{other:?}"),
        }
        let listed = objects.list("parquet/bcns/dt=2026-11-22/").await.unwrap();
        assert_eq!(listed.len(), 1, "no temporary or lock file is listed");
        assert_eq!(listed[0].key, key);
        assert!(matches!(
            objects.get(key, Some(&listed[0].etag)).await.unwrap(),
            Fetched::Unchanged
        ));
        assert!(objects
            .list("parquet/bcns/dt=2026-11-22/_")
            .await
            .unwrap()
            .is_empty());
        assert_eq!(
            objects
                .list("parquet/bcns/dt=2026-11-22/hour=10/_comp")
                .await
                .unwrap()
                .len(),
            1,
            "a prefix may end inside a name"
        );
        objects.delete(key).await.unwrap();
        objects.delete(key).await.unwrap();
        assert!(matches!(
            objects.get(key, None).await.unwrap(),
            Fetched::Missing
        ));
        assert!(objects.get("../escape", None).await.is_err());
        assert!(objects.get("a/.hidden", None).await.is_err());
    }

    #[tokio::test]
    async fn temporaries_of_dead_writers_are_removed_and_objects_kept() {
        let dir = tempfile::tempdir().unwrap();
        let objects = FsObjects::new(dir.path());
        let key = "raw/bcns/dt=2026-11-22/hour=10/b1.json";
        objects
            .put(key, b"{}".to_vec(), "", Precondition::None)
            .await
            .unwrap();
        let partition = dir.path().join("raw/bcns/dt=2026-11-22/hour=10");
        // One of another process, one bearing this process's id (a reused one, after a restart).
        let other = partition.join(format!(".b2.json.{}.0.tmp", u32::MAX));
        let reused = partition.join(format!(".b3.json.{}.7.tmp", std::process::id()));
        std::fs::write(&other, b"half").unwrap();
        std::fs::write(&reused, b"half").unwrap();

        assert_eq!(objects.remove_dead_temporaries().unwrap(), 2);
        assert!(!other.exists() && !reused.exists());
        assert_eq!(objects.list("raw/").await.unwrap().len(), 1);
    }
}

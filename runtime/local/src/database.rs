//! The embedded database files of `sdp local` (redb), kept usable through storage faults.
//!
//! After an I/O error (a full disk, a failing sync) redb refuses every later operation on that
//! handle (`PreviousIo`) until the file is closed and opened again, and opening it repairs it back
//! to its last durable commit. So a [`DatabaseFile`] closes its database on such an error, and the
//! next operation opens it again: while the disk is at fault, operations fail with a transient
//! error (the APIs answer 503 with `Retry-After`, the processor retries); once it is fine again,
//! the platform carries on by itself, with everything that was committed before.

use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};

use redb::{Database, DatabaseError};

use sdp_core::ports::StoreError;

/// How a database file is opened: [`open_database`], or with another storage backend in tests.
pub type Opener = Arc<dyn Fn(&Path) -> Result<Database, StoreError> + Send + Sync>;

/// One database file, reopened after an I/O error.
pub struct DatabaseFile {
    path: PathBuf,
    opener: Opener,
    /// None after an I/O error, until an operation opens it again.
    current: RwLock<Option<Arc<Database>>>,
}

impl DatabaseFile {
    /// Opens (or creates) the file at `path`; an error if it cannot be opened now.
    pub fn open(path: &Path) -> Result<DatabaseFile, StoreError> {
        DatabaseFile::open_with(path, Arc::new(open_database))
    }

    pub fn open_with(path: &Path, opener: Opener) -> Result<DatabaseFile, StoreError> {
        let db = opener(path)?;
        Ok(DatabaseFile {
            path: path.to_owned(),
            opener,
            current: RwLock::new(Some(Arc::new(db))),
        })
    }

    /// Runs `operation` on the database, opening it first if an I/O error closed it. If it fails
    /// with an I/O error, the database is closed, to be opened again by the next operation.
    pub fn with<T>(
        &self,
        operation: impl FnOnce(&Database) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let db = self.database()?;
        let result = operation(&db);
        if let Err(err) = &result {
            if is_io(err) {
                self.close(&db);
            }
        }
        result
    }

    fn database(&self) -> Result<Arc<Database>, StoreError> {
        if let Some(db) = self
            .current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
        {
            return Ok(Arc::clone(db));
        }
        let mut current = self.current.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(db) = current.as_ref() {
            return Ok(Arc::clone(db));
        }
        // Fails while another operation of this process still holds the closed one (its file
        // lock, which the opener reports as another process's), or while the disk is still at
        // fault: transient, and the next operation tries again.
        let db = Arc::new(
            (self.opener)(&self.path).map_err(|err| StoreError::Transient {
                message: format!(
                    "reopening {} after an I/O error failed, to be tried again: {err}",
                    self.path.display()
                ),
                source: Some(Box::new(err)),
            })?,
        );
        *current = Some(Arc::clone(&db));
        Ok(db)
    }

    fn close(&self, failed: &Arc<Database>) {
        let mut current = self.current.write().unwrap_or_else(PoisonError::into_inner);
        if current.as_ref().is_some_and(|db| Arc::ptr_eq(db, failed)) {
            *current = None;
        }
    }
}

/// Whether `err` came from an I/O error of redb (this one, or one before it on the same handle).
fn is_io(err: &StoreError) -> bool {
    let (StoreError::Transient { source, .. } | StoreError::Permanent { source, .. }) = err;
    source
        .as_deref()
        .and_then(|s| s.downcast_ref::<redb::Error>())
        .is_some_and(|e| matches!(e, redb::Error::Io(_) | redb::Error::PreviousIo))
}

/// Opens (or creates) the database file at `path`. A file another process holds is refused with
/// a message that says so: two writers would corrupt nothing (the lock prevents it), but the
/// user needs to know why the second one stopped.
pub fn open_database(path: &Path) -> Result<Database, StoreError> {
    Database::create(path).map_err(|err| match err {
        DatabaseError::DatabaseAlreadyOpen => StoreError::Permanent {
            message: format!(
                "{} is in use by another process (is another `sdp local` running on this data directory?)",
                path.display()
            ),
            source: None,
        },
        other => StoreError::Permanent {
            message: format!("cannot open {}: {other}", path.display()),
            source: Some(Box::new(other)),
        },
    })
}

/// A redb error as the port's: transient (the disk may recover; the operation can be retried),
/// with the redb error as its source.
pub fn storage(err: impl Into<redb::Error>) -> StoreError {
    let err: redb::Error = err.into();
    StoreError::Transient {
        message: format!("local storage: {err}"),
        source: Some(Box::new(err)),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::atomic::{AtomicBool, Ordering};

    use redb::backends::FileBackend;
    use redb::StorageBackend;

    use super::*;

    /// A file whose syncs fail while `failing` is set, as a disk's can.
    #[derive(Debug)]
    pub struct FailingSync {
        file: FileBackend,
        failing: Arc<AtomicBool>,
    }

    impl StorageBackend for FailingSync {
        fn len(&self) -> Result<u64, std::io::Error> {
            self.file.len()
        }
        fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), std::io::Error> {
            self.file.read(offset, out)
        }
        fn set_len(&self, len: u64) -> Result<(), std::io::Error> {
            self.file.set_len(len)
        }
        fn sync_data(&self) -> Result<(), std::io::Error> {
            if self.failing.load(Ordering::SeqCst) {
                return Err(std::io::Error::other("injected fault: fsync failed"));
            }
            self.file.sync_data()
        }
        fn write(&self, offset: u64, data: &[u8]) -> Result<(), std::io::Error> {
            self.file.write(offset, data)
        }
        fn close(&self) -> Result<(), std::io::Error> {
            self.file.close()
        }
    }

    /// An opener of files whose syncs fail while the flag it returns is set.
    pub fn failing_sync() -> (Opener, Arc<AtomicBool>) {
        let failing = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&failing);
        let opener: Opener = Arc::new(move |path: &Path| {
            let file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(path)
                .map_err(|e| storage(redb::Error::Io(e)))?;
            let backend = FailingSync {
                file: FileBackend::new(file).map_err(|e| storage(redb::Error::from(e)))?,
                failing: Arc::clone(&flag),
            };
            redb::Builder::new()
                .create_with_backend(backend)
                .map_err(|e| storage(redb::Error::from(e)))
        });
        (opener, failing)
    }
}

//! The durable local event log, in place of Kinesis: events in an embedded database file, keyed by
//! a sequence number. An append returns only after its transaction is committed and synced to disk,
//! so an event answered 200 survives `kill -9`. Concurrent appends are committed together (group
//! commit): one disk sync serves every request that arrived while the previous one was running.

use std::path::Path;
use std::sync::Arc;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use tokio::sync::{mpsc, oneshot, watch};

use sdp_core::events::Event;
use sdp_core::ports::{EventLog, StoreError};

use crate::open_database;

const EVENTS: TableDefinition<u64, &[u8]> = TableDefinition::new("events");

/// How many pending appends one commit takes at most.
const MAX_APPENDS_PER_COMMIT: usize = 4096;

struct Append {
    events: Vec<Vec<u8>>,
    done: oneshot::Sender<Result<(), String>>,
}

/// A handle that appends to the log: cheap to clone. The writer thread ends when the last one
/// is dropped.
#[derive(Clone)]
pub struct LocalLog {
    appends: mpsc::Sender<Append>,
    reader: LogReader,
}

/// A handle that reads the log (the processor's): it does not keep the writer alive.
#[derive(Clone)]
pub struct LogReader {
    db: Arc<Database>,
    last: watch::Receiver<u64>,
}

impl LocalLog {
    /// Opens (or creates) the log at `path` and starts its writer thread, which ends when every
    /// handle is dropped, after committing what was handed to it.
    pub fn open(path: &Path) -> Result<(LocalLog, std::thread::JoinHandle<()>), StoreError> {
        let db = Arc::new(open_database(path)?);
        let write = db.begin_write().map_err(storage)?;
        write.open_table(EVENTS).map_err(storage)?;
        write.commit().map_err(storage)?;
        let last_seq = last_seq(&db)?;
        let (last_tx, last) = watch::channel(last_seq);
        let (appends, mut queue) = mpsc::channel(MAX_APPENDS_PER_COMMIT);
        let writer_db = Arc::clone(&db);
        let writer = std::thread::Builder::new()
            .name("sdp-log-writer".into())
            .spawn(move || write_loop(&writer_db, &mut queue, last_seq, &last_tx))
            .map_err(|e| StoreError::Permanent {
                message: format!("cannot start the log writer: {e}"),
                source: None,
            })?;
        Ok((
            LocalLog {
                appends,
                reader: LogReader { db, last },
            },
            writer,
        ))
    }

    pub fn reader(&self) -> LogReader {
        self.reader.clone()
    }
}

impl LogReader {
    /// Up to `max` events after sequence number `after`, oldest first, with their numbers.
    pub fn read_after(&self, after: u64, max: usize) -> Result<Vec<(u64, Event)>, StoreError> {
        let read = self.db.begin_read().map_err(storage)?;
        let table = read.open_table(EVENTS).map_err(storage)?;
        let mut events = Vec::new();
        for entry in table
            .range(after.saturating_add(1)..)
            .map_err(storage)?
            .take(max)
        {
            let (seq, bytes) = entry.map_err(storage)?;
            let event =
                serde_json::from_slice(bytes.value()).map_err(|e| StoreError::Permanent {
                    message: format!("log entry {} is not an event: {e}", seq.value()),
                    source: None,
                })?;
            events.push((seq.value(), event));
        }
        Ok(events)
    }

    /// Follows the sequence number of the newest committed event.
    pub fn watch_last(&self) -> watch::Receiver<u64> {
        self.last.clone()
    }
}

impl EventLog for LocalLog {
    async fn append(&self, events: &[Event]) -> Result<(), StoreError> {
        let encoded = events
            .iter()
            .map(serde_json::to_vec)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| StoreError::Permanent {
                message: format!("cannot encode an event: {e}"),
                source: None,
            })?;
        let (done, committed) = oneshot::channel();
        let stopped = || StoreError::Transient {
            message: "the local log is shutting down".into(),
            source: None,
        };
        // The queue is bounded: a full queue makes this request wait (backpressure), not fail.
        self.appends
            .send(Append {
                events: encoded,
                done,
            })
            .await
            .map_err(|_| stopped())?;
        committed
            .await
            .map_err(|_| stopped())?
            .map_err(|message| StoreError::Transient {
                message,
                source: None,
            })
    }
}

fn write_loop(
    db: &Database,
    queue: &mut mpsc::Receiver<Append>,
    mut last_seq: u64,
    last: &watch::Sender<u64>,
) {
    // `None` once every handle is gone and the queue is drained.
    while let Some(first) = queue.blocking_recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_APPENDS_PER_COMMIT {
            match queue.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        match commit(db, last_seq, &batch) {
            Ok(new_last) => {
                last_seq = new_last;
                last.send_replace(last_seq);
                for append in batch {
                    let _ = append.done.send(Ok(()));
                }
            }
            Err(err) => {
                let message = format!("writing the local log failed: {err}");
                for append in batch {
                    let _ = append.done.send(Err(message.clone()));
                }
            }
        }
    }
}

/// Appends every event of `batch` in one transaction, synced before it returns.
fn commit(db: &Database, last_seq: u64, batch: &[Append]) -> Result<u64, redb::Error> {
    let write = db.begin_write()?;
    let mut seq = last_seq;
    {
        let mut table = write.open_table(EVENTS)?;
        for bytes in batch.iter().flat_map(|append| &append.events) {
            seq += 1;
            table.insert(seq, bytes.as_slice())?;
        }
    }
    write.commit()?;
    Ok(seq)
}

fn last_seq(db: &Database) -> Result<u64, StoreError> {
    let read = db.begin_read().map_err(storage)?;
    let table = read.open_table(EVENTS).map_err(storage)?;
    let last = table
        .last()
        .map_err(storage)?
        .map_or(0, |(seq, _)| seq.value());
    Ok(last)
}

pub(crate) fn storage(err: impl Into<redb::Error>) -> StoreError {
    let err: redb::Error = err.into();
    StoreError::Transient {
        message: format!("local storage: {err}"),
        source: Some(Box::new(err)),
    }
}

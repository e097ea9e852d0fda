//! The durable local event log, in place of Kinesis: records in an embedded database file, keyed by
//! a sequence number, each holding one append's events (one JSON object a line, as a packed
//! Kinesis record does). An append returns only after its transaction is committed and synced to disk,
//! so an event answered 200 survives `kill -9`. Concurrent appends are committed together (group
//! commit): one disk sync serves every request that arrived while the previous one was running.
//!
//! Overload is shed, not queued: an append that would wait behind more than one commit's worth of
//! others is refused at once, and while the writer is behind, one that waited longer than
//! [`MAX_QUEUE_WAIT`] (or twice the last commit, on a disk slower than that) is refused before its
//! commit starts. Either is a
//! transient error, which the API answers with 503 and `Retry-After`, as Kinesis throttling is on
//! AWS; nothing refused was stored. So under twice the load the disk can take, accepted requests
//! still wait about one commit, and memory stays flat.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use tokio::sync::{mpsc, oneshot, watch};

use sdp_core::events::Event;
use sdp_core::ports::{EventLog, StoreError};

use crate::database::{storage, DatabaseFile};

const EVENTS: TableDefinition<u64, &[u8]> = TableDefinition::new("events");

/// How many pending appends one commit takes at most, and how many may wait for the writer.
const MAX_APPENDS_PER_COMMIT: usize = 4096;

/// How long an append may wait for its commit to start before it is refused, when the writer is
/// behind (at least [`SHED_BACKLOG`] appends wait): a few slow commits with little waiting are a
/// busy machine, not overload, and are waited out.
pub const MAX_QUEUE_WAIT: Duration = Duration::from_millis(20);
pub const SHED_BACKLOG: usize = 32;

struct Append {
    /// The append's events as one record: their JSON, one per line (as `sdp_aws::KinesisLog`
    /// packs a shard's events), so a batch of 500 is one insert into the log, not 500.
    record: Vec<u8>,
    done: oneshot::Sender<Result<(), String>>,
    queued: Instant,
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
    db: Arc<DatabaseFile>,
    last: watch::Receiver<u64>,
}

impl LocalLog {
    /// Opens (or creates) the log at `path` and starts its writer thread, which ends when every
    /// handle is dropped, after committing what was handed to it.
    pub fn open(path: &Path) -> Result<(LocalLog, std::thread::JoinHandle<()>), StoreError> {
        LocalLog::open_with_capacity(path, MAX_APPENDS_PER_COMMIT)
    }

    /// [`LocalLog::open`] with at most `capacity` appends waiting for the writer.
    pub fn open_with_capacity(
        path: &Path,
        capacity: usize,
    ) -> Result<(LocalLog, std::thread::JoinHandle<()>), StoreError> {
        LocalLog::open_file(DatabaseFile::open(path)?, capacity)
    }

    /// [`LocalLog::open_with_capacity`] on an open database file.
    pub fn open_file(
        file: DatabaseFile,
        capacity: usize,
    ) -> Result<(LocalLog, std::thread::JoinHandle<()>), StoreError> {
        let db = Arc::new(file);
        db.with(|db| {
            let write = db.begin_write().map_err(storage)?;
            write.open_table(EVENTS).map_err(storage)?;
            write.commit().map_err(storage)
        })?;
        let last_seq = db.with(last_seq)?;
        let (last_tx, last) = watch::channel(last_seq);
        let (appends, mut queue) = mpsc::channel(capacity.max(1));
        let writer_db = Arc::clone(&db);
        let writer = std::thread::Builder::new()
            .name("sdp-log-writer".into())
            .spawn(move || write_loop(&writer_db, &mut queue, &last_tx))
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
    /// The records after sequence number `after`, oldest first, with their numbers, holding
    /// `max_events` events at most (but at least one record): the bytes as appended (the JSON of
    /// an append's events, one per line), decoded by the processor, which keeps a line that is
    /// not an event aside instead of stopping at it.
    pub fn read_after(
        &self,
        after: u64,
        max_events: usize,
    ) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        self.db.with(|db| {
            let read = db.begin_read().map_err(storage)?;
            let table = read.open_table(EVENTS).map_err(storage)?;
            let mut records = Vec::new();
            let mut events = 0;
            for entry in table.range(after.saturating_add(1)..).map_err(storage)? {
                let (seq, bytes) = entry.map_err(storage)?;
                let bytes = bytes.value();
                events += 1 + bytes.iter().filter(|&&b| b == b'\n').count();
                if events > max_events && !records.is_empty() {
                    break;
                }
                records.push((seq.value(), bytes.to_vec()));
            }
            Ok(records)
        })
    }

    /// Follows the sequence number of the newest committed record.
    pub fn watch_last(&self) -> watch::Receiver<u64> {
        self.last.clone()
    }
}

impl EventLog for LocalLog {
    async fn append(&self, events: &[Event]) -> Result<(), StoreError> {
        let mut record = Vec::with_capacity(events.len() * 256);
        for (n, event) in events.iter().enumerate() {
            if n > 0 {
                record.push(b'\n');
            }
            serde_json::to_writer(&mut record, event).map_err(|e| StoreError::Permanent {
                message: format!("cannot encode an event: {e}"),
                source: None,
            })?;
        }
        let (done, committed) = oneshot::channel();
        let stopped = || StoreError::Transient {
            message: "the local log is shutting down".into(),
            source: None,
        };
        // The queue is bounded, and a full one refuses at once: shedding, not waiting.
        self.appends
            .try_send(Append {
                record,
                done,
                queued: Instant::now(),
            })
            .map_err(|err| match err {
                mpsc::error::TrySendError::Full(_) => StoreError::Transient {
                    message: format!(
                        "the local log is at capacity ({} appends wait for the disk)",
                        self.appends.max_capacity()
                    ),
                    source: None,
                },
                mpsc::error::TrySendError::Closed(_) => stopped(),
            })?;
        committed
            .await
            .map_err(|_| stopped())?
            .map_err(|message| StoreError::Transient {
                message,
                source: None,
            })
    }
}

fn write_loop(db: &DatabaseFile, queue: &mut mpsc::Receiver<Append>, last: &watch::Sender<u64>) {
    let mut last_commit = Duration::ZERO;
    // `None` once every handle is gone and the queue is drained.
    while let Some(first) = queue.blocking_recv() {
        let mut waiting = vec![first];
        while waiting.len() < MAX_APPENDS_PER_COMMIT {
            match queue.try_recv() {
                Ok(next) => waiting.push(next),
                Err(_) => break,
            }
        }
        let limit = MAX_QUEUE_WAIT.max(last_commit * 2);
        let behind = waiting.len() >= SHED_BACKLOG;
        let (batch, late): (Vec<Append>, Vec<Append>) = waiting
            .into_iter()
            .partition(|a| !behind || a.queued.elapsed() <= limit);
        for append in late {
            let _ = append.done.send(Err(format!(
                "the local log is overloaded: the event waited over {} ms for the disk",
                limit.as_millis()
            )));
        }
        if batch.is_empty() {
            continue;
        }
        let started = Instant::now();
        // A failed commit (a full disk, a failing sync) is refused to its appends: 503, nothing
        // acknowledged. The next commit reopens the file if the failure closed it.
        let committed = db.with(|db| commit(db, &batch).map_err(storage));
        last_commit = started.elapsed();
        match committed {
            Ok(new_last) => {
                sdp_core::crash::point("log.after_commit");
                last.send_replace(new_last);
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

/// Appends the record of every append of `batch` in one transaction, synced before it returns;
/// the sequence number of the last one. Numbers follow the last committed one, read in the
/// transaction: a commit that failed may yet have been made durable, and it is the file that
/// knows.
fn commit(db: &Database, batch: &[Append]) -> Result<u64, redb::Error> {
    let write = db.begin_write()?;
    let mut seq;
    {
        let mut table = write.open_table(EVENTS)?;
        seq = newest(&table)?;
        for append in batch {
            seq += 1;
            table.insert(seq, append.record.as_slice())?;
        }
    }
    sdp_core::crash::point("log.before_commit");
    write.commit()?;
    Ok(seq)
}

fn last_seq(db: &Database) -> Result<u64, StoreError> {
    let read = db.begin_read().map_err(storage)?;
    let table = read.open_table(EVENTS).map_err(storage)?;
    newest(&table).map_err(storage)
}

/// The sequence number of the newest record of `table`; 0 if it has none.
fn newest(table: &impl ReadableTable<u64, &'static [u8]>) -> Result<u64, redb::StorageError> {
    Ok(table.last()?.map_or(0, |(seq, _)| seq.value()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use sdp_core::memory::scenario;

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn appends_beyond_the_capacity_are_refused_at_once_and_every_accepted_one_is_stored() {
        let dir = tempfile::tempdir().unwrap();
        let (log, writer) = LocalLog::open_with_capacity(&dir.path().join("log.redb"), 2).unwrap();
        let events = scenario(400);
        let tasks: Vec<_> = events
            .iter()
            .cloned()
            .map(|event| {
                let log = log.clone();
                tokio::spawn(async move { log.append(&[event]).await })
            })
            .collect();
        let (mut accepted, mut shed) = (0, 0);
        for task in tasks {
            match task.await.unwrap() {
                Ok(()) => accepted += 1,
                Err(err) => {
                    assert!(err.is_transient(), "{err}");
                    assert!(err.to_string().contains("at capacity"), "{err}");
                    shed += 1;
                }
            }
        }
        assert!(
            shed > 0,
            "{} appends at once never filled a queue of 2",
            events.len()
        );
        let stored = log.reader().read_after(0, usize::MAX).unwrap();
        assert_eq!(
            stored.len(),
            accepted,
            "each accepted append is stored, no other"
        );
        drop(log);
        writer.join().unwrap();
        println!("overload: {accepted} appends accepted, {shed} shed");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_append_is_one_record_and_reads_are_bounded_by_events_but_never_stall() {
        let dir = tempfile::tempdir().unwrap();
        let (log, writer) = LocalLog::open(&dir.path().join("log.redb")).unwrap();
        let events = scenario(6)[..6].to_vec();
        for append in [&events[..2], &events[2..5], &events[5..]] {
            log.append(append).await.unwrap();
        }
        let reader = log.reader();
        let read = |after, max| -> Vec<(u64, usize)> {
            let records = reader.read_after(after, max).unwrap();
            let lines = |bytes: &[u8]| bytes.split(|&b| b == b'\n').count();
            records.iter().map(|(seq, b)| (*seq, lines(b))).collect()
        };
        assert_eq!(read(0, 6), [(1, 2), (2, 3), (3, 1)], "one record an append");
        assert_eq!(read(0, 4), [(1, 2)], "the next record would pass 4 events");
        assert_eq!(
            read(0, 1),
            [(1, 2)],
            "a record larger than the bound comes alone"
        );
        assert_eq!(read(3, 10), []);
        let first = &reader.read_after(0, 1).unwrap()[0].1;
        let decoded: Vec<Event> = first
            .split(|&b| b == b'\n')
            .map(|line| Event::decode(line).unwrap())
            .collect();
        assert_eq!(decoded, events[..2]);
        drop(log);
        writer.join().unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failing_sync_refuses_its_appends_and_the_log_carries_on_once_the_disk_does() {
        let dir = tempfile::tempdir().unwrap();
        let (opener, failing) = crate::database::tests::failing_sync();
        let file = DatabaseFile::open_with(&dir.path().join("log.redb"), opener).unwrap();
        let (log, writer) = LocalLog::open_file(file, 16).unwrap();
        let events = scenario(30);
        log.append(&events[..10]).await.unwrap();

        // While the disk's syncs fail, every append is refused (503 at the API), none stored.
        failing.store(true, std::sync::atomic::Ordering::SeqCst);
        for _ in 0..3 {
            let err = log.append(&events[10..20]).await.unwrap_err();
            assert!(err.is_transient(), "{err}");
            assert!(err.to_string().contains("fsync failed"), "{err}");
        }

        // Once they succeed again, the log is reopened and carries on after what it held.
        failing.store(false, std::sync::atomic::Ordering::SeqCst);
        log.append(&events[10..]).await.unwrap();
        let stored = log.reader().read_after(0, usize::MAX).unwrap();
        let numbers: Vec<u64> = stored.iter().map(|(seq, _)| *seq).collect();
        assert_eq!(numbers, (1..=stored.len() as u64).collect::<Vec<u64>>());
        // One record an append: its events' JSON, one per line.
        let record = |events: &[Event]| -> Vec<u8> {
            let lines: Vec<String> = events
                .iter()
                .map(|e| serde_json::to_string(e).unwrap())
                .collect();
            lines.join("\n").into_bytes()
        };
        let bytes: Vec<Vec<u8>> = stored.into_iter().map(|(_, b)| b).collect();
        // Every acknowledged append, in order. A refused commit may still have reached the disk
        // before its sync failed (a 503 promises nothing stored, nor that nothing was): then its
        // record sits between, as a client's retry would have stored it again anyway.
        assert!(bytes.len() >= 2, "{} stored", bytes.len());
        assert_eq!(bytes[0], record(&events[..10]));
        assert_eq!(bytes[bytes.len() - 1], record(&events[10..]));
        assert!(
            bytes[1..bytes.len() - 1]
                .iter()
                .all(|refused| *refused == record(&events[10..20])),
            "only whole refused appends in between"
        );
        drop(log);
        writer.join().unwrap();
    }
}

//! The join state and the aggregates in an embedded database, in place of DynamoDB: the same
//! conditional-commit semantics (a state is written only if its version is the one that was read,
//! and its increments land in the same transaction), and the offset of the last processed event.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use redb::{ReadableDatabase, ReadableTable, TableDefinition};

use sdp_core::join::{Counts, Transaction};
use sdp_core::ports::{AggregateReader, CommitOutcome, StateChange, StateStore, StoreError};
use sdp_core::reports::WindowCounts;

use crate::database::{storage, DatabaseFile};

const TRANSACTIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("transactions");
/// (campaign_item_id, window start in epoch seconds) → (bids, imps, clicks).
const AGGREGATES: TableDefinition<(i64, i64), (i64, i64, i64)> = TableDefinition::new("aggregates");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const PROCESSED: &str = "processed_seq";

#[derive(Clone)]
pub struct LocalState {
    db: Arc<DatabaseFile>,
}

impl LocalState {
    pub fn open(path: &Path) -> Result<LocalState, StoreError> {
        LocalState::open_file(DatabaseFile::open(path)?)
    }

    /// [`LocalState::open`] on an open database file.
    pub fn open_file(file: DatabaseFile) -> Result<LocalState, StoreError> {
        file.with(|db| {
            let write = db.begin_write().map_err(storage)?;
            write.open_table(TRANSACTIONS).map_err(storage)?;
            write.open_table(AGGREGATES).map_err(storage)?;
            write.open_table(META).map_err(storage)?;
            write.commit().map_err(storage)
        })?;
        Ok(LocalState { db: Arc::new(file) })
    }

    /// The sequence number of the last log event whose processing was committed.
    pub fn processed(&self) -> Result<u64, StoreError> {
        self.db.with(|db| {
            let read = db.begin_read().map_err(storage)?;
            let meta = read.open_table(META).map_err(storage)?;
            Ok(meta
                .get(PROCESSED)
                .map_err(storage)?
                .map_or(0, |v| v.value()))
        })
    }

    pub fn set_processed(&self, seq: u64) -> Result<(), StoreError> {
        self.db.with(|db| {
            let write = db.begin_write().map_err(storage)?;
            write
                .open_table(META)
                .map_err(storage)?
                .insert(PROCESSED, seq)
                .map_err(storage)?;
            write.commit().map_err(storage)
        })
    }
}

fn decode(tx_id: &str, bytes: &[u8]) -> Result<Transaction, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| unreadable(tx_id, &e))
}

fn unreadable(tx_id: &str, err: &serde_json::Error) -> StoreError {
    StoreError::Permanent {
        message: format!("the stored state of `{tx_id}` is unreadable: {err}"),
        source: None,
    }
}

/// The version of a stored state, read without building the state (its events' strings are
/// skipped, not copied): all a commit needs of it.
fn stored_version(tx_id: &str, bytes: &[u8]) -> Result<u64, StoreError> {
    #[derive(serde::Deserialize)]
    struct Versioned {
        version: u64,
    }
    serde_json::from_slice::<Versioned>(bytes)
        .map(|v| v.version)
        .map_err(|e| unreadable(tx_id, &e))
}

impl StateStore for LocalState {
    async fn load(&self, tx_ids: &[String]) -> Result<HashMap<String, Transaction>, StoreError> {
        self.db.with(|db| {
            let read = db.begin_read().map_err(storage)?;
            let table = read.open_table(TRANSACTIONS).map_err(storage)?;
            let mut found = HashMap::new();
            for tx_id in tx_ids {
                if let Some(bytes) = table.get(tx_id.as_str()).map_err(storage)? {
                    found.insert(tx_id.clone(), decode(tx_id, bytes.value())?);
                }
            }
            Ok(found)
        })
    }

    /// All changes in one transaction; a change whose state moved since it was read is left out
    /// (with its increments) and reported as a conflict, as DynamoDB's condition would.
    async fn commit(&self, changes: Vec<StateChange>) -> Result<CommitOutcome, StoreError> {
        let mut outcome = CommitOutcome::default();
        if changes.is_empty() {
            return Ok(outcome);
        }
        self.db.with(|db| {
            let write = db.begin_write().map_err(storage)?;
            {
                let mut states = write.open_table(TRANSACTIONS).map_err(storage)?;
                let mut aggregates = write.open_table(AGGREGATES).map_err(storage)?;
                for change in changes {
                    let tx_id = change.state.tx_id.as_str();
                    let stored_version = match states.get(tx_id).map_err(storage)? {
                        Some(bytes) => Some(stored_version(tx_id, bytes.value())?),
                        None => None,
                    };
                    if stored_version.is_some_and(|v| v != change.read_version) {
                        outcome.conflicts.push(tx_id.to_owned());
                        continue;
                    }
                    let encoded =
                        serde_json::to_vec(&change.state).map_err(|e| StoreError::Permanent {
                            message: format!("cannot encode the state of `{tx_id}`: {e}"),
                            source: None,
                        })?;
                    states.insert(tx_id, encoded.as_slice()).map_err(storage)?;
                    for (key, add) in &change.increments {
                        let at = (key.campaign_item_id, key.period);
                        let (bids, imps, clicks) = aggregates
                            .get(at)
                            .map_err(storage)?
                            .map_or((0, 0, 0), |v| v.value());
                        aggregates
                            .insert(at, (bids + add.bids, imps + add.imps, clicks + add.clicks))
                            .map_err(storage)?;
                    }
                }
            }
            write.commit().map_err(storage)?;
            Ok(outcome)
        })
    }
}

impl AggregateReader for LocalState {
    async fn campaign(
        &self,
        campaign_item_id: i64,
        from: i64,
        to: i64,
    ) -> Result<Vec<WindowCounts>, StoreError> {
        self.db.with(|db| {
            let read = db.begin_read().map_err(storage)?;
            let table = read.open_table(AGGREGATES).map_err(storage)?;
            let mut windows = Vec::new();
            for entry in table
                .range((campaign_item_id, from)..=(campaign_item_id, to))
                .map_err(storage)?
            {
                let (key, value) = entry.map_err(storage)?;
                let (bids, imps, clicks) = value.value();
                windows.push(WindowCounts {
                    period: key.value().1,
                    counts: Counts { bids, imps, clicks },
                });
            }
            Ok(windows)
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use sdp_core::join::{AggregateKey, Transaction};

    use super::*;

    fn change(read_version: u64, version: u64, bids: i64) -> StateChange {
        let mut state = Transaction::new("t1");
        state.version = version;
        StateChange {
            read_version,
            state,
            increments: vec![(
                AggregateKey {
                    campaign_item_id: 7,
                    period: 600,
                },
                Counts {
                    bids,
                    imps: 0,
                    clicks: 0,
                },
            )],
        }
    }

    #[tokio::test]
    async fn a_stale_change_is_a_conflict_and_adds_nothing_as_with_dynamodb() {
        let dir = tempfile::tempdir().unwrap();
        let state = LocalState::open(&dir.path().join("state.redb")).unwrap();
        let first = state.commit(vec![change(0, 1, 1)]).await.unwrap();
        assert!(first.conflicts.is_empty());
        // Written by someone who read version 0 too: refused, its increment not applied.
        let stale = state.commit(vec![change(0, 1, 1)]).await.unwrap();
        assert_eq!(stale.conflicts, vec!["t1".to_owned()]);
        let next = state.commit(vec![change(1, 2, 1)]).await.unwrap();
        assert!(next.conflicts.is_empty());
        let windows = state.campaign(7, 0, 1000).await.unwrap();
        assert_eq!(windows.len(), 1);
        assert_eq!(windows[0].counts.bids, 2);
        assert_eq!(state.load(&["t1".into()]).await.unwrap()["t1"].version, 2);
    }

    #[tokio::test]
    async fn the_processed_offset_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.redb");
        LocalState::open(&path).unwrap().set_processed(42).unwrap();
        assert_eq!(LocalState::open(&path).unwrap().processed().unwrap(), 42);
    }
}

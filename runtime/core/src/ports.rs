//! Ports: what the domain needs from storage, implemented by `sdp-aws` (Kinesis, DynamoDB) and
//! `sdp-local` (one machine). Async because every implementation does I/O; no runtime is named.

use std::collections::HashMap;
use std::future::Future;

use crate::events::Event;
use crate::join::{AggregateKey, Counts, Transaction};
use crate::landing::LandedRow;
use crate::reports::WindowCounts;

/// A storage failure, classified so callers know whether trying again can help.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Throttling, timeouts, 5xx: the same call may succeed later.
    #[error("{message}")]
    Transient {
        message: String,
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// Misconfiguration or a rejected request: retrying the same call will fail again.
    #[error("{message}")]
    Permanent {
        message: String,
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
}

impl StoreError {
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Transient { .. })
    }
}

/// An error and its causes on one line (`outer: cause: root`): SDK errors say little at the top.
pub fn with_causes(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut cause = err.source();
    while let Some(inner) = cause {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        cause = inner.source();
    }
    text
}

/// Where accepted events are appended durably (Kinesis, or the local log).
pub trait EventLog {
    /// Stores every event or fails; on success each event is durable.
    fn append(&self, events: &[Event]) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// One transaction's state change and the increments that must commit with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateChange {
    /// The version the state had when read; the commit must fail if it changed since.
    pub read_version: u64,
    pub state: Transaction,
    pub increments: Vec<(AggregateKey, Counts)>,
}

/// What became of a commit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommitOutcome {
    /// Transactions whose state had changed since it was read: none of their increments were
    /// applied, and they must be reloaded and applied again.
    pub conflicts: Vec<String>,
    /// Transactions the store refused for good (DynamoDB's `ValidationError`: an item it can
    /// never hold), each with the reason: nothing of theirs was applied, and no retry can apply
    /// it. The processor sets their events aside as dead letters instead of stalling the stream.
    pub rejected: Vec<(String, String)>,
}

/// The join state per `tx_id` and the aggregates, committed together.
pub trait StateStore {
    /// The stored state of each of `tx_ids` that has one.
    fn load(
        &self,
        tx_ids: &[String],
    ) -> impl Future<Output = Result<HashMap<String, Transaction>, StoreError>> + Send;

    /// Stores each change and adds its increments atomically: for every change, either both
    /// happen or neither does (a conflict).
    fn commit(
        &self,
        changes: Vec<StateChange>,
    ) -> impl Future<Output = Result<CommitOutcome, StoreError>> + Send;
}

/// Where a processed batch lands in the lake: Firehose on AWS, the lake directory on one machine.
pub trait LakeSink {
    /// Lands a committed batch: the rows derived from its commit (`sdp_core::landing`), and its
    /// `events` for a sink that also stands in for the stream's own delivery of `bcns` (on AWS a
    /// Firehose stream reads the event stream itself). `batch` names the batch, so a sink that
    /// keeps files per batch replaces its own on a retry.
    fn deliver(
        &self,
        batch: &str,
        events: &[Event],
        rows: &[LandedRow],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// Reads the aggregates of a campaign for the reports.
pub trait AggregateReader {
    /// The windows of `campaign_item_id` whose start is in `from..=to` (epoch seconds).
    fn campaign(
        &self,
        campaign_item_id: i64,
        from: i64,
        to: i64,
    ) -> impl Future<Output = Result<Vec<WindowCounts>, StoreError>> + Send;

    /// The totals of each of `keys` that has any (the snapshots of the aggregates a batch
    /// counted into). One read per key unless the store reads many at once, as DynamoDB does.
    fn windows(
        &self,
        keys: &[AggregateKey],
    ) -> impl Future<Output = Result<Vec<(AggregateKey, Counts)>, StoreError>> + Send
    where
        Self: Sync,
    {
        async move {
            let mut found = Vec::with_capacity(keys.len());
            for key in keys {
                for window in self
                    .campaign(key.campaign_item_id, key.period, key.period)
                    .await?
                {
                    found.push((*key, window.counts));
                }
            }
            Ok(found)
        }
    }
}

/// An object found by a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub key: String,
    pub size: u64,
    /// The entity tag: S3's (the MD5 of a single-part object, quoted), or a directory's, which
    /// computes the same one, so the two stores name the same bytes alike.
    pub etag: String,
    pub last_modified_ms: i64,
}

/// An object's bytes and the entity tag they had.
#[derive(Debug, Clone)]
pub struct Object {
    pub bytes: Vec<u8>,
    pub etag: String,
}

/// The answer to a conditional read.
#[derive(Debug)]
pub enum Fetched {
    /// The object still has the entity tag the reader knows.
    Unchanged,
    Missing,
    Found(Object),
}

/// The condition a write holds to.
#[derive(Debug, Clone, Copy)]
pub enum Precondition<'a> {
    None,
    /// The key must not exist yet.
    Absent,
    /// The object must still have this entity tag.
    Matches(&'a str),
}

/// How a conditional write ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Written {
    /// Written; the new entity tag.
    Done(String),
    /// The precondition did not hold: someone else wrote first. Nothing was written.
    Conflict,
}

/// A flat namespace of objects with S3's conditional requests: the lake and the model store.
/// `sdp-aws` implements it on an S3 bucket; `sdp-fs` on a directory, with the same semantics, so
/// one protocol (compaction's manifest and lock, a model's promotion) serves both.
pub trait ObjectStore: Sync {
    /// Held while a partition's files are swapped (see [`ObjectStore::hold_readers`]).
    type ReadersHeld: Send;

    /// Where the objects are, for messages: `s3://bucket` or a directory.
    fn location(&self) -> String;

    /// Every object under `prefix`, in key order.
    fn list(&self, prefix: &str) -> impl Future<Output = Result<Vec<Listed>, StoreError>> + Send;

    /// The object at `key`, or `Missing`; with `known_etag`, `Unchanged` if it still has it.
    fn get(
        &self,
        key: &str,
        known_etag: Option<&str>,
    ) -> impl Future<Output = Result<Fetched, StoreError>> + Send;

    /// Writes `bytes` at `key` if `precondition` holds.
    fn put(
        &self,
        key: &str,
        bytes: Vec<u8>,
        content_type: &str,
        precondition: Precondition<'_>,
    ) -> impl Future<Output = Result<Written, StoreError>> + Send;

    /// Removes `key`; removing what is not there is no error.
    fn delete(&self, key: &str) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Keeps readers that honour it from listing files until the guard is dropped, so a
    /// generation of files can be put in and the previous one taken out with no reader between
    /// (a directory's swap lock, which `sdp query` takes shared). S3 has no such thing; its
    /// readers (Athena) see the swap as it happens.
    fn hold_readers(&self) -> impl Future<Output = Result<Self::ReadersHeld, StoreError>> + Send;
}

/// A shared store is the store: `sdp local`'s server, schedule and model cache share one lake.
impl<T: ObjectStore + Send> ObjectStore for std::sync::Arc<T> {
    type ReadersHeld = T::ReadersHeld;

    fn location(&self) -> String {
        self.as_ref().location()
    }

    fn list(&self, prefix: &str) -> impl Future<Output = Result<Vec<Listed>, StoreError>> + Send {
        self.as_ref().list(prefix)
    }

    fn get(
        &self,
        key: &str,
        known_etag: Option<&str>,
    ) -> impl Future<Output = Result<Fetched, StoreError>> + Send {
        self.as_ref().get(key, known_etag)
    }

    fn put(
        &self,
        key: &str,
        bytes: Vec<u8>,
        content_type: &str,
        precondition: Precondition<'_>,
    ) -> impl Future<Output = Result<Written, StoreError>> + Send {
        self.as_ref().put(key, bytes, content_type, precondition)
    }

    fn delete(&self, key: &str) -> impl Future<Output = Result<(), StoreError>> + Send {
        self.as_ref().delete(key)
    }

    fn hold_readers(&self) -> impl Future<Output = Result<Self::ReadersHeld, StoreError>> + Send {
        self.as_ref().hold_readers()
    }
}

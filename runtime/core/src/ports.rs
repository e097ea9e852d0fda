//! Ports: what the domain needs from storage, implemented by `sdp-aws` (Kinesis, DynamoDB) and
//! `sdp-local` (one machine). Async because every implementation does I/O; no runtime is named.

use std::collections::HashMap;
use std::future::Future;

use crate::events::Event;
use crate::join::{AggregateKey, Counts, Transaction};
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

/// Reads the aggregates of a campaign for the reports.
pub trait AggregateReader {
    /// The windows of `campaign_item_id` whose start is in `from..=to` (epoch seconds).
    fn campaign(
        &self,
        campaign_item_id: i64,
        from: i64,
        to: i64,
    ) -> impl Future<Output = Result<Vec<WindowCounts>, StoreError>> + Send;
}

//! `sdp-local`: the platform on one machine, behind `sdp local`. The same core code as the Lambdas
//! (validation, join, aggregation, reports) over local adapters:
//! - [`log`]: a durable event log in place of Kinesis (an event answered 200 is on disk);
//! - [`state`]: the join state and aggregates in place of DynamoDB;
//! - [`database`]: the redb files under both, reopened after an I/O error (a full disk, a failing
//!   sync), so the platform carries on once the disk does;
//! - [`processor`]: the stream processor in place of the Kinesis-triggered Lambda, landing raw
//!   rows in the lake directory (`sdp_app::raw_lake`) in place of Firehose;
//! - [`scheduled`]: compaction and retraining (`sdp-app`'s, as the compactor and trainer Lambdas
//!   run them) over the lake directory every so often; the model the predictions API serves;
//!   what a crash left in the lake, cleared on start;
//! - [`server`]: the APIs over HTTP on loopback in place of API Gateway.
//!
//! The lake directory is an `sdp_fs::FsObjects` store, laid out as the S3 bucket is.
//!
//! The embedded database is redb: pure Rust (no C toolchain, builds wherever `sdp` does), ACID
//! transactions whose commit is synced to disk, readers that never block the writer, and a file
//! lock that refuses a second process. Must not depend on the AWS SDK.

pub mod database;
pub mod log;
pub mod platform;
pub mod processor;
pub mod scheduled;
pub mod server;
pub mod state;

/// The wall clock in epoch milliseconds: receive times, report defaults, model versions.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

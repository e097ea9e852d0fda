//! `sdp-app`: the platform's use cases, each written once over the ports of `sdp-core`
//! (`ObjectStore`, `StateStore`, …) and driven twice: by the Lambda binaries of `sdp-functions`
//! (an envelope in, the use case, an error class out) and by `sdp local` (a scheduler and an HTTP
//! server). A behaviour that lives here cannot drift between AWS and one machine.
//!
//! - [`processing`]: a batch of the event stream counted exactly once, then landed in the lake
//!   (through Firehose on AWS, through [`raw_lake`] on one machine); a record that can never be
//!   processed kept as a dead letter;
//! - [`compaction`]: closed hours of the raw lake into Parquet, with a manifest, a lock and
//!   generations;
//! - [`retraining`]: one round of the win-probability model over the compacted lake, promoted
//!   through the [`models`] store only if it is not worse;
//! - [`model_cache`]: the serving model of the predictions API, refreshed by a conditional read;
//! - [`metrics`]: the functions' metrics as CloudWatch embedded-metric-format lines.
//!
//! Each runs on an S3 bucket (`sdp_aws::S3Objects`) or a directory (`sdp_fs::FsObjects`) with the
//! same keys, so the local lake has the S3 layout file for file.
//!
//! Depends on `sdp-core` and `sdp-lake` only: never on the AWS SDK, the Lambda runtime or a
//! storage engine (those are the adapters' and the drivers').

pub mod compaction;
pub mod metrics;
pub mod model_cache;
pub mod models;
pub mod processing;
pub mod raw_lake;
pub mod retraining;

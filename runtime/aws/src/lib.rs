//! `sdp-aws`: adapters that implement the ports of `sdp-core` on AWS services: the Kinesis event
//! log, the DynamoDB join state and aggregates, the Firehose delivery into the lake, and the
//! object store (the lake and the models) on S3. Depends on
//! `sdp-core` and the AWS SDK; must not depend on the Lambda runtime or on the `sdp` CLI
//! (dependency direction: core ← adapters ← functions / cli).
//!
//! Every SDK failure becomes a [`sdp_core::ports::StoreError`] that names the service, the
//! operation, the AWS error code and message, and says whether retrying can help.

mod dynamodb;
mod error;
mod firehose;
mod kinesis;
pub mod s3;

pub use dynamodb::{DynamoAggregates, DynamoStore};
pub use firehose::FirehoseLake;
pub use kinesis::{partition_hash_key, KinesisLog};
pub use s3::S3Objects;

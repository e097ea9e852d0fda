//! `sdp-aws`: adapters that implement the ports of `sdp-core` on AWS services: the Kinesis event
//! log, and the DynamoDB join state and aggregates. Depends on `sdp-core` and the AWS SDK; must not
//! depend on the Lambda runtime or on the `sdp` CLI (dependency direction: core ← adapters ←
//! functions / cli).
//!
//! Every SDK failure becomes a [`sdp_core::ports::StoreError`] that names the service, the
//! operation, the AWS error code and message, and says whether retrying can help.

mod dynamodb;
mod error;
mod kinesis;

pub use dynamodb::{DynamoAggregates, DynamoStore};
pub use kinesis::KinesisLog;

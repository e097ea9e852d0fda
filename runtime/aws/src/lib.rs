//! `sdp-aws`: adapters that implement the ports of `sdp-core` on AWS services (Kinesis producer,
//! DynamoDB state and aggregate stores, S3 lake I/O). Depends on `sdp-core` and the AWS SDK;
//! must not depend on the Lambda runtime or on the `sdp` CLI.
//!
//! The adapters arrive with the runtime (the ingestion/processing issue); this crate fixes their
//! place in the dependency graph: core ← adapters ← functions / cli.

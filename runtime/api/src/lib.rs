//! `sdp-api`: what the ingestion, reports and predictions APIs answer, as plain request → response functions
//! over the ports of `sdp-core`. The Lambda functions (behind API Gateway) and `sdp local` (a
//! loopback HTTP server) both translate their transport to [`Request`] and back, so the routes,
//! validation and status codes of CONTRACT.md §4 are implemented once.
//!
//! Depends on `sdp-core` only: no AWS SDK, no Lambda runtime, no HTTP server.

pub mod batch;
pub mod http;
pub mod ingest;
pub mod predict;
pub mod reports;
#[cfg(test)]
mod testing;

pub use http::{Request, Response};

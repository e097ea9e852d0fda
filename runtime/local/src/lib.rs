//! `sdp-local`: adapters that implement the ports of `sdp-core` on one machine (a durable local
//! event log, an embedded database, lake files under a data directory). They back `sdp local`
//! and serve as the test doubles of the runtime. Must not depend on the AWS SDK.
//!
//! The adapters arrive with `sdp local`; this crate fixes their place in the dependency graph.

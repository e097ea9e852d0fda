//! What `sdp verify` and `sdp load` send and how they judge the answers: pure, no I/O, so the
//! rules are tested without a server.

pub mod load;
pub mod scenario;

//! The `sdp` binary end to end, one test binary (see tests/tests/it/main.rs for why one).

mod common;
mod crash_torture;
mod deploy_lifecycle;
mod local;
mod render_command;
mod storage_faults;
mod verify_load;

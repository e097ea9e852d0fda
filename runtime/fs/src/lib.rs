//! `sdp-fs`: storage on a local directory with the semantics the platform relies on in S3.
//!
//! - [`FsObjects`]: the `ObjectStore` port of `sdp-core` on a directory. Keys are paths under it;
//!   writes are whole (a temporary file, synced, renamed into place); "create only if absent" and
//!   "replace only if unchanged" hold under a lock file; entity tags are S3's (the quoted MD5 of
//!   the bytes), so the same use case writes the same manifests here as on S3.
//! - [`swap`]: the lock that keeps a reader of the lake (`sdp query`) from seeing a compaction
//!   half done.
//!
//! Depends on `sdp-core` only. Its I/O is blocking: drive it from a blocking thread.

mod objects;
pub mod swap;

pub use objects::{FsObjects, ReadersHeld};

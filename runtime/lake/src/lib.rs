//! `sdp-lake`: the lake's files. Raw JSON lines, as Firehose (or `sdp local`) lands them, are
//! compacted into Parquet with the exact schema the Glue tables declare (`sdp_core::lake`).
//! Pure: bytes in, bytes out; where the bytes live (S3, a local directory) is the caller's business.

pub mod compact;
pub mod synthetic;
pub mod training;

//! `sdp-core`: the pure domain of the Streaming Data Platform.
//!
//! Everything here is deterministic logic over plain values: the event contract, the data-lake
//! layout and table schemas, and (as the runtime grows) joins, windows, reports and the model.
//! It must not depend on the AWS SDK, the Lambda runtime, an async runtime or any storage engine;
//! adapters in `runtime/aws` and `runtime/local` implement its ports.

pub mod crash;
pub mod events;
pub mod join;
pub mod lake;
pub mod landing;
pub mod memory;
pub mod model;
pub mod ports;
pub mod processor;
pub mod reports;
pub mod retrain;
pub mod synthetic;
pub mod train;
pub mod window;

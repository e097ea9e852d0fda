//! `sdp-functions`: the Lambda functions of sdp. Each binary in `src/bin/` reads its settings and
//! builds its AWS clients once, then hands every invocation to a handler here. Handlers only
//! translate the Lambda envelope (API Gateway proxy events, Kinesis batches, schedules) to
//! `sdp-api` and `sdp-core` calls, so they are tested in-process with real event JSON.

pub mod apigw;
pub mod handlers;
pub mod settings;
pub mod telemetry;

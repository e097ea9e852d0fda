//! The cross-crate scenarios, one test binary (each binary links the AWS SDK and DataFusion
//! again, so one instead of nine saves that many links on every cold build).

mod aws_adapters;
mod compactor;
mod cost;
mod functions;
mod lake;
mod lambda_binaries;
mod model_functions;
mod moto_stack;
mod package;
mod templates;

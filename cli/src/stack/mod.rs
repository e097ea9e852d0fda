//! The CloudFormation domain of a deploy, without the SDK: what a stack status means and what to
//! do about it, and how a stream of stack events becomes progress and a root cause. `aws/` fetches;
//! this decides. Every string matched here is one CloudFormation really returns.

pub mod events;
pub mod parameters;
pub mod permissions;
pub mod status;

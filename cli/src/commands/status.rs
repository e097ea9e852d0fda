//! `sdp status`: the stack's state, its latest operation and its outputs, on stdout.

use super::outputs;
use crate::args::{OutputFormat, StatusArgs};
use crate::exit::Failure;

pub async fn run(args: &StatusArgs) -> Result<(), Failure> {
    let (stack, region) = (args.stack.stack_name.as_str(), args.stack.region.as_str());
    let (cfn, current) = super::existing_stack(&args.stack).await?;
    println!("Stack   {stack} ({region})");
    println!("Status  {}", current.status);
    if let Some(reason) = current.status_reason.as_deref().filter(|r| !r.is_empty()) {
        println!("Reason  {reason}");
    }
    let latest = cfn.recent_events(stack).await.ok().and_then(|page| {
        page.into_iter()
            .find(|e| e.resource_type == "AWS::CloudFormation::Stack")
    });
    if let Some(event) = latest {
        println!("Latest  {} at {}", event.status, event.timestamp);
    }
    println!();
    outputs::print(&current.outputs, OutputFormat::Table);
    Ok(())
}

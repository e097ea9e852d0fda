//! Following a stack operation to its end: new events as they come, then the final status.

use std::time::{Duration, Instant};

use anyhow::anyhow;

use crate::aws::cloudformation::CloudFormation;
use crate::exit::Failure;
use crate::stack::events::EventTracker;
use crate::stack::status::{classify, StatusClass};

/// Polls until the stack leaves `*_IN_PROGRESS`; returns its final status (`DELETE_COMPLETE`
/// when it is gone). Errors while polling are reported and retried: a poll that fails must not
/// turn a finished operation into a failure. `timeout` ends the wait with exit 3.
pub async fn until_settled(
    cfn: &CloudFormation,
    stack: &str,
    region: &str,
    tracker: &mut EventTracker,
    timeout: Option<Duration>,
) -> Result<String, Failure> {
    let started = Instant::now();
    let mut delay = Duration::from_secs(1);
    let mut failures = 0;
    loop {
        print_new_events(cfn, stack, tracker).await;
        let status = match cfn.describe_stack(stack).await {
            Ok(None) => Some("DELETE_COMPLETE".to_owned()),
            Ok(Some(found)) => Some(found.status),
            Err(err) => {
                failures += 1;
                eprintln!("warning: polling the stack failed ({failures}): {err:#}");
                None
            }
        };
        if let Some(status) = status {
            if classify(&status) != StatusClass::InProgress {
                // One last look, so the final events (and their reasons) are always printed.
                print_new_events(cfn, stack, tracker).await;
                return Ok(status);
            }
        }
        if timeout.is_some_and(|t| started.elapsed() >= t) {
            return Err(Failure::TimedOut(anyhow!(
                "stopped waiting after {}s; the operation goes on in CloudFormation. Re-attach with: \
                 aws cloudformation describe-stack-events --stack-name {stack} --region {region}",
                started.elapsed().as_secs()
            )));
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}

async fn print_new_events(cfn: &CloudFormation, stack: &str, tracker: &mut EventTracker) {
    match cfn.recent_events(stack).await {
        Ok(page) => {
            for event in tracker.accept(page).0 {
                eprintln!("{}", event.line());
            }
        }
        // A deleted stack has no events to list; anything else is worth a word.
        Err(err) if !format!("{err:#}").contains("does not exist") => {
            eprintln!("warning: reading stack events failed: {err:#}");
        }
        Err(_) => {}
    }
}

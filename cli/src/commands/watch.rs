//! Following a stack operation to its end: new events as they come, then the final status.

use std::time::Duration;

// tokio's Instant: the same clock in production, and the paused one in tests.
use tokio::time::Instant;

use anyhow::anyhow;

use crate::args::WatchArgs;
use crate::aws::cloudformation::CloudFormation;
use crate::exit::Failure;
use crate::stack::events::{describe_root_cause, EventTracker};
use crate::stack::status::is_success;
use crate::stack::status::{classify, StatusClass};
use crate::ui::Progress;

/// `sdp watch`: follow the running operation (if any) and exit as it ends: 0 for a completed
/// create, update or delete, 1 with its root cause otherwise.
pub async fn run(args: &WatchArgs) -> Result<(), Failure> {
    let (stack, region) = (args.stack.stack_name.as_str(), args.stack.region.as_str());
    let (cfn, current) = super::existing_stack(&args.stack).await?;
    // The operation's events so far: everything since its "User Initiated" start.
    let page = cfn.recent_events(stack).await.map_err(Failure::Failed)?;
    let start = page
        .iter()
        .position(|e| {
            e.resource_type == "AWS::CloudFormation::Stack"
                && e.reason.as_deref() == Some("User Initiated")
        })
        .map_or(page.len(), |i| i + 1);
    let mut tracker = EventTracker::new(page.get(start).map(|e| e.event_id.clone()));
    let status = if classify(&current.status) == StatusClass::InProgress {
        let timeout = args.timeout;
        until_settled(
            &cfn,
            stack,
            region,
            &mut tracker,
            &mut Progress::new(0),
            timeout,
        )
        .await?
    } else {
        tracker.accept(page);
        current.status
    };
    if is_success(&status) {
        eprintln!("stack `{stack}` is {status}");
        Ok(())
    } else {
        let cause = tracker
            .root_cause()
            .map(describe_root_cause)
            .unwrap_or_default();
        Err(Failure::Failed(anyhow!(
            "stack `{stack}` is {status}\n{cause}"
        )))
    }
}

/// Polls until the stack leaves `*_IN_PROGRESS`; returns its final status (`DELETE_COMPLETE`
/// when it is gone). Errors while polling are reported and retried: a poll that fails must not
/// turn a finished operation into a failure. `timeout` ends the wait with exit 3; Ctrl-C ends it
/// with exit 130. Neither touches the stack: the operation goes on in CloudFormation.
pub async fn until_settled(
    cfn: &CloudFormation,
    stack: &str,
    region: &str,
    tracker: &mut EventTracker,
    progress: &mut Progress,
    timeout: Option<Duration>,
) -> Result<String, Failure> {
    until_settled_or(cfn, stack, region, tracker, progress, timeout, ctrl_c()).await
}

/// [`until_settled`], detaching when `interrupt` completes instead of on Ctrl-C.
pub async fn until_settled_or(
    cfn: &CloudFormation,
    stack: &str,
    region: &str,
    tracker: &mut EventTracker,
    progress: &mut Progress,
    timeout: Option<Duration>,
    interrupt: impl std::future::Future<Output = ()>,
) -> Result<String, Failure> {
    let result = tokio::select! {
        result = follow(cfn, stack, region, tracker, progress, timeout) => result,
        () = interrupt => Err(Failure::Detached(anyhow!(
            "interrupted; sdp stopped following, the operation goes on in CloudFormation. \
             Re-attach with: sdp watch --stack-name {stack} --region {region}"
        ))),
    };
    progress.finish();
    result
}

/// Completes on Ctrl-C. If the handler cannot be installed it never completes, and Ctrl-C keeps
/// its default effect (the process ends; the stack operation goes on all the same).
async fn ctrl_c() {
    if tokio::signal::ctrl_c().await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// The polling loop of [`until_settled`], which clears the progress display however it ends.
async fn follow(
    cfn: &CloudFormation,
    stack: &str,
    region: &str,
    tracker: &mut EventTracker,
    progress: &mut Progress,
    timeout: Option<Duration>,
) -> Result<String, Failure> {
    let started = Instant::now();
    let mut delay = Duration::from_secs(1);
    let mut failures = 0;
    loop {
        print_new_events(cfn, stack, tracker, progress).await;
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
                print_new_events(cfn, stack, tracker, progress).await;
                return Ok(status);
            }
            progress.tick(&status);
        }
        if timeout.is_some_and(|t| started.elapsed() >= t) {
            return Err(Failure::TimedOut(anyhow!(
                "stopped waiting after {}s; the operation goes on in CloudFormation. Re-attach with: \
                 sdp watch --stack-name {stack} --region {region}",
                started.elapsed().as_secs()
            )));
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}

async fn print_new_events(
    cfn: &CloudFormation,
    stack: &str,
    tracker: &mut EventTracker,
    progress: &mut Progress,
) {
    match cfn.recent_events(stack).await {
        Ok(page) => {
            for event in tracker.accept(page).0 {
                progress.event(&event);
            }
        }
        // A deleted stack has no events to list; anything else is worth a word.
        Err(err) if !format!("{err:#}").contains("does not exist") => {
            eprintln!("warning: reading stack events failed: {err:#}");
        }
        Err(_) => {}
    }
}

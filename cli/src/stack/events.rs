//! Stack events: which belong to the running operation, in what order, and which one explains a
//! failure.
//!
//! `DescribeStackEvents` pages newest first and repeats events across polls. The operation's
//! events are those newer than the newest event that existed before it started (its *marker*):
//! comparing ids, not clocks, so a skewed local clock cannot hide or replay events.

use std::collections::HashSet;

/// One stack event, as sdp uses it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackEvent {
    pub event_id: String,
    /// The stack the event belongs to (a nested stack's events name the nested stack).
    pub stack_name: String,
    pub logical_id: String,
    pub resource_type: String,
    pub status: String,
    pub reason: Option<String>,
    /// RFC 3339, as CloudFormation stamps it.
    pub timestamp: String,
}

impl StackEvent {
    fn is_failure(&self) -> bool {
        self.status.ends_with("_FAILED")
    }

    /// A stack's own event (the stack itself, or a nested stack seen from its parent).
    fn is_stack_level(&self) -> bool {
        self.resource_type == "AWS::CloudFormation::Stack"
    }

    /// The plain one-line rendering used when not on a terminal.
    pub fn line(&self) -> String {
        let mut line = format!(
            "{}  {:<45} {} ({})",
            self.timestamp, self.status, self.logical_id, self.resource_type
        );
        if let Some(reason) = self.reason.as_deref().filter(|r| !r.is_empty()) {
            line.push_str(": ");
            line.push_str(reason);
        }
        line
    }
}

/// Reasons CloudFormation gives to resources it stopped because something else failed. They
/// are consequences, never the cause.
const CONSEQUENCES: [&str; 3] = [
    "Resource creation cancelled",
    "Resource update cancelled",
    "Resource deletion cancelled",
];

/// Collects the events of one operation across polls.
#[derive(Debug, Default)]
pub struct EventTracker {
    marker: Option<String>,
    seen: HashSet<String>,
    events: Vec<StackEvent>,
}

impl EventTracker {
    /// `marker`: the id of the newest event before the operation started (`None` for a new stack).
    pub fn new(marker: Option<String>) -> EventTracker {
        EventTracker {
            marker,
            ..EventTracker::default()
        }
    }

    /// Takes one poll's events (newest first, as CloudFormation returns them) and returns the
    /// ones not seen before, oldest first. Returns whether the marker was reached, i.e. whether
    /// older pages need not be fetched.
    pub fn accept(&mut self, newest_first: Vec<StackEvent>) -> (Vec<StackEvent>, bool) {
        let mut fresh = Vec::new();
        let mut reached_marker = false;
        for event in newest_first {
            if Some(&event.event_id) == self.marker.as_ref() {
                reached_marker = true;
                break;
            }
            if self.seen.insert(event.event_id.clone()) {
                fresh.push(event);
            }
        }
        fresh.reverse();
        self.events.extend(fresh.iter().cloned());
        (fresh, reached_marker)
    }

    /// Every event of the operation so far, oldest first.
    pub fn events(&self) -> &[StackEvent] {
        &self.events
    }

    /// The failure that explains the operation's outcome, if any failed.
    pub fn root_cause(&self) -> Option<&StackEvent> {
        root_cause(&self.events)
    }
}

/// The first real failure, oldest first: a resource that failed for a reason of its own. Not a
/// resource cancelled because another failed, and not a stack's summary ("The following
/// resource(s) failed to create: ...") when the resource's own event is known. Falls back to the
/// first failure with any reason.
pub fn root_cause(oldest_first: &[StackEvent]) -> Option<&StackEvent> {
    let failures = || {
        oldest_first
            .iter()
            .filter(|e| e.is_failure() && e.reason.is_some())
    };
    failures()
        .find(|e| !e.is_stack_level() && !CONSEQUENCES.contains(&e.reason.as_deref().unwrap_or("")))
        .or_else(|| failures().find(|e| !CONSEQUENCES.contains(&e.reason.as_deref().unwrap_or(""))))
        .or_else(|| failures().next())
}

/// `Root cause: DataBucket (AWS::S3::Bucket) in stack sdp: <reason>`.
pub fn describe_root_cause(event: &StackEvent) -> String {
    format!(
        "Root cause: {} ({}) in stack {}: {}",
        event.logical_id,
        event.resource_type,
        event.stack_name,
        event.reason.as_deref().unwrap_or("no reason given")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(id: u32, logical: &str, kind: &str, status: &str, reason: Option<&str>) -> StackEvent {
        StackEvent {
            event_id: format!("e{id}"),
            stack_name: "sdp".into(),
            logical_id: logical.into(),
            resource_type: kind.into(),
            status: status.into(),
            reason: reason.map(str::to_owned),
            timestamp: format!("2026-11-22T04:00:{id:02}Z"),
        }
    }

    /// A failed first create as CloudFormation reports it, oldest first.
    fn failed_create() -> Vec<StackEvent> {
        vec![
            event(1, "sdp", "AWS::CloudFormation::Stack", "CREATE_IN_PROGRESS", Some("User Initiated")),
            event(2, "DataKey", "AWS::KMS::Key", "CREATE_IN_PROGRESS", None),
            event(3, "EventStream", "AWS::Kinesis::Stream", "CREATE_IN_PROGRESS", None),
            event(4, "AthenaWorkGroup", "AWS::Athena::WorkGroup", "CREATE_FAILED",
                  Some("Resource handler returned message: \"Invalid request provided: WorkGroup sdp-lake is already created\" (RequestToken: 1f2e, HandlerErrorCode: AlreadyExists)")),
            event(5, "EventStream", "AWS::Kinesis::Stream", "CREATE_FAILED", Some("Resource creation cancelled")),
            event(6, "sdp", "AWS::CloudFormation::Stack", "ROLLBACK_IN_PROGRESS",
                  Some("The following resource(s) failed to create: [EventStream, AthenaWorkGroup]. Rollback requested by user.")),
            event(7, "sdp", "AWS::CloudFormation::Stack", "ROLLBACK_COMPLETE", None),
        ]
    }

    fn newest_first(events: &[StackEvent]) -> Vec<StackEvent> {
        events.iter().rev().cloned().collect()
    }

    #[test]
    fn the_root_cause_is_the_first_resource_that_failed_for_its_own_reason() {
        let events = failed_create();
        let cause = root_cause(&events).unwrap();
        assert_eq!(cause.logical_id, "AthenaWorkGroup");
        assert!(describe_root_cause(cause).starts_with("Root cause: AthenaWorkGroup (AWS::Athena::WorkGroup) in stack sdp: Resource handler returned message"));
    }

    #[test]
    fn a_cancelled_resource_is_never_the_root_cause_even_when_it_comes_first() {
        let mut events = failed_create();
        events.swap(3, 4); // the cancellation is reported before the real failure
        assert_eq!(root_cause(&events).unwrap().logical_id, "AthenaWorkGroup");
    }

    #[test]
    fn a_nested_stacks_own_resource_failure_beats_its_parents_summary() {
        let mut parent = event(1, "lake", "AWS::CloudFormation::Stack", "CREATE_FAILED",
            Some("Embedded stack arn:aws:cloudformation:us-west-2:123456789012:stack/sdp-lake-1A2B/abc was not successfully created: The following resource(s) failed to create: [DataBucket]."));
        parent.stack_name = "sdp".into();
        let mut nested = event(
            2,
            "DataBucket",
            "AWS::S3::Bucket",
            "CREATE_FAILED",
            Some("sdp-data already exists"),
        );
        nested.stack_name = "sdp-lake-1A2B".into();
        assert_eq!(
            root_cause(&[parent, nested]).unwrap().logical_id,
            "DataBucket"
        );
    }

    #[test]
    fn with_only_a_stack_summary_the_summary_is_the_root_cause() {
        let events = [event(
            1,
            "sdp",
            "AWS::CloudFormation::Stack",
            "UPDATE_ROLLBACK_FAILED",
            Some("Failed to delete resources: [OldQueue]"),
        )];
        assert_eq!(
            root_cause(&events).unwrap().status,
            "UPDATE_ROLLBACK_FAILED"
        );
        assert_eq!(
            root_cause(&failed_create()[..3]),
            None,
            "no failure, no root cause"
        );
    }

    #[test]
    fn events_are_deduplicated_across_polls_and_returned_oldest_first() {
        let all = failed_create();
        let mut tracker = EventTracker::new(None);
        let (first, _) = tracker.accept(newest_first(&all[..3]));
        assert_eq!(
            first
                .iter()
                .map(|e| e.event_id.as_str())
                .collect::<Vec<_>>(),
            ["e1", "e2", "e3"]
        );
        let (second, _) = tracker.accept(newest_first(&all));
        assert_eq!(
            second
                .iter()
                .map(|e| e.event_id.as_str())
                .collect::<Vec<_>>(),
            ["e4", "e5", "e6", "e7"]
        );
        assert_eq!(tracker.events().len(), 7);
        assert_eq!(tracker.root_cause().unwrap().logical_id, "AthenaWorkGroup");
    }

    #[test]
    fn events_of_earlier_operations_are_left_out_by_the_marker() {
        let earlier = failed_create();
        let mut update = vec![
            event(
                8,
                "sdp",
                "AWS::CloudFormation::Stack",
                "UPDATE_IN_PROGRESS",
                Some("User Initiated"),
            ),
            event(
                9,
                "ProcessorFunction",
                "AWS::Lambda::Function",
                "UPDATE_COMPLETE",
                None,
            ),
        ];
        let mut tracker = EventTracker::new(Some("e7".into()));
        let mut page = newest_first(&update);
        page.extend(newest_first(&earlier));
        let (fresh, reached) = tracker.accept(page);
        assert!(reached);
        update.truncate(2);
        assert_eq!(fresh, update);
        assert_eq!(
            tracker.root_cause(),
            None,
            "the earlier failure is not this operation's"
        );
    }

    #[test]
    fn a_plain_line_shows_time_status_resource_and_reason() {
        let line = failed_create()[4].line();
        assert!(
            line.starts_with("2026-11-22T04:00:05Z  CREATE_FAILED"),
            "{line}"
        );
        assert!(
            line.ends_with("EventStream (AWS::Kinesis::Stream): Resource creation cancelled"),
            "{line}"
        );
    }
}

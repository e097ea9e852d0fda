//! Stack statuses: their classes, and the pre-flight decision a deploy takes on each.

/// What a stack status says about the stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusClass {
    /// An operation is running; wait for it.
    InProgress,
    /// Settled and usable (created, updated, rolled back after a failed update).
    Stable,
    /// The first create failed and rolled back: the stack has no resources and can only be deleted.
    FailedCreate,
    /// Created by a change set that was never executed: an empty shell.
    ReviewInProgress,
    /// An update rollback failed: only `continue-update-rollback` can recover it.
    UpdateRollbackFailed,
    /// A delete failed: some resources are left; deleting again (perhaps retaining them) is needed.
    DeleteFailed,
    /// Deleted.
    Deleted,
    /// A status this version does not know; treated as unusable rather than guessed at.
    Unknown,
}

/// Classifies a `StackStatus` string.
pub fn classify(status: &str) -> StatusClass {
    match status {
        "CREATE_COMPLETE"
        | "UPDATE_COMPLETE"
        | "UPDATE_ROLLBACK_COMPLETE"
        | "IMPORT_COMPLETE"
        | "IMPORT_ROLLBACK_COMPLETE" => StatusClass::Stable,
        "ROLLBACK_COMPLETE" | "ROLLBACK_FAILED" | "CREATE_FAILED" => StatusClass::FailedCreate,
        "REVIEW_IN_PROGRESS" => StatusClass::ReviewInProgress,
        "UPDATE_ROLLBACK_FAILED" | "IMPORT_ROLLBACK_FAILED" => StatusClass::UpdateRollbackFailed,
        "DELETE_FAILED" => StatusClass::DeleteFailed,
        "DELETE_COMPLETE" => StatusClass::Deleted,
        s if s.ends_with("_IN_PROGRESS") => StatusClass::InProgress,
        _ => StatusClass::Unknown,
    }
}

/// Whether an operation that reached `status` succeeded (for the exit code of a watch).
pub fn is_success(status: &str) -> bool {
    matches!(
        status,
        "CREATE_COMPLETE" | "UPDATE_COMPLETE" | "DELETE_COMPLETE" | "IMPORT_COMPLETE"
    )
}

/// What a deploy does first, given the stack's current status (`None`: no such stack).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Preflight {
    /// No stack: create it.
    Create,
    /// A usable stack: update it.
    Update,
    /// Wait for the running operation, then decide again.
    Wait,
    /// An empty or failed-create stack: say so, delete it, then create.
    DeleteThenCreate { reason: String },
    /// Stop: the stack needs a human. `recovery` is the exact command to run.
    Stop { reason: String, recovery: String },
}

/// The pre-flight decision for `stack` in `region`.
pub fn preflight(status: Option<&str>, stack: &str, region: &str) -> Preflight {
    let Some(status) = status else {
        return Preflight::Create;
    };
    match classify(status) {
        StatusClass::Stable => Preflight::Update,
        StatusClass::Deleted => Preflight::Create,
        StatusClass::InProgress => Preflight::Wait,
        StatusClass::FailedCreate => Preflight::DeleteThenCreate {
            reason: format!("stack `{stack}` is in {status}: its first create failed and it holds no resources"),
        },
        StatusClass::ReviewInProgress => Preflight::DeleteThenCreate {
            reason: format!("stack `{stack}` is in {status}: a change set created it but was never executed"),
        },
        StatusClass::UpdateRollbackFailed => Preflight::Stop {
            reason: format!("stack `{stack}` is in {status}: an update failed and so did its rollback"),
            recovery: format!(
                "aws cloudformation continue-update-rollback --stack-name {stack} --region {region}  (add --resources-to-skip for resources that cannot roll back), then deploy again"
            ),
        },
        StatusClass::DeleteFailed => Preflight::Stop {
            reason: format!("stack `{stack}` is in {status}: a delete left resources behind"),
            recovery: format!("sdp destroy --stack-name {stack} --region {region}"),
        },
        StatusClass::Unknown => Preflight::Stop {
            reason: format!("stack `{stack}` is in {status}, a status sdp does not know"),
            recovery: format!("aws cloudformation describe-stack-events --stack-name {stack} --region {region}"),
        },
    }
}

/// Whether a failed change set failed only because there was nothing to change. CloudFormation
/// says so in the change set's status reason, in one of these two phrasings.
pub fn is_empty_change_set(status_reason: &str) -> bool {
    status_reason.contains("didn't contain changes")
        || status_reason.contains("No updates are to be performed")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_documented_status_has_a_class() {
        let statuses = [
            ("CREATE_IN_PROGRESS", StatusClass::InProgress),
            ("CREATE_FAILED", StatusClass::FailedCreate),
            ("CREATE_COMPLETE", StatusClass::Stable),
            ("ROLLBACK_IN_PROGRESS", StatusClass::InProgress),
            ("ROLLBACK_FAILED", StatusClass::FailedCreate),
            ("ROLLBACK_COMPLETE", StatusClass::FailedCreate),
            ("DELETE_IN_PROGRESS", StatusClass::InProgress),
            ("DELETE_FAILED", StatusClass::DeleteFailed),
            ("DELETE_COMPLETE", StatusClass::Deleted),
            ("UPDATE_IN_PROGRESS", StatusClass::InProgress),
            (
                "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS",
                StatusClass::InProgress,
            ),
            ("UPDATE_COMPLETE", StatusClass::Stable),
            ("UPDATE_FAILED", StatusClass::Unknown),
            ("UPDATE_ROLLBACK_IN_PROGRESS", StatusClass::InProgress),
            ("UPDATE_ROLLBACK_FAILED", StatusClass::UpdateRollbackFailed),
            (
                "UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS",
                StatusClass::InProgress,
            ),
            ("UPDATE_ROLLBACK_COMPLETE", StatusClass::Stable),
            ("REVIEW_IN_PROGRESS", StatusClass::ReviewInProgress),
            ("IMPORT_IN_PROGRESS", StatusClass::InProgress),
            ("IMPORT_COMPLETE", StatusClass::Stable),
            ("IMPORT_ROLLBACK_IN_PROGRESS", StatusClass::InProgress),
            ("IMPORT_ROLLBACK_FAILED", StatusClass::UpdateRollbackFailed),
            ("IMPORT_ROLLBACK_COMPLETE", StatusClass::Stable),
        ];
        for (status, class) in statuses {
            assert_eq!(classify(status), class, "{status}");
        }
    }

    #[test]
    fn a_missing_or_deleted_stack_is_created_and_a_settled_one_updated() {
        assert_eq!(preflight(None, "sdp", "us-west-2"), Preflight::Create);
        assert_eq!(
            preflight(Some("DELETE_COMPLETE"), "sdp", "us-west-2"),
            Preflight::Create
        );
        assert_eq!(
            preflight(Some("UPDATE_ROLLBACK_COMPLETE"), "sdp", "us-west-2"),
            Preflight::Update
        );
        assert_eq!(
            preflight(Some("UPDATE_IN_PROGRESS"), "sdp", "us-west-2"),
            Preflight::Wait
        );
    }

    #[test]
    fn a_failed_first_create_or_an_unexecuted_change_set_is_deleted_and_recreated() {
        for status in ["ROLLBACK_COMPLETE", "REVIEW_IN_PROGRESS"] {
            let decision = preflight(Some(status), "sdp", "us-west-2");
            assert!(
                matches!(&decision, Preflight::DeleteThenCreate { reason } if reason.contains(status)),
                "{decision:?}"
            );
        }
    }

    #[test]
    fn update_rollback_failed_stops_with_the_exact_recovery_command() {
        let Preflight::Stop { recovery, .. } =
            preflight(Some("UPDATE_ROLLBACK_FAILED"), "prod", "eu-west-1")
        else {
            panic!("not a stop");
        };
        assert!(recovery.starts_with(
            "aws cloudformation continue-update-rollback --stack-name prod --region eu-west-1"
        ));
    }

    #[test]
    fn an_empty_change_set_is_recognised_in_both_phrasings() {
        assert!(is_empty_change_set(
            "The submitted information didn't contain changes. Submit different information to create a change set."
        ));
        assert!(is_empty_change_set("No updates are to be performed."));
        assert!(!is_empty_change_set(
            "Parameter 'ArtifactBucket' must be one of AllowedValues"
        ));
    }

    #[test]
    fn only_completed_operations_are_successes() {
        assert!(is_success("UPDATE_COMPLETE"));
        assert!(!is_success("UPDATE_ROLLBACK_COMPLETE"));
        assert!(!is_success("ROLLBACK_COMPLETE"));
    }
}

//! `sdp deploy`: render, package, upload by content hash, change set, watch, outputs.
//!
//! Everything that can be refused without AWS (region, parameters, missing confirmation, missing
//! function builds) is refused first, with exit code 2, before any call is made.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::anyhow;

use super::{confirm, outputs, require_terminal_or_yes, watch};
use crate::args::{DeployArgs, OutputFormat, StackArgs};
use crate::aws::artifacts::{ArtifactBucket, Upload};
use crate::aws::cloudformation::{ChangeSetOutcome, CloudFormation, ParameterValue};
use crate::aws::iam::{Iam, Verdict};
use crate::aws::{self};
use crate::exit::Failure;
use crate::package::{package, sha256_hex, Artifact};
use crate::render::Rendered;
use crate::stack::events::{describe_root_cause, EventTracker};
use crate::stack::parameters::StackParameters;
use crate::stack::permissions::required_actions;
use crate::stack::status::{is_success, preflight, Preflight};
use crate::ui::Progress;
use crate::{regions, render, templates};

/// A release uploaded and ready for a change set: where its template is, and the parameter
/// values it sets (artifact bucket, code keys, the user's `--param`s).
pub struct Release {
    pub sdk: aws_config::SdkConfig,
    pub template: Rendered,
    pub template_url: String,
    pub parameters: Vec<(String, String)>,
}

/// What a release is prepared for.
pub enum Purpose {
    /// A deploy: confirmation is needed unless `yes`; the caller's permissions are checked.
    Deploy { yes: bool, check_permissions: bool },
    /// A diff: nothing is applied, so neither.
    Diff,
}

/// Everything before the stack is touched: refusals first (exit 2, no AWS call), then the
/// permission pre-flight, package, upload by content hash, and resolve the parameters.
pub async fn prepare(
    stack_args: &StackArgs,
    params: &[String],
    artifacts_dir: &std::path::Path,
    purpose: Purpose,
) -> Result<Release, Failure> {
    let could_not_run = |e: anyhow::Error| Failure::CouldNotRun(e);
    let region = stack_args.region.as_str();
    let config = regions::load(region).map_err(|e| could_not_run(e.into()))?;
    let template = render::render_platform(&templates::embedded(), &config)
        .map_err(|e| could_not_run(e.into()))?;
    let user_params = parse_params(params, &template).map_err(could_not_run)?;
    if let Purpose::Deploy { yes, .. } = purpose {
        require_terminal_or_yes(yes, "deploying")?;
    }
    let artifacts = package_functions(artifacts_dir).map_err(could_not_run)?;

    let sdk = aws::sdk_config(region).await;
    let identity = aws::caller_identity(&sdk)
        .await
        .map_err(|e| could_not_run(e.context("no usable AWS credentials")))?;
    if let Purpose::Deploy {
        check_permissions: true,
        ..
    } = purpose
    {
        check_permissions(&Iam::new(&sdk), &identity.arn, &template, &user_params).await?;
    }
    let bucket = ArtifactBucket::new(&sdk, &identity.account, region);
    if bucket.ensure().await.map_err(Failure::Failed)? {
        eprintln!("created artifact bucket {}", bucket.name);
    }
    let mut uploaded = 0;
    let mut parameters = vec![("ArtifactBucket".to_owned(), bucket.name.clone())];
    for artifact in &artifacts {
        if let Upload::Uploaded { bytes } = bucket
            .upload_with(&artifact.key(), || Ok(artifact.zip()?))
            .await
            .map_err(Failure::Failed)?
        {
            uploaded += bytes;
        }
        parameters.push((
            format!("{}CodeKey", render::pascal(&artifact.function)),
            artifact.key(),
        ));
    }
    let template_key = format!("templates/{}.yaml", sha256_hex(template.text.as_bytes()));
    if let Upload::Uploaded { bytes } = bucket
        .upload(&template_key, template.text.as_bytes())
        .await
        .map_err(Failure::Failed)?
    {
        uploaded += bytes;
    }
    eprintln!("uploaded {uploaded} bytes to s3://{}", bucket.name);
    parameters.extend(user_params);
    Ok(Release {
        template_url: bucket.template_url(&template_key),
        sdk,
        template,
        parameters,
    })
}

/// The parameters of a change set: on an update, every current parameter keeps its value unless
/// the release sets it (as `aws cloudformation deploy` does).
pub fn change_set_parameters(
    release: &Release,
    existing: Option<&crate::aws::cloudformation::Stack>,
) -> BTreeMap<String, ParameterValue> {
    let mut parameters: BTreeMap<String, ParameterValue> = BTreeMap::new();
    for (key, _) in existing
        .map(|s| s.parameters.as_slice())
        .unwrap_or_default()
    {
        parameters.insert(key.clone(), ParameterValue::Previous);
    }
    for (key, value) in &release.parameters {
        parameters.insert(key.clone(), ParameterValue::Set(value.clone()));
    }
    parameters
}

/// The permission pre-flight: missing permissions stop the deploy (exit 2) before anything is
/// created; a check that cannot be made is a note, not a failure.
async fn check_permissions(
    iam: &Iam,
    caller_arn: &str,
    template: &Rendered,
    given: &[(String, String)],
) -> Result<(), Failure> {
    let actions =
        required_actions(&template.document, given).map_err(|e| Failure::CouldNotRun(e.into()))?;
    match iam.check(caller_arn, &actions).await {
        Verdict::Allowed => {
            eprintln!("permissions: {caller_arn} may perform all {} actions the deploy needs", actions.len());
            Ok(())
        }
        Verdict::NotChecked(reason) => {
            eprintln!("note: permissions not checked ahead ({reason}); a missing one would show as the root cause of a rollback");
            Ok(())
        }
        Verdict::Missing(missing) => Err(Failure::CouldNotRun(anyhow!(
            "{caller_arn} lacks {} permission(s) the deploy needs, so it would fail part-way and roll back: {}. \
             Grant them, or pass --skip-permission-check if your policies grant them on named resources only \
             (the check simulates on resource `*`)",
            missing.len(),
            missing.join(", ")
        ))),
    }
}

pub async fn run(args: &DeployArgs) -> Result<(), Failure> {
    let purpose = Purpose::Deploy {
        yes: args.yes,
        check_permissions: !args.skip_permission_check,
    };
    let release = prepare(&args.stack, &args.params, &args.artifacts, purpose).await?;
    apply(&CloudFormation::new(&release.sdk), &release, args).await
}

/// Takes the stack from whatever state it is in to running `release`.
pub async fn apply(
    cfn: &CloudFormation,
    release: &Release,
    args: &DeployArgs,
) -> Result<(), Failure> {
    let (stack, region) = (args.stack.stack_name.as_str(), args.stack.region.as_str());
    let timeout = args.timeout;
    let existing = loop {
        let current = cfn.describe_stack(stack).await.map_err(Failure::Failed)?;
        match preflight(current.as_ref().map(|s| s.status.as_str()), stack, region) {
            Preflight::Create => break None,
            Preflight::Update => break current,
            Preflight::Wait => {
                eprintln!("stack `{stack}` is busy; waiting for its operation to end");
                wait_for_settled(cfn, stack, region, timeout).await?;
            }
            Preflight::DeleteThenCreate { reason } => {
                eprintln!("{reason}; deleting it before creating it again");
                cfn.delete_stack(stack).await.map_err(Failure::Failed)?;
                wait_for_settled(cfn, stack, region, timeout).await?;
            }
            Preflight::Stop { reason, recovery } => {
                return Err(Failure::Failed(anyhow!(
                    "{reason}. To recover, run: {recovery}"
                )));
            }
        }
    };

    let parameters = change_set_parameters(release, existing.as_ref());
    if let Some(current) = &existing {
        if !args.force
            && unchanged(
                cfn,
                stack,
                &release.template.text,
                &current.parameters,
                &parameters,
            )
            .await
        {
            eprintln!(
                "no changes: stack `{stack}` already runs this template, code and parameters"
            );
            return finish(cfn, args).await;
        }
    }
    let parameters: Vec<(String, ParameterValue)> = parameters.into_iter().collect();

    let outcome = cfn
        .create_change_set(
            stack,
            existing.is_none(),
            &release.template_url,
            &parameters,
        )
        .await
        .map_err(Failure::Failed)?;
    let (change_set, changes) = match outcome {
        ChangeSetOutcome::Empty => {
            eprintln!("no changes: stack `{stack}` is up to date");
            return finish(cfn, args).await;
        }
        ChangeSetOutcome::Ready { id, changes } => (id, changes),
    };
    eprintln!(
        "{} change(s) to stack `{stack}` in {region}:",
        changes.len()
    );
    for change in &changes {
        eprintln!("  {}", change.line());
    }
    if !args.yes && !confirm("apply these changes?")? {
        cfn.delete_change_set(&change_set)
            .await
            .map_err(Failure::Failed)?;
        return Err(Failure::Failed(anyhow!(
            "declined; the change set was deleted and nothing changed"
        )));
    }

    // Events newer than this one belong to the operation about to start.
    let marker = match existing {
        Some(_) => cfn
            .recent_events(stack)
            .await
            .ok()
            .and_then(|page| page.first().map(|e| e.event_id.clone())),
        None => None,
    };
    cfn.execute_change_set(&change_set)
        .await
        .map_err(Failure::Failed)?;
    let mut tracker = EventTracker::new(marker);
    let mut progress = Progress::new(changes.len() as u64);
    let status =
        watch::until_settled(cfn, stack, region, &mut tracker, &mut progress, timeout).await?;
    if !is_success(&status) {
        let cause = tracker
            .root_cause()
            .map(describe_root_cause)
            .unwrap_or_else(|| {
                format!("Root cause: unknown (the stack ended in {status} without a failure event)")
            });
        return Err(Failure::Failed(anyhow!(
            "deploying `{stack}` ended in {status}\n{cause}"
        )));
    }
    eprintln!("stack `{stack}` is {status}");
    finish(cfn, args).await
}

/// Follows an operation sdp did not start (or a deletion before a create) to its end.
async fn wait_for_settled(
    cfn: &CloudFormation,
    stack: &str,
    region: &str,
    timeout: Option<Duration>,
) -> Result<String, Failure> {
    let mut tracker = EventTracker::new(None);
    watch::until_settled(
        cfn,
        stack,
        region,
        &mut tracker,
        &mut Progress::new(0),
        timeout,
    )
    .await
}

/// Whether the deployed stack already has exactly this template and these parameter values, so
/// that even creating a change set can be skipped. Any doubt (a failed read) means "changed".
async fn unchanged(
    cfn: &CloudFormation,
    stack: &str,
    template: &str,
    current: &[(String, String)],
    desired: &BTreeMap<String, ParameterValue>,
) -> bool {
    let current: BTreeMap<&str, &str> = current
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let same_parameters = desired.len() == current.len()
        && desired.iter().all(|(key, value)| match value {
            ParameterValue::Previous => current.contains_key(key.as_str()),
            ParameterValue::Set(v) => current.get(key.as_str()) == Some(&v.as_str()),
        });
    same_parameters
        && cfn
            .template_body(stack)
            .await
            .is_ok_and(|deployed| deployed == template)
}

/// Prints the outputs (and writes the outputs file) of the deployed stack.
async fn finish(cfn: &CloudFormation, args: &DeployArgs) -> Result<(), Failure> {
    let stack = cfn
        .describe_stack(&args.stack.stack_name)
        .await
        .map_err(Failure::Failed)?
        .ok_or_else(|| Failure::Failed(anyhow!("the stack vanished after the deploy")))?;
    outputs::print(&stack.outputs, OutputFormat::Table);
    if let Some(path) = &args.outputs_file {
        outputs::write_file(path, &stack.outputs).map_err(Failure::Failed)?;
        eprintln!("wrote outputs to {}", path.display());
    }
    Ok(())
}

/// `KEY=VALUE` pairs, each KEY a parameter the template declares (code locations excluded: the
/// deploy fills those itself).
fn parse_params(raw: &[String], template: &Rendered) -> anyhow::Result<Vec<(String, String)>> {
    StackParameters::of(&template.document).resolve(raw, None)
}

/// Packages every function of the template from `dir/<function>/bootstrap`.
fn package_functions(dir: &std::path::Path) -> anyhow::Result<Vec<Artifact>> {
    let mut artifacts = Vec::new();
    let mut missing = Vec::new();
    for id in render::FUNCTIONS {
        let function = id.to_ascii_lowercase();
        let path = dir.join(&function).join("bootstrap");
        match std::fs::read(&path) {
            Ok(bootstrap) => artifacts.push(package(&function, bootstrap)),
            Err(_) => missing.push(path.display().to_string()),
        }
    }
    if !missing.is_empty() {
        return Err(anyhow!(
            "no function build at {}; build them with scripts/build-lambdas, or pass --artifacts DIR",
            missing.join(", ")
        ));
    }
    Ok(artifacts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::regions;

    mod canned {
        //! The failure paths moto cannot produce, with the responses CloudFormation really gives.

        use aws_sdk_cloudformation::operation::create_change_set::CreateChangeSetOutput;
        use aws_sdk_cloudformation::operation::delete_stack::DeleteStackOutput;
        use aws_sdk_cloudformation::operation::describe_change_set::DescribeChangeSetOutput;
        use aws_sdk_cloudformation::operation::describe_stack_events::{
            DescribeStackEventsError, DescribeStackEventsOutput,
        };
        use aws_sdk_cloudformation::operation::describe_stacks::{
            DescribeStacksError, DescribeStacksOutput,
        };
        use aws_sdk_cloudformation::operation::execute_change_set::ExecuteChangeSetOutput;
        use aws_sdk_cloudformation::types::{
            Change, ChangeAction, ChangeSetStatus, ChangeType, Output, ResourceChange,
            ResourceStatus, Stack, StackEvent, StackStatus,
        };
        use aws_sdk_cloudformation::Client;
        use aws_smithy_mocks::{mock, mock_client, Rule, RuleMode};
        use aws_smithy_types::error::ErrorMetadata;
        use aws_smithy_types::DateTime;

        use super::*;
        use crate::args::StackArgs;

        fn args() -> DeployArgs {
            DeployArgs {
                stack: StackArgs {
                    region: "us-west-2".into(),
                    stack_name: "sdp".into(),
                },
                params: vec![],
                yes: true,
                force: false,
                skip_permission_check: false,
                outputs_file: None,
                artifacts: "unused".into(),
                timeout: None,
            }
        }

        fn release() -> Release {
            Release {
                sdk: aws_config::SdkConfig::builder().build(),
                template: crate::render::Rendered {
                    text: "AWSTemplateFormatVersion: x".into(),
                    document: serde_yaml_ng::Value::Null,
                },
                template_url: "https://sdp-artifacts-123456789012-us-west-2.s3.us-west-2.amazonaws.com/templates/x.yaml".into(),
                parameters: vec![("ArtifactBucket".into(), "sdp-artifacts-123456789012-us-west-2".into())],
            }
        }

        fn stack(status: &str) -> DescribeStacksOutput {
            let url = Output::builder()
                .output_key("UrlForAPI")
                .output_value("https://abc.execute-api.us-west-2.amazonaws.com/v1")
                .build();
            DescribeStacksOutput::builder()
                .stacks(
                    Stack::builder()
                        .stack_name("sdp")
                        .stack_status(StackStatus::from(status))
                        .creation_time(DateTime::from_secs(1_795_000_000))
                        .outputs(url)
                        .build(),
                )
                .build()
        }

        fn missing() -> DescribeStacksError {
            DescribeStacksError::generic(
                ErrorMetadata::builder()
                    .code("ValidationError")
                    .message("Stack with id sdp does not exist")
                    .build(),
            )
        }

        fn event(
            n: u32,
            logical: &str,
            kind: &str,
            status: &str,
            reason: Option<&str>,
        ) -> StackEvent {
            StackEvent::builder()
                .event_id(format!("event-{n}"))
                .stack_id("arn:aws:cloudformation:us-west-2:123456789012:stack/sdp/1")
                .stack_name("sdp")
                .logical_resource_id(logical)
                .resource_type(kind)
                .resource_status(ResourceStatus::from(status))
                .set_resource_status_reason(reason.map(str::to_owned))
                .timestamp(DateTime::from_secs(1_795_000_000 + i64::from(n)))
                .build()
        }

        /// Events pages, newest first, each the whole history so far.
        fn pages(history: Vec<StackEvent>, cuts: &[usize]) -> Rule {
            let mut builder = mock!(Client::describe_stack_events).sequence();
            for &cut in cuts {
                let page: Vec<StackEvent> = history[..cut].iter().rev().cloned().collect();
                builder = builder.output(move || {
                    DescribeStackEventsOutput::builder()
                        .set_stack_events(Some(page.clone()))
                        .build()
                });
            }
            builder.build()
        }

        fn change_set_rules() -> [Rule; 3] {
            [
                mock!(Client::create_change_set).then_output(|| {
                    CreateChangeSetOutput::builder()
                        .id("arn:aws:cloudformation:us-west-2:123456789012:changeSet/sdp-1/1")
                        .build()
                }),
                mock!(Client::describe_change_set).then_output(|| {
                    let add = ResourceChange::builder()
                        .action(ChangeAction::Add)
                        .logical_resource_id("AthenaWorkGroup")
                        .resource_type("AWS::Athena::WorkGroup")
                        .build();
                    DescribeChangeSetOutput::builder()
                        .status(ChangeSetStatus::CreateComplete)
                        .changes(
                            Change::builder()
                                .r#type(ChangeType::Resource)
                                .resource_change(add)
                                .build(),
                        )
                        .build()
                }),
                mock!(Client::execute_change_set)
                    .then_output(|| ExecuteChangeSetOutput::builder().build()),
            ]
        }

        #[tokio::test(start_paused = true)]
        async fn a_failed_create_exits_1_with_the_first_real_failure_as_root_cause() {
            let history = vec![
                event(1, "sdp", "AWS::CloudFormation::Stack", "CREATE_IN_PROGRESS", Some("User Initiated")),
                event(2, "EventStream", "AWS::Kinesis::Stream", "CREATE_IN_PROGRESS", None),
                event(3, "AthenaWorkGroup", "AWS::Athena::WorkGroup", "CREATE_FAILED",
                      Some("Resource handler returned message: \"Invalid request provided: WorkGroup sdp-lake is already created\" (RequestToken: 6b1f, HandlerErrorCode: AlreadyExists)")),
                event(4, "EventStream", "AWS::Kinesis::Stream", "CREATE_FAILED", Some("Resource creation cancelled")),
                event(5, "sdp", "AWS::CloudFormation::Stack", "ROLLBACK_IN_PROGRESS",
                      Some("The following resource(s) failed to create: [EventStream, AthenaWorkGroup]. Rollback requested by user.")),
                event(6, "sdp", "AWS::CloudFormation::Stack", "ROLLBACK_COMPLETE", None),
            ];
            let stacks = mock!(Client::describe_stacks)
                .sequence()
                .error(missing)
                .output(|| stack("CREATE_IN_PROGRESS"))
                .output(|| stack("ROLLBACK_IN_PROGRESS"))
                .output(|| stack("ROLLBACK_COMPLETE"))
                .build();
            let events = pages(history, &[2, 4, 6, 6]);
            let [create, describe, execute] = change_set_rules();
            let client = mock_client!(
                aws_sdk_cloudformation,
                RuleMode::MatchAny,
                [&stacks, &events, &create, &describe, &execute]
            );
            let err = apply(&CloudFormation::from_client(client), &release(), &args())
                .await
                .unwrap_err();
            assert_eq!(err.code(), 1);
            let message = err.describe();
            assert!(
                message.contains("deploying `sdp` ended in ROLLBACK_COMPLETE"),
                "{message}"
            );
            assert!(message.contains("Root cause: AthenaWorkGroup (AWS::Athena::WorkGroup) in stack sdp: Resource handler returned message"), "{message}");
        }

        #[tokio::test(start_paused = true)]
        async fn a_stack_left_in_rollback_complete_is_deleted_and_created_again() {
            let stacks = mock!(Client::describe_stacks)
                .sequence()
                .output(|| stack("ROLLBACK_COMPLETE"))
                .output(|| stack("DELETE_IN_PROGRESS"))
                .error(missing) // deleted: the wait ends
                .error(missing) // pre-flight again: create
                .output(|| stack("CREATE_COMPLETE"))
                .output(|| stack("CREATE_COMPLETE")) // outputs at the end
                .build();
            let delete =
                mock!(Client::delete_stack).then_output(|| DeleteStackOutput::builder().build());
            let events = mock!(Client::describe_stack_events)
                .then_output(|| DescribeStackEventsOutput::builder().build());
            let [create, describe, execute] = change_set_rules();
            let client = mock_client!(
                aws_sdk_cloudformation,
                RuleMode::MatchAny,
                [&stacks, &delete, &events, &create, &describe, &execute]
            );
            apply(&CloudFormation::from_client(client), &release(), &args())
                .await
                .unwrap();
            assert_eq!(
                (delete.num_calls(), create.num_calls(), execute.num_calls()),
                (1, 1, 1)
            );
        }

        #[tokio::test(start_paused = true)]
        async fn a_timeout_exits_3_with_the_command_to_reattach_while_cloudformation_goes_on() {
            let stacks = mock!(Client::describe_stacks)
                .sequence()
                .error(missing)
                .output(|| stack("CREATE_IN_PROGRESS"))
                .times(100)
                .build();
            let events = mock!(Client::describe_stack_events)
                .then_output(|| DescribeStackEventsOutput::builder().build());
            let [create, describe, execute] = change_set_rules();
            let client = mock_client!(
                aws_sdk_cloudformation,
                RuleMode::MatchAny,
                [&stacks, &events, &create, &describe, &execute]
            );
            let args = DeployArgs {
                timeout: Some(Duration::from_secs(10)),
                ..args()
            };
            let err = apply(&CloudFormation::from_client(client), &release(), &args)
                .await
                .unwrap_err();
            assert_eq!(err.code(), 3);
            assert!(
                err.describe()
                    .contains("Re-attach with: sdp watch --stack-name sdp --region us-west-2"),
                "{}",
                err.describe()
            );
        }

        #[tokio::test(start_paused = true)]
        async fn update_rollback_failed_stops_with_the_recovery_command_and_changes_nothing() {
            let stacks =
                mock!(Client::describe_stacks).then_output(|| stack("UPDATE_ROLLBACK_FAILED"));
            let [create, describe, execute] = change_set_rules();
            let client = mock_client!(
                aws_sdk_cloudformation,
                RuleMode::MatchAny,
                [&stacks, &create, &describe, &execute]
            );
            let err = apply(&CloudFormation::from_client(client), &release(), &args())
                .await
                .unwrap_err();
            assert_eq!(err.code(), 1);
            assert!(err.describe().contains("aws cloudformation continue-update-rollback --stack-name sdp --region us-west-2"), "{}", err.describe());
            assert_eq!(
                create.num_calls(),
                0,
                "no change set on a stack that needs a human"
            );
        }

        #[tokio::test(start_paused = true)]
        async fn a_busy_stack_is_waited_for_and_a_throttled_poll_is_not_a_failure() {
            let stacks = mock!(Client::describe_stacks)
                .sequence()
                .output(|| stack("UPDATE_IN_PROGRESS"))
                .output(|| stack("UPDATE_IN_PROGRESS"))
                .output(|| stack("UPDATE_COMPLETE")) // the other operation ended
                .output(|| stack("UPDATE_COMPLETE")) // pre-flight: update
                .output(|| stack("UPDATE_IN_PROGRESS"))
                .output(|| stack("UPDATE_COMPLETE"))
                .output(|| stack("UPDATE_COMPLETE"))
                .build();
            let events = mock!(Client::describe_stack_events)
                .sequence()
                .error(|| {
                    DescribeStackEventsError::generic(
                        ErrorMetadata::builder()
                            .code("Throttling")
                            .message("Rate exceeded")
                            .build(),
                    )
                })
                .output(|| DescribeStackEventsOutput::builder().build())
                .times(20)
                .build();
            let template = mock!(Client::get_template).then_output(|| {
                aws_sdk_cloudformation::operation::get_template::GetTemplateOutput::builder()
                    .template_body("older")
                    .build()
            });
            let [create, describe, execute] = change_set_rules();
            let client = mock_client!(
                aws_sdk_cloudformation,
                RuleMode::MatchAny,
                [&stacks, &events, &template, &create, &describe, &execute]
            );
            apply(&CloudFormation::from_client(client), &release(), &args())
                .await
                .unwrap();
            assert_eq!(execute.num_calls(), 1);
        }

        #[tokio::test]
        async fn missing_permissions_stop_the_deploy_with_exit_2_naming_them_and_the_way_out() {
            use aws_sdk_iam::operation::simulate_principal_policy::SimulatePrincipalPolicyOutput;
            use aws_sdk_iam::types::{EvaluationResult, PolicyEvaluationDecisionType};
            let simulate =
                mock!(aws_sdk_iam::Client::simulate_principal_policy).then_output(|| {
                    let denied = EvaluationResult::builder()
                        .eval_action_name("iam:PassRole")
                        .eval_decision(PolicyEvaluationDecisionType::ImplicitDeny)
                        .build()
                        .unwrap();
                    SimulatePrincipalPolicyOutput::builder()
                        .evaluation_results(denied)
                        .is_truncated(false)
                        .build()
                });
            let iam = Iam::from_client(mock_client!(aws_sdk_iam, [&simulate]));
            let err =
                check_permissions(&iam, "arn:aws:iam::123456789012:user/ci", &template(), &[])
                    .await
                    .unwrap_err();
            assert_eq!(err.code(), 2);
            let message = err.describe();
            assert!(
                message.contains("lacks 1 permission(s)")
                    && message.contains("iam:PassRole")
                    && message.contains("--skip-permission-check"),
                "{message}"
            );
        }

        #[tokio::test(start_paused = true)]
        async fn ctrl_c_detaches_with_exit_130_and_the_reattach_command_leaving_the_stack_alone() {
            let stacks = mock!(Client::describe_stacks).then_output(|| stack("UPDATE_IN_PROGRESS"));
            let events = mock!(Client::describe_stack_events)
                .then_output(|| DescribeStackEventsOutput::builder().build());
            // Only reads are allowed: any write (cancel, delete, execute) would fail the test.
            let client = mock_client!(
                aws_sdk_cloudformation,
                RuleMode::MatchAny,
                [&stacks, &events]
            );
            let cfn = CloudFormation::from_client(client);
            let pressed_after_a_while = tokio::time::sleep(Duration::from_secs(30));
            let err = watch::until_settled_or(
                &cfn,
                "sdp",
                "us-west-2",
                &mut EventTracker::new(None),
                &mut Progress::new(0),
                None,
                pressed_after_a_while,
            )
            .await
            .unwrap_err();
            assert_eq!(err.code(), 130);
            assert!(
                err.describe()
                    .contains("the operation goes on in CloudFormation. Re-attach with: sdp watch --stack-name sdp --region us-west-2"),
                "{}",
                err.describe()
            );
            assert!(
                stacks.num_calls() > 3,
                "it was following before the interrupt"
            );
        }
    }

    fn template() -> Rendered {
        render::render_platform(&templates::embedded(), &regions::load("us-west-2").unwrap())
            .unwrap()
    }

    #[test]
    fn params_are_key_value_pairs_of_declared_parameters() {
        let parsed = parse_params(
            &["AggregationPeriod=5".into(), "ApiAuth=IAM".into()],
            &template(),
        )
        .unwrap();
        assert_eq!(
            parsed,
            [
                ("AggregationPeriod".into(), "5".into()),
                ("ApiAuth".into(), "IAM".into())
            ]
        );
    }

    #[test]
    fn an_unknown_or_code_parameter_is_refused_with_the_list() {
        let err = parse_params(&["AggregationPeriodd=5".into()], &template())
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("`AggregationPeriodd` is not a parameter of the stack; parameters: AggregationPeriod,"), "{err}");
        assert!(!err.contains("IngestCodeKey"));
        assert!(
            parse_params(&["IngestCodeKey=x".into()], &template()).is_err(),
            "deploy fills code keys"
        );
        assert!(parse_params(&["AggregationPeriod".into()], &template()).is_err());
    }
}

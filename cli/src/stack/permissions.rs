//! The IAM actions a deploy needs from its caller, read off the rendered template: CloudFormation
//! creates each resource with the caller's credentials, so a missing permission otherwise shows up
//! half-way through a create, as a rollback. Naming it before the first call is cheaper.

use std::collections::BTreeSet;

use serde_yaml_ng::Value;

/// What `sdp deploy` itself calls, whatever the template holds.
const DEPLOYER: &[&str] = &[
    "cloudformation:CreateChangeSet",
    "cloudformation:DeleteChangeSet",
    "cloudformation:DescribeChangeSet",
    "cloudformation:DescribeStackEvents",
    "cloudformation:DescribeStacks",
    "cloudformation:ExecuteChangeSet",
    "cloudformation:GetTemplate",
    "s3:CreateBucket",
    "s3:GetObject",
    "s3:PutObject",
];

/// The create actions of each resource type the templates use. A type missing here is an error,
/// so a new resource type cannot be added to the templates without saying what it needs.
const BY_RESOURCE_TYPE: &[(&str, &[&str])] = &[
    ("AWS::ApiGateway::ApiKey", &["apigateway:POST"]),
    (
        "AWS::ApplicationAutoScaling::ScalableTarget",
        &[
            "application-autoscaling:RegisterScalableTarget",
            "iam:CreateServiceLinkedRole",
            "dynamodb:DescribeTable",
            "dynamodb:UpdateTable",
            "cloudwatch:DescribeAlarms",
        ],
    ),
    (
        "AWS::ApplicationAutoScaling::ScalingPolicy",
        &[
            "application-autoscaling:PutScalingPolicy",
            "cloudwatch:PutMetricAlarm",
        ],
    ),
    ("AWS::ApiGateway::Deployment", &["apigateway:POST"]),
    ("AWS::ApiGateway::Method", &["apigateway:PUT"]),
    ("AWS::ApiGateway::Resource", &["apigateway:POST"]),
    ("AWS::ApiGateway::RestApi", &["apigateway:POST"]),
    ("AWS::ApiGateway::Stage", &["apigateway:POST"]),
    ("AWS::ApiGateway::UsagePlan", &["apigateway:POST"]),
    ("AWS::ApiGateway::UsagePlanKey", &["apigateway:POST"]),
    ("AWS::Athena::WorkGroup", &["athena:CreateWorkGroup"]),
    ("AWS::CloudWatch::Alarm", &["cloudwatch:PutMetricAlarm"]),
    ("AWS::CloudWatch::Dashboard", &["cloudwatch:PutDashboard"]),
    ("AWS::DynamoDB::Table", &["dynamodb:CreateTable"]),
    (
        "AWS::Events::Rule",
        &["events:PutRule", "events:PutTargets"],
    ),
    ("AWS::Glue::Database", &["glue:CreateDatabase"]),
    ("AWS::Glue::Table", &["glue:CreateTable"]),
    (
        "AWS::IAM::Role",
        &["iam:CreateRole", "iam:PutRolePolicy", "iam:PassRole"],
    ),
    ("AWS::KMS::Alias", &["kms:CreateAlias"]),
    ("AWS::KMS::Key", &["kms:CreateKey"]),
    ("AWS::Kinesis::Stream", &["kinesis:CreateStream"]),
    (
        "AWS::KinesisFirehose::DeliveryStream",
        &["firehose:CreateDeliveryStream"],
    ),
    (
        "AWS::Lambda::EventSourceMapping",
        &["lambda:CreateEventSourceMapping"],
    ),
    ("AWS::Lambda::Function", &["lambda:CreateFunction"]),
    ("AWS::Lambda::Permission", &["lambda:AddPermission"]),
    ("AWS::Logs::LogGroup", &["logs:CreateLogGroup"]),
    ("AWS::S3::Bucket", &["s3:CreateBucket"]),
    ("AWS::S3::BucketPolicy", &["s3:PutBucketPolicy"]),
    ("AWS::SNS::Subscription", &["sns:Subscribe"]),
    ("AWS::SNS::Topic", &["sns:CreateTopic"]),
    ("AWS::SQS::Queue", &["sqs:CreateQueue"]),
    ("AWS::SQS::QueuePolicy", &["sqs:SetQueueAttributes"]),
];

/// The resource type a template uses that has no entry in the table above.
#[derive(Debug, thiserror::Error)]
#[error("no IAM actions are known for resource type `{0}`; add it to stack/permissions.rs")]
pub struct UnknownResourceType(pub String);

/// Every action the caller needs to deploy `template` (rendered CloudFormation) with the `given`
/// parameters (the others at their defaults), sorted. A resource whose `Condition` is false for
/// those values needs nothing; one whose condition cannot be read here counts.
pub fn required_actions(
    template: &Value,
    given: &[(String, String)],
) -> Result<BTreeSet<&'static str>, UnknownResourceType> {
    let mut actions: BTreeSet<&'static str> = DEPLOYER.iter().copied().collect();
    let resources = template["Resources"].as_mapping().into_iter().flatten();
    for (_, resource) in resources {
        let Some(kind) = resource["Type"].as_str() else {
            continue;
        };
        let condition = resource["Condition"].as_str();
        if condition.is_some_and(|name| {
            holds(template, given, &template["Conditions"][name]) == Some(false)
        }) {
            continue;
        }
        let (_, needed) = BY_RESOURCE_TYPE
            .iter()
            .find(|(known, _)| *known == kind)
            .ok_or_else(|| UnknownResourceType(kind.to_owned()))?;
        actions.extend(needed.iter().copied());
    }
    Ok(actions)
}

/// Whether a condition of `template` holds for the `given` parameters, where it can be read:
/// `!Equals` of parameters (`!Ref`) and strings, `!Not`, `!And`, `!Or`, `!Condition`.
fn holds(template: &Value, given: &[(String, String)], condition: &Value) -> Option<bool> {
    let Value::Tagged(tagged) = condition else {
        return None;
    };
    let args = tagged.value.as_sequence();
    // Each operand's truth, or None when any cannot be read.
    let operands =
        || -> Option<Vec<bool>> { args?.iter().map(|c| holds(template, given, c)).collect() };
    match tagged.tag.to_string().trim_start_matches('!') {
        "Equals" => match args?.as_slice() {
            [a, b] => Some(value(template, given, a)? == value(template, given, b)?),
            _ => None,
        },
        "Not" => match args?.as_slice() {
            [c] => holds(template, given, c).map(|b| !b),
            _ => None,
        },
        "And" => operands().map(|all| all.iter().all(|b| *b)),
        "Or" => operands().map(|all| all.iter().any(|b| *b)),
        "Condition" => holds(
            template,
            given,
            &template["Conditions"][tagged.value.as_str()?],
        ),
        _ => None,
    }
}

/// A string, or a parameter's value: given, else its default.
fn value(template: &Value, given: &[(String, String)], v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Tagged(tagged) if tagged.tag.to_string().trim_start_matches('!') == "Ref" => {
            let name = tagged.value.as_str()?;
            match given.iter().find(|(key, _)| key == name) {
                Some((_, value)) => Some(value.clone()),
                None => match &template["Parameters"][name]["Default"] {
                    Value::String(s) => Some(s.clone()),
                    Value::Number(n) => Some(n.to_string()),
                    _ => None,
                },
            }
        }
        _ => None,
    }
}

/// The IAM principal whose policies decide what the caller may do, from the caller's ARN (STS
/// GetCallerIdentity).
#[derive(Debug, PartialEq, Eq)]
pub enum Principal {
    /// An IAM user: its ARN is what the simulator takes.
    User(String),
    /// An assumed role (CI runners, SSO): the role's ARN includes a path that the session ARN
    /// leaves out, so it is looked up by name.
    Role { name: String },
    /// The account root or a federated user: nothing the simulator can evaluate.
    Unsupported,
}

pub fn principal_of(caller_arn: &str) -> Principal {
    // arn:<partition>:<service>::<account>:<resource>
    let mut parts = caller_arn.splitn(6, ':');
    let (service, resource) = (parts.nth(2), parts.nth(2));
    match (service, resource) {
        (Some("iam"), Some(resource)) if resource.starts_with("user/") => {
            Principal::User(caller_arn.to_owned())
        }
        (Some("sts"), Some(resource)) => match resource.split('/').collect::<Vec<_>>()[..] {
            ["assumed-role", name, _session] => Principal::Role {
                name: name.to_owned(),
            },
            _ => Principal::Unsupported,
        },
        _ => Principal::Unsupported,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_resource_type_of_the_rendered_templates_has_its_actions() {
        let template = crate::render::render_platform(
            &crate::templates::embedded(),
            &crate::regions::load("us-east-1").unwrap(),
        )
        .unwrap();
        let actions = required_actions(&template.document, &[]).unwrap();
        for expected in [
            "iam:PassRole",
            "lambda:CreateFunction",
            "cloudformation:ExecuteChangeSet",
        ] {
            assert!(actions.contains(expected), "{actions:?}");
        }
    }

    #[test]
    fn resources_whose_condition_is_false_for_the_parameters_need_nothing() {
        let template = crate::render::render_platform(
            &crate::templates::embedded(),
            &crate::regions::load("us-east-1").unwrap(),
        )
        .unwrap();
        let scaling = "application-autoscaling:RegisterScalableTarget";
        let on_demand = required_actions(&template.document, &[]).unwrap();
        assert!(
            !on_demand.contains(scaling),
            "StateCapacity defaults to ON_DEMAND"
        );
        assert!(!on_demand.contains("sns:Subscribe"), "no AlarmEmail");
        let given = [
            ("StateCapacity".to_owned(), "PROVISIONED".to_owned()),
            ("AlarmEmail".to_owned(), "ops@example.com".to_owned()),
        ];
        let provisioned = required_actions(&template.document, &given).unwrap();
        assert!(provisioned.contains(scaling));
        assert!(provisioned.contains("sns:Subscribe"));
    }

    #[test]
    fn an_unknown_resource_type_is_an_error_that_names_it() {
        let template: Value =
            serde_yaml_ng::from_str("Resources:\n  X:\n    Type: AWS::EC2::Instance\n").unwrap();
        let err = required_actions(&template, &[]).unwrap_err();
        assert_eq!(err.0, "AWS::EC2::Instance");
    }

    #[test]
    fn principals_from_caller_arns() {
        assert_eq!(
            principal_of("arn:aws:iam::123456789012:user/ci/deployer"),
            Principal::User("arn:aws:iam::123456789012:user/ci/deployer".into())
        );
        assert_eq!(
            principal_of("arn:aws:sts::123456789012:assumed-role/GitHubDeploy/run-42"),
            Principal::Role {
                name: "GitHubDeploy".into()
            }
        );
        assert_eq!(
            principal_of("arn:aws-cn:sts::123456789012:assumed-role/Ops/alice"),
            Principal::Role { name: "Ops".into() }
        );
        assert_eq!(
            principal_of("arn:aws:iam::123456789012:root"),
            Principal::Unsupported
        );
        assert_eq!(
            principal_of("arn:aws:sts::123456789012:federated-user/bob"),
            Principal::Unsupported
        );
    }
}

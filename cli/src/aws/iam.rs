//! The permission pre-flight: IAM's policy simulator, asked whether the caller may perform every
//! action a deploy needs, before anything is created.

use std::collections::BTreeSet;

use aws_config::SdkConfig;
use aws_sdk_iam::types::PolicyEvaluationDecisionType;

use super::describe;
use crate::stack::permissions::{principal_of, Principal};

/// What the simulator said.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Every action is allowed.
    Allowed,
    /// These actions are denied (explicitly or for want of an allow), sorted.
    Missing(Vec<String>),
    /// The check could not be made (no permission to simulate, the account root, an emulator
    /// without a simulator); the reason, for a note. The deploy goes on without it.
    NotChecked(String),
}

pub struct Iam {
    client: aws_sdk_iam::Client,
}

/// The simulator takes at most this many action names per call.
const ACTIONS_PER_CALL: usize = 128;

impl Iam {
    pub fn new(config: &SdkConfig) -> Self {
        Self::from_client(aws_sdk_iam::Client::new(config))
    }

    pub fn from_client(client: aws_sdk_iam::Client) -> Self {
        Self { client }
    }

    /// Whether `caller_arn` (from STS) may perform all of `actions`.
    pub async fn check(&self, caller_arn: &str, actions: &BTreeSet<&str>) -> Verdict {
        match self.simulate(caller_arn, actions).await {
            Ok(Some(missing)) if missing.is_empty() => Verdict::Allowed,
            Ok(Some(missing)) => Verdict::Missing(missing),
            Ok(None) => Verdict::NotChecked(format!(
                "{caller_arn} is not a user or an assumed role, which the simulator cannot evaluate"
            )),
            Err(err) => Verdict::NotChecked(format!("{err:#}")),
        }
    }

    async fn simulate(
        &self,
        caller_arn: &str,
        actions: &BTreeSet<&str>,
    ) -> anyhow::Result<Option<Vec<String>>> {
        let source = match principal_of(caller_arn) {
            Principal::User(arn) => arn,
            Principal::Role { name } => self
                .client
                .get_role()
                .role_name(&name)
                .send()
                .await
                .map_err(|e| describe("IAM GetRole", &e))?
                .role()
                .map(|role| role.arn().to_owned())
                .ok_or_else(|| anyhow::anyhow!("IAM GetRole returned no role for `{name}`"))?,
            Principal::Unsupported => return Ok(None),
        };
        let actions: Vec<&str> = actions.iter().copied().collect();
        let mut missing = BTreeSet::new();
        for chunk in actions.chunks(ACTIONS_PER_CALL) {
            let mut pages = self
                .client
                .simulate_principal_policy()
                .policy_source_arn(&source)
                .set_action_names(Some(chunk.iter().map(|a| (*a).to_owned()).collect()))
                .into_paginator()
                .send();
            while let Some(page) = pages.next().await {
                let page = page.map_err(|e| describe("IAM SimulatePrincipalPolicy", &e))?;
                for result in page.evaluation_results() {
                    if result.eval_decision() != &PolicyEvaluationDecisionType::Allowed {
                        missing.insert(result.eval_action_name().to_owned());
                    }
                }
            }
        }
        Ok(Some(missing.into_iter().collect()))
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_iam::operation::get_role::GetRoleOutput;
    use aws_sdk_iam::operation::simulate_principal_policy::{
        SimulatePrincipalPolicyError, SimulatePrincipalPolicyOutput,
    };
    use aws_sdk_iam::types::{EvaluationResult, Role};
    use aws_sdk_iam::Client;
    use aws_smithy_mocks::{mock, mock_client, RuleMode};
    use aws_smithy_types::error::ErrorMetadata;

    use super::*;

    const CALLER: &str = "arn:aws:sts::123456789012:assumed-role/GitHubDeploy/run-42";
    const ROLE: &str = "arn:aws:iam::123456789012:role/ci/GitHubDeploy";

    fn result(action: &str, decision: &str) -> EvaluationResult {
        EvaluationResult::builder()
            .eval_action_name(action)
            .eval_decision(PolicyEvaluationDecisionType::from(decision))
            .build()
            .unwrap()
    }

    fn actions() -> BTreeSet<&'static str> {
        ["iam:PassRole", "lambda:CreateFunction", "s3:PutObject"].into()
    }

    #[tokio::test]
    async fn denied_actions_are_named_and_the_role_is_simulated_with_its_path() {
        let get_role = mock!(Client::get_role)
            .match_requests(|r| r.role_name() == Some("GitHubDeploy"))
            .then_output(|| {
                GetRoleOutput::builder()
                    .role(
                        Role::builder()
                            .path("/ci/")
                            .role_name("GitHubDeploy")
                            .role_id("AROAEXAMPLE")
                            .arn(ROLE)
                            .create_date(aws_smithy_types::DateTime::from_secs(0))
                            .build()
                            .unwrap(),
                    )
                    .build()
            });
        let simulate = mock!(Client::simulate_principal_policy)
            .match_requests(|r| r.policy_source_arn() == Some(ROLE))
            .then_output(|| {
                SimulatePrincipalPolicyOutput::builder()
                    .evaluation_results(result("iam:PassRole", "implicitDeny"))
                    .evaluation_results(result("lambda:CreateFunction", "allowed"))
                    .evaluation_results(result("s3:PutObject", "explicitDeny"))
                    .is_truncated(false)
                    .build()
            });
        let client = mock_client!(aws_sdk_iam, RuleMode::MatchAny, [&get_role, &simulate]);
        let verdict = Iam::from_client(client).check(CALLER, &actions()).await;
        assert_eq!(
            verdict,
            Verdict::Missing(vec!["iam:PassRole".into(), "s3:PutObject".into()])
        );
    }

    #[tokio::test]
    async fn all_allowed_is_allowed() {
        let simulate = mock!(Client::simulate_principal_policy).then_output(|| {
            SimulatePrincipalPolicyOutput::builder()
                .evaluation_results(result("iam:PassRole", "allowed"))
                .is_truncated(false)
                .build()
        });
        let client = mock_client!(aws_sdk_iam, [&simulate]);
        let verdict = Iam::from_client(client)
            .check("arn:aws:iam::123456789012:user/deployer", &actions())
            .await;
        assert_eq!(verdict, Verdict::Allowed);
    }

    #[tokio::test]
    async fn a_caller_who_may_not_simulate_is_not_checked_and_told_why() {
        let simulate = mock!(Client::simulate_principal_policy).then_error(|| {
            SimulatePrincipalPolicyError::generic(
                ErrorMetadata::builder()
                    .code("AccessDenied")
                    .message("User: arn:aws:iam::123456789012:user/deployer is not authorized to perform: iam:SimulatePrincipalPolicy")
                    .build(),
            )
        });
        let client = mock_client!(aws_sdk_iam, [&simulate]);
        let verdict = Iam::from_client(client)
            .check("arn:aws:iam::123456789012:user/deployer", &actions())
            .await;
        let Verdict::NotChecked(reason) = verdict else {
            panic!("{verdict:?}")
        };
        assert!(
            reason.contains("IAM SimulatePrincipalPolicy failed: AccessDenied"),
            "{reason}"
        );
    }

    #[tokio::test]
    async fn the_account_root_is_not_checked() {
        let client = mock_client!(aws_sdk_iam, []);
        let verdict = Iam::from_client(client)
            .check("arn:aws:iam::123456789012:root", &actions())
            .await;
        assert!(matches!(verdict, Verdict::NotChecked(_)), "{verdict:?}");
    }
}

//! CloudFormation calls, returning the plain values `crate::stack` decides on.

use std::time::Duration;

use anyhow::{bail, Result};
use aws_config::SdkConfig;
use aws_sdk_cloudformation::types::{Capability, ChangeSetStatus, ChangeSetType, Parameter};
use aws_sdk_cloudformation::Client;

use super::describe;
use crate::stack::events::StackEvent;
use crate::stack::status::is_empty_change_set;

/// What sdp needs of a stack.
#[derive(Debug, Clone, Default)]
pub struct Stack {
    pub status: String,
    pub status_reason: Option<String>,
    pub outputs: Vec<(String, String)>,
    pub parameters: Vec<(String, String)>,
    pub termination_protection: bool,
}

/// A parameter of a change set: a value, or the one the stack has now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParameterValue {
    Set(String),
    Previous,
}

/// One change a change set would make.
#[derive(Debug, Clone)]
pub struct Change {
    pub action: String,
    pub logical_id: String,
    pub resource_type: String,
    /// `True`, `False` or `Conditional`, for modifications.
    pub replacement: Option<String>,
}

impl Change {
    /// `Modify   ProcessorFunction (AWS::Lambda::Function)  (replacement)`.
    pub fn line(&self) -> String {
        let replacement = match self.replacement.as_deref() {
            Some("True") => "  (replacement)",
            Some("Conditional") => "  (may be replaced)",
            _ => "",
        };
        format!(
            "{:<8} {} ({}){replacement}",
            self.action, self.logical_id, self.resource_type
        )
    }
}

/// How creating a change set ended.
#[derive(Debug)]
pub enum ChangeSetOutcome {
    Ready {
        id: String,
        changes: Vec<Change>,
    },
    /// Nothing would change; the change set was deleted again.
    Empty,
}

pub struct CloudFormation {
    client: Client,
}

impl CloudFormation {
    pub fn new(config: &SdkConfig) -> CloudFormation {
        CloudFormation {
            client: Client::new(config),
        }
    }

    /// Over a given client (tests hand in one that answers with canned responses).
    pub fn from_client(client: Client) -> CloudFormation {
        CloudFormation { client }
    }

    /// The stack, or `None` when there is none of that name.
    pub async fn describe_stack(&self, name: &str) -> Result<Option<Stack>> {
        let output = match self.client.describe_stacks().stack_name(name).send().await {
            Ok(output) => output,
            // CloudFormation answers a missing stack with a ValidationError that says so.
            Err(err)
                if err
                    .as_service_error()
                    .and_then(|e| e.meta().message())
                    .is_some_and(|m| m.contains("does not exist")) =>
            {
                return Ok(None)
            }
            Err(err) => {
                return Err(describe(
                    &format!("CloudFormation DescribeStacks `{name}`"),
                    &err,
                ))
            }
        };
        let Some(stack) = output.stacks().first() else {
            return Ok(None);
        };
        let pairs = |items: Vec<(Option<&str>, Option<&str>)>| -> Vec<(String, String)> {
            items
                .into_iter()
                .filter_map(|(k, v)| Some((k?.to_owned(), v.unwrap_or_default().to_owned())))
                .collect()
        };
        Ok(Some(Stack {
            status: stack
                .stack_status()
                .map(|s| s.as_str().to_owned())
                .unwrap_or_default(),
            status_reason: stack.stack_status_reason().map(str::to_owned),
            outputs: pairs(
                stack
                    .outputs()
                    .iter()
                    .map(|o| (o.output_key(), o.output_value()))
                    .collect(),
            ),
            parameters: pairs(
                stack
                    .parameters()
                    .iter()
                    .map(|p| (p.parameter_key(), p.parameter_value()))
                    .collect(),
            ),
            termination_protection: stack.enable_termination_protection().unwrap_or(false),
        }))
    }

    /// The newest events of the stack (first page), newest first.
    pub async fn recent_events(&self, name: &str) -> Result<Vec<StackEvent>> {
        let output = self
            .client
            .describe_stack_events()
            .stack_name(name)
            .send()
            .await
            .map_err(|e| describe(&format!("CloudFormation DescribeStackEvents `{name}`"), &e))?;
        Ok(output
            .stack_events()
            .iter()
            .map(|e| StackEvent {
                event_id: e.event_id().unwrap_or_default().to_owned(),
                stack_name: e.stack_name().unwrap_or_default().to_owned(),
                logical_id: e.logical_resource_id().unwrap_or_default().to_owned(),
                resource_type: e.resource_type().unwrap_or_default().to_owned(),
                status: e
                    .resource_status()
                    .map(|s| s.as_str().to_owned())
                    .unwrap_or_default(),
                reason: e.resource_status_reason().map(str::to_owned),
                timestamp: e.timestamp().map(|t| t.to_string()).unwrap_or_default(),
            })
            .collect())
    }

    /// Creates a change set and waits until CloudFormation has computed it.
    pub async fn create_change_set(
        &self,
        stack: &str,
        create: bool,
        template_url: &str,
        parameters: &[(String, ParameterValue)],
    ) -> Result<ChangeSetOutcome> {
        let name = format!(
            "sdp-{}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs())
        );
        let created = self
            .client
            .create_change_set()
            .stack_name(stack)
            .change_set_name(&name)
            .change_set_type(if create {
                ChangeSetType::Create
            } else {
                ChangeSetType::Update
            })
            .template_url(template_url)
            .set_parameters(Some(
                parameters
                    .iter()
                    .map(|(key, value)| match value {
                        ParameterValue::Set(v) => Parameter::builder()
                            .parameter_key(key)
                            .parameter_value(v)
                            .build(),
                        ParameterValue::Previous => Parameter::builder()
                            .parameter_key(key)
                            .use_previous_value(true)
                            .build(),
                    })
                    .collect(),
            ))
            .capabilities(Capability::CapabilityIam)
            .description("sdp deploy")
            .send()
            .await
            .map_err(|e| describe(&format!("CloudFormation CreateChangeSet on `{stack}`"), &e))?;
        let id = created.id().unwrap_or(&name).to_owned();
        let mut delay = Duration::from_millis(200);
        loop {
            let described = self
                .client
                .describe_change_set()
                .change_set_name(&id)
                .send()
                .await
                .map_err(|e| describe("CloudFormation DescribeChangeSet", &e))?;
            match described.status() {
                Some(ChangeSetStatus::CreateComplete) => {
                    let changes = described
                        .changes()
                        .iter()
                        .filter_map(|c| c.resource_change())
                        .map(|r| Change {
                            action: r
                                .action()
                                .map(|a| a.as_str().to_owned())
                                .unwrap_or_default(),
                            logical_id: r.logical_resource_id().unwrap_or_default().to_owned(),
                            resource_type: r.resource_type().unwrap_or_default().to_owned(),
                            replacement: r.replacement().map(|x| x.as_str().to_owned()),
                        })
                        .collect();
                    return Ok(ChangeSetOutcome::Ready { id, changes });
                }
                Some(ChangeSetStatus::Failed) => {
                    let reason = described
                        .status_reason()
                        .unwrap_or("no reason given")
                        .to_owned();
                    // An empty change set is left behind by CloudFormation; do not leave it.
                    self.delete_change_set(&id).await?;
                    if is_empty_change_set(&reason) {
                        return Ok(ChangeSetOutcome::Empty);
                    }
                    bail!("the change set for `{stack}` failed: {reason}");
                }
                _ => {
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    pub async fn execute_change_set(&self, id: &str) -> Result<()> {
        self.client
            .execute_change_set()
            .change_set_name(id)
            .send()
            .await
            .map_err(|e| describe("CloudFormation ExecuteChangeSet", &e))?;
        Ok(())
    }

    pub async fn delete_change_set(&self, id: &str) -> Result<()> {
        self.client
            .delete_change_set()
            .change_set_name(id)
            .send()
            .await
            .map_err(|e| describe("CloudFormation DeleteChangeSet", &e))?;
        Ok(())
    }

    pub async fn delete_stack(&self, name: &str) -> Result<()> {
        self.client
            .delete_stack()
            .stack_name(name)
            .send()
            .await
            .map_err(|e| describe(&format!("CloudFormation DeleteStack `{name}`"), &e))?;
        Ok(())
    }

    /// The template the stack was last deployed with, as it was sent.
    pub async fn template_body(&self, name: &str) -> Result<String> {
        let output = self
            .client
            .get_template()
            .stack_name(name)
            .template_stage(aws_sdk_cloudformation::types::TemplateStage::Original)
            .send()
            .await
            .map_err(|e| describe(&format!("CloudFormation GetTemplate `{name}`"), &e))?;
        Ok(output.template_body().unwrap_or_default().to_owned())
    }

    /// The physical ids of the stack's resources, by logical id.
    pub async fn resources(&self, name: &str) -> Result<Vec<(String, String, String)>> {
        let output = self
            .client
            .describe_stack_resources()
            .stack_name(name)
            .send()
            .await
            .map_err(|e| {
                describe(
                    &format!("CloudFormation DescribeStackResources `{name}`"),
                    &e,
                )
            })?;
        Ok(output
            .stack_resources()
            .iter()
            .map(|r| {
                (
                    r.logical_resource_id().unwrap_or_default().to_owned(),
                    r.resource_type().unwrap_or_default().to_owned(),
                    r.physical_resource_id().unwrap_or_default().to_owned(),
                )
            })
            .collect())
    }
}

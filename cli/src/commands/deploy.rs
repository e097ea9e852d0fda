//! `sdp deploy`: render, package, upload by content hash, change set, watch, outputs.
//!
//! Everything that can be refused without AWS (region, parameters, missing confirmation, missing
//! function builds) is refused first, with exit code 2, before any call is made.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{anyhow, Context};
use sha2::{Digest, Sha256};

use super::{confirm, outputs, require_terminal_or_yes, watch};
use crate::args::{DeployArgs, OutputFormat};
use crate::aws::artifacts::{ArtifactBucket, Upload};
use crate::aws::cloudformation::{ChangeSetOutcome, CloudFormation, ParameterValue};
use crate::aws::{self};
use crate::exit::Failure;
use crate::package::{package, Artifact};
use crate::stack::events::{describe_root_cause, EventTracker};
use crate::stack::status::{is_success, preflight, Preflight};
use crate::{regions, render, templates};

pub async fn run(args: &DeployArgs) -> Result<(), Failure> {
    let could_not_run = |e: anyhow::Error| Failure::CouldNotRun(e);
    let (stack, region) = (args.stack.stack_name.as_str(), args.stack.region.as_str());
    let config = regions::load(region).map_err(|e| could_not_run(e.into()))?;
    let template = render::render_platform(&templates::embedded(), &config)
        .map_err(|e| could_not_run(e.into()))?;
    let user_params = parse_params(&args.params, &template).map_err(could_not_run)?;
    require_terminal_or_yes(args.yes, "deploying")?;
    let artifacts = package_functions(&args.artifacts).map_err(could_not_run)?;

    let sdk = aws::sdk_config(region).await;
    let account = aws::account_id(&sdk)
        .await
        .map_err(|e| could_not_run(e.context("no usable AWS credentials")))?;
    let bucket = ArtifactBucket::new(&sdk, &account, region);
    if bucket.ensure().await.map_err(Failure::Failed)? {
        eprintln!("created artifact bucket {}", bucket.name);
    }
    let mut uploaded = 0;
    let mut code_keys = Vec::new();
    for artifact in &artifacts {
        if let Upload::Uploaded { bytes } = bucket
            .upload(&artifact.key(), &artifact.zip)
            .await
            .map_err(Failure::Failed)?
        {
            uploaded += bytes;
        }
        code_keys.push((
            format!("{}CodeKey", render::pascal(&artifact.function)),
            artifact.key(),
        ));
    }
    let template_key = format!(
        "templates/{}.yaml",
        hex(&Sha256::digest(template.as_bytes()))
    );
    if let Upload::Uploaded { bytes } = bucket
        .upload(&template_key, template.as_bytes())
        .await
        .map_err(Failure::Failed)?
    {
        uploaded += bytes;
    }
    eprintln!("uploaded {uploaded} bytes to s3://{}", bucket.name);

    let cfn = CloudFormation::new(&sdk);
    let timeout = args.timeout.map(Duration::from_secs);
    let existing = loop {
        let current = cfn.describe_stack(stack).await.map_err(Failure::Failed)?;
        match preflight(current.as_ref().map(|s| s.status.as_str()), stack, region) {
            Preflight::Create => break None,
            Preflight::Update => break current,
            Preflight::Wait => {
                eprintln!("stack `{stack}` is busy; waiting for its operation to end");
                let mut tracker = EventTracker::new(None);
                watch::until_settled(&cfn, stack, region, &mut tracker, timeout).await?;
            }
            Preflight::DeleteThenCreate { reason } => {
                eprintln!("{reason}; deleting it before creating it again");
                cfn.delete_stack(stack).await.map_err(Failure::Failed)?;
                let mut tracker = EventTracker::new(None);
                watch::until_settled(&cfn, stack, region, &mut tracker, timeout).await?;
            }
            Preflight::Stop { reason, recovery } => {
                return Err(Failure::Failed(anyhow!(
                    "{reason}. To recover, run: {recovery}"
                )));
            }
        }
    };

    let mut parameters: BTreeMap<String, ParameterValue> = BTreeMap::new();
    if let Some(current) = &existing {
        // As `aws cloudformation deploy`: a parameter not given keeps its current value.
        for (key, _) in &current.parameters {
            parameters.insert(key.clone(), ParameterValue::Previous);
        }
    }
    parameters.insert(
        "ArtifactBucket".into(),
        ParameterValue::Set(bucket.name.clone()),
    );
    for (key, value) in code_keys.into_iter().chain(user_params) {
        parameters.insert(key, ParameterValue::Set(value));
    }
    if let Some(current) = &existing {
        if !args.force && unchanged(&cfn, stack, &template, &current.parameters, &parameters).await
        {
            eprintln!(
                "no changes: stack `{stack}` already runs this template, code and parameters"
            );
            return finish(&cfn, args).await;
        }
    }
    let parameters: Vec<(String, ParameterValue)> = parameters.into_iter().collect();

    let outcome = cfn
        .create_change_set(
            stack,
            existing.is_none(),
            &bucket.template_url(&template_key),
            &parameters,
        )
        .await
        .map_err(Failure::Failed)?;
    let (change_set, changes) = match outcome {
        ChangeSetOutcome::Empty => {
            eprintln!("no changes: stack `{stack}` is up to date");
            return finish(&cfn, args).await;
        }
        ChangeSetOutcome::Ready { id, changes } => (id, changes),
    };
    eprintln!(
        "{} change(s) to stack `{stack}` in {region}:",
        changes.len()
    );
    for change in &changes {
        let replacement = match change.replacement.as_deref() {
            Some("True") => "  (replacement)",
            Some("Conditional") => "  (may be replaced)",
            _ => "",
        };
        eprintln!(
            "  {:<8} {} ({}){replacement}",
            change.action, change.logical_id, change.resource_type
        );
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
    let status = watch::until_settled(&cfn, stack, region, &mut tracker, timeout).await?;
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
    finish(&cfn, args).await
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
fn parse_params(raw: &[String], template: &str) -> anyhow::Result<Vec<(String, String)>> {
    let document: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(template).context("reading the rendered template")?;
    let declared: Vec<String> = document["Parameters"]
        .as_mapping()
        .map(|m| {
            m.keys()
                .filter_map(|k| k.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let settable: Vec<&String> = declared
        .iter()
        .filter(|k| *k != "ArtifactBucket" && !k.ends_with("CodeKey"))
        .collect();
    raw.iter()
        .map(|pair| {
            let (key, value) = pair
                .split_once('=')
                .ok_or_else(|| anyhow!("`--param {pair}` is not KEY=VALUE"))?;
            if !settable.iter().any(|k| *k == key) {
                let names: Vec<&str> = settable.iter().map(|k| k.as_str()).collect();
                return Err(anyhow!(
                    "`{key}` is not a parameter of the stack; parameters: {}",
                    names.join(", ")
                ));
            }
            Ok((key.to_owned(), value.to_owned()))
        })
        .collect()
}

/// Packages every function of the template from `dir/<function>/bootstrap`.
fn package_functions(dir: &std::path::Path) -> anyhow::Result<Vec<Artifact>> {
    let mut artifacts = Vec::new();
    let mut missing = Vec::new();
    for id in render::FUNCTIONS {
        let function = id.to_ascii_lowercase();
        let path = dir.join(&function).join("bootstrap");
        match std::fs::read(&path) {
            Ok(bootstrap) => artifacts.push(package(&function, &bootstrap)?),
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

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::regions;

    fn template() -> String {
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

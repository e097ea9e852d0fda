//! `sdp destroy`: delete the stack, keeping the data (bucket, aggregates table, key) unless asked.

use anyhow::anyhow;

use super::{confirm, require_terminal_or_yes, watch};
use crate::args::DestroyArgs;
use crate::aws::{self, cloudformation::CloudFormation, purge};
use crate::exit::Failure;
use crate::render::Rendered;
use crate::stack::events::{describe_root_cause, EventTracker};
use crate::ui::Progress;
use crate::{regions, render, templates};

pub async fn run(args: &DestroyArgs) -> Result<(), Failure> {
    let (stack, region) = (args.stack.stack_name.as_str(), args.stack.region.as_str());
    let config = regions::load(region).map_err(|e| Failure::CouldNotRun(e.into()))?;
    let template = render::render_platform(&templates::embedded(), &config)
        .map_err(|e| Failure::CouldNotRun(e.into()))?;
    require_terminal_or_yes(args.yes, "destroying a stack")?;

    let sdk = aws::sdk_config(region).await;
    let cfn = CloudFormation::new(&sdk);
    let Some(current) = cfn.describe_stack(stack).await.map_err(Failure::Failed)? else {
        eprintln!("there is no stack `{stack}` in {region}; nothing to destroy");
        return Ok(());
    };
    if current.termination_protection {
        return Err(Failure::Failed(anyhow!(
            "stack `{stack}` has termination protection; if it really should go, first run: \
             aws cloudformation update-termination-protection --no-enable-termination-protection --stack-name {stack} --region {region}"
        )));
    }
    let retained_ids = retained_logical_ids(&template);
    let resources = cfn.resources(stack).await.map_err(Failure::Failed)?;
    let retained: Vec<&(String, String, String)> = resources
        .iter()
        .filter(|(logical, _, _)| retained_ids.contains(logical))
        .collect();
    eprintln!(
        "deleting stack `{stack}` in {region} ({} resources); keeping:",
        resources.len()
    );
    for (logical, kind, physical) in &retained {
        eprintln!("  {logical} ({kind}) {physical}");
    }
    if !args.yes && !confirm("delete the stack?")? {
        return Err(Failure::Failed(anyhow!("declined; nothing was deleted")));
    }

    let marker = cfn
        .recent_events(stack)
        .await
        .ok()
        .and_then(|page| page.first().map(|e| e.event_id.clone()));
    cfn.delete_stack(stack).await.map_err(Failure::Failed)?;
    let mut tracker = EventTracker::new(marker);
    let timeout = args.timeout;
    let mut progress = Progress::new(resources.len() as u64);
    let status =
        watch::until_settled(&cfn, stack, region, &mut tracker, &mut progress, timeout).await?;
    if status != "DELETE_COMPLETE" {
        let cause = tracker
            .root_cause()
            .map(describe_root_cause)
            .unwrap_or_default();
        return Err(Failure::Failed(anyhow!(
            "deleting `{stack}` ended in {status}\n{cause}"
        )));
    }
    eprintln!("stack `{stack}` is deleted");
    for (logical, kind, physical) in retained {
        if !args.purge_data {
            println!("retained {kind} {physical} ({logical})");
            continue;
        }
        match kind.as_str() {
            "AWS::S3::Bucket" => {
                let versions = purge::delete_bucket(&sdk, physical)
                    .await
                    .map_err(Failure::Failed)?;
                println!("deleted {kind} {physical} ({versions} object versions)");
            }
            "AWS::DynamoDB::Table" => {
                purge::delete_table(&sdk, physical)
                    .await
                    .map_err(Failure::Failed)?;
                println!("deleted {kind} {physical}");
            }
            "AWS::KMS::Key" => {
                purge::schedule_key_deletion(&sdk, physical)
                    .await
                    .map_err(Failure::Failed)?;
                println!("scheduled {kind} {physical} for deletion in 7 days");
            }
            _ => println!(
                "retained {kind} {physical} ({logical}): sdp does not know how to purge it"
            ),
        }
    }
    Ok(())
}

/// The logical ids the template keeps on deletion (`DeletionPolicy: Retain`).
fn retained_logical_ids(template: &Rendered) -> Vec<String> {
    template.document["Resources"]
        .as_mapping()
        .into_iter()
        .flatten()
        .filter(|(_, resource)| resource["DeletionPolicy"] == "Retain")
        .filter_map(|(id, _)| id.as_str().map(str::to_owned))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_data_bucket_aggregates_table_and_key_are_retained() {
        let template =
            render::render_platform(&templates::embedded(), &regions::load("us-west-2").unwrap())
                .unwrap();
        let mut retained = retained_logical_ids(&template);
        retained.sort();
        assert_eq!(retained, ["AggregatesTable", "DataBucket", "DataKey"]);
    }
}

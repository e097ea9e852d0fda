//! `sdp diff`: the change set a deploy would make, listed on stdout and deleted, never executed.

use anyhow::anyhow;

use super::deploy::{change_set_parameters, prepare, Purpose};
use crate::args::DiffArgs;
use crate::aws::cloudformation::{ChangeSetOutcome, CloudFormation};
use crate::exit::Failure;
use crate::stack::status::{classify, StatusClass};

pub async fn run(args: &DiffArgs) -> Result<(), Failure> {
    let (stack, region) = (args.stack.stack_name.as_str(), args.stack.region.as_str());
    let release = prepare(&args.stack, &args.params, &args.artifacts, Purpose::Diff).await?;
    let cfn = CloudFormation::new(&release.sdk);
    let Some(current) = cfn.describe_stack(stack).await.map_err(Failure::Failed)? else {
        // A change set on a missing stack would leave an empty stack behind: say it plainly.
        println!("stack `{stack}` does not exist in {region}: a deploy would create all of it");
        return Ok(());
    };
    if classify(&current.status) != StatusClass::Stable {
        return Err(Failure::Failed(anyhow!(
            "stack `{stack}` is {}; a diff needs a settled stack",
            current.status
        )));
    }
    let parameters: Vec<_> = change_set_parameters(&release, Some(&current))
        .into_iter()
        .collect();
    match cfn
        .create_change_set(stack, false, &release.template_url, &parameters)
        .await
        .map_err(Failure::Failed)?
    {
        ChangeSetOutcome::Empty => println!("no changes"),
        ChangeSetOutcome::Ready { id, changes } => {
            for change in &changes {
                println!("{}", change.line());
            }
            if changes.is_empty() {
                println!("no resource changes (parameter values only)");
            }
            cfn.delete_change_set(&id).await.map_err(Failure::Failed)?;
        }
    }
    Ok(())
}

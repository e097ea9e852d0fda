//! The platform `sdp verify` and `sdp load` talk to: URLs given on the command line (e.g. the ones
//! `sdp local` prints), or a deployed stack's outputs, with its access mode.

use anyhow::anyhow;

use crate::args::{StackArgs, TargetArgs};
use crate::exit::Failure;
use crate::http::Client;
use crate::probe::scenario::Counts;

/// The three base URLs and the API key to send.
#[derive(Debug, Clone)]
pub struct Target {
    pub api: String,
    pub reports: String,
    pub predictions: String,
    pub api_key: Option<String>,
}

impl Target {
    /// A campaign's lifetime totals from the reports API (CONTRACT §4.2), or why there are none.
    pub async fn campaign_totals(&self, client: &Client, campaign: i64) -> Result<Counts, String> {
        let url = format!("{}/reports/campaigns/{campaign}", self.reports);
        match client.get(&url).await {
            Ok(answer) if answer.status == 200 => answer
                .json()
                .and_then(|body| {
                    Some(Counts {
                        bids: body["bids"].as_i64()?,
                        imps: body["imps"].as_i64()?,
                        clicks: body["clicks"].as_i64()?,
                    })
                })
                .ok_or_else(|| {
                    format!(
                        "the report is not in the documented shape: {}",
                        answer.excerpt()
                    )
                }),
            Ok(answer) => Err(format!(
                "the report answered {}: {}",
                answer.status,
                answer.excerpt()
            )),
            Err(e) => Err(format!("the report did not answer: {e}")),
        }
    }
}

pub async fn resolve(args: &TargetArgs) -> Result<Target, Failure> {
    if let (Some(api), Some(reports), Some(predictions)) =
        (&args.api, &args.reports, &args.predictions)
    {
        return Ok(Target {
            api: trimmed(api),
            reports: trimmed(reports),
            predictions: predictions.clone(),
            api_key: args.api_key.clone(),
        });
    }
    let Some(region) = &args.region else {
        return Err(Failure::CouldNotRun(anyhow!(
            "say where the platform is: --region R [--stack-name S] for a deployed stack, or \
             --api URL --reports URL --predictions URL (as `sdp local` prints them)"
        )));
    };
    let stack = StackArgs {
        region: region.clone(),
        stack_name: args.stack_name.clone(),
    };
    let (outputs, status) = stack_outputs(&stack).await?;
    let output = |key: &str| {
        outputs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .ok_or_else(|| {
                Failure::Failed(anyhow!(
                    "stack `{}` has no output {key} (status {status}); is it an sdp stack, deployed completely?",
                    args.stack_name,
                ))
            })
    };
    let auth = output("ApiAuth").unwrap_or_else(|_| "NONE".to_owned());
    match auth.as_str() {
        "IAM" => {
            return Err(Failure::CouldNotRun(anyhow!(
                "stack `{}` uses IAM auth for its APIs, and sdp does not sign requests yet; \
                 verify a stack deployed with ApiAuth=API_KEY or NONE",
                args.stack_name
            )))
        }
        "API_KEY" if args.api_key.is_none() => {
            return Err(Failure::CouldNotRun(anyhow!(
                "stack `{}` requires an API key: pass --api-key (or SDP_API_KEY); its value is \
                 `aws apigateway get-api-keys --name-query {}-default --include-values \
                 --query 'items[0].value' --output text --region {region}`",
                args.stack_name,
                args.stack_name
            )))
        }
        _ => {}
    }
    Ok(Target {
        api: trimmed(&output("UrlForAPI")?),
        reports: trimmed(&output("UrlForReports")?),
        predictions: output("UrlForPredictions")?,
        api_key: args.api_key.clone(),
    })
}

/// The outputs and status of a deployed stack.
#[cfg(feature = "aws")]
async fn stack_outputs(stack: &StackArgs) -> Result<(Vec<(String, String)>, String), Failure> {
    let (_, current) = super::existing_stack(stack).await?;
    Ok((current.outputs, current.status))
}

#[cfg(not(feature = "aws"))]
async fn stack_outputs(_: &StackArgs) -> Result<(Vec<(String, String)>, String), Failure> {
    Err(super::left_out("aws"))
}

fn trimmed(url: &str) -> String {
    url.trim_end_matches('/').to_owned()
}

//! The rendered template creates on moto server (DESIGN.md §3) through the real AWS SDK for Rust:
//! `CreateStack` reaches `CREATE_COMPLETE` with the contract's outputs, well formed. This is the
//! guard that the one template serves both AWS and moto (no reference to a type moto skips).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test file: a panic is the failure report

use anyhow::{ensure, Context, Result};

use sdp::{regions, render};
use sdp_scenarios::platform::{deploy_platform, s3_client, sdk_config};
use sdp_scenarios::MotoServer;

fn is_api_url(url: &str, region: &str) -> bool {
    let Some(rest) = url.strip_prefix("https://") else {
        return false;
    };
    let Some((api_id, host_and_path)) = rest.split_once('.') else {
        return false;
    };
    !api_id.is_empty()
        && api_id.chars().all(|c| c.is_ascii_alphanumeric())
        && host_and_path == format!("execute-api.{region}.amazonaws.com/{}", render::STAGE)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rendered_template_creates_on_moto_with_well_formed_outputs_in_every_region(
) -> Result<()> {
    let moto = MotoServer::start()?;
    for region in regions::supported() {
        let config = sdk_config(&moto.endpoint, region).await;
        let platform = deploy_platform(&config, "sdp").await?;
        let mut urls = std::collections::BTreeSet::new();
        for key in ["UrlForAPI", "UrlForReports", "UrlForPredictions"] {
            let url = platform.output(key)?;
            ensure!(
                is_api_url(url, region),
                "{region} {key} is not an API base URL: {url}"
            );
            urls.insert(url.to_owned());
        }
        ensure!(urls.len() == 3, "the three APIs share a URL: {urls:?}");
        // The bucket output names a bucket that really exists.
        let bucket = platform.output("Bucket")?;
        s3_client(&config)
            .head_bucket()
            .bucket(bucket)
            .send()
            .await
            .with_context(|| format!("the Bucket output `{bucket}` does not exist"))?;
    }
    Ok(())
}

#[test]
fn api_url_shape_is_checked_strictly() {
    assert!(is_api_url(
        "https://abc123.execute-api.us-west-2.amazonaws.com/v1",
        "us-west-2"
    ));
    assert!(!is_api_url(
        "https://abc123.execute-api.us-west-2.amazonaws.com/v1/",
        "us-west-2"
    ));
    assert!(!is_api_url(
        "http://abc123.execute-api.us-west-2.amazonaws.com/v1",
        "us-west-2"
    ));
    assert!(!is_api_url(
        "https://.execute-api.us-west-2.amazonaws.com/v1",
        "us-west-2"
    ));
    assert!(!is_api_url(
        "https://abc123.execute-api.eu-west-1.amazonaws.com/v1",
        "us-west-2"
    ));
}

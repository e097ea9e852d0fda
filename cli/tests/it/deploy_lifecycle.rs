//! The deploy lifecycle with the real `sdp` binary against moto (through the harness launcher):
//! deploy → outputs → deploy unchanged (no changes, nothing uploaded, no change set left) →
//! deploy with a parameter (an update) → destroy (stack gone, data retained and named). And the
//! refusals that come before any AWS call, with exit code 2; and declining at the prompt.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test file: a panic is the failure report

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

use sdp_scenarios::platform::{s3_client, sdk_config};
use sdp_scenarios::MotoServer;

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn sdp(endpoint: &str, home: &Path, args: &[&str]) -> Run {
    let Output {
        status,
        stdout,
        stderr,
    } = Command::new(env!("CARGO_BIN_EXE_sdp"))
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home) // no ~/.aws of the machine
        .env("CI", "true")
        .env("AWS_ENDPOINT_URL", endpoint)
        .env("AWS_REGION", "us-west-2")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    Run {
        code: status.code(),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    }
}

/// `sdp` on a pseudo-terminal (util-linux `script`), its prompt answered with `answer`. Output
/// is stdout and stderr together, as a user sees them.
fn sdp_on_terminal(endpoint: &str, home: &Path, args: &[&str], answer: &str) -> Run {
    use std::io::Write;
    let command = std::iter::once(env!("CARGO_BIN_EXE_sdp"))
        .chain(args.iter().copied())
        .map(|word| format!("'{word}'"))
        .collect::<Vec<_>>()
        .join(" ");
    let mut child = Command::new("script")
        .args(["--quiet", "--return", "--command", &command, "/dev/null"])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("AWS_ENDPOINT_URL", endpoint)
        .env("AWS_REGION", "us-west-2")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("util-linux `script` runs the command on a pseudo-terminal");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(answer.as_bytes())
        .unwrap();
    let Output {
        status,
        stdout,
        stderr,
    } = child.wait_with_output().unwrap();
    Run {
        code: status.code(),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    }
}

/// Function builds for every function: placeholder executables (moto never runs them).
fn artifacts(dir: &Path) -> PathBuf {
    for function in sdp::render::FUNCTIONS
        .iter()
        .map(|f| f.to_ascii_lowercase())
    {
        let path = dir.join("lambda").join(&function);
        std::fs::create_dir_all(&path).unwrap();
        std::fs::write(path.join("bootstrap"), format!("#!/bin/sh\n# {function}\n")).unwrap();
    }
    dir.join("lambda")
}

fn output_urls(stdout: &str) -> Vec<String> {
    stdout
        .lines()
        .filter(|l| l.starts_with("UrlFor"))
        .map(|l| l.split_whitespace().nth(1).unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_outputs_redeploy_update_and_destroy_behave_as_users_rely_on() {
    let moto = MotoServer::start().unwrap();
    let work = std::env::temp_dir().join(format!("sdp-lifecycle-{}", std::process::id()));
    std::fs::create_dir_all(&work).unwrap();
    let builds = artifacts(&work);
    let builds = builds.to_str().unwrap();
    let outputs_file = work.join("outputs.json");
    std::fs::write(&outputs_file, r#"{"KeptFromBefore": "yes"}"#).unwrap();
    let run = |args: &[&str]| sdp(&moto.endpoint, &work, args);

    // 1. A first deploy creates the stack and prints the three URLs.
    let first = run(&[
        "deploy",
        "--yes",
        "--artifacts",
        builds,
        "--outputs-file",
        outputs_file.to_str().unwrap(),
    ]);
    assert_eq!(first.code, Some(0), "{}", first.stderr);
    let urls = output_urls(&first.stdout);
    assert_eq!(urls.len(), 3, "stdout: {}", first.stdout);
    assert!(
        urls.iter()
            .all(|u| u.starts_with("https://") && u.ends_with("/v1")),
        "{urls:?}"
    );
    assert!(
        first
            .stderr
            .contains("created artifact bucket sdp-artifacts-123456789012-us-west-2"),
        "{}",
        first.stderr
    );
    // moto gives a caller ARN the simulator cannot take: the pre-flight says so and goes on.
    assert!(
        first
            .stderr
            .contains("note: permissions not checked ahead ("),
        "{}",
        first.stderr
    );
    let file: Value =
        serde_json::from_str(&std::fs::read_to_string(&outputs_file).unwrap()).unwrap();
    assert_eq!(
        file["KeptFromBefore"], "yes",
        "the outputs file is merged, not overwritten"
    );
    assert!(file["UrlForAPI"].as_str().unwrap().starts_with("https://"));

    // 2. `outputs --format json` gives the same outputs, on stdout only.
    let outputs = run(&["outputs", "--format", "json"]);
    assert_eq!(outputs.code, Some(0), "{}", outputs.stderr);
    let json: Value = serde_json::from_str(&outputs.stdout).unwrap();
    for key in ["UrlForAPI", "UrlForReports", "UrlForPredictions", "Bucket"] {
        assert_eq!(json[key], file[key], "{key}");
    }

    // 2b. status shows the state and outputs; watch on a settled stack reports it; diff lists
    // what a parameter change would do and leaves no change set behind.
    let status = run(&["status"]);
    assert_eq!(status.code, Some(0), "{}", status.stderr);
    assert!(
        status.stdout.contains("Status  CREATE_COMPLETE"),
        "{}",
        status.stdout
    );
    assert!(status.stdout.contains("UrlForAPI"), "{}", status.stdout);
    let watch = run(&["watch"]);
    assert_eq!(watch.code, Some(0), "{}", watch.stderr);
    assert!(
        watch.stderr.contains("is CREATE_COMPLETE"),
        "{}",
        watch.stderr
    );

    // 2c. `verify` and `load` find the platform through the stack's outputs. Its APIs want a key
    // (ApiAuth=API_KEY, the default): without one, they say where to get it and send nothing.
    for args in [
        &["verify"][..],
        &["load", "--rate", "10", "--duration", "1s"][..],
    ] {
        let refused = run(args);
        assert_eq!(refused.code, Some(2), "{args:?}: {}", refused.stderr);
        assert!(
            refused
                .stderr
                .contains("requires an API key: pass --api-key (or SDP_API_KEY)"),
            "{}",
            refused.stderr
        );
        assert!(
            refused.stderr.contains("get-api-keys --name-query"),
            "{}",
            refused.stderr
        );
    }

    // 3. The same deploy again: nothing uploaded, no changes, no change set left behind.
    let config = sdk_config(&moto.endpoint, "us-west-2").await;
    let cfn = aws_sdk_cloudformation::Client::new(&config);
    let change_sets = || async {
        cfn.list_change_sets()
            .stack_name("sdp")
            .send()
            .await
            .unwrap()
            .summaries()
            .len()
    };
    let before = change_sets().await;
    let again = run(&["deploy", "--yes", "--artifacts", builds]);
    assert_eq!(again.code, Some(0), "{}", again.stderr);
    assert!(
        again.stderr.contains("uploaded 0 bytes"),
        "{}",
        again.stderr
    );
    assert!(again.stderr.contains("no changes"), "{}", again.stderr);
    assert_eq!(output_urls(&again.stdout), urls);
    assert_eq!(change_sets().await, before, "no change set was left behind");

    let diff = run(&[
        "diff",
        "--artifacts",
        builds,
        "--param",
        "AggregationPeriod=7",
    ]);
    assert_eq!(diff.code, Some(0), "{}", diff.stderr);
    assert!(!diff.stdout.is_empty());
    assert_eq!(
        change_sets().await,
        before,
        "diff left no change set behind"
    );

    // 4. A parameter change is an update; the other parameters keep their values.
    let update = run(&[
        "deploy",
        "--yes",
        "--artifacts",
        builds,
        "--param",
        "AggregationPeriod=5",
    ]);
    assert_eq!(update.code, Some(0), "{}", update.stderr);
    let stack = cfn
        .describe_stacks()
        .stack_name("sdp")
        .send()
        .await
        .unwrap();
    let stack = stack.stacks().first().unwrap();
    let parameter = |key: &str| {
        stack
            .parameters()
            .iter()
            .find(|p| p.parameter_key() == Some(key))
            .and_then(|p| p.parameter_value())
            .map(str::to_owned)
    };
    assert_eq!(parameter("AggregationPeriod").as_deref(), Some("5"));
    assert_eq!(parameter("ApiAuth").as_deref(), Some("API_KEY"));
    assert_eq!(
        stack.stack_status().map(|s| s.as_str()),
        Some("UPDATE_COMPLETE")
    );

    // 4b. On a terminal the changes are shown and confirmation asked; "n" deletes the change
    // set, exits 1 and changes nothing.
    let before = change_sets().await;
    let declined = sdp_on_terminal(
        &moto.endpoint,
        &work,
        &[
            "deploy",
            "--artifacts",
            builds,
            "--param",
            "AggregationPeriod=7",
        ],
        "n\n",
    );
    assert_eq!(
        declined.code,
        Some(1),
        "{}{}",
        declined.stdout,
        declined.stderr
    );
    assert!(
        declined.stdout.contains("apply these changes? [y/N]")
            && declined
                .stdout
                .contains("declined; the change set was deleted"),
        "{}",
        declined.stdout
    );
    assert_eq!(
        change_sets().await,
        before,
        "the declined change set was deleted"
    );
    let still = cfn
        .describe_stacks()
        .stack_name("sdp")
        .send()
        .await
        .unwrap();
    let period = still.stacks()[0]
        .parameters()
        .iter()
        .find(|p| p.parameter_key() == Some("AggregationPeriod"))
        .and_then(|p| p.parameter_value())
        .map(str::to_owned);
    assert_eq!(period.as_deref(), Some("5"), "declining changed nothing");

    // 5. Destroy: the stack goes, the data bucket stays and is named.
    let bucket = json["Bucket"].as_str().unwrap().to_owned();
    let destroy = run(&["destroy", "--yes"]);
    assert_eq!(destroy.code, Some(0), "{}", destroy.stderr);
    assert!(
        destroy
            .stdout
            .contains(&format!("retained AWS::S3::Bucket {bucket} (DataBucket)")),
        "{}",
        destroy.stdout
    );
    let gone = cfn.describe_stacks().stack_name("sdp").send().await;
    assert!(gone.is_err(), "the stack still exists");
    assert_eq!(run(&["status"]).code, Some(1), "no stack, no status");
    let outputs = run(&["outputs"]);
    assert_eq!(outputs.code, Some(1));
    assert!(
        outputs
            .stderr
            .contains("there is no stack `sdp` in us-west-2"),
        "{}",
        outputs.stderr
    );
    // Destroying what is not there is not an error.
    assert_eq!(run(&["destroy", "--yes"]).code, Some(0));
    s3_client(&config)
        .head_bucket()
        .bucket(&bucket)
        .send()
        .await
        .expect("the retained data bucket still exists");
    let _ = std::fs::remove_dir_all(&work);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn destroy_with_purge_data_deletes_the_bucket_with_every_version_the_table_and_the_key() {
    let moto = MotoServer::start().unwrap();
    let work = std::env::temp_dir().join(format!("sdp-purge-{}", std::process::id()));
    std::fs::create_dir_all(&work).unwrap();
    let builds = artifacts(&work);
    let run = |args: &[&str]| sdp(&moto.endpoint, &work, args);
    let deploy = run(&[
        "deploy",
        "--yes",
        "--stack-name",
        "purge",
        "--artifacts",
        builds.to_str().unwrap(),
    ]);
    assert_eq!(deploy.code, Some(0), "{}", deploy.stderr);

    let config = sdk_config(&moto.endpoint, "us-west-2").await;
    let resources = aws_sdk_cloudformation::Client::new(&config)
        .describe_stack_resources()
        .stack_name("purge")
        .send()
        .await
        .unwrap();
    let physical = |logical: &str| {
        resources
            .stack_resources()
            .iter()
            .find(|r| r.logical_resource_id() == Some(logical))
            .and_then(|r| r.physical_resource_id())
            .unwrap()
            .to_owned()
    };
    let (bucket, table, key) = (
        physical("DataBucket"),
        physical("AggregatesTable"),
        physical("DataKey"),
    );
    // Versioned data: three versions of one object and a deleted one (a delete marker). moto's
    // CloudFormation skips the template's VersioningConfiguration, so it is switched on here.
    let s3 = s3_client(&config);
    s3.put_bucket_versioning()
        .bucket(&bucket)
        .versioning_configuration(
            aws_sdk_s3::types::VersioningConfiguration::builder()
                .status(aws_sdk_s3::types::BucketVersioningStatus::Enabled)
                .build(),
        )
        .send()
        .await
        .unwrap();
    for body in ["1", "2", "3"] {
        s3.put_object()
            .bucket(&bucket)
            .key("raw/bcns/x.json")
            .body(body.as_bytes().to_vec().into())
            .send()
            .await
            .unwrap();
    }
    s3.put_object()
        .bucket(&bucket)
        .key("gone")
        .body(b"x".to_vec().into())
        .send()
        .await
        .unwrap();
    s3.delete_object()
        .bucket(&bucket)
        .key("gone")
        .send()
        .await
        .unwrap();

    let destroy = run(&["destroy", "--yes", "--stack-name", "purge", "--purge-data"]);
    assert_eq!(destroy.code, Some(0), "{}", destroy.stderr);
    assert!(
        destroy.stdout.contains(&format!(
            "deleted AWS::S3::Bucket {bucket} (5 object versions)"
        )),
        "{}",
        destroy.stdout
    );
    assert!(
        s3.head_bucket().bucket(&bucket).send().await.is_err(),
        "the bucket is gone"
    );
    let described = aws_sdk_dynamodb::Client::new(&config)
        .describe_table()
        .table_name(&table)
        .send()
        .await;
    let err = described.expect_err("the aggregates table is gone");
    assert!(
        err.as_service_error()
            .is_some_and(|e| e.is_resource_not_found_exception()),
        "{err:?}"
    );
    let key = aws_sdk_kms::Client::new(&config)
        .describe_key()
        .key_id(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(
        key.key_metadata()
            .and_then(|k| k.key_state())
            .map(|s| s.as_str()),
        Some("PendingDeletion")
    );
    let _ = std::fs::remove_dir_all(&work);
}

#[test]
fn refusals_come_before_any_aws_call_with_exit_code_2() {
    // Port 9 (discard) on loopback: any AWS call would fail with a connection error instead.
    let home = std::env::temp_dir();
    let endpoint = "http://127.0.0.1:9";
    let cases: [(&[&str], &str); 4] = [
        (
            &["deploy", "--region", "ap-south-1", "--yes"],
            "unsupported region `ap-south-1`",
        ),
        (&["deploy"], "pass --yes"),
        (
            &["deploy", "--yes", "--param", "AggregationPeriodd=5"],
            "`AggregationPeriodd` is not a parameter",
        ),
        (
            &["deploy", "--yes", "--artifacts", "/nonexistent"],
            "scripts/build-lambdas",
        ),
    ];
    for (args, message) in cases {
        let run = sdp(endpoint, &home, args);
        assert_eq!(run.code, Some(2), "{args:?}: {}", run.stderr);
        assert!(run.stderr.contains(message), "{args:?}: {}", run.stderr);
        assert_eq!(run.stdout, "", "{args:?}");
    }
    let destroy = sdp(endpoint, &home, &["destroy"]);
    assert_eq!(destroy.code, Some(2));
    assert!(destroy.stderr.contains("pass --yes"), "{}", destroy.stderr);
}

#[test]
fn every_command_has_help() {
    for command in [
        "render", "deploy", "outputs", "destroy", "status", "diff", "watch", "verify", "load",
    ] {
        let run = sdp(
            "http://127.0.0.1:9",
            &std::env::temp_dir(),
            &[command, "--help"],
        );
        assert_eq!(run.code, Some(0), "{command}");
        assert!(run.stdout.contains("--region"), "{command}: {}", run.stdout);
    }
}

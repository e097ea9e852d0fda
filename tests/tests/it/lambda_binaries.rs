//! The real release binaries (`scripts/build-lambdas`: zigbuild for glibc 2.34) run under the
//! Lambda Runtime API emulator against moto. Ingest takes API Gateway events for the original's
//! integration scenario; the processor takes what Kinesis holds as Kinesis events (one batch
//! twice); the report route answers exactly N, M, K; and the processor's Firehose deliveries hold
//! each joined impression and click. Down the lake: the compactor, started by a scheduled event,
//! turns gzipped raw objects into Parquet; the trainer learns from that Parquet and promotes a
//! model; the predict function then serves it. Also prints each function's init time (exec →
//! first `next`) and binary size, for the benchmark note; nothing here is timed.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test file: a panic is the failure report

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{json, Value};

use sdp_core::synthetic::{Rng, World};
use sdp_scenarios::lambda::{Outcome, RuntimeApi};
use sdp_scenarios::platform::{
    create_delivery_streams, deploy_platform, deploy_platform_with, lines_under, read_stream,
    sdk_config, FunctionEnvironment,
};
use sdp_scenarios::synthetic_lake::land_raw;
use sdp_scenarios::{fixtures, repo_root, MotoServer};

const TIMEOUT: Duration = Duration::from_secs(60);

fn binary(function: &str) -> PathBuf {
    let path = repo_root()
        .join("target/lambda")
        .join(function)
        .join("bootstrap");
    assert!(
        path.is_file(),
        "{} is missing: run scripts/build-lambdas (scripts/test runs it before the tests)",
        path.display()
    );
    path
}

/// What Lambda itself gives every function (a region, credentials; here moto as the endpoint of
/// every service), then the environment the stack on moto gave `function`: never a name written
/// in the test, so a template that names the wrong resource fails here.
fn function_env(moto: &MotoServer, function: &FunctionEnvironment) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = [
        ("AWS_REGION", "us-west-2"),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_ENDPOINT_URL", moto.endpoint.as_str()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    env.extend(function.pairs());
    env
}

fn respond(api: &RuntimeApi, payload: &Value) -> Value {
    match api.invoke(&payload.to_string(), TIMEOUT).unwrap() {
        Outcome::Response(body) => serde_json::from_str(&body).unwrap(),
        Outcome::Error(error) => panic!("the function failed: {error}"),
    }
}

fn http_body(response: &Value) -> Value {
    serde_json::from_str(response["body"].as_str().unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn release_binaries_under_the_runtime_api_count_the_originals_scenario_exactly() {
    let moto = MotoServer::start().unwrap();
    let config = sdk_config(&moto.endpoint, "us-west-2").await;
    // Two-minute windows, as the stack parameter sets them: the processor reads its settings
    // from the environment the stack gives it.
    let platform = deploy_platform_with(&config, "binaries", &[("AggregationPeriod", "2")])
        .await
        .unwrap();
    let logs = std::env::temp_dir().join(format!("sdp-lambda-logs-{}", std::process::id()));
    std::fs::create_dir_all(&logs).unwrap();

    let env_of =
        |function: &str| function_env(&moto, &platform.function_environment(function).unwrap());
    let stream = platform.resource("EventStream").unwrap().to_owned();

    let ingest = RuntimeApi::start("ingest").unwrap();
    let processor = RuntimeApi::start("processor").unwrap();
    let reports = RuntimeApi::start("reports").unwrap();
    let ingest_env = env_of("Ingest");
    // Three ingest instances take invocations concurrently, as Lambda scales out.
    let mut processes = Vec::new();
    let mut init = Vec::new();
    for instance in 0..3 {
        let (process, took) = ingest
            .spawn(
                &binary("ingest"),
                &ingest_env,
                &logs.join(format!("ingest-{instance}.log")),
            )
            .unwrap();
        processes.push(process);
        init.push(("ingest", took));
    }
    let bucket = platform.resource("DataBucket").unwrap().to_owned();
    // moto's CloudFormation skips Firehose: the delivery streams are made by the names the
    // template declares, and the processor finds them only if its environment names those.
    create_delivery_streams(&config, "binaries", &bucket)
        .await
        .unwrap();
    let processor_env = env_of("Processor");
    let (process, took) = processor
        .spawn(
            &binary("processor"),
            &processor_env,
            &logs.join("processor.log"),
        )
        .unwrap();
    processes.push(process);
    init.push(("processor", took));
    let reports_env = env_of("Reports");
    let (process, took) = reports
        .spawn(&binary("reports"), &reports_env, &logs.join("reports.log"))
        .unwrap();
    processes.push(process);
    init.push(("reports", took));

    // The scenario, posted from six client threads at once.
    let (n, m, k) = (331_usize, 127_usize, 41_usize);
    let campaign = 1_000_001;
    let requests: Vec<Value> = fixtures::integration_scenario(n, m, k, campaign)
        .iter()
        .map(|(route, body)| fixtures::post(route, body).unwrap())
        .collect();
    std::thread::scope(|scope| {
        for share in requests.chunks(requests.len().div_ceil(6)) {
            let ingest = &ingest;
            scope.spawn(move || {
                for request in share {
                    let response = respond(ingest, request);
                    assert_eq!(response["statusCode"], 200, "{response}");
                }
            });
        }
    });

    // Every acknowledged bid is in the stream: checked before processing, so a loss is placed
    // on the right side (the stream and its emulator, or the processor).
    let records = read_stream(&config, &stream).await.unwrap();
    let stored_bids: std::collections::BTreeSet<String> = records
        .iter()
        .filter_map(|(_, _, data)| serde_json::from_slice::<Value>(data).ok())
        .filter(|event| event["type"] == "bid")
        .map(|event| event["tx_id"].as_str().unwrap_or_default().to_owned())
        .collect();
    let missing: Vec<String> = (0..n)
        .map(|i| format!("it-{campaign}-{i:04}"))
        .filter(|tx| !stored_bids.contains(tx))
        .collect();
    assert!(
        missing.is_empty(),
        "acknowledged bids absent from the stream: {missing:?}"
    );

    // What Kinesis holds, to the processor in batches of 100 (the first one delivered twice).
    let mut batches: Vec<&[(String, String, Vec<u8>)]> = records.chunks(100).collect();
    batches.insert(1, batches[0]);
    for batch in batches {
        let response = respond(&processor, &fixtures::kinesis_batch(batch).unwrap());
        assert_eq!(response, json!({"batchItemFailures": []}));
    }

    let report = respond(&reports, &fixtures::get_report(campaign).unwrap());
    assert_eq!(report["statusCode"], 200, "{report}");
    assert_eq!(
        http_body(&report),
        json!({"campaign_item_id": campaign, "bids": n, "imps": m, "clicks": k})
    );
    // The processor landed each joined impression and click in the lake, through Firehose.
    for (dataset, expected) in [("impressions", m), ("clicks", k)] {
        let lines = lines_under(&config, &bucket, &format!("raw/{dataset}/"))
            .await
            .unwrap();
        let distinct: std::collections::BTreeSet<String> = lines.into_iter().collect();
        assert_eq!(distinct.len(), expected, "{dataset}");
    }

    for (function, took) in init {
        report_init(function, took);
    }
    drop(processes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn release_compactor_trainer_and_predict_binaries_take_raw_events_to_served_predictions() {
    let moto = MotoServer::start().unwrap();
    let config = sdk_config(&moto.endpoint, "us-west-2").await;
    let platform = deploy_platform(&config, "models").await.unwrap();
    let bucket = platform.resource("DataBucket").unwrap().to_owned();
    let logs = std::env::temp_dir().join(format!("sdp-model-logs-{}", std::process::id()));
    std::fs::create_dir_all(&logs).unwrap();
    let env_of = |function: &str| platform.function_environment(function).unwrap();
    let compactor = RuntimeApi::start("compactor").unwrap();
    let predict = RuntimeApi::start("predict").unwrap();
    let trainer = RuntimeApi::start("trainer").unwrap();
    let (compactor_process, compactor_init) = compactor
        .spawn(
            &binary("compactor"),
            &function_env(&moto, &env_of("Compactor")),
            &logs.join("compactor.log"),
        )
        .unwrap();
    // Predict checks for a new model on every request, not every minute as deployed.
    let predict_env = env_of("Predict")
        .with("MODEL_REFRESH_SECONDS", "0")
        .unwrap();
    let (predict_process, predict_init) = predict
        .spawn(
            &binary("predict"),
            &function_env(&moto, &predict_env),
            &logs.join("predict.log"),
        )
        .unwrap();
    // The synthetic lake is of a fixed day, further back than the stack's TrainingDays allows.
    let trainer_env = env_of("Trainer").with("TRAINING_DAYS", "3650").unwrap();
    let trainer_log = logs.join("trainer.log");
    let (trainer_process, trainer_init) = trainer
        .spawn(
            &binary("trainer"),
            &function_env(&moto, &trainer_env),
            &trainer_log,
        )
        .unwrap();

    let request = r#"{"campaignItemId":"3","domain":"d7.example","creativeId":"cr2","creativeCategory":"cat1","winPrice":120}"#;
    let score = |answer: &Value| {
        http_body(answer)["predictions"][0]["score"]
            .as_f64()
            .unwrap()
    };
    let bootstrap = respond(&predict, &fixtures::post_prediction(request).unwrap());
    assert_eq!(bootstrap["statusCode"], 200, "{bootstrap}");
    assert_eq!(score(&bootstrap), 0.5);
    let missing = respond(
        &predict,
        &fixtures::post_prediction(r#"{"domain":"x"}"#).unwrap(),
    );
    assert_eq!(missing["statusCode"], 400, "{missing}");

    let objects = sdp_aws::S3Objects::new(sdp_scenarios::platform::s3_client(&config), &bucket);
    // Raw objects of 2026-11-21: every hour of it is closed by now.
    land_raw(&objects, &World::new(&mut Rng(42)), 1, 6_000, "first")
        .await
        .unwrap();
    let compacted = respond(&compactor, &fixtures::scheduled().unwrap());
    let partitions = compacted["compacted"].as_array().unwrap();
    let rows: u64 = partitions.iter().map(|p| p["rows"].as_u64().unwrap()).sum();
    assert!(partitions.len() > 24, "{compacted}"); // bcns and impressions, hour by hour
    assert_eq!(compacted["rejected"], json!([]), "{compacted}");
    let record = respond(&trainer, &fixtures::scheduled().unwrap());
    assert_eq!(record["outcome"], "promoted", "{record}");
    assert_eq!(record["bids"], 6_000, "{record}");
    assert_eq!(rows, 6_000 + record["won"].as_u64().unwrap(), "{compacted}");
    let emitted = std::fs::read_to_string(&trainer_log).unwrap();
    assert!(
        emitted.contains(r#""ModelPromoted":1"#) && emitted.contains(r#""Namespace":"sdp/models""#),
        "no metrics line in the trainer's output:\n{emitted}"
    );

    let served = respond(&predict, &fixtures::post_prediction(request).unwrap());
    assert_eq!(served["statusCode"], 200, "{served}");
    assert_ne!(
        score(&served),
        0.5,
        "predict still serves the bootstrap: {served}"
    );
    let again = respond(&trainer, &fixtures::scheduled().unwrap());
    assert_eq!(again["outcome"], "no new data", "{again}");

    for (function, took) in [
        ("compactor", compactor_init),
        ("predict", predict_init),
        ("trainer", trainer_init),
    ] {
        report_init(function, took);
    }
    drop((compactor_process, predict_process, trainer_process));
}

/// Prints a function's init time (exec to its first `/next`) and its bootstrap's size.
fn report_init(function: &str, took: std::time::Duration) {
    let size = std::fs::metadata(binary(function))
        .map(|m| m.len())
        .unwrap_or(0);
    eprintln!(
        "lambda {function}: init {:.1} ms, bootstrap {size} bytes",
        took.as_secs_f64() * 1000.0
    );
}

//! Retraining, the model store and the model cache (`sdp-app`), each test body run twice: against
//! moto S3, in the bucket the template creates, as the trainer and predict Lambdas run them, and
//! against a local directory, as `sdp local` does. On a lake of real Parquet files (compacted by
//! `sdp-lake` from JSON lines of bids drawn from a known logistic world): a run promotes a model
//! learned from the lake and the cache starts serving it; a run with no new data does nothing; a
//! worse candidate is not promoted; a stale promotion stands down; a broken model file never
//! serves; a lake beyond the limit is learned from a sample. And the predict handler answers real
//! API Gateway events with the documented shape and 400s.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test file: a panic is the failure report

use std::time::Duration;

use aws_lambda_events::apigw::{ApiGatewayProxyRequest, ApiGatewayProxyResponse};
use aws_lambda_events::encodings::Body;
use serde_json::{json, Map, Value};

use std::sync::Arc;

use sdp_app::model_cache::ModelCache;
use sdp_app::models::{ModelStore, Promotion, Serving};
use sdp_app::retraining::{self, RetrainingSettings};
use sdp_aws::S3Objects;
use sdp_core::model::{hour_of_day, BidFeatures, Model};
use sdp_core::ports::{ObjectStore, Precondition};
use sdp_core::synthetic::{Rng, World};
use sdp_core::train::{train, Example, TrainConfig};
use sdp_fs::FsObjects;
use sdp_functions::handlers;
use sdp_scenarios::platform::lake_bucket_on_moto;
use sdp_scenarios::synthetic_lake::{land, DAY_MS};
use sdp_scenarios::{fixtures, on_both_stores, MotoServer};

const VALID: &str = r#"{"campaignItemId":"3","domain":"d7.example","creativeId":"cr2","creativeCategory":"cat1","winPrice":120}"#;

/// The runs' clock: the lake's day at 20:00, so every partition is within the training window.
const NOW_MS: i64 = DAY_MS + 20 * 3_600_000;

/// A lake's object store and its model store, and what keeps them alive.
struct Lake<O> {
    objects: O,
    models: ModelStore<O>,
    _moto: Option<MotoServer>,
    _dir: Option<tempfile::TempDir>,
}

/// The bucket of a stack deployed on moto.
async fn on_s3() -> Lake<S3Objects> {
    let (moto, objects) = lake_bucket_on_moto("models").await.unwrap();
    Lake {
        models: ModelStore::new(objects.clone(), "models/"),
        objects,
        _moto: Some(moto),
        _dir: None,
    }
}

/// A lake directory, as `sdp local` keeps one.
fn on_a_directory() -> Lake<Arc<FsObjects>> {
    let dir = tempfile::tempdir().unwrap();
    let objects = Arc::new(FsObjects::new(dir.path().join("lake")));
    Lake {
        models: ModelStore::new(Arc::clone(&objects), "models/"),
        objects,
        _moto: None,
        _dir: Some(dir),
    }
}

on_both_stores!(
    a_run_promotes_a_model_learned_from_the_lake_and_the_cache_serves_it,
    a_worse_candidate_is_not_promoted_and_a_stale_promotion_stands_down,
    only_the_newest_versions_are_kept,
    a_lake_beyond_the_limit_is_learned_from_a_sample_of_whole_transactions,
);

fn settings() -> RetrainingSettings {
    RetrainingSettings {
        training_days: 14,
        config: TrainConfig {
            hash_bits: 14,
            ..TrainConfig::default()
        },
        metrics_namespace: Some("sdp/models".into()),
        max_bids: sdp_core::retrain::DEFAULT_MAX_BIDS,
    }
}

fn predict_event(body: &str) -> ApiGatewayProxyRequest {
    serde_json::from_value(fixtures::post_prediction(body).unwrap()).unwrap()
}

fn body(response: &ApiGatewayProxyResponse) -> Value {
    match &response.body {
        Some(Body::Text(text)) => serde_json::from_str(text).unwrap(),
        other => panic!("unexpected body {other:?}"),
    }
}

/// The predict handler's answer to `request`, checked for its shape; its score.
async fn score(cache: &ModelCache<S3Objects>, request: &str) -> f64 {
    let response = handlers::predict(cache, predict_event(request)).await;
    assert_eq!(response.status_code, 200, "{:?}", response.body);
    let answer = body(&response);
    let score = answer["predictions"][0]["score"].as_f64().unwrap();
    let label = answer["predictions"][0]["predicted_label"]
        .as_f64()
        .unwrap();
    assert_eq!(label, if score >= 0.5 { 1.0 } else { 0.0 }, "{answer}");
    score
}

/// The score of [`VALID`] by the model the cache serves now.
async fn served<O: ObjectStore>(cache: &ModelCache<O>) -> f64 {
    cache.model().await.score(&valid_bid())
}

/// The features of [`VALID`] at the hour of the predict handler's clock.
fn valid_bid() -> BidFeatures {
    BidFeatures {
        campaign_item_id: "3".into(),
        domain: "d7.example".into(),
        creative_id: "cr2".into(),
        creative_category: "cat1".into(),
        win_price: 120.0,
        hour: hour_of_day(
            i64::try_from(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_millis(),
            )
            .unwrap(),
        ),
    }
}

async fn a_run_promotes_a_model_learned_from_the_lake_and_the_cache_serves_it<O>(lake: Lake<O>)
where
    O: ObjectStore + Clone,
{
    let cache = ModelCache::new(lake.models.clone(), Duration::ZERO);
    assert_eq!(
        served(&cache).await,
        0.5,
        "the bootstrap serves before any training"
    );

    // Nothing landed yet: the run trains nothing.
    let record = retraining::run(&lake.objects, &lake.models, &settings(), NOW_MS)
        .await
        .unwrap();
    assert_eq!(record["outcome"], "not enough data", "{record}");

    let world = World::new(&mut Rng(42));
    let landed = land(&lake.objects, &world, 1, 6_000, "first")
        .await
        .unwrap();
    let record = retraining::run(&lake.objects, &lake.models, &settings(), NOW_MS)
        .await
        .unwrap();
    assert_eq!(record["outcome"], "promoted", "{record}");
    assert_eq!(record["bids"], 6_000, "{record}");
    assert_eq!(record["sample_rate"], 1.0, "{record}");
    let won = landed.iter().filter(|(_, y)| *y).count();
    assert_eq!(record["won"], won, "{record}");
    assert_eq!(lake.models.versions().await.unwrap().len(), 1);
    let Serving::Model { model, .. } = lake.models.serving(None).await.unwrap() else {
        panic!("nothing serves after a promotion");
    };
    assert_eq!(record["serving"], json!(model.version));
    let metrics = model.metrics.unwrap();
    assert!(metrics.auc > 0.7, "{metrics:?}");
    assert!(metrics.calibration_error < 0.06, "{metrics:?}");
    let last_run = lake.models.last_run().await.unwrap().unwrap();
    assert_eq!(last_run, record);

    // The cache picks the promotion up on its next check, and answers with the promoted model.
    let now_served = served(&cache).await;
    assert_ne!(now_served, 0.5);
    assert_eq!(cache.model().await.version, model.version);
    assert!(
        (now_served - model.score(&valid_bid())).abs() < 1e-12,
        "the cache serves a model scoring {now_served}, the promoted model scores {}",
        model.score(&valid_bid())
    );

    // No new file since: the next run is a listing and nothing else.
    let again = retraining::run(&lake.objects, &lake.models, &settings(), NOW_MS + 3_600_000)
        .await
        .unwrap();
    assert_eq!(again["outcome"], "no new data", "{again}");
    assert_eq!(lake.models.versions().await.unwrap().len(), 1);
    assert_eq!(lake.models.last_run().await.unwrap().unwrap(), record);

    // A broken model file must not serve: predict keeps the model in hand, the trainer fails
    // loudly (its failure alarm), naming the file.
    lake.objects
        .put(
            "models/current.json",
            b"{\"format\":\"nope\"}".to_vec(),
            "application/json",
            Precondition::None,
        )
        .await
        .unwrap();
    assert_eq!(served(&cache).await, now_served);
    land(&lake.objects, &world, 2, 200, "second").await.unwrap();
    let err = retraining::run(&lake.objects, &lake.models, &settings(), NOW_MS)
        .await
        .unwrap_err();
    let message = sdp_core::ports::with_causes(&err);
    assert!(message.contains("models/current.json"), "{message}");
}

async fn a_worse_candidate_is_not_promoted_and_a_stale_promotion_stands_down<O: ObjectStore>(
    lake: Lake<O>,
) {
    let world = World::new(&mut Rng(42));

    // Serving: a model that learned the same world from 40,000 bids.
    let config = settings().config;
    let mut rng = Rng(99);
    let examples: Vec<Example> = (0..40_000)
        .map(|_| {
            let (bid, won, _) = world.sample(&mut rng);
            (bid.vector(config.hash_bits), won)
        })
        .collect();
    let strong = train(&examples, &config, "strong");
    let Promotion::Promoted { etag } = lake.models.promote(&strong, None).await.unwrap() else {
        panic!("the first promotion was refused");
    };

    // The lake holds 400 bids of that world: a candidate from 320 of them is worse on the rest.
    land(&lake.objects, &world, 3, 400, "few").await.unwrap();
    let record = retraining::run(&lake.objects, &lake.models, &settings(), NOW_MS)
        .await
        .unwrap();
    assert_eq!(record["outcome"], "kept the serving model", "{record}");
    assert!(
        record["candidate"]["log_loss"].as_f64().unwrap()
            > record["current"]["log_loss"].as_f64().unwrap()
            || record["candidate"]["auc"].as_f64().unwrap()
                < record["current"]["auc"].as_f64().unwrap(),
        "{record}"
    );
    assert_eq!(record["serving"], "strong");
    assert_eq!(lake.models.versions().await.unwrap(), ["strong"]);
    assert!(matches!(
        lake.models.serving(Some(&etag)).await.unwrap(),
        Serving::Unchanged
    ));

    // A run that read the serving model before another promoted cannot overwrite the newer one.
    let mut other = strong.clone();
    other.version = "other".into();
    let Promotion::Promoted { etag: newer } =
        lake.models.promote(&other, Some(&etag)).await.unwrap()
    else {
        panic!("a promotion over the current ETag was refused");
    };
    let mut stale = strong.clone();
    stale.version = "stale".into();
    assert_eq!(
        lake.models.promote(&stale, Some(&etag)).await.unwrap(),
        Promotion::Superseded
    );
    assert!(matches!(
        lake.models.serving(Some(&newer)).await.unwrap(),
        Serving::Unchanged
    ));
}

async fn only_the_newest_versions_are_kept<O: ObjectStore>(lake: Lake<O>) {
    let mut etag = None;
    for i in 0..8 {
        let mut model = Model::constant(0.5);
        model.version = format!("20261122T{i:02}0000Z-0");
        let Promotion::Promoted { etag: new } =
            lake.models.promote(&model, etag.as_deref()).await.unwrap()
        else {
            panic!("promotion {i} refused");
        };
        etag = Some(new);
    }
    let versions = lake.models.versions().await.unwrap();
    let expected: Vec<String> = (3..8).map(|i| format!("20261122T{i:02}0000Z-0")).collect();
    assert_eq!(versions, expected);
}

#[tokio::test(flavor = "multi_thread")]
async fn predict_answers_api_gateway_events_with_the_documented_shape_and_400s() {
    let lake = on_s3().await;
    let cache = ModelCache::new(lake.models.clone(), Duration::from_secs(60));
    assert_eq!(score(&cache, VALID).await, 0.5);
    assert_eq!(
        score(&cache, &VALID.replace(r#""3""#, "3")).await,
        0.5,
        "a numeric campaign id"
    );

    for field in [
        "campaignItemId",
        "domain",
        "creativeId",
        "creativeCategory",
        "winPrice",
    ] {
        let valid: Map<String, Value> = serde_json::from_str(VALID).unwrap();
        let mut missing = valid.clone();
        missing.remove(field);
        let mut wrong = valid;
        wrong.insert(field.into(), json!({"not": "a value"}));
        for request in [Value::Object(missing), Value::Object(wrong)] {
            let response = handlers::predict(&cache, predict_event(&request.to_string())).await;
            assert_eq!(response.status_code, 400, "{request}");
            assert_eq!(body(&response)["field"], field, "{request}");
        }
    }
    let text_price = VALID.replace("120", "\"120\"");
    let negative = VALID.replace("120", "-1");
    for (request, problem) in [
        (text_price.as_str(), "must be a number"),
        (negative.as_str(), "must not be negative"),
        ("{oops", "not valid JSON"),
        ("[1, 2]", "JSON object"),
    ] {
        let response = handlers::predict(&cache, predict_event(request)).await;
        assert_eq!(response.status_code, 400, "{request}");
        let error = body(&response)["error"].as_str().unwrap().to_owned();
        assert!(error.contains(problem), "{request}: {error}");
    }

    let mut get = predict_event("");
    get.http_method = aws_lambda_events::http::Method::GET;
    assert_eq!(handlers::predict(&cache, get).await.status_code, 405);
    let mut base64 = predict_event("not base64!");
    base64.is_base64_encoded = true;
    assert_eq!(handlers::predict(&cache, base64).await.status_code, 400);
}

/// A lake with more transactions than a run may hold trains on a sample of whole transactions:
/// the bound halves until the sample fits, bids and wins are kept or dropped together, and the
/// model learned from the sample still beats the bootstrap.
async fn a_lake_beyond_the_limit_is_learned_from_a_sample_of_whole_transactions<O: ObjectStore>(
    lake: Lake<O>,
) {
    let world = World::new(&mut Rng(42));
    let landed = land(&lake.objects, &world, 1, 6_000, "big").await.unwrap();
    let limited = RetrainingSettings {
        max_bids: 2_000,
        ..settings()
    };
    let record = retraining::run(&lake.objects, &lake.models, &limited, NOW_MS)
        .await
        .unwrap();
    assert_eq!(record["sample_rate"], 0.25, "{record}");
    let bids = record["bids"].as_u64().unwrap();
    assert!((1_200..=2_000).contains(&bids), "{record}");
    // About the share of wins of the whole lake, and never more wins than bids.
    let share = landed.iter().filter(|(_, y)| *y).count() as f64 / landed.len() as f64;
    let won = record["won"].as_u64().unwrap();
    assert!(won <= bids, "{record}");
    assert!(
        (won as f64 / bids as f64 - share).abs() < 0.05,
        "{record}: the lake's win share is {share}"
    );
    assert_eq!(record["outcome"], "promoted", "{record}");
}

//! Compaction (`sdp_app::compaction`), each test body run twice: against moto S3, in the bucket
//! the template creates, as the compactor Lambda runs it, and against a local directory
//! (`sdp_fs::FsObjects`), as `sdp local` runs it. On gzipped raw objects as Firehose lands them:
//! closed partitions become Parquet that DuckDB reads back with exactly the expected rows and
//! types; a rerun changes nothing; late data is merged into the same bytes a compaction of
//! everything at once gives; expired raw objects change nothing; concurrent runs write one
//! generation; a stale lock is cleared; a corrupt line is reported and the rest kept. And the two
//! stores, given the same raw objects, hold the same Parquet bytes and the same manifests.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test file: a panic is the failure report

use std::collections::BTreeMap;

use serde_json::{json, Value};

use sdp_app::compaction::{self, CompactionSettings};
use sdp_aws::S3Objects;
use sdp_core::lake::{Dataset, DATASETS};
use sdp_core::ports::{Fetched, ObjectStore, Precondition};
use sdp_fs::FsObjects;
use sdp_scenarios::platform::lake_bucket_on_moto;
use sdp_scenarios::{duckdb, fixtures, on_both_stores, MotoServer};

/// 2026-11-22T00:00:00Z, the day of the raw objects.
const DAY_MS: i64 = 1_795_305_600_000;
/// The runs' clock: 2026-11-22T13:00Z. Hours 10 and 11 are closed; hour 12 closes at 13:20.
const NOW_MS: i64 = DAY_MS + 13 * 3_600_000;

/// A lake's object store, and what keeps it alive.
struct Lake<O> {
    objects: O,
    _moto: Option<MotoServer>,
    _dir: Option<tempfile::TempDir>,
}

/// The bucket of a stack deployed on moto.
async fn on_s3() -> Lake<S3Objects> {
    let (moto, objects) = lake_bucket_on_moto("lake").await.unwrap();
    Lake {
        objects,
        _moto: Some(moto),
        _dir: None,
    }
}

/// A lake directory, as `sdp local` keeps one.
fn on_a_directory() -> Lake<FsObjects> {
    let dir = tempfile::tempdir().unwrap();
    Lake {
        objects: FsObjects::new(dir.path().join("lake")),
        _moto: None,
        _dir: Some(dir),
    }
}

on_both_stores!(
    closed_partitions_become_exact_parquet_and_a_rerun_changes_nothing,
    late_data_merges_into_the_bytes_of_one_compaction_and_expired_raw_changes_nothing,
    concurrent_runs_write_one_generation_and_a_dead_runs_lock_is_cleared,
    a_large_hour_is_cut_into_files_in_sort_order_and_late_data_replaces_them_all,
);

fn dataset(name: &str) -> &'static Dataset {
    DATASETS.iter().find(|d| d.name == name).unwrap()
}

fn gzip(lines: &[String]) -> Vec<u8> {
    let text: String = lines.iter().map(|line| format!("{line}\n")).collect();
    fixtures::gzip(text.as_bytes())
}

fn bid(tx: &str, hour: i64, campaign: i64) -> String {
    let ts = DAY_MS + hour * 3_600_000 + 1_000;
    json!({"tx_id": tx, "type": "bid", "ts": ts, "received_at": ts + 5, "campaign_item_id": campaign,
           "app_uid": "u", "creative_id": "c", "creative_category": "k", "domain": "d.example"})
    .to_string()
}

fn snapshot(campaign: i64, period: &str, bids: i64, imps: i64) -> String {
    json!({"campaign_item_id": campaign, "period": period, "bids": bids, "imps": imps, "clicks": 0})
        .to_string()
}

/// Lands `lines` as one gzipped raw object of `dataset`, hour `hour` of the test day; its key.
async fn land<O: ObjectStore>(
    lake: &Lake<O>,
    dataset: &str,
    hour: u32,
    name: &str,
    lines: &[String],
) -> String {
    let key = format!("raw/{dataset}/dt=2026-11-22/hour={hour:02}/sdp-raw-{dataset}-{name}.gz");
    lake.objects
        .put(
            &key,
            gzip(lines),
            "application/octet-stream",
            Precondition::None,
        )
        .await
        .unwrap();
    key
}

/// The Parquet partition's objects: name → ETag.
async fn partition<O: ObjectStore>(
    lake: &Lake<O>,
    dataset: &str,
    hour: u32,
) -> BTreeMap<String, String> {
    let prefix = format!("parquet/{dataset}/dt=2026-11-22/hour={hour:02}/");
    lake.objects
        .list(&prefix)
        .await
        .unwrap()
        .into_iter()
        .map(|o| (o.key[prefix.len()..].to_owned(), o.etag))
        .collect()
}

/// The one Parquet file of a partition: its bytes.
async fn file<O: ObjectStore>(lake: &Lake<O>, dataset: &str, hour: u32) -> Vec<u8> {
    let files: Vec<String> = partition(lake, dataset, hour)
        .await
        .into_keys()
        .filter(|name| name.starts_with("part-"))
        .collect();
    assert_eq!(files.len(), 1, "{dataset} hour {hour}: {files:?}");
    let key = format!(
        "parquet/{dataset}/dt=2026-11-22/hour={hour:02}/{}",
        files[0]
    );
    match lake.objects.get(&key, None).await.unwrap() {
        Fetched::Found(object) => object.bytes,
        other => panic!("{key}: {other:?}"),
    }
}

/// The file as DuckDB reads it.
fn read(bytes: &[u8]) -> duckdb::FileAsRead {
    // Both stores' tests may read the same bytes at once: each read has a file of its own.
    static READS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let path = std::env::temp_dir().join(format!(
        "sdp-compaction-{}-{}.parquet",
        std::process::id(),
        READS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    std::fs::write(&path, bytes).unwrap();
    let read = duckdb::read(&[&path]).unwrap().remove(0);
    std::fs::remove_file(&path).unwrap();
    read
}

async fn run<O: ObjectStore>(lake: &Lake<O>, now_ms: i64) -> Value {
    compaction::run(&lake.objects, &CompactionSettings::default(), now_ms)
        .await
        .unwrap()
}

/// The manifest of a Parquet partition.
async fn manifest<O: ObjectStore>(lake: &Lake<O>, dataset: &str, hour: u32) -> Value {
    let key = format!("parquet/{dataset}/dt=2026-11-22/hour={hour:02}/_manifest.json");
    match lake.objects.get(&key, None).await.unwrap() {
        Fetched::Found(object) => serde_json::from_slice(&object.bytes).unwrap(),
        other => panic!("{key}: {other:?}"),
    }
}

async fn closed_partitions_become_exact_parquet_and_a_rerun_changes_nothing<O: ObjectStore>(
    lake: Lake<O>,
) {
    let ten = [bid("a", 10, 7), bid("b", 10, 8)];
    land(&lake, "bcns", 10, "1", &ten).await;
    // A redelivery of one line, as Firehose may make.
    land(&lake, "bcns", 10, "2", &[bid("a", 10, 7)]).await;
    let corrupt = land(
        &lake,
        "bcns",
        11,
        "1",
        &[bid("c", 11, 7), "{\"tx_id\": oops".into(), bid("d", 11, 9)],
    )
    .await;
    land(&lake, "bcns", 12, "1", &[bid("e", 12, 7)]).await;
    land(
        &lake,
        "aggregates",
        10,
        "1",
        &[
            snapshot(7, "2026-11-22 10:00:00.000", 1, 0),
            snapshot(7, "2026-11-22 10:00:00.000", 3, 1),
            snapshot(8, "2026-11-22 10:10:00.000", 1, 0),
        ],
    )
    .await;

    let summary = run(&lake, NOW_MS).await;
    let compacted: Vec<&str> = summary["compacted"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["partition"].as_str().unwrap())
        .collect();
    assert_eq!(
        compacted,
        // Oldest hour first, across datasets: the order in which raw objects expire.
        [
            "parquet/bcns/dt=2026-11-22/hour=10/",
            "parquet/aggregates/dt=2026-11-22/hour=10/",
            "parquet/bcns/dt=2026-11-22/hour=11/",
        ],
        "{summary}"
    );
    // The corrupt line is reported with its place; its neighbours are kept.
    assert_eq!(
        summary["rejected"].as_array().unwrap().len(),
        1,
        "{summary}"
    );
    assert_eq!(summary["rejected"][0]["input"], corrupt);
    assert_eq!(summary["rejected"][0]["line"], 2);
    assert!(
        partition(&lake, "bcns", 12).await.is_empty(),
        "an open hour was compacted"
    );

    let (columns, rows) = read(&file(&lake, "bcns", 10).await);
    let types: Vec<(&str, &str)> = columns
        .iter()
        .map(|(n, t)| (n.as_str(), t.as_str()))
        .collect();
    assert_eq!(
        types,
        [
            ("tx_id", "VARCHAR"),
            ("type", "VARCHAR"),
            ("ts", "BIGINT"),
            ("received_at", "BIGINT"),
            ("campaign_item_id", "BIGINT"),
            ("app_uid", "VARCHAR"),
            ("creative_id", "VARCHAR"),
            ("creative_category", "VARCHAR"),
            ("domain", "VARCHAR"),
            ("win_price", "BIGINT"),
        ]
    );
    let ts = DAY_MS + 10 * 3_600_000 + 1_000;
    assert_eq!(
        rows,
        [
            json!(["a", "bid", ts, ts + 5, 7, "u", "c", "k", "d.example", null]),
            json!(["b", "bid", ts, ts + 5, 8, "u", "c", "k", "d.example", null]),
        ]
    );
    let (_, eleven) = read(&file(&lake, "bcns", 11).await);
    let txs: Vec<&Value> = eleven.iter().map(|r| &r[0]).collect();
    assert_eq!(txs, [&json!("c"), &json!("d")]);
    let (_, aggregates) = read(&file(&lake, "aggregates", 10).await);
    assert_eq!(
        aggregates,
        [
            json!([7, "2026-11-22 10:00:00.000", 3, 1, 0]),
            json!([8, "2026-11-22 10:10:00.000", 1, 0, 0]),
        ],
        "one row per key, with the latest totals"
    );
    let manifest: Value = match lake
        .objects
        .get("parquet/bcns/dt=2026-11-22/hour=11/_manifest.json", None)
        .await
        .unwrap()
    {
        Fetched::Found(object) => serde_json::from_slice(&object.bytes).unwrap(),
        other => panic!("{other:?}"),
    };
    assert_eq!(
        (manifest["rows"].clone(), manifest["rejected_lines"].clone()),
        (json!(2), json!(1))
    );

    // Rerun: nothing to do, nothing written.
    let before = partition(&lake, "bcns", 10).await;
    let again = run(&lake, NOW_MS + 600_000).await;
    assert_eq!(again["compacted"], json!([]), "{again}");
    assert_eq!(partition(&lake, "bcns", 10).await, before);
    assert!(
        !before.keys().any(|k| k.contains("_compacting")),
        "a lock was left: {before:?}"
    );
}

async fn late_data_merges_into_the_bytes_of_one_compaction_and_expired_raw_changes_nothing<
    O: ObjectStore,
>(
    lake: Lake<O>,
) {
    let early = land(&lake, "bcns", 10, "1", &[bid("a", 10, 7), bid("b", 10, 8)]).await;
    run(&lake, NOW_MS).await;
    let first = partition(&lake, "bcns", 10).await;

    let late_lines = [bid("late", 10, 7), bid("a", 10, 7)];
    land(&lake, "bcns", 10, "2", &late_lines).await;
    let summary = run(&lake, NOW_MS + 900_000).await;
    assert_eq!(summary["compacted"][0]["new_inputs"], 1, "{summary}");
    assert_eq!(summary["compacted"][0]["rows"], 3, "{summary}");
    let second = partition(&lake, "bcns", 10).await;
    let old: Vec<&String> = first.keys().filter(|k| k.starts_with("part-")).collect();
    assert!(
        !second.contains_key(old[0]),
        "the previous generation is still there: {second:?}"
    );
    let merged = file(&lake, "bcns", 10).await;
    let all_at_once = sdp_lake::compact::compact(
        dataset("bcns"),
        &[
            (
                "1".into(),
                [bid("a", 10, 7), bid("b", 10, 8)].join("\n").into_bytes(),
            ),
            ("2".into(), late_lines.join("\n").into_bytes()),
        ],
    )
    .unwrap();
    assert_eq!(all_at_once.files.len(), 1);
    assert_eq!(
        merged, all_at_once.files[0],
        "late data did not give the bytes of one compaction"
    );
    let (_, rows) = read(&merged);
    assert_eq!(rows.len(), 3);

    // The lifecycle rule expires the early raw object: the partition stays as it is.
    lake.objects.delete(&early).await.unwrap();
    let after = run(&lake, NOW_MS + 1_800_000).await;
    assert_eq!(after["compacted"], json!([]), "{after}");
    assert_eq!(partition(&lake, "bcns", 10).await, second);
}

async fn concurrent_runs_write_one_generation_and_a_dead_runs_lock_is_cleared<O: ObjectStore>(
    lake: Lake<O>,
) {
    for hour in [9, 10, 11] {
        let lines: Vec<String> = (0..50)
            .map(|i| bid(&format!("t{hour}-{i}"), i64::from(hour), i))
            .collect();
        land(&lake, "bcns", hour, "1", &lines).await;
    }
    let (one, other) = tokio::join!(run(&lake, NOW_MS), run(&lake, NOW_MS));
    let mut done: Vec<String> = [&one, &other]
        .iter()
        .flat_map(|s| s["compacted"].as_array().unwrap().clone())
        .map(|c| c["partition"].as_str().unwrap().to_owned())
        .collect();
    done.sort();
    done.dedup();
    // Each partition was compacted by one run, or by both into the same bytes; none is left over.
    let leftover = run(&lake, NOW_MS).await;
    for hour in [9, 10, 11] {
        let names: Vec<String> = partition(&lake, "bcns", hour).await.into_keys().collect();
        assert_eq!(
            names.iter().filter(|n| n.starts_with("part-")).count(),
            1,
            "{names:?}"
        );
        assert!(!names.iter().any(|n| n == "_compacting"), "{names:?}");
        let (_, rows) = read(&file(&lake, "bcns", hour).await);
        assert_eq!(rows.len(), 50);
    }
    assert_eq!(
        done.len() + leftover["compacted"].as_array().unwrap().len(),
        3,
        "{one} {other} {leftover}"
    );

    // A lock left by a run that died: fresh, the partition is skipped; old, it is taken over (a
    // write conditional on its entity tag) and the partition compacted in the same run.
    land(&lake, "bcns", 9, "2", &[bid("late", 9, 1)]).await;
    let lock = "parquet/bcns/dt=2026-11-22/hour=09/_compacting";
    lake.objects
        .put(lock, b"{}".to_vec(), "application/json", Precondition::None)
        .await
        .unwrap();
    let now = i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap();
    let held = run(&lake, now.max(NOW_MS)).await;
    assert_eq!(
        held["busy"],
        json!(["parquet/bcns/dt=2026-11-22/hour=09/"]),
        "{held}"
    );
    let taken_over = run(&lake, now.max(NOW_MS) + 17 * 60_000).await;
    assert_eq!(taken_over["busy"], json!([]), "{taken_over}");
    assert_eq!(taken_over["compacted"][0]["rows"], 51, "{taken_over}");
    let names = partition(&lake, "bcns", 9).await;
    assert!(!names.keys().any(|n| n == "_compacting"), "{names:?}");
}

/// The rows of hour 10's bcns `files`, read by DuckDB in the order given.
async fn rows_in<O: ObjectStore>(lake: &Lake<O>, files: &[String]) -> Vec<Value> {
    let mut rows = Vec::new();
    for name in files {
        let key = format!("parquet/bcns/dt=2026-11-22/hour=10/{name}");
        let Fetched::Found(object) = lake.objects.get(&key, None).await.unwrap() else {
            panic!("{key} is missing");
        };
        rows.extend(read(&object.bytes).1);
    }
    rows
}

/// A partition larger than the target file size becomes several files, each a consecutive range
/// of the sort order; late data replaces the whole generation, and a manifest naming a file that
/// is gone stops the run instead of dropping that file's rows.
async fn a_large_hour_is_cut_into_files_in_sort_order_and_late_data_replaces_them_all<
    O: ObjectStore,
>(
    lake: Lake<O>,
) {
    let small_files = CompactionSettings {
        target_file_bytes: 16 * 1024,
        ..CompactionSettings::default()
    };
    let bids = |from: usize, to: usize| -> Vec<String> {
        (from..to)
            .map(|i| bid(&format!("tx-{i:06}"), 10, (i % 17) as i64))
            .collect()
    };
    for (name, range) in [
        ("1", 0..10_000),
        ("2", 10_000..20_000),
        ("3", 20_000..30_000),
    ] {
        land(&lake, "bcns", 10, name, &bids(range.start, range.end)).await;
    }
    let summary = compaction::run(&lake.objects, &small_files, NOW_MS)
        .await
        .unwrap();
    let first = manifest(&lake, "bcns", 10).await;
    let files: Vec<String> = serde_json::from_value(first["files"].clone()).unwrap();
    assert!(files.len() >= 3, "{summary}");
    assert_eq!(summary["compacted"][0]["files"], first["files"]);
    let listed: Vec<String> = partition(&lake, "bcns", 10)
        .await
        .into_keys()
        .filter(|k| k.starts_with("part-"))
        .collect();
    assert_eq!(
        listed, files,
        "the manifest names exactly the files, in order"
    );

    // Read in the manifest's order, the files hold every row once, sorted by campaign then tx.
    let rows = rows_in(&lake, &files).await;
    assert_eq!(rows.len(), 30_000);
    // Rows come as arrays in column order: tx_id is the first column, campaign_item_id the fifth.
    let keys: Vec<(i64, String)> = rows
        .iter()
        .map(|r| (r[4].as_i64().unwrap(), r[0].as_str().unwrap().to_owned()))
        .collect();
    assert!(
        keys.windows(2).all(|w| w[0] < w[1]),
        "not in sort order, or a row twice"
    );

    // Late data, with a redelivered line: one new generation, and none of the old files left.
    let late = [bid("tx-late", 10, 3), bid("tx-000005", 10, 5)];
    land(&lake, "bcns", 10, "4", &late).await;
    let summary = compaction::run(&lake.objects, &small_files, NOW_MS + 600_000)
        .await
        .unwrap();
    assert_eq!(summary["compacted"][0]["rows"], 30_001, "{summary}");
    let second: Vec<String> =
        serde_json::from_value(manifest(&lake, "bcns", 10).await["files"].clone()).unwrap();
    let listed: Vec<String> = partition(&lake, "bcns", 10)
        .await
        .into_keys()
        .filter(|k| k.starts_with("part-"))
        .collect();
    assert_eq!(listed, second);
    assert!(
        files.iter().all(|f| !second.contains(f)),
        "{files:?} {second:?}"
    );
    assert_eq!(rows_in(&lake, &second).await.len(), 30_001);

    // A file of the manifest is gone (deleted by hand): the next run with new data says so, and
    // writes nothing rather than a generation without that file's rows.
    let gone = format!("parquet/bcns/dt=2026-11-22/hour=10/{}", second[1]);
    lake.objects.delete(&gone).await.unwrap();
    land(&lake, "bcns", 10, "5", &[bid("tx-later", 10, 4)]).await;
    let err = compaction::run(&lake.objects, &small_files, NOW_MS + 1_200_000)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&second[1]) && err.contains("_manifest.json"),
        "{err}"
    );
    let after: Vec<String> =
        serde_json::from_value(manifest(&lake, "bcns", 10).await["files"].clone()).unwrap();
    assert_eq!(after, second, "the manifest is unchanged");
}

/// Lands the same raw objects (two hours of bids, one with a corrupt line, and aggregate
/// snapshots), compacts, and returns every object under `parquet/` with its bytes.
async fn compacted_lake<O: ObjectStore>(lake: &Lake<O>) -> (Value, BTreeMap<String, Vec<u8>>) {
    land(lake, "bcns", 10, "1", &[bid("a", 10, 7), bid("b", 10, 8)]).await;
    land(lake, "bcns", 10, "2", &[bid("a", 10, 7), bid("c", 10, 7)]).await;
    land(
        lake,
        "bcns",
        11,
        "1",
        &[bid("d", 11, 9), "{\"tx_id\": oops".into()],
    )
    .await;
    land(
        lake,
        "aggregates",
        10,
        "1",
        &[
            snapshot(7, "2026-11-22 10:00:00.000", 1, 0),
            snapshot(7, "2026-11-22 10:00:00.000", 3, 1),
        ],
    )
    .await;
    let summary = run(lake, NOW_MS).await;
    let mut objects = BTreeMap::new();
    for listed in lake.objects.list("parquet/").await.unwrap() {
        let Fetched::Found(object) = lake.objects.get(&listed.key, None).await.unwrap() else {
            panic!("{} is missing", listed.key);
        };
        objects.insert(listed.key, object.bytes);
    }
    (summary, objects)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_local_directory_and_s3_given_the_same_raw_objects_hold_the_same_parquet_and_manifests() {
    let (s3, local) = (on_s3().await, on_a_directory());
    let (on_s3, in_s3) = compacted_lake(&s3).await;
    let (on_disk, on_directory) = compacted_lake(&local).await;
    let names = |objects: &BTreeMap<String, Vec<u8>>| objects.keys().cloned().collect::<Vec<_>>();
    assert_eq!(names(&in_s3), names(&on_directory));
    assert_eq!(
        names(&in_s3)
            .iter()
            .filter(|k| k.ends_with("/_manifest.json"))
            .count(),
        3,
        "{:?}",
        names(&in_s3)
    );
    for (key, bytes) in &in_s3 {
        assert!(
            on_directory[key] == *bytes,
            "{key} differs:\n{}\n{}",
            String::from_utf8_lossy(bytes),
            String::from_utf8_lossy(&on_directory[key])
        );
    }
    assert_eq!(on_s3, on_disk, "the runs' summaries differ");
}

//! The compactor's Parquet read back by an independent reader (DuckDB, from the project venv):
//! exactly the expected rows, in the sort order, with the declared column types; and the Glue
//! `parquet_*` tables of the rendered template declare exactly the columns the files have.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test file: a panic is the failure report

use std::collections::BTreeMap;

use serde_json::json;

use sdp_core::events::{Bid, Event, EventBody};
use sdp_core::join::JoinedEvent;
use sdp_core::lake::{Dataset, Format, DATASETS};
use sdp_lake::compact::compact;
use sdp_scenarios::duckdb::read as duckdb_read;

fn dataset(name: &str) -> &'static Dataset {
    DATASETS.iter().find(|d| d.name == name).unwrap()
}

fn lines(values: &[String]) -> Vec<u8> {
    values.join("\n").into_bytes()
}

fn event(tx: &str, ts: i64, body: EventBody) -> String {
    serde_json::to_string(&Event {
        tx_id: tx.into(),
        ts,
        received_at: ts + 3,
        body,
    })
    .unwrap()
}

#[test]
fn duckdb_reads_exactly_the_rows_and_types_the_compactor_wrote() {
    let dir = std::env::temp_dir().join(format!("sdp-lake-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bid = event(
        "t1",
        1_700_000_000_000,
        EventBody::Bid(Bid {
            campaign_item_id: 1_463_517,
            app_uid: "u1".into(),
            creative_id: Some("c1".into()),
            creative_category: None,
            domain: Some("example.com".into()),
            win_price: Some(90),
        }),
    );
    let imp = event(
        "t1",
        1_700_000_001_000,
        EventBody::Impression { win_price: 70 },
    );
    let click = event("t1", 1_700_000_002_000, EventBody::Click);
    // A redelivered object repeats a line; a corrupt line sits among good ones.
    let bcns = compact(
        dataset("bcns"),
        &[
            (
                "raw/bcns/a".into(),
                lines(&[imp.clone(), "{oops".into(), bid.clone()]),
            ),
            ("raw/bcns/b".into(), lines(&[click.clone(), imp.clone()])),
        ],
    )
    .unwrap();
    assert_eq!((bcns.rows, bcns.duplicates), (3, 1));
    assert_eq!(bcns.rejected.len(), 1);
    assert_eq!(
        (bcns.rejected[0].input.as_str(), bcns.rejected[0].line),
        ("raw/bcns/a", 2)
    );

    let joined = serde_json::to_string(&JoinedEvent {
        event_type: None,
        tx_id: "t1".into(),
        ts: 1_700_000_001_000,
        received_at: 1_700_000_001_003,
        campaign_item_id: 1_463_517,
        app_uid: "u1".into(),
        creative_id: Some("c1".into()),
        creative_category: None,
        domain: Some("example.com".into()),
        win_price: 70,
    })
    .unwrap();
    let impressions = compact(
        dataset("impressions"),
        &[("raw/impressions/a".into(), lines(&[joined]))],
    )
    .unwrap();
    let aggregate = json!({"campaign_item_id": 1_463_517, "period": "2023-11-14 22:10:00.000", "bids": 1, "imps": 1, "clicks": 1}).to_string();
    let aggregates = compact(
        dataset("aggregates"),
        &[("raw/aggregates/a".into(), lines(&[aggregate]))],
    )
    .unwrap();

    let paths: Vec<_> = [
        ("bcns", &bcns),
        ("impressions", &impressions),
        ("aggregates", &aggregates),
    ]
    .iter()
    .map(|(name, out)| {
        let path = dir.join(format!("{name}.parquet"));
        let [file] = out.files.as_slice() else {
            panic!("{} files", out.files.len())
        };
        std::fs::write(&path, file).unwrap();
        path
    })
    .collect();
    let read = duckdb_read(&paths.iter().map(|p| p.as_path()).collect::<Vec<_>>()).unwrap();

    let varchar_or_bigint = |d: &Dataset| -> Vec<(String, String)> {
        d.columns
            .iter()
            .map(|c| {
                (
                    c.name.into(),
                    match c.column_type.hive_name() {
                        "string" => "VARCHAR".into(),
                        other => other.to_uppercase(),
                    },
                )
            })
            .collect()
    };
    assert_eq!(read[0].0, varchar_or_bigint(dataset("bcns")));
    assert_eq!(read[1].0, varchar_or_bigint(dataset("impressions")));
    assert_eq!(read[2].0, varchar_or_bigint(dataset("aggregates")));
    // bcns columns: tx_id, type, ts, received_at, campaign_item_id, app_uid, creative_id,
    // creative_category, domain, win_price; sorted by type first.
    assert_eq!(
        read[0].1,
        vec![
            json!([
                "t1",
                "bid",
                1_700_000_000_000_i64,
                1_700_000_000_003_i64,
                1_463_517,
                "u1",
                "c1",
                null,
                "example.com",
                90
            ]),
            json!([
                "t1",
                "click",
                1_700_000_002_000_i64,
                1_700_000_002_003_i64,
                null,
                null,
                null,
                null,
                null,
                null
            ]),
            json!([
                "t1",
                "imp",
                1_700_000_001_000_i64,
                1_700_000_001_003_i64,
                null,
                null,
                null,
                null,
                null,
                70
            ]),
        ]
    );
    assert_eq!(
        read[1].1,
        vec![json!([
            "t1",
            1_700_000_001_000_i64,
            1_700_000_001_003_i64,
            1_463_517,
            "u1",
            "c1",
            null,
            "example.com",
            70
        ])]
    );
    assert_eq!(
        read[2].1,
        vec![json!([1_463_517, "2023-11-14 22:10:00.000", 1, 1, 1])]
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn glue_parquet_tables_declare_exactly_the_columns_of_the_compacted_files() {
    let template = sdp::render::render_platform(
        &sdp::templates::embedded(),
        &sdp::regions::load("us-west-2").unwrap(),
    )
    .unwrap()
    .document;
    let declared: BTreeMap<String, Vec<(String, String)>> = template["Resources"]
        .as_mapping()
        .unwrap()
        .values()
        .filter(|r| r["Type"].as_str() == Some("AWS::Glue::Table"))
        .map(|r| {
            let input = &r["Properties"]["TableInput"];
            let columns = input["StorageDescriptor"]["Columns"]
                .as_sequence()
                .unwrap()
                .iter()
                .map(|c| {
                    (
                        c["Name"].as_str().unwrap().to_owned(),
                        c["Type"].as_str().unwrap().to_owned(),
                    )
                })
                .collect();
            (input["Name"].as_str().unwrap().to_owned(), columns)
        })
        .collect();
    let dir = std::env::temp_dir().join(format!("sdp-glue-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for dataset in DATASETS {
        // An empty partition still has the schema: what a reader of the file sees.
        let out = compact(&dataset, &[]).unwrap();
        let path = dir.join(format!("{}.parquet", dataset.name));
        let [file] = out.files.as_slice() else {
            panic!("{} files", out.files.len())
        };
        std::fs::write(&path, file).unwrap();
        let (columns, rows) = duckdb_read(&[&path]).unwrap().remove(0);
        assert!(rows.is_empty());
        let in_file: Vec<(String, String)> = columns
            .into_iter()
            .map(|(name, duck)| {
                let hive = match duck.as_str() {
                    "VARCHAR" => "string",
                    "BIGINT" => "bigint",
                    other => panic!("{name}: DuckDB type {other} has no Glue equivalent here"),
                };
                (name, hive.to_owned())
            })
            .collect();
        let table = dataset.table_name(Format::Parquet);
        assert_eq!(
            declared[&table], in_file,
            "Glue table {table} and its Parquet files differ"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

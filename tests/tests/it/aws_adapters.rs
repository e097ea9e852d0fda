//! The AWS adapters against moto, on the tables and stream the rendered template creates:
//! Kinesis keeps every appended event on the shard of its `tx_id`, packed a record per shard; DynamoDB commits are exactly once, across
//! more keys than one call takes, and a stale state is a conflict that applies nothing.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test file: a panic is the failure report

use std::collections::BTreeMap;

use sdp_aws::{DynamoStore, KinesisLog};
use sdp_core::events::{Bid, Event, EventBody};
use sdp_core::join::{AggregateKey, Counts, JoinConfig, Transaction};
use sdp_core::ports::{AggregateReader, EventLog, StateChange, StateStore};
use sdp_core::processor::process_batch;
use sdp_scenarios::platform::{deploy_platform, sdk_config, Platform};
use sdp_scenarios::MotoServer;

const T0: i64 = 1_763_780_400_000;

async fn platform(moto: &MotoServer) -> (aws_config::SdkConfig, Platform) {
    let config = sdk_config(&moto.endpoint, "us-west-2").await;
    let platform = deploy_platform(&config, "adapters").await.unwrap();
    (config, platform)
}

fn store(config: &aws_config::SdkConfig, platform: &Platform) -> DynamoStore {
    DynamoStore::new(
        aws_sdk_dynamodb::Client::new(config),
        platform.resource("StateTable").unwrap(),
        platform.resource("AggregatesTable").unwrap(),
    )
}

fn event(tx: &str, ts: i64, body: EventBody) -> Event {
    Event {
        tx_id: tx.into(),
        ts,
        received_at: ts,
        body,
    }
}

fn bid(tx: &str, campaign: i64) -> Event {
    event(
        tx,
        T0,
        EventBody::Bid(Bid {
            campaign_item_id: campaign,
            app_uid: "app".into(),
            creative_id: Some("creative".into()),
            creative_category: Some("category".into()),
            domain: Some("example.com".into()),
            win_price: Some(100),
        }),
    )
}

/// `n` transactions over `campaigns` campaigns: every one bids, two in three show an impression,
/// one in three of those a click; every fifth event is posted twice.
fn scenario(n: usize, campaigns: i64) -> (Vec<Event>, BTreeMap<i64, Counts>) {
    let mut events = Vec::new();
    let mut expected: BTreeMap<i64, Counts> = BTreeMap::new();
    for i in 0..n {
        let tx = format!("tx-{i:05}");
        let campaign = 1_000 + i as i64 % campaigns;
        let counts = expected.entry(campaign).or_default();
        events.push(bid(&tx, campaign));
        counts.bids += 1;
        if i % 3 != 0 {
            events.push(event(
                &tx,
                T0 + 60_000,
                EventBody::Impression { win_price: 42 },
            ));
            counts.imps += 1;
            if i % 9 == 1 {
                events.push(event(&tx, T0 + 120_000, EventBody::Click));
                counts.clicks += 1;
            }
        }
    }
    let duplicates: Vec<Event> = events.iter().step_by(5).cloned().collect();
    events.extend(duplicates);
    (events, expected)
}

async fn totals(
    store: &DynamoStore,
    campaigns: impl Iterator<Item = i64>,
) -> BTreeMap<i64, Counts> {
    let mut found = BTreeMap::new();
    for campaign in campaigns {
        let mut sum = Counts::default();
        for row in store.campaign(campaign, 0, i64::MAX).await.unwrap() {
            sum.add(row.counts);
        }
        if !sum.is_zero() {
            found.insert(campaign, sum);
        }
    }
    found
}

/// Over a stream of four shards: the events of one append are packed into a record per shard,
/// and every event lies on the shard whose hash key range holds the MD5 of its `tx_id` (where
/// its partition key would have put it), each transaction's events in the order appended.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kinesis_log_packs_a_record_per_shard_with_every_event_on_the_shard_of_its_tx_id() {
    let moto = MotoServer::start().unwrap();
    let config = sdk_config(&moto.endpoint, "us-west-2").await;
    let kinesis = aws_sdk_kinesis::Client::new(&config);
    kinesis
        .create_stream()
        .stream_name("packed")
        .shard_count(4)
        .send()
        .await
        .unwrap();
    let (events, _) = scenario(600, 7); // over 1000 events
    assert!(events.len() > 1000);
    let log = KinesisLog::new(kinesis.clone(), "packed");
    log.append(&events).await.unwrap();

    let mut stored: Vec<Event> = Vec::new();
    let shards = kinesis
        .list_shards()
        .stream_name("packed")
        .send()
        .await
        .unwrap();
    assert_eq!(shards.shards().len(), 4);
    for shard in shards.shards() {
        let range = shard.hash_key_range().unwrap();
        let first: u128 = range.starting_hash_key().parse().unwrap();
        let last: u128 = range.ending_hash_key().parse().unwrap();
        let iterator = kinesis
            .get_shard_iterator()
            .stream_name("packed")
            .shard_id(shard.shard_id())
            .shard_iterator_type(aws_sdk_kinesis::types::ShardIteratorType::TrimHorizon)
            .send()
            .await
            .unwrap();
        let records = kinesis
            .get_records()
            .shard_iterator(iterator.shard_iterator().unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(
            records.records().len(),
            1,
            "one packed record for the shard"
        );
        for record in records.records() {
            for line in record.data().as_ref().split(|&b| b == b'\n') {
                let event: Event = serde_json::from_slice(line).unwrap();
                let hash = sdp_aws::partition_hash_key(&event.tx_id);
                assert!(
                    (first..=last).contains(&hash),
                    "{} off its shard",
                    event.tx_id
                );
                stored.push(event);
            }
        }
    }
    assert_eq!(stored.len(), events.len());
    // Each transaction's events, in the order appended.
    let by_tx = |list: &[Event]| -> BTreeMap<String, Vec<String>> {
        let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for e in list {
            map.entry(e.tx_id.clone())
                .or_default()
                .push(serde_json::to_string(e).unwrap());
        }
        map
    };
    assert_eq!(by_tx(&stored), by_tx(&events));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_batch_processed_twice_gives_the_same_exact_totals_across_many_transactions() {
    let moto = MotoServer::start().unwrap();
    let (config, platform) = platform(&moto).await;
    let store = store(&config, &platform);
    let join = JoinConfig::from_minutes(10, 5, 5).unwrap();
    // 400 transactions over 150 campaigns: far more items than one 100-item transaction takes.
    let (events, expected) = scenario(400, 150);

    let first = process_batch(&store, &join, &events).await.unwrap();
    assert_eq!(totals(&store, expected.keys().copied()).await, expected);
    assert!(first.duplicates > 0, "the scenario posts some events twice");

    let again = process_batch(&store, &join, &events).await.unwrap();
    assert!(again.increments.is_empty() && again.joined == 0);
    assert_eq!(totals(&store, expected.keys().copied()).await, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_state_is_a_conflict_whose_increments_are_not_applied_while_the_rest_commit() {
    let moto = MotoServer::start().unwrap();
    let (config, platform) = platform(&moto).await;
    let store = store(&config, &platform);
    let join = JoinConfig::from_minutes(10, 5, 5).unwrap();
    process_batch(&store, &join, &[bid("stale", 1)])
        .await
        .unwrap();

    let key = |campaign| AggregateKey {
        campaign_item_id: campaign,
        period: T0 / 1000,
    };
    let one_bid = Counts {
        bids: 1,
        imps: 0,
        clicks: 0,
    };
    let change = |tx: &str, campaign| StateChange {
        read_version: 0, // "stale" is at version 1 now
        state: Transaction {
            version: 1,
            ..Transaction::new(tx)
        },
        increments: vec![(key(campaign), one_bid)],
    };
    let outcome = store
        .commit(vec![change("stale", 1), change("fresh", 2)])
        .await
        .unwrap();
    assert_eq!(outcome.conflicts, ["stale"]);
    assert_eq!(
        totals(&store, [1, 2].into_iter()).await,
        BTreeMap::from([(1, one_bid), (2, one_bid)])
    );
    let loaded = store
        .load(&["stale".into(), "fresh".into(), "absent".into()])
        .await
        .unwrap();
    assert_eq!(loaded.len(), 2);
    assert_eq!(loaded["stale"].version, 1);
    assert!(
        loaded["stale"].bid.is_some(),
        "the stale write did not overwrite the stored state"
    );
}

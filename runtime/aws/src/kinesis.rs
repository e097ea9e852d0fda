//! The event log on Kinesis: events packed into records per shard, as the Kinesis Producer
//! Library packs them, so a batch of events costs a record per shard it reaches instead of a
//! record each (Kinesis bills 25 KB payload units, Firehose 5 KB steps, and a shard takes 1,000
//! records a second). Every event still lands on the shard its `tx_id` would have chosen as a
//! partition key: the events are grouped by the shard whose hash key range holds the MD5 of their
//! `tx_id`, and each group's records are routed there with an explicit hash key. So every event
//! of a transaction is on one shard, in order, and processed by one processor invocation at a
//! time. A record's data is the events' JSON, one per line; a record of one event is exactly its
//! JSON, as before packing.
//!
//! The shard map (`ListShards`, the open shards) is read once a minute. For up to that minute
//! after a resharding, a stale map may route a group to a child shard that does not own every
//! `tx_id` in it, while single events of the same transactions go by partition key to the other
//! child: one transaction's events on two shards, processed at once. The join state is
//! versioned, so the two writers conflict and retry, and nothing is counted twice or lost. Without
//! a map at all (ListShards throttled or not permitted) each transaction's events go by their
//! partition key, as before packing.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;
use aws_sdk_kinesis::Client;
use md5::{Digest, Md5};
use sdp_core::events::Event;
use sdp_core::join;
use sdp_core::ports::{EventLog, StoreError};

use crate::error::{backoff, classify, is_transient_code, permanent, transient};

/// PutRecords takes at most 500 records and 5 MiB per call.
const MAX_RECORDS: usize = 500;
const MAX_BYTES: usize = 5 * 1024 * 1024;
/// A record takes 1 MiB of data and partition key: packed records stay under 1,000 KiB.
const MAX_RECORD_BYTES: usize = 1000 * 1024;
/// Attempts for records that failed inside an accepted call (throttled shards, mostly). Short:
/// the caller is an API request waiting for its answer, and 503 + Retry-After is the honest reply.
const ATTEMPTS: u32 = 4;
/// How long a shard map is used before it is read again.
const SHARD_MAP_TTL: Duration = Duration::from_secs(60);

#[derive(Debug, Clone)]
pub struct KinesisLog {
    client: Client,
    stream: String,
    /// The open shards and when they were read; shared by the clones of a log.
    shards: Arc<Mutex<Option<ShardMap>>>,
}

/// The open shards, and when they were read.
type ShardMap = (Instant, Vec<OpenShard>);

/// An open shard's hash key range, and the key that routes a record into it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct OpenShard {
    first: u128,
    last: u128,
    starting_hash_key: String,
}

/// Events bound for one shard: by partition key (one transaction) or by explicit hash key.
struct Group<'a> {
    explicit_hash_key: Option<String>,
    events: Vec<&'a Event>,
}

impl KinesisLog {
    pub fn new(client: Client, stream: impl Into<String>) -> KinesisLog {
        KinesisLog {
            client,
            stream: stream.into(),
            shards: Arc::new(Mutex::new(None)),
        }
    }

    /// The open shards, read again once [`SHARD_MAP_TTL`] has passed (or when `stale`).
    async fn open_shards(&self, stale: bool) -> Result<Vec<OpenShard>, StoreError> {
        if !stale {
            let cached = self
                .shards
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some((read_at, shards)) = cached.as_ref() {
                if read_at.elapsed() < SHARD_MAP_TTL {
                    return Ok(shards.clone());
                }
            }
        }
        let mut shards = Vec::new();
        let mut next: Option<String> = None;
        loop {
            let request = match &next {
                Some(token) => self.client.list_shards().next_token(token),
                None => self.client.list_shards().stream_name(&self.stream),
            };
            let page = request
                .send()
                .await
                .map_err(|e| classify("Kinesis ListShards", e))?;
            for shard in page.shards() {
                let open = shard
                    .sequence_number_range()
                    .and_then(|r| r.ending_sequence_number())
                    .is_none();
                let range = shard.hash_key_range();
                let bounds = range.and_then(|r| {
                    Some((
                        r.starting_hash_key().parse().ok()?,
                        r.ending_hash_key().parse().ok()?,
                    ))
                });
                if let (true, Some((first, last)), Some(range)) = (open, bounds, range) {
                    shards.push(OpenShard {
                        first,
                        last,
                        starting_hash_key: range.starting_hash_key().to_owned(),
                    });
                }
            }
            next = page.next_token().map(str::to_owned);
            if next.is_none() {
                break;
            }
        }
        shards.sort_by_key(|s| s.first);
        *self
            .shards
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) =
            Some((Instant::now(), shards.clone()));
        Ok(shards)
    }

    /// Groups `events` by the shard their `tx_id` hashes to, in call order within each group.
    /// Without a shard map (ListShards failed: throttled, or not permitted), each transaction's
    /// events go by their partition key, as before packing: slower, never wrong.
    async fn by_shard<'a>(&self, events: &'a [Event]) -> Vec<Group<'a>> {
        let one_transaction = events.windows(2).all(|w| w[0].tx_id == w[1].tx_id);
        if one_transaction {
            // The partition key routes them: no map needed (every single-event request).
            return vec![Group {
                explicit_hash_key: None,
                events: events.iter().collect(),
            }];
        }
        let mut shards = match self.open_shards(false).await {
            Ok(shards) => shards,
            Err(err) => {
                tracing::warn!(error = %err, "no shard map; each transaction's events go by their partition key");
                return by_transaction(events);
            }
        };
        if events.iter().any(|e| owner(&shards, &e.tx_id).is_none()) {
            // A map read mid-resharding: read it again once.
            match self.open_shards(true).await {
                Ok(fresh) => shards = fresh,
                Err(_) => return by_transaction(events),
            }
        }
        let mut groups: Vec<Group<'a>> = shards
            .iter()
            .map(|s| Group {
                explicit_hash_key: Some(s.starting_hash_key.clone()),
                events: Vec::new(),
            })
            .collect();
        for event in events {
            match owner(&shards, &event.tx_id) {
                Some(i) => groups[i].events.push(event),
                // No open shard claims it (a map read mid-resharding): its partition key routes it.
                None => groups.push(Group {
                    explicit_hash_key: None,
                    events: vec![event],
                }),
            }
        }
        groups.retain(|g| !g.events.is_empty());
        groups
    }

    async fn put_chunk(&self, mut entries: Vec<PutRecordsRequestEntry>) -> Result<(), StoreError> {
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                backoff(attempt, 50, 800).await;
            }
            let output = self
                .client
                .put_records()
                .stream_name(&self.stream)
                .set_records(Some(entries.clone()))
                .send()
                .await
                .map_err(|e| classify("Kinesis PutRecords", e))?;
            if output.failed_record_count().unwrap_or(0) == 0 {
                return Ok(());
            }
            // Results are positional: keep exactly the entries that failed, and why.
            let mut failed = Vec::new();
            let mut last_code = String::new();
            let mut all_transient = true;
            for (entry, result) in entries.into_iter().zip(output.records()) {
                if let Some(code) = result.error_code() {
                    all_transient &= is_transient_code(code);
                    last_code = format!("{code}: {}", result.error_message().unwrap_or(""));
                    failed.push(entry);
                }
            }
            if !all_transient {
                return Err(permanent(format!(
                    "Kinesis PutRecords rejected {} record(s): {last_code}",
                    failed.len()
                )));
            }
            entries = failed;
        }
        Err(transient(format!(
            "Kinesis PutRecords: {} record(s) still throttled after {ATTEMPTS} attempts",
            entries.len()
        )))
    }
}

impl EventLog for KinesisLog {
    async fn append(&self, events: &[Event]) -> Result<(), StoreError> {
        let mut chunk = Vec::new();
        let mut chunk_bytes = 0;
        for group in self.by_shard(events).await {
            let partition_key = group.events.first().map_or("", |e| e.tx_id.as_str());
            for data in packed(&group.events, partition_key.len())? {
                let size = data.len() + partition_key.len();
                if chunk.len() == MAX_RECORDS || chunk_bytes + size > MAX_BYTES {
                    self.put_chunk(std::mem::take(&mut chunk)).await?;
                    chunk_bytes = 0;
                }
                chunk_bytes += size;
                chunk.push(
                    PutRecordsRequestEntry::builder()
                        .partition_key(partition_key)
                        .set_explicit_hash_key(group.explicit_hash_key.clone())
                        .data(Blob::new(data))
                        .build()
                        .map_err(|e| permanent(format!("cannot build a Kinesis record: {e}")))?,
                );
            }
        }
        if !chunk.is_empty() {
            self.put_chunk(chunk).await?;
        }
        Ok(())
    }
}

/// Each transaction's events as a group of their own, routed by partition key.
fn by_transaction(events: &[Event]) -> Vec<Group<'_>> {
    join::by_transaction(events)
        .into_values()
        .map(|events| Group {
            explicit_hash_key: None,
            events,
        })
        .collect()
}

/// The hash key Kinesis maps a partition key to: the MD5 of its bytes, as a 128-bit integer.
pub fn partition_hash_key(partition_key: &str) -> u128 {
    u128::from_be_bytes(Md5::digest(partition_key.as_bytes()).into())
}

/// The shard whose hash key range holds the hash key of `tx_id`.
fn owner(shards: &[OpenShard], tx_id: &str) -> Option<usize> {
    let hash = partition_hash_key(tx_id);
    shards
        .iter()
        .position(|s| (s.first..=s.last).contains(&hash))
}

/// The events' JSON, one per line, in records of at most [`MAX_RECORD_BYTES`] with their
/// partition key of `key_bytes` (an event larger than that alone in its record).
fn packed(events: &[&Event], key_bytes: usize) -> Result<Vec<Vec<u8>>, StoreError> {
    let mut records = Vec::new();
    let mut record: Vec<u8> = Vec::new();
    for event in events {
        let json = serde_json::to_vec(event)
            .map_err(|e| permanent(format!("cannot encode event `{}`: {e}", event.tx_id)))?;
        if !record.is_empty() && record.len() + 1 + json.len() + key_bytes > MAX_RECORD_BYTES {
            records.push(std::mem::take(&mut record));
        }
        if !record.is_empty() {
            record.push(b'\n');
        }
        record.extend_from_slice(&json);
    }
    if !record.is_empty() {
        records.push(record);
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use aws_sdk_kinesis::operation::list_shards::ListShardsOutput;
    use aws_sdk_kinesis::operation::put_records::PutRecordsOutput;
    use aws_sdk_kinesis::types::{HashKeyRange, PutRecordsResultEntry, SequenceNumberRange, Shard};
    use aws_smithy_mocks::{mock, mock_client, Rule};
    use sdp_core::events::EventBody;

    use super::*;

    fn click(tx: &str) -> Event {
        Event {
            tx_id: tx.into(),
            ts: 1,
            received_at: 1,
            body: EventBody::Click,
        }
    }

    fn stored() -> PutRecordsResultEntry {
        PutRecordsResultEntry::builder()
            .sequence_number("1")
            .shard_id("shardId-000000000000")
            .build()
    }

    /// A `PutRecords` answer storing all of `n` records.
    fn all_stored(n: usize) -> PutRecordsOutput {
        let mut output = PutRecordsOutput::builder().failed_record_count(0);
        for _ in 0..n {
            output = output.records(stored());
        }
        output.build().unwrap()
    }

    fn refused(code: &str) -> PutRecordsResultEntry {
        PutRecordsResultEntry::builder()
            .error_code(code)
            .error_message("Rate exceeded for shard")
            .build()
    }

    const HALF: u128 = 1 << 127;

    fn shard(id: &str, first: u128, last: u128) -> Shard {
        Shard::builder()
            .shard_id(id)
            .hash_key_range(
                HashKeyRange::builder()
                    .starting_hash_key(first.to_string())
                    .ending_hash_key(last.to_string())
                    .build()
                    .unwrap(),
            )
            .sequence_number_range(
                SequenceNumberRange::builder()
                    .starting_sequence_number("1")
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap()
    }

    /// Two open shards, each half of the hash key space (MD5 of `a` and `c` is in the lower
    /// half, of `b` and `d` in the upper one), and a closed parent, which takes nothing.
    fn two_shards() -> Rule {
        mock!(Client::list_shards).then_output(|| {
            let mut closed = shard("shardId-parent", 0, u128::MAX);
            closed.sequence_number_range = Some(
                SequenceNumberRange::builder()
                    .starting_sequence_number("1")
                    .ending_sequence_number("9")
                    .build()
                    .unwrap(),
            );
            ListShardsOutput::builder()
                .shards(closed)
                .shards(shard("shardId-low", 0, HALF - 1))
                .shards(shard("shardId-high", HALF, u128::MAX))
                .build()
        })
    }

    #[tokio::test]
    async fn events_are_packed_into_a_record_per_shard_routed_to_the_shard_of_their_tx_id() {
        let lines = |r: &PutRecordsRequestEntry| {
            std::str::from_utf8(r.data().as_ref())
                .unwrap()
                .lines()
                .map(|l| {
                    serde_json::from_str::<serde_json::Value>(l).unwrap()["tx_id"]
                        .as_str()
                        .unwrap()
                        .to_owned()
                })
                .collect::<Vec<String>>()
        };
        let put = mock!(Client::put_records)
            .match_requests(move |r| {
                let records = r.records();
                records.len() == 2
                    && records[0].explicit_hash_key() == Some("0")
                    && lines(&records[0]) == ["a", "c", "a"]
                    && records[1].explicit_hash_key() == Some(HALF.to_string().as_str())
                    && lines(&records[1]) == ["b", "d"]
            })
            .then_output(|| all_stored(2));
        let shards = two_shards();
        let client = mock_client!(
            aws_sdk_kinesis,
            aws_smithy_mocks::RuleMode::MatchAny,
            [&shards, &put]
        );
        let log = KinesisLog::new(client, "s");
        let events = ["a", "b", "c", "d", "a"].map(click);
        log.append(&events).await.unwrap();
        log.append(&events).await.unwrap();
        assert_eq!(put.num_calls(), 2);
        assert_eq!(shards.num_calls(), 1, "the shard map is read once a minute");
    }

    #[tokio::test]
    async fn the_shard_map_is_read_page_by_page_and_without_one_events_go_by_partition_key() {
        // ListShards in two pages: the next page names the token alone, as Kinesis requires.
        let first = mock!(Client::list_shards)
            .match_requests(|r| r.stream_name() == Some("s") && r.next_token().is_none())
            .then_output(|| {
                ListShardsOutput::builder()
                    .shards(shard("shardId-low", 0, HALF - 1))
                    .next_token("page-2")
                    .build()
            });
        let second = mock!(Client::list_shards)
            .match_requests(|r| r.stream_name().is_none() && r.next_token() == Some("page-2"))
            .then_output(|| {
                ListShardsOutput::builder()
                    .shards(shard("shardId-high", HALF, u128::MAX))
                    .build()
            });
        let put = mock!(Client::put_records)
            .match_requests(|r| {
                r.records().len() == 2
                    && r.records().iter().all(|e| e.explicit_hash_key().is_some())
            })
            .then_output(|| all_stored(2));
        let client = mock_client!(
            aws_sdk_kinesis,
            aws_smithy_mocks::RuleMode::MatchAny,
            [&first, &second, &put]
        );
        KinesisLog::new(client, "s")
            .append(&[click("a"), click("b")])
            .await
            .unwrap();
        assert_eq!(
            (first.num_calls(), second.num_calls(), put.num_calls()),
            (1, 1, 1)
        );

        // ListShards refused: each transaction's events by partition key, the request stored.
        let denied = mock!(Client::list_shards).then_error(|| {
            aws_sdk_kinesis::operation::list_shards::ListShardsError::LimitExceededException(
                aws_sdk_kinesis::types::error::LimitExceededException::builder()
                    .message("Rate exceeded")
                    .build(),
            )
        });
        let by_key = mock!(Client::put_records)
            .match_requests(|r| {
                let keys: Vec<Option<&str>> =
                    r.records().iter().map(|e| e.partition_key()).collect();
                keys == [Some("a"), Some("b")]
                    && r.records().iter().all(|e| e.explicit_hash_key().is_none())
                    && r.records()[0]
                        .data()
                        .as_ref()
                        .split(|&b| b == b'\n')
                        .count()
                        == 2
            })
            .then_output(|| all_stored(2));
        let client = mock_client!(
            aws_sdk_kinesis,
            aws_smithy_mocks::RuleMode::MatchAny,
            [&denied, &by_key]
        );
        KinesisLog::new(client, "s")
            .append(&[click("a"), click("b"), click("a")])
            .await
            .unwrap();
        assert_eq!(by_key.num_calls(), 1);
    }

    #[test]
    fn a_record_of_one_event_is_its_json_as_before_packing_and_records_stay_under_the_limit() {
        let one = click("a");
        assert_eq!(
            packed(&[&one], 1).unwrap(),
            [serde_json::to_vec(&one).unwrap()]
        );
        let mut big = click("x");
        big.tx_id = "x".repeat(300 * 1024);
        let records = packed(&[&big, &big, &big, &big], big.tx_id.len()).unwrap();
        assert_eq!(records.len(), 2, "three of 300 KiB, then one");
        assert!(records
            .iter()
            .all(|r| r.len() + big.tx_id.len() <= MAX_RECORD_BYTES));
    }

    #[tokio::test]
    async fn throttled_records_are_sent_again_alone_until_stored() {
        let partial = mock!(Client::put_records)
            .match_requests(|r| r.records().len() == 2)
            .then_output(|| {
                PutRecordsOutput::builder()
                    .failed_record_count(1)
                    .records(stored())
                    .records(refused("ProvisionedThroughputExceededException"))
                    .build()
                    .unwrap()
            });
        let retry = mock!(Client::put_records)
            .match_requests(|r| {
                r.records().len() == 1 && r.records()[0].partition_key() == Some("b")
            })
            .then_output(|| all_stored(1));
        // `a` and `b` are on different shards: two records, one refused.
        let shards = two_shards();
        let client = mock_client!(
            aws_sdk_kinesis,
            aws_smithy_mocks::RuleMode::MatchAny,
            [&shards, &partial, &retry]
        );
        KinesisLog::new(client, "s")
            .append(&[click("a"), click("b")])
            .await
            .unwrap();
        assert_eq!((partial.num_calls(), retry.num_calls()), (1, 1));
    }

    #[tokio::test]
    async fn records_still_throttled_after_the_attempts_are_a_transient_error() {
        let throttled = mock!(Client::put_records).then_output(|| {
            PutRecordsOutput::builder()
                .failed_record_count(1)
                .records(refused("ProvisionedThroughputExceededException"))
                .build()
                .unwrap()
        });
        let client = mock_client!(
            aws_sdk_kinesis,
            aws_smithy_mocks::RuleMode::MatchAny,
            [&throttled]
        );
        let err = KinesisLog::new(client, "s")
            .append(&[click("a")])
            .await
            .unwrap_err();
        assert!(err.is_transient(), "{err}");
        assert_eq!(throttled.num_calls(), ATTEMPTS as usize);
    }

    #[tokio::test]
    async fn a_record_refused_for_another_reason_is_a_permanent_error_naming_the_code() {
        let denied = mock!(Client::put_records).then_output(|| {
            PutRecordsOutput::builder()
                .failed_record_count(1)
                .records(refused("KMSAccessDeniedException"))
                .build()
                .unwrap()
        });
        let client = mock_client!(
            aws_sdk_kinesis,
            aws_smithy_mocks::RuleMode::MatchAny,
            [&denied]
        );
        let err = KinesisLog::new(client, "s")
            .append(&[click("a")])
            .await
            .unwrap_err();
        assert!(!err.is_transient());
        assert!(
            err.to_string().contains("KMSAccessDeniedException"),
            "{err}"
        );
    }
}

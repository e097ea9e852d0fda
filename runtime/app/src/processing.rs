//! Processing a batch of the event stream, end to end: decode its records, count them exactly
//! once (`sdp_core::processor`), then land what it changed in the lake (`sdp_core::landing`)
//! through a [`LakeSink`]. The processor Lambda runs it for each Kinesis batch, `sdp local`'s
//! processor thread for each batch of its log. The checkpoint that follows is the driver's: the
//! event source mapping moves on when the invocation succeeds; `sdp local` saves its log offset.
//! Either way it comes after the landing, so a crash in between lands the batch again (as exact
//! rows, which compaction drops) and counts nothing twice.
//!
//! Nothing is discarded. A record that can never be processed (its bytes are not a stored event,
//! or the state store refuses its transaction for good) is written whole to the lake's
//! `dead-letter/` prefix, with the reason, before the batch is reported done; every other failure
//! fails the batch, which the driver retries until it succeeds (counting is idempotent, so a
//! retry never counts twice). See the README's "Nothing answered 200 is dropped".

use base64::Engine as _;
use sdp_core::events::Event;
use sdp_core::join::JoinConfig;
use sdp_core::landing::rows_after_commit;
use sdp_core::ports::{AggregateReader, LakeSink, ObjectStore, Precondition, StateStore};
use sdp_core::processor::{process_batch, BatchResult, ProcessError};

/// Where records that can never be processed are kept, one object per record, in the lake.
pub const DEAD_LETTER_PREFIX: &str = "dead-letter/";

/// A record of the event stream as its driver read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamRecord {
    /// Unique in the stream, and the same on every delivery: Kinesis's event id (shard and
    /// sequence number), or the local log's sequence number. Names the record's dead letter.
    pub id: String,
    /// The stored bytes: an event's JSON, or several events' (one per line) in a record packed
    /// by `sdp_aws::KinesisLog`.
    pub data: Vec<u8>,
}

impl StreamRecord {
    /// The record's events, each as a record of its own: the record itself when it holds one,
    /// else each line, named `<id>-line-<n>` (counting from 1), so that a line that can never be
    /// processed is kept alone, under a name of its own, and the rest of the record is counted.
    fn lines(self) -> Vec<StreamRecord> {
        if !self.data.contains(&b'\n') {
            return vec![self];
        }
        self.data
            .split(|&b| b == b'\n')
            .enumerate()
            .filter(|(_, line)| !line.iter().all(u8::is_ascii_whitespace))
            .map(|(n, line)| StreamRecord {
                id: format!("{}-line-{}", self.id, n + 1),
                data: line.to_vec(),
            })
            .collect()
    }
}

/// What a processed and landed batch did.
#[derive(Debug, Clone, Default)]
pub struct Processed {
    pub result: BatchResult,
    /// Rows landed besides the events.
    pub landed: usize,
    /// Records set aside under [`DEAD_LETTER_PREFIX`].
    pub dead_letters: usize,
}

/// Decodes `records` (in stream order), counts their events into `store`, then lands the batch
/// named `batch` in `lake`; records that can never be processed go to `dead_letters` first.
pub async fn process_and_land<S, L, D>(
    store: &S,
    lake: &L,
    dead_letters: &D,
    config: &JoinConfig,
    batch: &str,
    records: Vec<StreamRecord>,
) -> Result<Processed, ProcessError>
where
    S: StateStore + AggregateReader + Sync,
    L: LakeSink + Sync,
    D: ObjectStore,
{
    // The decoded events, and beside each (same index) the record or line it came from. A
    // failed batch is delivered again whole (the event source mapping does not bisect: see the
    // template), and every event of it, packed or not, is recognised then as counted or not.
    let mut events = Vec::with_capacity(records.len());
    let mut decoded = Vec::with_capacity(records.len());
    let mut set_aside = 0;
    for record in records.into_iter().flat_map(StreamRecord::lines) {
        match Event::decode(&record.data) {
            Ok(event) => {
                events.push(event);
                decoded.push(record);
            }
            Err(err) => {
                let reason = format!("not a stored event: {err}");
                keep_dead_letter(dead_letters, &record, &reason).await?;
                set_aside += 1;
            }
        }
    }
    let result = process_batch(store, config, &events).await?;
    sdp_core::crash::point("processor.after_count");
    // Every record of a refused transaction, as it came: the letter holds what was stored.
    for (tx_id, reason) in &result.rejected {
        let of_tx = decoded
            .iter()
            .zip(&events)
            .filter(|(_, e)| &e.tx_id == tx_id);
        for (record, _) in of_tx {
            let reason = format!("refused by the state store: {reason}");
            keep_dead_letter(dead_letters, record, &reason).await?;
            set_aside += 1;
        }
    }
    let rows = rows_after_commit(store, config, &events, &result.states)
        .await
        .map_err(ProcessError::Landing)?;
    lake.deliver(batch, &events, &rows)
        .await
        .map_err(ProcessError::Landing)?;
    Ok(Processed {
        result,
        landed: rows.len(),
        dead_letters: set_aside,
    })
}

/// Writes one dead letter: the record's bytes exactly (base64, and as text when they are UTF-8,
/// for reading), the reason, and where it came from. The key is the record's id, so a retried
/// batch rewrites the same object.
async fn keep_dead_letter<D: ObjectStore>(
    objects: &D,
    record: &StreamRecord,
    reason: &str,
) -> Result<(), ProcessError> {
    let (id, data) = (record.id.as_str(), record.data.as_slice());
    tracing::error!(
        record = id,
        reason,
        "a record cannot be processed; kept as a dead letter"
    );
    let letter = serde_json::json!({
        "id": id,
        "reason": reason,
        "data_base64": base64::engine::general_purpose::STANDARD.encode(data),
        "data_text": std::str::from_utf8(data).ok(),
    });
    let key = dead_letter_key(id);
    objects
        .put(
            &key,
            letter.to_string().into_bytes(),
            "application/json",
            Precondition::None,
        )
        .await
        .map(|_| ())
        .map_err(ProcessError::Landing)
}

/// `dead-letter/<id>.json`, with the characters a key or a file name should not hold replaced
/// (record ids are letters, digits, `-` and one `:`, so no two ids share a key).
pub fn dead_letter_key(id: &str) -> String {
    let safe: String = id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{DEAD_LETTER_PREFIX}{safe}.json")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use sdp_core::join::Counts;
    use sdp_core::memory::{ready, scenario, Call, MemoryLake, MemoryObjects, MemoryState};
    use sdp_core::ports::Fetched;

    /// Ten bids; every other one won, every fourth clicked, as the stream holds them.
    fn batch() -> Vec<StreamRecord> {
        records(scenario(10))
    }

    fn records(events: Vec<Event>) -> Vec<StreamRecord> {
        events
            .iter()
            .enumerate()
            .map(|(i, e)| StreamRecord {
                id: format!("shardId-000000000000:{i:056}"),
                data: serde_json::to_vec(e).unwrap(),
            })
            .collect()
    }

    fn config() -> JoinConfig {
        JoinConfig::from_minutes(10, 5, 5).unwrap()
    }

    /// The state store, the lake and the dead-letter store of one test, in memory.
    #[derive(Default)]
    struct Stores {
        state: MemoryState,
        lake: MemoryLake,
        dead: MemoryObjects,
    }

    impl Stores {
        /// Processes `records` as the batch named `b1`.
        fn process(&self, records: Vec<StreamRecord>) -> Result<Processed, ProcessError> {
            ready(process_and_land(
                &self.state,
                &self.lake,
                &self.dead,
                &config(),
                "b1",
                records,
            ))
        }
    }

    const ALL: Counts = Counts {
        bids: 10,
        imps: 5,
        clicks: 3,
    };

    #[test]
    fn a_batch_whose_landing_failed_is_landed_by_its_retry_and_counted_once() {
        let stores = Stores::default();
        let (state, lake, dead) = (&stores.state, &stores.lake, &stores.dead);

        // Counted, then the landing fails (a Firehose outage): the driver does not checkpoint.
        lake.fail_next(1);
        let err = stores.process(batch()).unwrap_err();
        assert!(matches!(err, ProcessError::Landing(_)), "{err}");
        assert_eq!(state.totals(), ALL);
        assert!(lake.rows().is_empty());

        // The retry of the same batch counts nothing again and lands every row it derives.
        let retried = stores.process(batch()).unwrap();
        assert_eq!(state.totals(), ALL, "nothing counted twice");
        assert_eq!(retried.result.duplicates, batch().len());
        let joined = |dataset: &str| lake.rows().iter().filter(|r| r.dataset == dataset).count();
        assert_eq!((joined("impressions"), joined("clicks")), (5, 3));
        assert_eq!(lake.events().len(), batch().len());
        assert!(dead.keys().is_empty());
    }

    #[test]
    fn a_record_that_is_not_an_event_is_kept_whole_as_a_dead_letter_and_the_batch_goes_on() {
        let stores = Stores::default();
        let (state, dead) = (&stores.state, &stores.dead);
        let mut batch = batch();
        let garbage = b"\xff{not an event".to_vec();
        batch.insert(
            3,
            StreamRecord {
                id: "shardId-000000000000:poison".into(),
                data: garbage.clone(),
            },
        );
        let processed = stores.process(batch.clone()).unwrap();
        assert_eq!(state.totals(), ALL, "every good record counted");
        assert_eq!(processed.dead_letters, 1);
        let key = "dead-letter/shardId-000000000000_poison.json";
        assert_eq!(dead.keys(), [key]);
        let Fetched::Found(object) = ready(dead.get(key, None)).unwrap() else {
            panic!("no dead letter")
        };
        let letter: serde_json::Value = serde_json::from_slice(&object.bytes).unwrap();
        let kept = base64::engine::general_purpose::STANDARD
            .decode(letter["data_base64"].as_str().unwrap())
            .unwrap();
        assert_eq!(
            kept, garbage,
            "the payload is kept byte for byte, to replay"
        );
        assert!(letter["reason"]
            .as_str()
            .unwrap()
            .contains("not a stored event"));

        // A retry of the batch rewrites the same letter and counts nothing twice.
        stores.process(batch).unwrap();
        assert_eq!((dead.keys().len(), state.totals()), (1, ALL));
    }

    #[test]
    fn packed_records_count_each_event_once_when_redelivered_or_split_and_a_bad_line_is_kept_alone()
    {
        let stores = Stores::default();
        let (state, dead) = (&stores.state, &stores.dead);
        // The scenario's events packed four to a record, one per line; a line of garbage in the
        // second record.
        let lines: Vec<Vec<u8>> = scenario(10)
            .iter()
            .map(|e| serde_json::to_vec(e).unwrap())
            .collect();
        let mut packed: Vec<StreamRecord> = lines
            .chunks(4)
            .enumerate()
            .map(|(i, chunk)| StreamRecord {
                id: format!("shardId-000000000000:{i}"),
                data: chunk.join(&b'\n'),
            })
            .collect();
        packed[1]
            .data
            .extend_from_slice(b"\n{\"not\": \"an event\"}");
        let processed = stores.process(packed.clone()).unwrap();
        assert_eq!((state.totals(), processed.dead_letters), (ALL, 1));
        assert_eq!(
            dead.keys(),
            ["dead-letter/shardId-000000000000_1-line-5.json"]
        );
        // Delivered again whole, then again as a bisected batch would be: nothing twice.
        stores.process(packed.clone()).unwrap();
        stores.process(packed[..1].to_vec()).unwrap();
        let again = stores.process(packed[1..].to_vec()).unwrap();
        assert_eq!(state.totals(), ALL);
        assert_eq!(again.result.duplicates, lines.len() - 4);
        assert_eq!(dead.keys().len(), 1, "the same letter rewritten");
    }

    #[test]
    fn a_dead_letter_that_cannot_be_written_fails_the_batch_so_nothing_is_dropped() {
        let stores = Stores::default();
        let dead = &stores.dead;
        dead.fail_once(Call::Put, "dead-letter/");
        let poison = vec![StreamRecord {
            id: "7".into(),
            data: b"[]".to_vec(),
        }];
        assert!(stores.process(poison.clone()).is_err());
        stores.process(poison).unwrap();
        assert_eq!(dead.keys(), ["dead-letter/7.json"]);
    }

    #[test]
    fn events_the_state_store_refuses_for_good_become_dead_letters_and_the_rest_is_counted() {
        let stores = Stores::default();
        let (state, dead) = (&stores.state, &stores.dead);
        state.reject("tx-4");
        let records = batch();
        let processed = stores.process(records.clone()).unwrap();
        // tx-4: a bid, its impression and its click, each kept as it came, under its own id.
        assert_eq!(processed.dead_letters, 3);
        let of_tx4: Vec<&StreamRecord> = records
            .iter()
            .filter(|r| serde_json::from_slice::<Event>(&r.data).unwrap().tx_id == "tx-4")
            .collect();
        let keys: Vec<String> = of_tx4.iter().map(|r| dead_letter_key(&r.id)).collect();
        assert_eq!(dead.keys(), keys);
        let Fetched::Found(letter) = ready(dead.get(&keys[0], None)).unwrap() else {
            panic!("no dead letter")
        };
        let letter: serde_json::Value = serde_json::from_slice(&letter.bytes).unwrap();
        assert_eq!(
            letter["data_text"].as_str().map(str::as_bytes),
            Some(&of_tx4[0].data[..])
        );
        assert!(
            letter["reason"]
                .as_str()
                .unwrap()
                .contains("ValidationError"),
            "{letter}"
        );
        assert_eq!(
            state.totals(),
            Counts {
                bids: 9,
                imps: 4,
                clicks: 2
            }
        );
    }
}

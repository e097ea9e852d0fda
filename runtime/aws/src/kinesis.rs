//! The event log on Kinesis: `PutRecords` keyed by `tx_id`, so that every event of a transaction
//! lands on one shard, in order, and is processed by one processor invocation at a time.

use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;
use aws_sdk_kinesis::Client;
use sdp_core::events::Event;
use sdp_core::ports::{EventLog, StoreError};

use crate::error::{backoff, classify, is_transient_code, permanent, transient};

/// PutRecords takes at most 500 records and 5 MiB per call.
const MAX_RECORDS: usize = 500;
const MAX_BYTES: usize = 5 * 1024 * 1024;
/// Attempts for records that failed inside an accepted call (throttled shards, mostly). Short:
/// the caller is an API request waiting for its answer, and 503 + Retry-After is the honest reply.
const ATTEMPTS: u32 = 4;

#[derive(Debug, Clone)]
pub struct KinesisLog {
    client: Client,
    stream: String,
}

impl KinesisLog {
    pub fn new(client: Client, stream: impl Into<String>) -> KinesisLog {
        KinesisLog {
            client,
            stream: stream.into(),
        }
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
        for event in events {
            let data = serde_json::to_vec(event)
                .map_err(|e| permanent(format!("cannot encode event `{}`: {e}", event.tx_id)))?;
            let size = data.len() + event.tx_id.len();
            if chunk.len() == MAX_RECORDS || chunk_bytes + size > MAX_BYTES {
                self.put_chunk(std::mem::take(&mut chunk)).await?;
                chunk_bytes = 0;
            }
            chunk_bytes += size;
            chunk.push(
                PutRecordsRequestEntry::builder()
                    .partition_key(&event.tx_id)
                    .data(Blob::new(data))
                    .build()
                    .map_err(|e| permanent(format!("cannot build a Kinesis record: {e}")))?,
            );
        }
        if !chunk.is_empty() {
            self.put_chunk(chunk).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_kinesis::operation::put_records::PutRecordsOutput;
    use aws_sdk_kinesis::types::PutRecordsResultEntry;
    use aws_smithy_mocks::{mock, mock_client};
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

    fn refused(code: &str) -> PutRecordsResultEntry {
        PutRecordsResultEntry::builder()
            .error_code(code)
            .error_message("Rate exceeded for shard")
            .build()
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
            .then_output(|| {
                PutRecordsOutput::builder()
                    .failed_record_count(0)
                    .records(stored())
                    .build()
                    .unwrap()
            });
        let client = mock_client!(
            aws_sdk_kinesis,
            aws_smithy_mocks::RuleMode::MatchAny,
            [&partial, &retry]
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

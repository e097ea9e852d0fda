//! Landing lake rows through Firehose: one delivery stream per dataset (the template's
//! `<stack>-raw-<dataset>`, which partitions by event time and writes gzipped JSON lines to S3).
//! Every record is one JSON line, newline included, so the delivered objects are JSON lines as
//! they stand. `PutRecordBatch` can accept part of a batch: the records it refused are sent again,
//! and a delivery that still fails is a transient error, so the processor's batch is retried (its
//! rows are derived from committed state, so a retry lands the same rows again, which compaction
//! drops).

use std::collections::BTreeMap;

use aws_sdk_firehose::primitives::Blob;
use aws_sdk_firehose::types::Record;
use aws_sdk_firehose::Client;
use sdp_core::events::Event;
use sdp_core::landing::LandedRow;
use sdp_core::ports::{LakeSink, StoreError};

use crate::error::{backoff, classify, permanent, transient};

/// Firehose's limits per `PutRecordBatch`.
const MAX_RECORDS: usize = 500;
const MAX_BYTES: usize = 4 * 1024 * 1024;
/// Sends of the refused part of a batch before giving up.
const ATTEMPTS: u32 = 5;

#[derive(Debug, Clone)]
pub struct FirehoseLake {
    client: Client,
    /// dataset → delivery stream name.
    streams: BTreeMap<String, String>,
}

impl FirehoseLake {
    pub fn new(
        client: Client,
        streams: impl IntoIterator<Item = (String, String)>,
    ) -> FirehoseLake {
        FirehoseLake {
            client,
            streams: streams.into_iter().collect(),
        }
    }

    /// Delivers `rows`, each to its dataset's stream.
    pub async fn deliver_rows(&self, rows: &[LandedRow]) -> Result<(), StoreError> {
        let mut by_dataset: BTreeMap<&str, Vec<&LandedRow>> = BTreeMap::new();
        for row in rows {
            by_dataset.entry(row.dataset).or_default().push(row);
        }
        for (dataset, rows) in by_dataset {
            let stream = self.streams.get(dataset).ok_or_else(|| {
                permanent(format!(
                    "no delivery stream is configured for the `{dataset}` rows"
                ))
            })?;
            let mut chunk: Vec<Vec<u8>> = Vec::new();
            let mut bytes = 0;
            for row in rows {
                let record = format!("{}\n", row.line).into_bytes();
                if chunk.len() == MAX_RECORDS || bytes + record.len() > MAX_BYTES {
                    self.put(stream, std::mem::take(&mut chunk)).await?;
                    bytes = 0;
                }
                bytes += record.len();
                chunk.push(record);
            }
            if !chunk.is_empty() {
                self.put(stream, chunk).await?;
            }
        }
        Ok(())
    }

    async fn put(&self, stream: &str, mut records: Vec<Vec<u8>>) -> Result<(), StoreError> {
        let operation = format!("Firehose PutRecordBatch {stream}");
        for attempt in 0..ATTEMPTS {
            let batch: Vec<Record> = records
                .iter()
                .map(|data| Record::builder().data(Blob::new(data.clone())).build())
                .collect::<Result<_, _>>()
                .map_err(|e| permanent(format!("{operation}: {e}")))?;
            let output = self
                .client
                .put_record_batch()
                .delivery_stream_name(stream)
                .set_records(Some(batch))
                .send()
                .await
                .map_err(|e| classify(&operation, e))?;
            if output.failed_put_count() == 0 {
                return Ok(());
            }
            let mut reason = String::new();
            let refused: Vec<Vec<u8>> = output
                .request_responses()
                .iter()
                .zip(records)
                .filter(|(answer, _)| answer.error_code().is_some())
                .map(|(answer, record)| {
                    reason = format!(
                        "{}: {}",
                        answer.error_code().unwrap_or_default(),
                        answer.error_message().unwrap_or_default()
                    );
                    record
                })
                .collect();
            tracing::warn!(stream, refused = refused.len(), attempt, %reason, "records refused; sending them again");
            records = refused;
            if attempt + 1 == ATTEMPTS {
                return Err(transient(format!(
                    "{operation}: {} records still refused after {ATTEMPTS} attempts ({reason})",
                    records.len()
                )));
            }
            backoff(attempt, 100, 2_000).await;
        }
        Ok(())
    }
}

/// The `bcns` rows are the stream's: the template's delivery stream for them reads the event
/// stream itself, so only the rows derived from the commit go through here.
impl LakeSink for FirehoseLake {
    async fn deliver(
        &self,
        _batch: &str,
        _events: &[Event],
        rows: &[LandedRow],
    ) -> Result<(), StoreError> {
        self.deliver_rows(rows).await
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_firehose::operation::put_record_batch::PutRecordBatchOutput;
    use aws_sdk_firehose::types::PutRecordBatchResponseEntry;
    use aws_smithy_mocks::{mock, mock_client, RuleMode};

    use super::*;

    fn rows(n: usize) -> Vec<LandedRow> {
        (0..n)
            .map(|i| LandedRow {
                dataset: "clicks",
                ts_ms: 1,
                line: format!("{{\"tx_id\":\"t{i}\"}}"),
            })
            .collect()
    }

    fn delivered() -> PutRecordBatchResponseEntry {
        PutRecordBatchResponseEntry::builder()
            .record_id("r")
            .build()
    }

    /// A record Firehose refused within an accepted batch, as AWS words it.
    fn refused() -> PutRecordBatchResponseEntry {
        PutRecordBatchResponseEntry::builder()
            .error_code("ServiceUnavailableException")
            .error_message("Slow down.")
            .build()
    }

    fn lake(client: Client) -> FirehoseLake {
        FirehoseLake::new(client, [("clicks".to_owned(), "s-raw-clicks".to_owned())])
    }

    #[tokio::test]
    async fn records_firehose_refused_are_sent_again_alone_until_delivered() {
        let first = mock!(Client::put_record_batch)
            .match_requests(|r| r.records().len() == 3)
            .then_output(|| {
                PutRecordBatchOutput::builder()
                    .failed_put_count(1)
                    .request_responses(delivered())
                    .request_responses(refused())
                    .request_responses(delivered())
                    .build()
                    .unwrap()
            });
        let again = mock!(Client::put_record_batch)
            .match_requests(|r| {
                r.records().len() == 1 && r.records()[0].data().as_ref() == b"{\"tx_id\":\"t1\"}\n"
            })
            .then_output(|| {
                PutRecordBatchOutput::builder()
                    .failed_put_count(0)
                    .request_responses(delivered())
                    .build()
                    .unwrap()
            });
        let client = mock_client!(aws_sdk_firehose, RuleMode::MatchAny, [&first, &again]);
        lake(client).deliver_rows(&rows(3)).await.unwrap();
        assert_eq!((first.num_calls(), again.num_calls()), (1, 1));
    }

    #[tokio::test]
    async fn records_refused_on_every_attempt_are_a_transient_error_so_the_batch_is_retried() {
        let always = mock!(Client::put_record_batch).then_output(|| {
            PutRecordBatchOutput::builder()
                .failed_put_count(1)
                .request_responses(refused())
                .build()
                .unwrap()
        });
        let client = mock_client!(aws_sdk_firehose, RuleMode::MatchAny, [&always]);
        let err = lake(client).deliver_rows(&rows(1)).await.unwrap_err();
        assert!(err.is_transient(), "{err}");
        assert!(
            err.to_string()
                .contains("ServiceUnavailableException: Slow down."),
            "{err}"
        );
        assert_eq!(always.num_calls(), ATTEMPTS as usize);
    }
}

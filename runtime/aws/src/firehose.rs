//! Landing lake rows through Firehose: one delivery stream per dataset (the template's
//! `<stack>-raw-<dataset>`, which partitions by event time and writes gzipped JSON lines to S3).
//! Rows are packed: one record carries up to [`MAX_ROWS_PER_RECORD`] rows of one hour, each a
//! JSON line with its newline, and the delivery stream splits them again before it partitions
//! (its `RecordDeAggregation` processor) and ends each with a newline. Firehose bills a record
//! by 5 KB steps, so a record per row (a few hundred bytes) cost a row's bytes twenty times over.
//! `PutRecordBatch` can accept part of a batch: the records it refused are sent again, and a
//! delivery that still fails is a transient error, so the processor's batch is retried (its rows
//! are derived from committed state, so a retry lands the same rows again, which compaction
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
/// Firehose's limits per record: 1,000 KiB, and 500 JSON objects split out of it.
const MAX_RECORD_BYTES: usize = 1000 * 1024;
pub const MAX_ROWS_PER_RECORD: usize = 500;
const HOUR_MS: i64 = 3_600_000;
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
            for record in packed(&rows) {
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

/// `rows` (of one dataset) as records: the rows of each hour together, newline-terminated, at most
/// [`MAX_ROWS_PER_RECORD`] and [`MAX_RECORD_BYTES`] a record (a row is far smaller: an event's
/// fields are bounded).
fn packed(rows: &[&LandedRow]) -> Vec<Vec<u8>> {
    let mut by_hour: BTreeMap<i64, Vec<&LandedRow>> = BTreeMap::new();
    for row in rows {
        by_hour
            .entry(row.ts_ms.div_euclid(HOUR_MS))
            .or_default()
            .push(row);
    }
    let mut records = Vec::new();
    for rows in by_hour.into_values() {
        let (mut record, mut count) = (Vec::new(), 0);
        for row in rows {
            if count == MAX_ROWS_PER_RECORD || record.len() + row.line.len() + 1 > MAX_RECORD_BYTES
            {
                records.push(std::mem::take(&mut record));
                count = 0;
            }
            record.extend_from_slice(row.line.as_bytes());
            record.push(b'\n');
            count += 1;
        }
        if count > 0 {
            records.push(record);
        }
    }
    records
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

    /// `n` rows, the i-th in hour `hour(i)`.
    fn rows_in(n: usize, hour: impl Fn(usize) -> i64) -> Vec<LandedRow> {
        (0..n)
            .map(|i| LandedRow {
                dataset: "clicks",
                ts_ms: hour(i) * HOUR_MS + 1,
                line: format!("{{\"tx_id\":\"t{i}\"}}"),
            })
            .collect()
    }

    fn rows(n: usize) -> Vec<LandedRow> {
        rows_in(n, |_| 0)
    }

    #[test]
    fn rows_are_packed_by_hour_up_to_the_rows_a_record_may_split_into() {
        let rows = rows_in(2 * MAX_ROWS_PER_RECORD + 3, |i| i64::from(i % 2 == 1));
        let records = packed(&rows.iter().collect::<Vec<_>>());
        let lines: Vec<Vec<&str>> = records
            .iter()
            .map(|r| std::str::from_utf8(r).unwrap().lines().collect())
            .collect();
        // 502 rows of hour 0 (even i) and 501 of hour 1: 500 + 2 and 500 + 1.
        assert_eq!(
            lines.iter().map(Vec::len).collect::<Vec<_>>(),
            [500, 2, 500, 1]
        );
        assert!(records.iter().all(|r| r.ends_with(b"\n")));
        assert_eq!(
            lines[0][1], r#"{"tx_id":"t2"}"#,
            "each hour's rows in order"
        );
        assert_eq!(lines[2][0], r#"{"tx_id":"t1"}"#);
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
        // Three hours: three records, the second refused once.
        let rows = rows_in(6, |i| (i / 2) as i64);
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
                r.records().len() == 1
                    && r.records()[0].data().as_ref() == b"{\"tx_id\":\"t2\"}\n{\"tx_id\":\"t3\"}\n"
            })
            .then_output(|| {
                PutRecordBatchOutput::builder()
                    .failed_put_count(0)
                    .request_responses(delivered())
                    .build()
                    .unwrap()
            });
        let client = mock_client!(aws_sdk_firehose, RuleMode::MatchAny, [&first, &again]);
        lake(client).deliver_rows(&rows).await.unwrap();
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

//! Raw JSON lines of one partition → one Parquet file, with the explicit schema of the dataset's
//! tables (`sdp_core::lake`): no inference, so a file always has exactly the declared columns.
//!
//! The output depends only on the set of input rows: rows are sorted (by the columns queries filter
//! on, then by every column) and exact duplicates are dropped (Firehose delivers at least once),
//! so compacting the same inputs again, in any order or with a redelivered object among them,
//! gives the same bytes. A line that is not JSON, or has a value of the wrong type, is reported
//! with its input and line number; the rest of the input is kept.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::io::Read;
use std::sync::Arc;

use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use flate2::read::MultiGzDecoder;
use parquet::arrow::arrow_reader::ParquetRecordBatchReader;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use serde_json::Value;

use sdp_core::lake::{ColumnType, Dataset, Merge};

/// Rows per row group: large enough for efficient scans, small enough that a reader can skip
/// groups by their statistics (rows are sorted, so each group covers a narrow key range).
pub const ROW_GROUP_ROWS: usize = 256 * 1024;

/// Rows turned into Arrow arrays at a time, bounding the memory of the columnar copy.
const BATCH_ROWS: usize = 64 * 1024;

/// One value of a row. The derived order (null first) is the file's sort order.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Cell {
    Null,
    Int(i64),
    Text(String),
}

/// An input line that could not be converted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectedLine {
    pub input: String,
    /// 1-based.
    pub line: usize,
    pub reason: String,
}

/// The Parquet file of a partition and what went into it.
#[derive(Debug)]
pub struct Compacted {
    pub parquet: Vec<u8>,
    pub rows: usize,
    /// Exact duplicates dropped.
    pub duplicates: usize,
    /// Snapshots replaced by a later one of the same key ([`Merge::LatestCounters`]).
    pub superseded: usize,
    pub rejected: Vec<RejectedLine>,
}

#[derive(Debug, thiserror::Error)]
pub enum CompactError {
    #[error("writing Parquet failed: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    #[error("building Arrow arrays failed: {0}")]
    Arrow(#[from] arrow_schema::ArrowError),
    #[error("the previous file has no column `{0}` of the declared type")]
    Previous(&'static str),
}

/// The Arrow schema of a dataset's table: its columns in order, every one nullable.
pub fn schema(dataset: &Dataset) -> Schema {
    Schema::new(
        dataset
            .columns
            .iter()
            .map(|c| {
                let data_type = match c.column_type {
                    ColumnType::String => DataType::Utf8,
                    ColumnType::Bigint => DataType::Int64,
                };
                Field::new(c.name, data_type, true)
            })
            .collect::<Vec<_>>(),
    )
}

/// The columns a dataset's rows are sorted by first: the ones its queries filter on.
fn sort_columns(dataset: &Dataset) -> &'static [&'static str] {
    match dataset.name {
        "bcns" => &["type", "campaign_item_id", "ts", "tx_id"],
        "aggregates" => &["campaign_item_id", "period"],
        _ => &["campaign_item_id", "ts", "tx_id"],
    }
}

/// The compression of every column: zstd level 3. Compaction runs once per partition and the files
/// are scanned by every query after, so size (S3 storage, Athena's bytes scanned) outweighs write
/// speed; bench/compact.sh writes the same rows with zstd and with snappy to show the difference.
/// Athena, DuckDB and pyarrow all read zstd.
fn properties() -> Result<WriterProperties, CompactError> {
    Ok(WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(3)?))
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_statistics_enabled(EnabledStatistics::Page)
        .build())
}

/// Compacts `inputs` (name, JSON-lines bytes, gzipped or not) of `dataset` into one Parquet file.
pub fn compact(dataset: &Dataset, inputs: &[(String, Vec<u8>)]) -> Result<Compacted, CompactError> {
    compact_onto(dataset, None, inputs)
}

/// Compacts `inputs` together with the rows of `previous`, a file this module wrote for the same
/// dataset: the result is the file a compaction of all their inputs at once would give, byte for
/// byte, so late data merges into a partition without its (possibly expired) earlier inputs.
pub fn compact_onto(
    dataset: &Dataset,
    previous: Option<&[u8]>,
    inputs: &[(String, Vec<u8>)],
) -> Result<Compacted, CompactError> {
    let mut rows = match previous {
        Some(parquet) => rows_of(dataset, parquet)?,
        None => Vec::new(),
    };
    let mut rejected = Vec::new();
    for (name, bytes) in inputs {
        let bytes = match gunzip(bytes) {
            Ok(bytes) => bytes,
            Err(reason) => {
                rejected.push(RejectedLine {
                    input: name.clone(),
                    line: 0,
                    reason,
                });
                continue;
            }
        };
        for (index, line) in bytes.split(|b| *b == b'\n').enumerate() {
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            match row(dataset, line) {
                Ok(row) => rows.push(row),
                Err(reason) => rejected.push(RejectedLine {
                    input: name.clone(),
                    line: index + 1,
                    reason,
                }),
            }
        }
    }
    let order: Vec<usize> = sort_columns(dataset)
        .iter()
        .filter_map(|name| dataset.columns.iter().position(|c| c.name == *name))
        .collect();
    rows.sort_by(|a, b| compare(&order, a, b));
    let before = rows.len();
    rows.dedup();
    let duplicates = before - rows.len();
    let before = rows.len();
    if let Merge::LatestCounters { key_columns } = dataset.merge {
        // The sort columns of such a dataset are its key columns, so the snapshots of one key
        // are adjacent; the first is kept and takes the largest value of each counter.
        rows.dedup_by(|later, kept| {
            let same_key = later[..key_columns] == kept[..key_columns];
            if same_key {
                for (kept, later) in kept.iter_mut().zip(later.iter()).skip(key_columns) {
                    if *later > *kept {
                        *kept = later.clone();
                    }
                }
            }
            same_key
        });
    }
    let superseded = before - rows.len();

    let schema = Arc::new(schema(dataset));
    let mut writer = ArrowWriter::try_new(Vec::new(), Arc::clone(&schema), Some(properties()?))?;
    for chunk in rows.chunks(BATCH_ROWS) {
        writer.write(&batch(dataset, &schema, chunk)?)?;
    }
    let parquet = writer.into_inner()?;
    Ok(Compacted {
        parquet,
        rows: rows.len(),
        duplicates,
        superseded,
        rejected,
    })
}

/// The bytes of a gzipped object (Firehose's delivery), or the bytes as they are.
fn gunzip(bytes: &[u8]) -> Result<Cow<'_, [u8]>, String> {
    if !bytes.starts_with(&[0x1f, 0x8b]) {
        return Ok(Cow::Borrowed(bytes));
    }
    let mut out = Vec::with_capacity(bytes.len() * 8);
    MultiGzDecoder::new(bytes)
        .read_to_end(&mut out)
        .map_err(|e| format!("not a valid gzip object: {e}"))?;
    Ok(Cow::Owned(out))
}

/// The rows of a file written by [`compact`] for `dataset`, read back as cells.
fn rows_of(dataset: &Dataset, parquet: &[u8]) -> Result<Vec<Vec<Cell>>, CompactError> {
    let reader =
        ParquetRecordBatchReader::try_new(bytes::Bytes::copy_from_slice(parquet), BATCH_ROWS)?;
    let mut rows = Vec::new();
    for batch in reader {
        let batch = batch?;
        let mut columns = Vec::with_capacity(dataset.columns.len());
        for column in dataset.columns {
            let array = batch.column_by_name(column.name);
            let cells: Option<Vec<Cell>> = match column.column_type {
                ColumnType::String => array
                    .and_then(|a| a.as_any().downcast_ref::<StringArray>())
                    .map(|a| {
                        a.iter()
                            .map(|v| v.map_or(Cell::Null, |v| Cell::Text(v.to_owned())))
                            .collect()
                    }),
                ColumnType::Bigint => array
                    .and_then(|a| a.as_any().downcast_ref::<Int64Array>())
                    .map(|a| a.iter().map(|v| v.map_or(Cell::Null, Cell::Int)).collect()),
            };
            columns.push(
                cells
                    .ok_or(CompactError::Previous(column.name))?
                    .into_iter(),
            );
        }
        for _ in 0..batch.num_rows() {
            rows.push(columns.iter_mut().filter_map(Iterator::next).collect());
        }
    }
    Ok(rows)
}

fn compare(order: &[usize], a: &[Cell], b: &[Cell]) -> Ordering {
    order
        .iter()
        .map(|&i| a[i].cmp(&b[i]))
        .find(|o| o.is_ne())
        .unwrap_or_else(|| a.cmp(b))
}

/// One JSON line as a row of the dataset's columns; a missing or null value is a null.
fn row(dataset: &Dataset, line: &[u8]) -> Result<Vec<Cell>, String> {
    let value: Value =
        serde_json::from_slice(line).map_err(|e| format!("not a JSON object: {e}"))?;
    let object = value
        .as_object()
        .ok_or_else(|| "not a JSON object".to_owned())?;
    dataset
        .columns
        .iter()
        .map(
            |column| match (object.get(column.name), column.column_type) {
                (None | Some(Value::Null), _) => Ok(Cell::Null),
                (Some(Value::String(s)), ColumnType::String) => Ok(Cell::Text(s.clone())),
                (Some(Value::Number(n)), ColumnType::Bigint) => n
                    .as_i64()
                    .map(Cell::Int)
                    .ok_or_else(|| format!("`{}` is {n}, not a 64-bit integer", column.name)),
                (Some(other), expected) => Err(format!(
                    "`{}` is {other}, not a {}",
                    column.name,
                    expected.hive_name()
                )),
            },
        )
        .collect()
}

fn batch(
    dataset: &Dataset,
    schema: &Arc<Schema>,
    rows: &[Vec<Cell>],
) -> Result<RecordBatch, CompactError> {
    let columns: Vec<ArrayRef> = dataset
        .columns
        .iter()
        .enumerate()
        .map(|(i, column)| -> ArrayRef {
            match column.column_type {
                ColumnType::String => {
                    Arc::new(StringArray::from_iter(rows.iter().map(|r| match &r[i] {
                        Cell::Text(s) => Some(s.as_str()),
                        _ => None,
                    })))
                }
                ColumnType::Bigint => {
                    Arc::new(Int64Array::from_iter(rows.iter().map(|r| match r[i] {
                        Cell::Int(n) => Some(n),
                        _ => None,
                    })))
                }
            }
        })
        .collect();
    Ok(RecordBatch::try_new(Arc::clone(schema), columns)?)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use sdp_core::lake::DATASETS;

    use super::*;

    fn bcns() -> &'static Dataset {
        &DATASETS[0]
    }

    #[test]
    fn the_same_rows_in_any_order_and_with_redeliveries_give_the_same_bytes() {
        let a = br#"{"tx_id":"a","type":"bid","ts":2,"received_at":2,"campaign_item_id":1,"app_uid":"u"}"#;
        let b = br#"{"tx_id":"b","type":"imp","ts":1,"received_at":1,"win_price":5}"#;
        let one = compact(bcns(), &[("x".into(), [&a[..], b"\n", &b[..]].concat())]).unwrap();
        let other = compact(
            bcns(),
            &[
                ("y".into(), b.to_vec()),
                ("z".into(), [&a[..], b"\n", &a[..], b"\n"].concat()),
            ],
        )
        .unwrap();
        assert_eq!(one.parquet, other.parquet);
        assert_eq!((other.rows, other.duplicates), (2, 1));
    }

    #[test]
    fn aggregate_snapshots_merge_to_the_latest_totals_of_each_key_in_any_order() {
        let aggregates = DATASETS.iter().find(|d| d.name == "aggregates").unwrap();
        let snapshot = |campaign: i64, period: &str, (bids, imps, clicks): (i64, i64, i64)| {
            format!(
                r#"{{"campaign_item_id":{campaign},"period":"{period}","bids":{bids},"imps":{imps},"clicks":{clicks}}}"#
            )
        };
        let first = [
            snapshot(7, "2026-11-22 10:00:00.000", (3, 1, 0)),
            snapshot(8, "2026-11-22 10:00:00.000", (1, 0, 0)),
        ]
        .join("\n");
        let later = [
            snapshot(7, "2026-11-22 10:00:00.000", (5, 2, 1)),
            snapshot(7, "2026-11-22 10:10:00.000", (1, 0, 0)),
            snapshot(7, "2026-11-22 10:00:00.000", (5, 2, 1)),
        ]
        .join("\n");
        let one = compact(
            aggregates,
            &[
                ("a".into(), first.clone().into()),
                ("b".into(), later.clone().into()),
            ],
        )
        .unwrap();
        let other = compact(
            aggregates,
            &[("b".into(), later.into()), ("a".into(), first.into())],
        )
        .unwrap();
        assert_eq!(
            one.parquet, other.parquet,
            "the order of snapshots does not matter"
        );
        assert_eq!((one.rows, one.duplicates, one.superseded), (3, 1, 1));

        let merged = only_rows(&one.parquet);
        assert_eq!(
            merged,
            [
                (7, "2026-11-22 10:00:00.000".to_owned(), 5, 2, 1),
                (7, "2026-11-22 10:10:00.000".to_owned(), 1, 0, 0),
                (8, "2026-11-22 10:00:00.000".to_owned(), 1, 0, 0),
            ]
        );
    }

    /// The rows of an aggregates Parquet file, read back with the Parquet reader.
    fn only_rows(parquet: &[u8]) -> Vec<(i64, String, i64, i64, i64)> {
        use arrow_array::Array;
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReader::try_new(
            bytes::Bytes::copy_from_slice(parquet),
            1024,
        )
        .unwrap();
        let mut rows = Vec::new();
        for batch in reader {
            let batch = batch.unwrap();
            let int = |i: usize| {
                batch
                    .column(i)
                    .as_any()
                    .downcast_ref::<Int64Array>()
                    .unwrap()
                    .clone()
            };
            let period = batch
                .column(1)
                .as_any()
                .downcast_ref::<StringArray>()
                .unwrap()
                .clone();
            for r in 0..batch.num_rows() {
                rows.push((
                    int(0).value(r),
                    period.value(r).to_owned(),
                    int(2).value(r),
                    int(3).value(r),
                    int(4).value(r),
                ));
            }
        }
        rows
    }

    #[test]
    fn late_inputs_compacted_onto_the_previous_file_give_the_bytes_of_all_at_once() {
        let early = b"{\"tx_id\":\"a\",\"type\":\"bid\",\"ts\":2,\"received_at\":2,\"campaign_item_id\":1}\n".to_vec();
        let late =
            b"{\"tx_id\":\"b\",\"type\":\"imp\",\"ts\":1,\"received_at\":9,\"win_price\":5}\n"
                .to_vec();
        let all = compact(
            bcns(),
            &[("e".into(), early.clone()), ("l".into(), late.clone())],
        )
        .unwrap();
        let first = compact(bcns(), &[("e".into(), early.clone())]).unwrap();
        let merged = compact_onto(bcns(), Some(&first.parquet), &[("l".into(), late)]).unwrap();
        assert_eq!(merged.parquet, all.parquet);
        assert_eq!(merged.rows, 2);
        // A redelivery of what the previous file holds adds nothing.
        let again = compact_onto(bcns(), Some(&merged.parquet), &[("e2".into(), early)]).unwrap();
        assert_eq!((again.parquet, again.duplicates), (all.parquet, 1));
        // Another dataset's file is not a previous file of this one.
        let aggregates = DATASETS.iter().find(|d| d.name == "aggregates").unwrap();
        let err = compact_onto(aggregates, Some(&first.parquet), &[]).unwrap_err();
        assert!(
            err.to_string().contains("`campaign_item_id`") || err.to_string().contains("`period`"),
            "{err}"
        );
    }

    #[test]
    fn gzipped_inputs_are_read_and_a_broken_one_is_reported_alone() {
        use std::io::Write;
        let line = b"{\"tx_id\":\"a\",\"type\":\"click\",\"ts\":1,\"received_at\":1}\n";
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(line).unwrap();
        let gzipped = encoder.finish().unwrap();
        let plain = compact(bcns(), &[("p".into(), line.to_vec())]).unwrap();
        let broken = [&gzipped[..10], b"garbage"].concat();
        let out = compact(
            bcns(),
            &[("g.gz".into(), gzipped), ("bad.gz".into(), broken)],
        )
        .unwrap();
        assert_eq!(out.parquet, plain.parquet);
        assert_eq!(out.rejected.len(), 1);
        assert_eq!(
            (out.rejected[0].input.as_str(), out.rejected[0].line),
            ("bad.gz", 0)
        );
        assert!(
            out.rejected[0].reason.contains("gzip"),
            "{:?}",
            out.rejected
        );
    }

    #[test]
    fn bad_lines_are_reported_with_their_place_and_the_rest_is_kept() {
        let input = b"{\"tx_id\":\"a\",\"type\":\"click\",\"ts\":1,\"received_at\":1}\nnot json\n{\"tx_id\":\"b\",\"ts\":\"soon\"}\n\n";
        let out = compact(bcns(), &[("raw/bcns/f1".into(), input.to_vec())]).unwrap();
        assert_eq!(out.rows, 1);
        assert_eq!(out.rejected.len(), 2);
        assert_eq!(
            (out.rejected[0].input.as_str(), out.rejected[0].line),
            ("raw/bcns/f1", 2)
        );
        assert_eq!(out.rejected[1].line, 3);
        assert!(
            out.rejected[1]
                .reason
                .contains("`ts` is \"soon\", not a bigint"),
            "{:?}",
            out.rejected[1]
        );
    }
}

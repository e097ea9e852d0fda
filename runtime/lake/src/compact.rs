//! Raw JSON lines of one partition → its Parquet files, with the explicit schema of the dataset's
//! tables (`sdp_core::lake`): no inference, so a file always has exactly the declared columns.
//!
//! The output depends only on the set of input rows: rows are sorted (by the columns queries filter
//! on, then by every column) and exact duplicates are dropped (Firehose delivers at least once),
//! so compacting the same inputs again, in any order or with a redelivered object among them,
//! gives the same bytes. A line that is not JSON, or has a value of the wrong type, is reported
//! with its input and line number; the rest of the input is kept.
//!
//! Rows are held column by column ([`columns`]) and parsed straight into them ([`line`]), so a
//! partition costs about its raw size in memory while it is sorted. The sorted rows are cut into
//! files of about [`TARGET_FILE_BYTES`], each holding a contiguous range of the order.

mod columns;
mod line;

use std::borrow::Cow;
use std::cmp::Ordering;
use std::io::Read;
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::{DataType, Field, Schema};
use flate2::read::MultiGzDecoder;
use parquet::arrow::arrow_reader::ParquetRecordBatchReader;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};

use sdp_core::lake::{ColumnType, Dataset, Merge};

use columns::Column;

/// Rows per row group: large enough for efficient scans, small enough that a reader can skip
/// groups by their statistics (rows are sorted, so each group covers a narrow key range).
pub const ROW_GROUP_ROWS: usize = 256 * 1024;

/// The size a partition's file is cut at: large enough that a query opens few files, within the
/// 64–512 MB Athena's guidance suggests, and a unit a reader can fetch whole.
pub const TARGET_FILE_BYTES: usize = 128 * 1024 * 1024;

/// Rows turned into Arrow arrays at a time: this bounds the memory of the columnar copy, and is
/// how finely a file is cut at its target size.
const BATCH_ROWS: usize = 8 * 1024;

/// An input line that could not be converted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectedLine {
    pub input: String,
    /// 1-based; 0 for an input that could not be read at all.
    pub line: usize,
    pub reason: String,
}

/// The Parquet files of a partition and what went into them.
#[derive(Debug)]
pub struct Compacted {
    /// At least one (with no rows if there were none), each about [`TARGET_FILE_BYTES`] at most,
    /// in sort order.
    pub files: Vec<Vec<u8>>,
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
    #[error("a partition holds at most {} rows", u32::MAX)]
    TooManyRows,
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

/// The columns a dataset's rows are sorted by first: the ones its queries filter on. For a
/// [`Merge::LatestCounters`] dataset they are its key columns, so a key's snapshots are adjacent.
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

/// Compacts `inputs` (name, JSON-lines bytes, gzipped or not) of `dataset`.
pub fn compact(dataset: &Dataset, inputs: &[(String, Vec<u8>)]) -> Result<Compacted, CompactError> {
    compact_onto(dataset, &[], inputs)
}

/// Compacts `inputs` together with the rows of `previous`, the files this module wrote for the same
/// dataset's partition: the result is the files a compaction of all their inputs at once would
/// give, byte for byte, so late data merges into a partition without its (possibly expired)
/// earlier inputs.
pub fn compact_onto(
    dataset: &Dataset,
    previous: &[Vec<u8>],
    inputs: &[(String, Vec<u8>)],
) -> Result<Compacted, CompactError> {
    let mut partition = Partition::new(dataset);
    for file in previous {
        partition.add_parquet(file.clone())?;
    }
    for (name, bytes) in inputs {
        partition.add_raw(name, bytes)?;
    }
    partition.finish(TARGET_FILE_BYTES)
}

/// The rows of one partition being gathered, input by input, so that a caller can fetch an
/// input, add it and let its bytes go before fetching the next.
pub struct Partition<'d> {
    dataset: &'d Dataset,
    columns: Vec<Column>,
    rows: usize,
    rejected: Vec<RejectedLine>,
}

impl<'d> Partition<'d> {
    pub fn new(dataset: &'d Dataset) -> Self {
        Partition {
            dataset,
            columns: dataset
                .columns
                .iter()
                .map(|c| Column::new(c.column_type))
                .collect(),
            rows: 0,
            rejected: Vec::new(),
        }
    }

    /// Adds the rows of a raw object (JSON lines, gzipped or not); lines that are not rows are
    /// kept aside as rejected, with `name` and their line number.
    pub fn add_raw(&mut self, name: &str, bytes: &[u8]) -> Result<(), CompactError> {
        let bytes = match gunzip(bytes) {
            Ok(bytes) => bytes,
            Err(reason) => {
                self.reject(name, 0, reason);
                return Ok(());
            }
        };
        for (index, text) in bytes.split(|b| *b == b'\n').enumerate() {
            if text.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            if let Err(reason) = self.add_line(text) {
                self.reject(name, index + 1, reason);
            }
        }
        self.check_size()
    }

    fn reject(&mut self, input: &str, line: usize, reason: String) {
        self.rejected.push(RejectedLine {
            input: input.to_owned(),
            line,
            reason,
        });
    }

    fn add_line(&mut self, text: &[u8]) -> Result<(), String> {
        let values = line::values(self.dataset.columns, text)?;
        let names = self.dataset.columns.iter().map(|c| c.name);
        for ((column, value), name) in self.columns.iter_mut().zip(values).zip(names) {
            if let Err(reason) = column.push(name, value) {
                for column in &mut self.columns {
                    column.truncate(self.rows);
                }
                return Err(reason);
            }
        }
        self.rows += 1;
        Ok(())
    }

    /// Adds the rows of a file this module wrote for the same dataset.
    pub fn add_parquet(&mut self, parquet: Vec<u8>) -> Result<(), CompactError> {
        let reader = ParquetRecordBatchReader::try_new(bytes::Bytes::from(parquet), BATCH_ROWS)?;
        for batch in reader {
            let batch = batch?;
            for (column, declared) in self.columns.iter_mut().zip(self.dataset.columns) {
                let appended = batch
                    .column_by_name(declared.name)
                    .is_some_and(|array| column.append(array.as_ref()));
                if !appended {
                    for column in &mut self.columns {
                        column.truncate(self.rows);
                    }
                    return Err(CompactError::Previous(declared.name));
                }
            }
            self.rows += batch.num_rows();
        }
        self.check_size()
    }

    /// Rows are numbered by `u32` while sorting, half the memory of `usize`.
    fn check_size(&self) -> Result<(), CompactError> {
        u32::try_from(self.rows)
            .map(|_| ())
            .map_err(|_| CompactError::TooManyRows)
    }

    /// Sorts, merges by the dataset's rule and writes the rows, cutting a new file each time one
    /// reaches `target_file_bytes`.
    pub fn finish(self, target_file_bytes: usize) -> Result<Compacted, CompactError> {
        let rows = u32::try_from(self.rows).map_err(|_| CompactError::TooManyRows)?;
        // Sort columns first, then every other column in declared order: a total order on rows.
        let sort = sort_columns(self.dataset);
        let position = |name: &&str| self.dataset.columns.iter().position(|c| c.name == *name);
        let first: Vec<usize> = sort.iter().filter_map(position).collect();
        let rest = (0..self.columns.len()).filter(|i| !first.contains(i));
        let order: Vec<usize> = first.iter().copied().chain(rest).collect();
        let compare = |a: &u32, b: &u32| -> Ordering {
            order
                .iter()
                .map(|&c| self.columns[c].compare(*a, *b))
                .find(|o| o.is_ne())
                .unwrap_or(Ordering::Equal)
        };

        let mut sorted: Vec<u32> = (0..rows).collect();
        sorted.sort_unstable_by(compare);
        let before = sorted.len();
        sorted.dedup_by(|a, b| compare(a, b).is_eq());
        let duplicates = before - sorted.len();
        let (selection, superseded) = match self.dataset.merge {
            Merge::DistinctRows => (Selection::Rows(sorted), 0),
            Merge::LatestCounters { key_columns } => {
                let merged = self.latest_counters(&sorted, key_columns);
                let superseded = sorted.len() - merged.len();
                (
                    Selection::PerColumn(merged.transpose(self.columns.len())),
                    superseded,
                )
            }
        };

        let schema = Arc::new(schema(self.dataset));
        let writer = || -> Result<ArrowWriter<Vec<u8>>, CompactError> {
            Ok(ArrowWriter::try_new(
                Vec::new(),
                Arc::clone(&schema),
                Some(properties()?),
            )?)
        };
        let mut files = Vec::new();
        let mut file = writer()?;
        let total = selection.len();
        let mut start = 0;
        while start < total {
            let end = total.min(start + BATCH_ROWS);
            let arrays = self
                .columns
                .iter()
                .enumerate()
                .map(|(c, column)| column.gather(&selection.of_column(c)[start..end]))
                .collect();
            file.write(&RecordBatch::try_new(Arc::clone(&schema), arrays)?)?;
            if end < total && file.bytes_written() + file.in_progress_size() >= target_file_bytes {
                files.push(std::mem::replace(&mut file, writer()?).into_inner()?);
            }
            start = end;
        }
        files.push(file.into_inner()?);
        Ok(Compacted {
            files,
            rows: total,
            duplicates,
            superseded,
            rejected: self.rejected,
        })
    }

    /// One row per key (the first `key_columns` columns; adjacent in `sorted`): the key, and for
    /// every other column the largest value among the key's snapshots (counters only grow, so
    /// that is the latest).
    fn latest_counters(&self, sorted: &[u32], key_columns: usize) -> MergedRows {
        let same_key = |a: u32, b: u32| {
            self.columns[..key_columns]
                .iter()
                .all(|c| c.compare(a, b).is_eq())
        };
        let mut merged = MergedRows(Vec::new());
        for &row in sorted {
            match merged.0.last_mut() {
                Some(sources) if same_key(sources[0], row) => {
                    for (c, source) in sources.iter_mut().enumerate().skip(key_columns) {
                        if self.columns[c].compare(row, *source).is_gt() {
                            *source = row;
                        }
                    }
                }
                _ => merged.0.push(vec![row; self.columns.len()]),
            }
        }
        merged
    }
}

/// Merged rows, each as the source row of every column.
struct MergedRows(Vec<Vec<u32>>);

impl MergedRows {
    fn len(&self) -> usize {
        self.0.len()
    }

    fn transpose(self, columns: usize) -> Vec<Vec<u32>> {
        (0..columns)
            .map(|c| self.0.iter().map(|sources| sources[c]).collect())
            .collect()
    }
}

/// Which stored rows the output holds, in output order.
enum Selection {
    /// The same rows for every column.
    Rows(Vec<u32>),
    /// Per column (merged rows take each column from the snapshot holding its largest value).
    PerColumn(Vec<Vec<u32>>),
}

impl Selection {
    fn len(&self) -> usize {
        match self {
            Selection::Rows(rows) => rows.len(),
            Selection::PerColumn(columns) => columns.first().map_or(0, Vec::len),
        }
    }

    fn of_column(&self, column: usize) -> &[u32] {
        match self {
            Selection::Rows(rows) => rows,
            Selection::PerColumn(columns) => &columns[column],
        }
    }
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use sdp_core::lake::DATASETS;

    use arrow_array::{Int64Array, StringArray};

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
        assert_eq!(one.files, other.files);
        assert_eq!((other.rows, other.duplicates), (2, 1));
    }

    #[test]
    fn the_snapshots_of_a_key_are_adjacent_because_its_key_columns_lead_the_sort() {
        for dataset in &DATASETS {
            if let Merge::LatestCounters { key_columns } = dataset.merge {
                let keys: Vec<&str> = dataset.columns[..key_columns]
                    .iter()
                    .map(|c| c.name)
                    .collect();
                assert_eq!(
                    sort_columns(dataset)[..key_columns],
                    keys,
                    "{}",
                    dataset.name
                );
            }
        }
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
            one.files, other.files,
            "the order of snapshots does not matter"
        );
        assert_eq!((one.rows, one.duplicates, one.superseded), (3, 1, 1));

        let merged = only_rows(&one.files[0]);
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
        let merged = compact_onto(bcns(), &first.files, &[("l".into(), late)]).unwrap();
        assert_eq!(merged.files, all.files);
        assert_eq!(merged.rows, 2);
        // A redelivery of what the previous file holds adds nothing.
        let again = compact_onto(bcns(), &merged.files, &[("e2".into(), early)]).unwrap();
        assert_eq!((again.files, again.duplicates), (all.files, 1));
        // Another dataset's file is not a previous file of this one.
        let aggregates = DATASETS.iter().find(|d| d.name == "aggregates").unwrap();
        let err = compact_onto(aggregates, &first.files, &[]).unwrap_err();
        assert!(
            err.to_string().contains("`campaign_item_id`") || err.to_string().contains("`period`"),
            "{err}"
        );
    }

    /// The `(type, campaign_item_id, ts, tx_id)` of a bcns file's rows, in file order.
    fn sort_keys(parquet: &[u8]) -> Vec<(String, i64, i64, String)> {
        let reader =
            ParquetRecordBatchReader::try_new(bytes::Bytes::copy_from_slice(parquet), 1024)
                .unwrap();
        let mut keys = Vec::new();
        for batch in reader {
            let batch = batch.unwrap();
            let text = |name: &str| {
                let column = batch.column_by_name(name).unwrap();
                column
                    .as_any()
                    .downcast_ref::<StringArray>()
                    .unwrap()
                    .clone()
            };
            let int = |name: &str| {
                let column = batch.column_by_name(name).unwrap();
                column
                    .as_any()
                    .downcast_ref::<Int64Array>()
                    .unwrap()
                    .clone()
            };
            let (kind, campaign, ts, tx) = (
                text("type"),
                int("campaign_item_id"),
                int("ts"),
                text("tx_id"),
            );
            for r in 0..batch.num_rows() {
                keys.push((
                    kind.value(r).to_owned(),
                    campaign.value(r),
                    ts.value(r),
                    tx.value(r).to_owned(),
                ));
            }
        }
        keys
    }

    #[test]
    fn a_large_partition_is_cut_into_files_that_hold_consecutive_ranges_of_its_order() {
        let lines: String = (0..40_000)
            .map(|i| {
                let kind = ["bid", "imp", "click"][i % 3];
                format!(
                    "{{\"tx_id\":\"tx-{i:08}\",\"type\":\"{kind}\",\"ts\":{},\"received_at\":{i},\"campaign_item_id\":{},\"app_uid\":\"u{}\"}}\n",
                    1_000_000 + (i * 7919) % 100_000,
                    i % 13,
                    i % 977
                )
            })
            .collect();
        let inputs = [("in".to_owned(), lines.into_bytes())];
        let whole = compact(bcns(), &inputs).unwrap();
        assert_eq!(whole.files.len(), 1);

        let mut partition = Partition::new(bcns());
        partition.add_raw("in", &inputs[0].1).unwrap();
        let target = 64 * 1024;
        let split = partition.finish(target).unwrap();
        assert!(split.files.len() > 3, "{} files", split.files.len());
        assert_eq!(split.rows, 40_000);
        // Every file but the last reached the target; none is more than a batch beyond it.
        for file in &split.files[..split.files.len() - 1] {
            assert!(
                file.len() > target / 4 && file.len() < target * 2,
                "{}",
                file.len()
            );
        }
        let keys: Vec<_> = split.files.iter().flat_map(|f| sort_keys(f)).collect();
        assert_eq!(keys.len(), 40_000);
        assert!(keys.windows(2).all(|w| w[0] <= w[1]), "files in sort order");
        // The pieces hold exactly the partition's rows: merged again, they give the single file.
        let again = compact_onto(bcns(), &split.files, &[]).unwrap();
        assert_eq!(again.files, whole.files);
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
        assert_eq!(out.files, plain.files);
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

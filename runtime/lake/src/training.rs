//! What the trainer reads from the compacted lake: the bids of `parquet_bcns` files as model
//! features, and the transactions of `parquet_impressions` files (a bid won if its impression
//! joined). Only the columns needed are decoded.

use arrow_array::{Array, Int64Array, RecordBatch, StringArray};
use bytes::Bytes;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ProjectionMask;

use sdp_core::model::BidFeatures;
use sdp_core::retrain::LabelledBids;

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("reading Parquet failed: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    #[error("decoding Parquet into Arrow failed: {0}")]
    Arrow(#[from] arrow_schema::ArrowError),
    #[error("column `{column}` is missing or not of type {expected}")]
    Column {
        column: &'static str,
        expected: &'static str,
    },
}

/// The columns of `parquet` named in `columns`, batch by batch.
fn batches(parquet: Bytes, columns: &[&str]) -> Result<Vec<RecordBatch>, ReadError> {
    let builder = ParquetRecordBatchReaderBuilder::try_new(parquet)?;
    let mask = ProjectionMask::columns(builder.parquet_schema(), columns.iter().copied());
    builder
        .with_projection(mask)
        .build()?
        .map(|batch| batch.map_err(ReadError::from))
        .collect()
}

/// Column `column` of `batch` as an array of type `A` (`expected` names that type in errors).
fn column<'a, A: Array + 'static>(
    batch: &'a RecordBatch,
    column: &'static str,
    expected: &'static str,
) -> Result<&'a A, ReadError> {
    batch
        .column_by_name(column)
        .and_then(|c| c.as_any().downcast_ref())
        .ok_or(ReadError::Column { column, expected })
}

fn text<'a>(batch: &'a RecordBatch, name: &'static str) -> Result<&'a StringArray, ReadError> {
    column(batch, name, "string")
}

fn integer<'a>(batch: &'a RecordBatch, name: &'static str) -> Result<&'a Int64Array, ReadError> {
    column(batch, name, "bigint")
}

fn optional_text(array: &StringArray, row: usize) -> Option<&str> {
    array.is_valid(row).then(|| array.value(row))
}

fn optional_integer(array: &Int64Array, row: usize) -> Option<i64> {
    array.is_valid(row).then(|| array.value(row))
}

/// Adds the bids of one `parquet_bcns` file to `data` (which keeps each transaction once, within
/// its sample); returns how many rows were bids. A bid row without `tx_id`, campaign or time is skipped: the
/// ingestion API never stores one.
pub fn add_bids(parquet: Bytes, data: &mut LabelledBids) -> Result<usize, ReadError> {
    let columns = [
        "tx_id",
        "type",
        "ts",
        "campaign_item_id",
        "creative_id",
        "creative_category",
        "domain",
        "win_price",
    ];
    let mut bids = 0;
    for batch in batches(parquet, &columns)? {
        let (tx_id, kind, ts) = (
            text(&batch, "tx_id")?,
            text(&batch, "type")?,
            integer(&batch, "ts")?,
        );
        let campaign = integer(&batch, "campaign_item_id")?;
        let (creative, category, domain) = (
            text(&batch, "creative_id")?,
            text(&batch, "creative_category")?,
            text(&batch, "domain")?,
        );
        let price = integer(&batch, "win_price")?;
        for row in 0..batch.num_rows() {
            if optional_text(kind, row) != Some("bid") {
                continue;
            }
            let (Some(id), Some(campaign), Some(ts)) = (
                optional_text(tx_id, row),
                optional_integer(campaign, row),
                optional_integer(ts, row),
            ) else {
                continue;
            };
            bids += 1;
            let features = BidFeatures::of_attributes(
                campaign,
                optional_text(domain, row),
                optional_text(creative, row),
                optional_text(category, row),
                optional_integer(price, row),
                ts,
            );
            data.add_bid(id.to_owned(), features);
        }
    }
    Ok(bids)
}

/// Marks the transactions of one `parquet_impressions` file as won; returns its rows.
pub fn add_wins(parquet: Bytes, data: &mut LabelledBids) -> Result<usize, ReadError> {
    let mut rows = 0;
    for batch in batches(parquet, &["tx_id"])? {
        let tx_id = text(&batch, "tx_id")?;
        rows += batch.num_rows();
        for row in 0..batch.num_rows() {
            if let Some(id) = optional_text(tx_id, row) {
                data.add_win(id);
            }
        }
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::compact::compact;
    use sdp_core::lake::DATASETS;

    fn parquet(dataset: usize, lines: &str) -> Bytes {
        let out = compact(
            &DATASETS[dataset],
            &[("in".into(), lines.as_bytes().to_vec())],
        )
        .unwrap();
        let [file] = <[Vec<u8>; 1]>::try_from(out.files).unwrap();
        Bytes::from(file)
    }

    #[test]
    fn bids_and_wins_read_back_from_compacted_files() {
        let bcns = parquet(
            0,
            concat!(
                r#"{"tx_id":"a","type":"bid","ts":3600000,"received_at":1,"campaign_item_id":7,"domain":"d","creative_id":"c","creative_category":"k","win_price":99}"#,
                "\n",
                r#"{"tx_id":"b","type":"bid","ts":7200000,"received_at":1,"campaign_item_id":8}"#,
                "\n",
                r#"{"tx_id":"a","type":"imp","ts":3600001,"received_at":2,"win_price":50}"#,
                "\n",
            ),
        );
        let impressions = parquet(
            1,
            r#"{"tx_id":"a","ts":3600001,"received_at":2,"campaign_item_id":7,"domain":"d","win_price":50}"#,
        );
        let mut data = LabelledBids::default();
        assert_eq!(add_bids(bcns.clone(), &mut data).unwrap(), 2);
        assert_eq!(add_bids(bcns, &mut data).unwrap(), 2); // a second copy adds nothing
        assert_eq!(add_wins(impressions, &mut data).unwrap(), 1);
        let bids = data.bids();
        assert_eq!(bids.len(), 2);
        assert_eq!(
            bids[0],
            (
                "a".to_owned(),
                BidFeatures::of_attributes(7, Some("d"), Some("c"), Some("k"), Some(99), 3_600_000)
            )
        );
        assert_eq!(bids[0].1.hour, 1);
        assert_eq!(bids[1].1.win_price, 0.0);
        assert_eq!(
            (data.won("a"), data.won("b"), data.wins()),
            (true, false, 1)
        );
    }

    #[test]
    fn a_file_without_the_columns_is_an_error_that_names_one() {
        let aggregates = parquet(
            3,
            r#"{"campaign_item_id":1,"period":"p","bids":1,"imps":0,"clicks":0}"#,
        );
        let err = add_bids(aggregates, &mut LabelledBids::default()).unwrap_err();
        assert!(err.to_string().contains("`tx_id`"), "{err}");
        let err = add_wins(
            Bytes::from_static(b"not parquet"),
            &mut LabelledBids::default(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("Parquet"), "{err}");
    }
}

//! The data-lake layout: the eight Glue/Athena tables, their columns and where their files live.
//!
//! This is the single definition of the lake schema. The CloudFormation templates render their Glue
//! tables from it, and the compactor writes Parquet with it, so the two cannot drift apart.

use serde::Serialize;

/// A column type, named as Hive/Glue declares it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ColumnType {
    String,
    Bigint,
}

impl ColumnType {
    /// The type name as it appears in a Glue `StorageDescriptor`.
    pub fn hive_name(self) -> &'static str {
        match self {
            ColumnType::String => "string",
            ColumnType::Bigint => "bigint",
        }
    }
}

/// One column of a lake table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Column {
    pub name: &'static str,
    #[serde(rename = "type")]
    pub column_type: ColumnType,
    pub comment: &'static str,
}

const fn col(name: &'static str, column_type: ColumnType, comment: &'static str) -> Column {
    Column {
        name,
        column_type,
        comment,
    }
}

use ColumnType::{Bigint, String as Str};

/// Every event as it was accepted by the ingestion API (bids, impressions and clicks together).
/// Type-specific columns are null for the other types: a click has no `win_price`.
const BCNS: &[Column] = &[
    col(
        "tx_id",
        Str,
        "transaction id shared by a bid and its impression and click",
    ),
    col("type", Str, "bid, imp or click"),
    col(
        "ts",
        Bigint,
        "event time, epoch milliseconds (client ts, else receive time)",
    ),
    col(
        "received_at",
        Bigint,
        "server receive time, epoch milliseconds",
    ),
    col("campaign_item_id", Bigint, "campaign of a bid"),
    col("app_uid", Str, "user or app id of a bid"),
    col("creative_id", Str, "creative of a bid"),
    col("creative_category", Str, "creative category of a bid"),
    col("domain", Str, "domain of a bid"),
    col(
        "win_price",
        Bigint,
        "price offered with a bid, or paid for an impression",
    ),
];

/// Joined events (impressions, clicks): the event plus the campaign attributes of its bid, so that
/// no declared column is always null (the original declared columns its files never had).
const JOINED: &[Column] = &[
    col("tx_id", Str, "transaction id"),
    col("ts", Bigint, "event time, epoch milliseconds"),
    col(
        "received_at",
        Bigint,
        "server receive time, epoch milliseconds",
    ),
    col("campaign_item_id", Bigint, "campaign of the joined bid"),
    col("app_uid", Str, "user or app id of the joined bid"),
    col("creative_id", Str, "creative of the joined bid"),
    col(
        "creative_category",
        Str,
        "creative category of the joined bid",
    ),
    col("domain", Str, "domain of the joined bid"),
    col("win_price", Bigint, "price paid for the impression"),
];

const AGGREGATES: &[Column] = &[
    col("campaign_item_id", Bigint, "campaign"),
    col("period", Str, "window start, UTC, yyyy-MM-dd HH:mm:ss.SSS"),
    col("bids", Bigint, "bids in the window"),
    col("imps", Bigint, "joined impressions in the window"),
    col("clicks", Bigint, "joined clicks in the window"),
];

/// A stream of records in the lake, stored twice: as raw JSON lines and as compacted Parquet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Dataset {
    /// The folder under `raw/` and `parquet/`, and the suffix of the table names.
    pub name: &'static str,
    pub description: &'static str,
    pub columns: &'static [Column],
    /// How the rows of a partition combine when it is compacted.
    pub merge: Merge,
}

/// How compaction combines the raw rows of a partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Merge {
    /// Every distinct row is kept once: the raw layer is delivered at least once, so an exact
    /// duplicate is a redelivery.
    DistinctRows,
    /// Rows are snapshots of counters that only grow, keyed by the first `key_columns` columns:
    /// one row is kept per key, holding the largest value of each counter, which is the latest
    /// snapshot. The order and the repetition of snapshots do not matter.
    LatestCounters { key_columns: usize },
}

/// The four datasets, in the order the tables are declared.
pub const DATASETS: [Dataset; 4] = [
    Dataset {
        name: "bcns",
        description: "every accepted bid, impression and click",
        columns: BCNS,
        merge: Merge::DistinctRows,
    },
    Dataset {
        name: "impressions",
        description: "impressions joined to their bid",
        columns: JOINED,
        merge: Merge::DistinctRows,
    },
    Dataset {
        name: "clicks",
        description: "clicks joined to their impression and bid",
        columns: JOINED,
        merge: Merge::DistinctRows,
    },
    Dataset {
        name: "aggregates",
        description: "per-campaign counts per aggregation window",
        columns: AGGREGATES,
        // Each landing of an aggregate is its totals at that moment (CONTRACT §5.2): the latest is
        // the one the reports serve.
        merge: Merge::LatestCounters { key_columns: 2 },
    },
];

/// The first date the lake's partition projection covers; the ingestion API refuses older
/// event times, so nothing is stored that Athena could not see.
pub const FIRST_DATE: &str = "2020-01-01";

/// [`FIRST_DATE`] as epoch milliseconds.
pub const FIRST_DATE_MS: i64 = 1_577_836_800_000;

/// Partition columns shared by every table: the event date and hour in UTC.
pub const PARTITION_KEYS: [Column; 2] = [
    col("dt", Str, "event date, UTC, yyyy-MM-dd"),
    col("hour", Str, "event hour, UTC, 00-23"),
];

/// The two storage formats of the lake.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Gzipped JSON lines, as delivered.
    Raw,
    /// Compacted Parquet.
    Parquet,
}

impl Format {
    pub fn prefix(self) -> &'static str {
        match self {
            Format::Raw => "raw",
            Format::Parquet => "parquet",
        }
    }
}

impl Dataset {
    /// The Glue/Athena table name: `raw_bcns`, `parquet_clicks`, ...
    pub fn table_name(&self, format: Format) -> String {
        format!("{}_{}", format.prefix(), self.name)
    }

    /// The key prefix of the dataset in the bucket (or data directory), without partitions.
    pub fn prefix(&self, format: Format) -> String {
        format!("{}/{}/", format.prefix(), self.name)
    }

    /// The key prefix of one partition: `raw/bcns/dt=2026-11-22/hour=03/`.
    pub fn partition_prefix(&self, format: Format, dt: &str, hour: &str) -> String {
        format!("{}dt={dt}/hour={hour}/", self.prefix(format))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_eight_contract_tables_are_declared() {
        let mut names: Vec<String> = DATASETS
            .iter()
            .flat_map(|d| [d.table_name(Format::Raw), d.table_name(Format::Parquet)])
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                "parquet_aggregates",
                "parquet_bcns",
                "parquet_clicks",
                "parquet_impressions",
                "raw_aggregates",
                "raw_bcns",
                "raw_clicks",
                "raw_impressions"
            ]
        );
    }

    #[test]
    fn joined_tables_carry_the_campaign_attributes_of_their_bid() {
        for name in ["impressions", "clicks"] {
            let dataset = DATASETS.iter().find(|d| d.name == name).unwrap();
            let columns: Vec<&str> = dataset.columns.iter().map(|c| c.name).collect();
            for attribute in [
                "campaign_item_id",
                "creative_id",
                "creative_category",
                "domain",
            ] {
                assert!(columns.contains(&attribute), "{name} lacks {attribute}");
            }
        }
    }

    #[test]
    fn aggregate_columns_match_the_contract_record() {
        let names: Vec<&str> = AGGREGATES.iter().map(|c| c.name).collect();
        assert_eq!(
            names,
            ["campaign_item_id", "period", "bids", "imps", "clicks"]
        );
    }

    #[test]
    fn partition_prefix_is_hive_style_by_event_date_and_hour() {
        assert_eq!(
            DATASETS[0].partition_prefix(Format::Raw, "2026-11-22", "03"),
            "raw/bcns/dt=2026-11-22/hour=03/"
        );
    }

    #[test]
    fn first_date_and_its_milliseconds_agree() {
        let parsed: jiff::Timestamp = format!("{FIRST_DATE}T00:00:00Z").parse().unwrap();
        assert_eq!(parsed.as_millisecond(), FIRST_DATE_MS);
    }

    #[test]
    fn no_column_name_repeats_a_partition_key() {
        for dataset in DATASETS {
            for column in dataset.columns {
                assert!(PARTITION_KEYS.iter().all(|p| p.name != column.name));
            }
        }
    }
}

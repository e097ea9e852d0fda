//! `sdp-query`: SQL over the local lake, behind `sdp query`. The eight tables of the AWS lake
//! (CONTRACT §5.3), `raw_*` over the JSON lines and `parquet_*` over the compacted files under
//! `<data-dir>/lake`, with the columns the Glue tables declare (`sdp_core::lake`, as Arrow types by
//! `sdp_lake::compact::schema`) and the partition columns `dt` and `hour`, so a query written
//! against `sdp local` runs unchanged on Athena.
//!
//! The engine is DataFusion: embedded, Arrow-native (the compactor already writes Parquet with
//! arrow-rs, the same version), reads hive-partitioned JSON lines and Parquet with partition
//! pruning, and speaks a PostgreSQL-like SQL close to Athena's. Queries are read-only: DDL and
//! DML (`CREATE`, `INSERT`, `COPY … TO`) are refused, so a query cannot change the lake.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::datasource::file_format::json::JsonFormat;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::file_format::FileFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::datasource::MemTable;
use datafusion::error::DataFusionError;
use datafusion::execution::context::{SQLOptions, SessionConfig, SessionContext};
use datafusion::sql::parser::DFParser;

use sdp_core::lake::{Format, DATASETS, PARTITION_KEYS};

pub mod render;

/// Why a query gave no result.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// The query is wrong: syntax, an unknown table or column, a type error, a write. Fix the SQL.
    #[error("{message}")]
    Invalid { message: String },
    /// The query is fine but running it failed: an unreadable file, a corrupt line.
    #[error("{message}")]
    Failed { message: String },
    /// The data directory cannot be used.
    #[error("{0}")]
    Lake(String),
}

impl QueryError {
    fn from_engine(err: DataFusionError) -> QueryError {
        // DataFusion wraps errors in context layers; the kind is the innermost one's.
        let message = err.to_string();
        match err.find_root() {
            DataFusionError::SQL(..)
            | DataFusionError::Plan(_)
            | DataFusionError::SchemaError(..)
            | DataFusionError::NotImplemented(_) => QueryError::Invalid {
                message: format!(
                    "{message}\n(tables: {}; `SHOW COLUMNS FROM t` lists a table's columns)",
                    table_names().join(", ")
                ),
            },
            _ => QueryError::Failed { message },
        }
    }
}

/// The names of the eight tables, `raw_*` then `parquet_*`.
pub fn table_names() -> Vec<String> {
    [Format::Raw, Format::Parquet]
        .into_iter()
        .flat_map(|format| DATASETS.iter().map(move |d| d.table_name(format)))
        .collect()
}

/// The local lake of a data directory, ready for queries.
pub struct Lake {
    root: PathBuf,
    context: SessionContext,
}

/// The result of one statement.
pub struct Answer {
    pub schema: SchemaRef,
    pub batches: Vec<RecordBatch>,
}

impl Lake {
    /// The lake of `data_dir` (as given to `sdp local --data-dir`). Tables whose folder does not
    /// exist yet are empty, not missing: a query works the same before and after data lands.
    pub fn open(data_dir: &Path) -> Result<Lake, QueryError> {
        if !data_dir.is_dir() {
            return Err(QueryError::Lake(format!(
                "{} is not a directory: run `sdp local --data-dir {}` first (or pass the --data-dir it uses)",
                data_dir.display(),
                data_dir.display()
            )));
        }
        let root = std::path::absolute(data_dir.join("lake"))
            .map_err(|e| QueryError::Lake(format!("cannot resolve {}: {e}", data_dir.display())))?;
        let config = SessionConfig::new().with_information_schema(true);
        let context = SessionContext::new_with_config(config);
        for format in [Format::Raw, Format::Parquet] {
            for dataset in &DATASETS {
                let name = dataset.table_name(format);
                let file_schema = Arc::new(sdp_lake::compact::schema(dataset));
                let folder = root.join(dataset.prefix(format));
                let registered = if folder.is_dir() {
                    context.register_table(&name, listing(&folder, format, file_schema)?)
                } else {
                    let empty = MemTable::try_new(with_partitions(&file_schema), vec![vec![]])
                        .map_err(QueryError::from_engine)?;
                    context.register_table(&name, Arc::new(empty))
                };
                registered.map_err(QueryError::from_engine)?;
            }
        }
        Ok(Lake { root, context })
    }

    /// Runs each statement of `sql` in turn (`;`-separated), stopping at the first that fails.
    pub async fn run(&self, sql: &str) -> Result<Vec<Answer>, QueryError> {
        let statements = DFParser::parse_sql(sql).map_err(QueryError::from_engine)?;
        if statements.is_empty() {
            return Err(QueryError::Invalid {
                message: "no SQL statement given".to_owned(),
            });
        }
        let read_only = SQLOptions::new()
            .with_allow_ddl(false)
            .with_allow_dml(false);
        let mut answers = Vec::new();
        for statement in statements {
            let state = self.context.state();
            let plan = state
                .statement_to_plan(statement)
                .await
                .map_err(QueryError::from_engine)?;
            read_only
                .verify_plan(&plan)
                .map_err(QueryError::from_engine)?;
            // From listing the files to reading the last one, no compaction swaps a partition.
            let root = self.root.clone();
            let swap = tokio::task::spawn_blocking(move || sdp_fs::swap::shared(&root))
                .await
                .map_err(|e| QueryError::Failed {
                    message: e.to_string(),
                })?
                .map_err(|e| QueryError::Lake(format!("cannot lock the lake for reading: {e}")))?;
            let frame = self
                .context
                .execute_logical_plan(plan)
                .await
                .map_err(QueryError::from_engine)?;
            let schema: SchemaRef = Arc::new(frame.schema().as_arrow().clone());
            let batches = frame.collect().await.map_err(QueryError::from_engine)?;
            drop(swap);
            answers.push(Answer { schema, batches });
        }
        Ok(answers)
    }
}

/// A table over one dataset folder: hive partitions `dt=…/hour=…`, the files of the format
/// (temporary files being written end in `.tmp` and are not listed).
fn listing(
    folder: &Path,
    format: Format,
    file_schema: SchemaRef,
) -> Result<Arc<ListingTable>, QueryError> {
    let (file_format, extension): (Arc<dyn FileFormat>, &str) = match format {
        Format::Raw => (Arc::new(JsonFormat::default()), ".json"),
        Format::Parquet => (Arc::new(ParquetFormat::default()), ".parquet"),
    };
    let partitions = PARTITION_KEYS
        .iter()
        .map(|key| (key.name.to_owned(), DataType::Utf8))
        .collect();
    let options = ListingOptions::new(file_format)
        .with_file_extension(extension)
        .with_table_partition_cols(partitions);
    let url = ListingTableUrl::parse(format!("{}/", folder.display()))
        .map_err(QueryError::from_engine)?;
    let config = ListingTableConfig::new(url)
        .with_listing_options(options)
        .with_schema(file_schema);
    Ok(Arc::new(
        ListingTable::try_new(config).map_err(QueryError::from_engine)?,
    ))
}

/// A file schema with the partition columns after it, as a listing table shows it.
fn with_partitions(file_schema: &Schema) -> SchemaRef {
    let mut fields: Vec<Field> = file_schema
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    fields.extend(
        PARTITION_KEYS
            .iter()
            .map(|key| Field::new(key.name, DataType::Utf8, false)),
    );
    Arc::new(Schema::new(fields))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use datafusion::arrow::array::{Array, Int64Array, StringArray};

    use super::*;

    fn lake_with_raw_clicks() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let partition = dir.path().join("lake/raw/clicks/dt=2026-11-22/hour=07");
        std::fs::create_dir_all(&partition).unwrap();
        std::fs::write(
            partition.join("1-2.json"),
            concat!(
                r#"{"tx_id":"a","ts":1,"received_at":1,"campaign_item_id":7,"app_uid":"u","win_price":5,"extra":"ignored"}"#,
                "\n",
                r#"{"tx_id":"b","ts":2,"received_at":2,"campaign_item_id":8,"app_uid":"u","win_price":6}"#,
                "\n"
            ),
        )
        .unwrap();
        // Being written: not listed.
        std::fs::write(partition.join("3-4.json.tmp"), "{not json").unwrap();
        dir
    }

    async fn one(lake: &Lake, sql: &str) -> RecordBatch {
        let mut answers = lake.run(sql).await.unwrap();
        assert_eq!(answers.len(), 1);
        let answer = answers.remove(0);
        datafusion::arrow::compute::concat_batches(&answer.schema, &answer.batches).unwrap()
    }

    #[tokio::test]
    async fn raw_json_lines_are_a_table_with_the_declared_columns_and_partitions() {
        let dir = lake_with_raw_clicks();
        let lake = Lake::open(dir.path()).unwrap();
        let batch = one(
            &lake,
            "SELECT tx_id, campaign_item_id, dt, hour FROM raw_clicks WHERE hour = '07' ORDER BY tx_id",
        )
        .await;
        assert_eq!(batch.num_rows(), 2);
        let campaigns = batch
            .column(1)
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap();
        assert_eq!(campaigns.values(), &[7, 8]);
        let dt = batch
            .column(2)
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap();
        assert_eq!(dt.value(0), "2026-11-22");
        // A declared column absent from a line is null, not an error.
        let creative = one(&lake, "SELECT creative_id FROM raw_clicks").await;
        assert_eq!(creative.column(0).null_count(), 2);
    }

    #[tokio::test]
    async fn tables_without_files_are_empty_not_missing() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::open(dir.path()).unwrap();
        for table in table_names() {
            let batch = one(&lake, &format!("SELECT count(*) FROM {table}")).await;
            let n = batch
                .column(0)
                .as_any()
                .downcast_ref::<Int64Array>()
                .unwrap();
            assert_eq!(n.value(0), 0, "{table}");
        }
        assert_eq!(table_names().len(), 8);
    }

    #[tokio::test]
    async fn writes_and_unknown_names_are_invalid_queries() {
        let dir = lake_with_raw_clicks();
        let lake = Lake::open(dir.path()).unwrap();
        for sql in [
            "CREATE TABLE t AS SELECT 1",
            "INSERT INTO raw_clicks SELECT * FROM raw_clicks",
            "SELECT * FROM raw_nothing",
            "SELECT nothing FROM raw_clicks",
        ] {
            assert!(
                matches!(lake.run(sql).await, Err(QueryError::Invalid { .. })),
                "{sql}"
            );
        }
        assert_eq!(
            std::fs::read_dir(dir.path().join("lake/raw/clicks/dt=2026-11-22/hour=07"))
                .unwrap()
                .count(),
            2,
            "nothing was written"
        );
        assert!(matches!(
            Lake::open(&dir.path().join("missing")),
            Err(QueryError::Lake(_))
        ));
    }
}

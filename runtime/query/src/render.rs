//! An answer as text: an aligned table for people, or JSON for programs.

use datafusion::arrow::error::ArrowError;
use datafusion::arrow::json::writer::{JsonArray, WriterBuilder};
use datafusion::arrow::util::pretty::pretty_format_batches_with_schema;

use crate::Answer;

/// The rows as a table with a header, even when there are none, and a row count.
pub fn table(answer: &Answer) -> Result<String, ArrowError> {
    let rows: usize = answer.batches.iter().map(|b| b.num_rows()).sum();
    let grid = pretty_format_batches_with_schema(answer.schema.clone(), &answer.batches)?;
    let noun = if rows == 1 { "row" } else { "rows" };
    Ok(format!("{grid}\n({rows} {noun})"))
}

/// The rows as one JSON array of objects keyed by column name, nulls included, so every object
/// has every column.
pub fn json(answer: &Answer) -> Result<String, ArrowError> {
    let mut writer = WriterBuilder::new()
        .with_explicit_nulls(true)
        .build::<_, JsonArray>(Vec::new());
    for batch in &answer.batches {
        writer.write(batch)?;
    }
    writer.finish()?;
    let bytes = writer.into_inner();
    let text = String::from_utf8(bytes).map_err(|e| ArrowError::JsonError(e.to_string()))?;
    // An answer with no rows writes nothing at all; it is still an array.
    Ok(if text.trim().is_empty() {
        "[]".to_owned()
    } else {
        text
    })
}

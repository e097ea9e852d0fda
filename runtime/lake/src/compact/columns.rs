//! A partition's rows held column by column: the text of a column in one buffer, its integers in
//! one vector. A row costs about what its JSON line does, where a row of boxed cells cost 4.5
//! times that (bench/compact.sh), and compaction holds every row of a partition at once to sort
//! it.

use std::cmp::Ordering;
use std::sync::Arc;

use arrow_array::{Array, ArrayRef, Int64Array, StringArray};

use sdp_core::lake::ColumnType;

use super::line::Scalar;

/// The values of one column, row by row.
pub(super) enum Column {
    Text {
        /// Every value's text, one after the other.
        text: String,
        /// Where each row's value ends in `text` (a null ends where the previous one did).
        ends: Vec<usize>,
        present: Vec<bool>,
    },
    Int {
        /// A null's slot holds 0.
        values: Vec<i64>,
        present: Vec<bool>,
    },
}

impl Column {
    pub(super) fn new(column_type: ColumnType) -> Column {
        match column_type {
            ColumnType::String => Column::Text {
                text: String::new(),
                ends: Vec::new(),
                present: Vec::new(),
            },
            ColumnType::Bigint => Column::Int {
                values: Vec::new(),
                present: Vec::new(),
            },
        }
    }

    /// Appends a value read from JSON (`None`: the key was absent), or says why it does not fit
    /// the column `name`; nothing is appended then.
    pub(super) fn push(&mut self, name: &str, value: Option<Scalar<'_>>) -> Result<(), String> {
        match (self, value) {
            (column, None | Some(Scalar::Null)) => column.push_null(),
            (
                Column::Text {
                    text,
                    ends,
                    present,
                },
                Some(Scalar::Text(value)),
            ) => {
                text.push_str(&value);
                ends.push(text.len());
                present.push(true);
            }
            (Column::Int { values, present }, Some(Scalar::Int(value))) => {
                values.push(value);
                present.push(true);
            }
            (Column::Int { .. }, Some(Scalar::Number(number))) => {
                return Err(format!("`{name}` is {number}, not a 64-bit integer"))
            }
            (column, Some(other)) => {
                let expected = match column {
                    Column::Text { .. } => ColumnType::String,
                    Column::Int { .. } => ColumnType::Bigint,
                };
                return Err(format!(
                    "`{name}` is {}, not a {}",
                    other.as_json(),
                    expected.hive_name()
                ));
            }
        }
        Ok(())
    }

    fn push_null(&mut self) {
        match self {
            Column::Text {
                text,
                ends,
                present,
            } => {
                ends.push(text.len());
                present.push(false);
            }
            Column::Int { values, present } => {
                values.push(0);
                present.push(false);
            }
        }
    }

    /// Drops the rows from `rows` on: a line rejected halfway leaves nothing behind.
    pub(super) fn truncate(&mut self, rows: usize) {
        match self {
            Column::Text {
                text,
                ends,
                present,
            } => {
                ends.truncate(rows);
                present.truncate(rows);
                text.truncate(ends.last().copied().unwrap_or(0));
            }
            Column::Int { values, present } => {
                values.truncate(rows);
                present.truncate(rows);
            }
        }
    }

    fn text(&self, row: usize) -> Option<&str> {
        match self {
            Column::Text {
                text,
                ends,
                present,
            } if present[row] => {
                let start = if row == 0 { 0 } else { ends[row - 1] };
                Some(&text[start..ends[row]])
            }
            _ => None,
        }
    }

    fn int(&self, row: usize) -> Option<i64> {
        match self {
            Column::Int { values, present } if present[row] => Some(values[row]),
            _ => None,
        }
    }

    /// The order of two rows' values: null first, then by value (text by its bytes).
    pub(super) fn compare(&self, a: u32, b: u32) -> Ordering {
        let (a, b) = (a as usize, b as usize);
        match self {
            Column::Text { .. } => self.text(a).cmp(&self.text(b)),
            Column::Int { .. } => self.int(a).cmp(&self.int(b)),
        }
    }

    /// The values of `rows`, in that order, as an Arrow array of the column's type.
    pub(super) fn gather(&self, rows: &[u32]) -> ArrayRef {
        match self {
            Column::Text { .. } => Arc::new(StringArray::from_iter(
                rows.iter().map(|&r| self.text(r as usize)),
            )),
            Column::Int { .. } => Arc::new(Int64Array::from_iter(
                rows.iter().map(|&r| self.int(r as usize)),
            )),
        }
    }

    /// Appends the values of an array read from a Parquet file; `false` if the array is not of
    /// the column's type.
    pub(super) fn append(&mut self, array: &dyn Array) -> bool {
        match self {
            Column::Text {
                text,
                ends,
                present,
            } => {
                let Some(array) = array.as_any().downcast_ref::<StringArray>() else {
                    return false;
                };
                for value in array {
                    text.push_str(value.unwrap_or_default());
                    ends.push(text.len());
                    present.push(value.is_some());
                }
            }
            Column::Int { values, present } => {
                let Some(array) = array.as_any().downcast_ref::<Int64Array>() else {
                    return false;
                };
                for value in array {
                    values.push(value.unwrap_or(0));
                    present.push(value.is_some());
                }
            }
        }
        true
    }
}

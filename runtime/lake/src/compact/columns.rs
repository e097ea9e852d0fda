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
pub(super) struct Column {
    /// Whether each row has a value (false: null).
    present: Vec<bool>,
    values: Values,
}

enum Values {
    Text {
        /// Every value's text, one after the other.
        text: String,
        /// Where each row's value ends in `text` (a null ends where the previous one did).
        ends: Vec<usize>,
    },
    /// A null's slot holds 0.
    Int(Vec<i64>),
}

impl Column {
    pub(super) fn new(column_type: ColumnType) -> Column {
        let values = match column_type {
            ColumnType::String => Values::Text {
                text: String::new(),
                ends: Vec::new(),
            },
            ColumnType::Bigint => Values::Int(Vec::new()),
        };
        Column {
            present: Vec::new(),
            values,
        }
    }

    /// Appends a value read from JSON (`None`: the key was absent), or says why it does not fit
    /// the column `name`; nothing is appended then.
    pub(super) fn push(&mut self, name: &str, value: Option<Scalar<'_>>) -> Result<(), String> {
        let (text, int) = match (&self.values, value) {
            (_, None | Some(Scalar::Null)) => (None, None),
            (Values::Text { .. }, Some(Scalar::Text(value))) => (Some(value), None),
            (Values::Int(_), Some(Scalar::Int(value))) => (None, Some(value)),
            (Values::Int(_), Some(Scalar::Number(number))) => {
                return Err(format!("`{name}` is {number}, not a 64-bit integer"));
            }
            (values, Some(other)) => {
                let expected = match values {
                    Values::Text { .. } => ColumnType::String,
                    Values::Int(_) => ColumnType::Bigint,
                };
                return Err(format!(
                    "`{name}` is {}, not a {}",
                    other.as_json(),
                    expected.hive_name()
                ));
            }
        };
        self.push_value(text.as_deref(), int);
        Ok(())
    }

    /// Appends one row: the text or integer for the column's kind (both `None`: a null).
    fn push_value(&mut self, text_value: Option<&str>, int_value: Option<i64>) {
        match &mut self.values {
            Values::Text { text, ends } => {
                self.present.push(text_value.is_some());
                text.push_str(text_value.unwrap_or_default());
                ends.push(text.len());
            }
            Values::Int(values) => {
                self.present.push(int_value.is_some());
                values.push(int_value.unwrap_or(0));
            }
        }
    }

    /// Drops the rows from `rows` on: a line rejected halfway leaves nothing behind.
    pub(super) fn truncate(&mut self, rows: usize) {
        self.present.truncate(rows);
        match &mut self.values {
            Values::Text { text, ends } => {
                ends.truncate(rows);
                text.truncate(ends.last().copied().unwrap_or(0));
            }
            Values::Int(values) => values.truncate(rows),
        }
    }

    fn text(&self, row: usize) -> Option<&str> {
        match &self.values {
            Values::Text { text, ends } if self.present[row] => {
                let start = if row == 0 { 0 } else { ends[row - 1] };
                Some(&text[start..ends[row]])
            }
            _ => None,
        }
    }

    fn int(&self, row: usize) -> Option<i64> {
        match &self.values {
            Values::Int(values) if self.present[row] => Some(values[row]),
            _ => None,
        }
    }

    /// The order of two rows' values: null first, then by value (text by its bytes).
    pub(super) fn compare(&self, a: u32, b: u32) -> Ordering {
        let (a, b) = (a as usize, b as usize);
        match self.values {
            Values::Text { .. } => self.text(a).cmp(&self.text(b)),
            Values::Int(_) => self.int(a).cmp(&self.int(b)),
        }
    }

    /// The values of `rows`, in that order, as an Arrow array of the column's type.
    pub(super) fn gather(&self, rows: &[u32]) -> ArrayRef {
        match self.values {
            Values::Text { .. } => Arc::new(StringArray::from_iter(
                rows.iter().map(|&r| self.text(r as usize)),
            )),
            Values::Int(_) => Arc::new(Int64Array::from_iter(
                rows.iter().map(|&r| self.int(r as usize)),
            )),
        }
    }

    /// Appends the values of an array read from a Parquet file; `false` if the array is not of
    /// the column's type.
    pub(super) fn append(&mut self, array: &dyn Array) -> bool {
        let any = array.as_any();
        match self.values {
            Values::Text { .. } => match any.downcast_ref::<StringArray>() {
                Some(array) => array.iter().for_each(|v| self.push_value(v, None)),
                None => return false,
            },
            Values::Int(_) => match any.downcast_ref::<Int64Array>() {
                Some(array) => array.iter().for_each(|v| self.push_value(None, v)),
                None => return false,
            },
        }
        true
    }
}

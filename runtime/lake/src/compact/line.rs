//! One JSON line read straight into the values of a dataset's columns: keys that are not columns
//! are skipped unread, and text is borrowed from the line where it has no escapes, so a line costs
//! no allocation beyond its slots (a `serde_json::Value` per line cost a map and a string per key).

use std::borrow::Cow;
use std::fmt;

use serde::de::value::{MapAccessDeserializer, SeqAccessDeserializer};
use serde::de::{
    self, DeserializeSeed, Deserializer as _, IgnoredAny, MapAccess, SeqAccess, Visitor,
};
use serde::Deserialize;

use sdp_core::lake::Column;

/// A JSON value as far as a column cares.
#[derive(Debug)]
pub(super) enum Scalar<'a> {
    Null,
    Text(Cow<'a, str>),
    Int(i64),
    /// A number that is not a 64-bit integer, as written.
    Number(String),
    /// A boolean, array or object, as JSON.
    Other(String),
}

impl Scalar<'_> {
    /// The value as JSON, for messages.
    pub(super) fn as_json(&self) -> String {
        match self {
            Scalar::Null => "null".to_owned(),
            Scalar::Text(text) => serde_json::Value::from(text.as_ref()).to_string(),
            Scalar::Int(n) => n.to_string(),
            Scalar::Number(json) | Scalar::Other(json) => json.clone(),
        }
    }
}

/// The values of `line`'s keys that are `columns`, by column (`None`: absent). A key given twice
/// keeps its last value, as JSON parsers do.
pub(super) fn values<'a>(
    columns: &[Column],
    line: &'a [u8],
) -> Result<Vec<Option<Scalar<'a>>>, String> {
    let mut deserializer = serde_json::Deserializer::from_slice(line);
    let slots = (&mut deserializer)
        .deserialize_map(Row { columns })
        .and_then(|slots| deserializer.end().map(|()| slots))
        .map_err(|e| format!("not a JSON object: {e}"))?;
    Ok(slots)
}

struct Row<'c> {
    columns: &'c [Column],
}

impl<'de> Visitor<'de> for Row<'_> {
    type Value = Vec<Option<Scalar<'de>>>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut slots: Vec<Option<Scalar<'de>>> = self.columns.iter().map(|_| None).collect();
        while let Some(column) = map.next_key_seed(Key {
            columns: self.columns,
        })? {
            match column {
                Some(index) => slots[index] = Some(map.next_value()?),
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(slots)
    }
}

/// A key, as the index of the column it names.
struct Key<'c> {
    columns: &'c [Column],
}

impl<'de> DeserializeSeed<'de> for Key<'_> {
    type Value = Option<usize>;

    fn deserialize<D: de::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl Visitor<'_> for Key<'_> {
    type Value = Option<usize>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a key")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<Self::Value, E> {
        Ok(self.columns.iter().position(|c| c.name == key))
    }
}

impl<'de> Deserialize<'de> for Scalar<'de> {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ScalarVisitor)
    }
}

struct ScalarVisitor;

impl<'de> Visitor<'de> for ScalarVisitor {
    type Value = Scalar<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Scalar::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Scalar::Null)
    }

    fn visit_bool<E: de::Error>(self, value: bool) -> Result<Self::Value, E> {
        Ok(Scalar::Other(value.to_string()))
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<Self::Value, E> {
        Ok(Scalar::Int(value))
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<Self::Value, E> {
        Ok(i64::try_from(value).map_or_else(|_| Scalar::Number(value.to_string()), Scalar::Int))
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<Self::Value, E> {
        Ok(Scalar::Number(serde_json::Value::from(value).to_string()))
    }

    fn visit_borrowed_str<E: de::Error>(self, value: &'de str) -> Result<Self::Value, E> {
        Ok(Scalar::Text(Cow::Borrowed(value)))
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<Self::Value, E> {
        Ok(Scalar::Text(Cow::Owned(value.to_owned())))
    }

    fn visit_string<E: de::Error>(self, value: String) -> Result<Self::Value, E> {
        Ok(Scalar::Text(Cow::Owned(value)))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        let value = serde_json::Value::deserialize(SeqAccessDeserializer::new(seq))?;
        Ok(Scalar::Other(value.to_string()))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        let value = serde_json::Value::deserialize(MapAccessDeserializer::new(map))?;
        Ok(Scalar::Other(value.to_string()))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use sdp_core::lake::DATASETS;

    use super::*;

    fn texts(line: &str) -> Vec<String> {
        values(DATASETS[0].columns, line.as_bytes())
            .unwrap()
            .iter()
            .map(|v| v.as_ref().map_or("-".to_owned(), Scalar::as_json))
            .collect()
    }

    #[test]
    fn keys_land_in_their_columns_unknown_ones_are_skipped_and_the_last_of_a_repeat_wins() {
        let got = texts(
            r#"{"ts":1,"extra":{"deep":[1,2]},"tx_id":"a\"b","type":null,"ts":2,"domain":true}"#,
        );
        let columns: Vec<&str> = DATASETS[0].columns.iter().map(|c| c.name).collect();
        let at = |name: &str| &got[columns.iter().position(|c| *c == name).unwrap()];
        assert_eq!(at("tx_id"), r#""a\"b""#);
        assert_eq!(at("type"), "null");
        assert_eq!(at("ts"), "2");
        assert_eq!(at("domain"), "true");
        assert_eq!(at("app_uid"), "-");
    }

    #[test]
    fn numbers_that_are_not_64_bit_integers_keep_their_text() {
        let got = texts(r#"{"ts":1.5,"received_at":18446744073709551615,"win_price":-3}"#);
        assert!(got.contains(&"1.5".to_owned()), "{got:?}");
        assert!(got.contains(&"18446744073709551615".to_owned()), "{got:?}");
        assert!(got.contains(&"-3".to_owned()), "{got:?}");
    }

    #[test]
    fn a_line_that_is_not_one_json_object_is_refused() {
        for line in [
            "not json",
            "[1]",
            "null",
            r#"{"ts":1} {"ts":2}"#,
            r#"{"ts":1"#,
        ] {
            let err = values(DATASETS[0].columns, line.as_bytes()).unwrap_err();
            assert!(err.starts_with("not a JSON object"), "{line}: {err}");
        }
    }
}

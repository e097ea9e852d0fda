//! A transport-neutral HTTP request and response, and the JSON error shape of CONTRACT.md §4.4.

use std::collections::BTreeMap;

use serde::Serialize;

/// An HTTP request as the APIs see it. Header names are lower-case.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    /// The path below the API's base URL (stage removed), e.g. `/bid`.
    pub path: String,
    pub headers: BTreeMap<String, String>,
    pub query: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }

    pub fn query_pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.query.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

/// An HTTP response with a JSON body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
}

impl Response {
    /// A 2xx answer with `value` as its JSON body.
    pub fn json<T: Serialize>(status: u16, value: &T) -> Response {
        match serde_json::to_string(value) {
            Ok(body) => Response {
                status,
                headers: vec![("content-type", "application/json".to_owned())],
                body,
            },
            Err(e) => Response::error(500, &format!("cannot encode the answer: {e}"), None),
        }
    }

    /// `{"error": message, "field": field}` with `status`.
    pub fn error(status: u16, message: &str, field: Option<&str>) -> Response {
        let body = serde_json::to_string(&ErrorBody {
            error: message,
            field,
        })
        .unwrap_or_else(|_| r#"{"error":"internal error"}"#.to_owned());
        Response {
            status,
            headers: vec![("content-type", "application/json".to_owned())],
            body,
        }
    }

    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Response {
        self.headers.push((name, value.into()));
        self
    }

    pub fn not_found(path: &str) -> Response {
        Response::error(404, &format!("no route for `{path}`"), None)
    }

    pub fn method_not_allowed(method: &str, allowed: &str) -> Response {
        Response::error(
            405,
            &format!("method `{method}` is not allowed here; use {allowed}"),
            None,
        )
        .with_header("allow", allowed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_have_the_contract_shape_and_omit_an_absent_field() {
        assert_eq!(
            Response::error(400, "bad", Some("tx_id")).body,
            r#"{"error":"bad","field":"tx_id"}"#
        );
        assert_eq!(
            Response::error(404, "nope", None).body,
            r#"{"error":"nope"}"#
        );
    }

    #[test]
    fn header_lookup_ignores_case() {
        let mut request = Request::default();
        request
            .headers
            .insert("content-type".into(), "application/json".into());
        assert_eq!(request.header("Content-Type"), Some("application/json"));
    }
}

//! `POST {UrlForAPI}/events`: a batch of events in one request, newline-delimited JSON (one event
//! per line, of any type, named by its `type`), optionally gzip-compressed. Each line is validated
//! under the rules of its type's own route; the valid lines are stored together (one append: one
//! `PutRecords` on AWS, one commit locally) before the answer, which says line by line what became
//! of them. Resending a whole batch is always safe: an event stored twice is counted once.
//!
//! Statuses (README, "Sending events in batches"):
//! - 200: every line accepted and stored;
//! - 207: some lines accepted and stored, the others rejected (each named in `lines`);
//! - 400: no line accepted, nothing stored (an empty batch, or every line invalid);
//! - 413: over [`MAX_BATCH_EVENTS`] events or [`MAX_BATCH_BYTES`] (after decompression), nothing
//!   stored; 415: a content type or encoding not taken;
//! - 503 with `Retry-After`: the stream refused the batch for now; resend all of it.

use std::io::Read;

use serde::Serialize;

use sdp_core::events::{self, MAX_BATCH_EVENTS, MAX_BODY_BYTES};
use sdp_core::ports::EventLog;

use crate::http::{Request, Response};
use crate::ingest::{is_json, media_type, not_stored, unreadable};

/// The largest batch after decompression. The body as sent is bounded by [`MAX_BODY_BYTES`], like
/// a single event's; this bounds what a small compressed body may expand to.
pub const MAX_BATCH_BYTES: usize = 4 * MAX_BODY_BYTES;

#[derive(Serialize)]
struct Answer {
    accepted: usize,
    rejected: usize,
    lines: Vec<Line>,
}

/// What became of one line (1-based, as numbered in the body; blank lines are skipped).
#[derive(Serialize)]
#[serde(tag = "status", rename_all = "lowercase")]
enum Line {
    Accepted {
        line: usize,
        tx_id: String,
        #[serde(rename = "type")]
        event_type: &'static str,
        ts: i64,
    },
    Rejected {
        line: usize,
        error: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        field: Option<String>,
    },
}

/// Answers one batch received at `received_at` (epoch ms).
pub async fn handle<L: EventLog>(log: &L, request: &Request, received_at: i64) -> Response {
    if let Some(refusal) = unreadable(
        request,
        is_ndjson,
        "application/x-ndjson (one JSON event per line)",
    ) {
        return refusal;
    }
    let body = match decoded(request) {
        Ok(body) => body,
        Err(refusal) => return refusal,
    };

    let mut lines = Vec::new();
    let mut accepted = Vec::new();
    let numbered = body
        .split(|&b| b == b'\n')
        .enumerate()
        .map(|(i, line)| (i + 1, line.strip_suffix(b"\r").unwrap_or(line)))
        .filter(|(_, line)| !line.iter().all(u8::is_ascii_whitespace));
    for (count, (number, line)) in numbered.enumerate() {
        if count == MAX_BATCH_EVENTS {
            return Response::error(
                413,
                &format!("line {number}: a batch holds at most {MAX_BATCH_EVENTS} events; send the rest in another"),
                None,
            );
        }
        match events::validate_line(line, received_at) {
            Ok(event) => {
                lines.push(Line::Accepted {
                    line: number,
                    tx_id: event.tx_id.clone(),
                    event_type: event.body.event_type().tag(),
                    ts: event.ts,
                });
                accepted.push(event);
            }
            Err(err) => lines.push(Line::Rejected {
                line: number,
                error: err.message,
                field: err.field,
            }),
        }
    }
    let answer = Answer {
        accepted: accepted.len(),
        rejected: lines.len() - accepted.len(),
        lines,
    };
    if answer.lines.is_empty() {
        return Response::error(
            400,
            "the batch has no events: send one JSON event per line",
            None,
        );
    }
    if accepted.is_empty() {
        return Response::json(400, &answer);
    }
    match log.append(&accepted).await {
        Ok(()) if answer.rejected == 0 => Response::json(200, &answer),
        Ok(()) => Response::json(207, &answer),
        Err(err) => not_stored(&err),
    }
}

/// The batch's bytes (a body within [`MAX_BODY_BYTES`]): the body, or what it decompresses to
/// (`Content-Encoding: gzip`), at most [`MAX_BATCH_BYTES`]; otherwise the answer that refuses it.
fn decoded(request: &Request) -> Result<Vec<u8>, Response> {
    let too_large = || {
        Response::error(
            413,
            &format!("the batch is over {MAX_BATCH_BYTES} bytes once decompressed"),
            None,
        )
    };
    let encoding = request
        .header("content-encoding")
        .map(|e| e.trim().to_ascii_lowercase());
    match encoding.as_deref() {
        None | Some("" | "identity") => Ok(request.body.clone()),
        Some("gzip" | "x-gzip") => {
            let mut body = Vec::new();
            // One byte more than the limit is enough to know it is over.
            let limit = u64::try_from(MAX_BATCH_BYTES + 1).unwrap_or(u64::MAX);
            flate2::read::MultiGzDecoder::new(request.body.as_slice())
                .take(limit)
                .read_to_end(&mut body)
                .map_err(|e| {
                    Response::error(400, &format!("the body is not valid gzip: {e}"), None)
                })?;
            if body.len() > MAX_BATCH_BYTES {
                return Err(too_large());
            }
            Ok(body)
        }
        Some(other) => Err(Response::error(
            415,
            &format!("content encoding `{other}` is not accepted; send gzip or none"),
            None,
        )),
    }
}

/// Newline-delimited JSON under any of its names, or JSON (a one-line batch is both).
fn is_ndjson(content_type: &str) -> bool {
    let media = media_type(content_type);
    [
        "application/x-ndjson",
        "application/ndjson",
        "application/jsonl",
        "application/x-jsonlines",
    ]
    .contains(&media.as_str())
        || is_json(content_type)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::io::Write;

    use serde_json::Value;

    use super::*;
    use crate::testing::Log;

    const NOW: i64 = 1_763_780_000_000;

    fn batch(body: impl Into<Vec<u8>>) -> Request {
        let mut request = Request {
            method: "POST".into(),
            path: format!("/{}", events::BATCH_ROUTE),
            body: body.into(),
            ..Request::default()
        };
        request
            .headers
            .insert("content-type".into(), "application/x-ndjson".into());
        request
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(bytes).unwrap();
        encoder.finish().unwrap()
    }

    fn json(response: &Response) -> Value {
        serde_json::from_str(&response.body).unwrap()
    }

    const BID: &str = r#"{"type":"bid","tx_id":"t1","app_uid":"u","campaign_item_id":7}"#;
    const IMP: &str = r#"{"type":"imp","tx_id":"t1","win_price":5}"#;
    const CLICK: &str = r#"{"type":"click","tx_id":"t1"}"#;

    #[tokio::test]
    async fn a_valid_batch_is_stored_in_one_append_before_the_200() {
        let log = Log::default();
        let body = format!("{BID}\n{IMP}\r\n\n{CLICK}\n");
        let response = crate::ingest::handle(&log, &batch(body), NOW).await;
        assert_eq!(response.status, 200, "{}", response.body);
        let answer = json(&response);
        assert_eq!(
            (answer["accepted"].as_u64(), answer["rejected"].as_u64()),
            (Some(3), Some(0))
        );
        // Lines keep their numbers in the body; the blank line 3 is skipped.
        let lines: Vec<_> = answer["lines"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| {
                (
                    l["line"].as_u64().unwrap(),
                    l["status"].as_str().unwrap(),
                    l["type"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            lines,
            [
                (1, "accepted", "bid"),
                (2, "accepted", "imp"),
                (4, "accepted", "click")
            ]
        );
        assert_eq!(log.appends(), [3]);
    }

    #[tokio::test]
    async fn a_mixed_batch_stores_its_valid_lines_and_names_each_rejected_one_with_207() {
        let log = Log::default();
        let body = format!("{BID}\nnot json\n{{\"type\":\"imp\",\"tx_id\":\"t1\"}}\n{{\"tx_id\":\"t2\"}}\n{{\"type\":\"view\",\"tx_id\":\"t3\"}}\n{BID}\n");
        let response = crate::ingest::handle(&log, &batch(body), NOW).await;
        assert_eq!(response.status, 207, "{}", response.body);
        let answer = json(&response);
        assert_eq!(
            (answer["accepted"].as_u64(), answer["rejected"].as_u64()),
            (Some(2), Some(4))
        );
        let rejected: Vec<_> = answer["lines"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|l| l["status"] == "rejected")
            .map(|l| {
                (
                    l["line"].as_u64().unwrap(),
                    l["field"].as_str(),
                    l["error"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        assert_eq!(rejected[0].0, 2);
        assert!(
            rejected[0].2.starts_with("the line is not valid JSON"),
            "{rejected:?}"
        );
        assert_eq!((rejected[1].0, rejected[1].1), (3, Some("win_price")));
        assert_eq!((rejected[2].0, rejected[2].1), (4, Some("type")));
        assert_eq!((rejected[3].0, rejected[3].1), (5, Some("type")));
        assert!(
            rejected[3].2.contains("`bid`, `imp`, `click`"),
            "{rejected:?}"
        );
        // The duplicate bid (lines 1 and 6) is stored twice and will be counted once.
        assert_eq!(log.appends(), [2]);
    }

    #[tokio::test]
    async fn a_batch_with_no_valid_line_is_a_400_and_stores_nothing() {
        let log = Log::default();
        for body in ["", "\n\n", "{}\n[1]\n"] {
            let response = crate::ingest::handle(&log, &batch(body), NOW).await;
            assert_eq!(response.status, 400, "{body:?}: {}", response.body);
        }
        assert!(log.appends().is_empty());
    }

    #[tokio::test]
    async fn a_gzipped_batch_is_decompressed_and_a_corrupt_one_is_a_400() {
        let log = Log::default();
        let mut request = batch(gzip(format!("{BID}\n{CLICK}\n").as_bytes()));
        request
            .headers
            .insert("content-encoding".into(), "gzip".into());
        let response = crate::ingest::handle(&log, &request, NOW).await;
        assert_eq!(response.status, 200, "{}", response.body);
        request.body.truncate(10);
        let response = crate::ingest::handle(&log, &request, NOW).await;
        assert_eq!(response.status, 400, "{}", response.body);
        assert!(
            response.body.contains("not valid gzip"),
            "{}",
            response.body
        );
        request
            .headers
            .insert("content-encoding".into(), "br".into());
        assert_eq!(crate::ingest::handle(&log, &request, NOW).await.status, 415);
        assert_eq!(log.appends(), [2]);
    }

    #[tokio::test]
    async fn limits_are_413s_naming_the_line_or_the_size_and_store_nothing() {
        let log = Log::default();
        let many = format!("{CLICK}\n").repeat(MAX_BATCH_EVENTS + 1);
        let response = crate::ingest::handle(&log, &batch(many), NOW).await;
        assert_eq!(response.status, 413, "{}", response.body);
        assert!(
            response
                .body
                .contains(&format!("line {}", MAX_BATCH_EVENTS + 1)),
            "{}",
            response.body
        );

        // A small compressed body that expands past the limit (a zip bomb) is refused unread.
        let bomb = vec![b' '; MAX_BATCH_BYTES + 10];
        let mut request = batch(gzip(&bomb));
        assert!(request.body.len() < MAX_BODY_BYTES);
        request
            .headers
            .insert("content-encoding".into(), "gzip".into());
        let response = crate::ingest::handle(&log, &request, NOW).await;
        assert_eq!(response.status, 413, "{}", response.body);

        let response =
            crate::ingest::handle(&log, &batch(vec![b'\n'; MAX_BODY_BYTES + 1]), NOW).await;
        assert_eq!(response.status, 413, "{}", response.body);
        let mut request = batch(BID);
        request
            .headers
            .insert("content-type".into(), "text/csv".into());
        assert_eq!(crate::ingest::handle(&log, &request, NOW).await.status, 415);
        assert!(log.appends().is_empty());
    }

    #[tokio::test]
    async fn a_refused_batch_is_a_503_to_resend_whole() {
        let log = Log {
            refuse: Some(true),
            ..Log::default()
        };
        let response = crate::ingest::handle(&log, &batch(format!("{BID}\n{IMP}")), NOW).await;
        assert_eq!(response.status, 503);
        assert!(response
            .headers
            .iter()
            .any(|(name, _)| *name == "retry-after"));
    }
}

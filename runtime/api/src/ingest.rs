//! `POST /bid`, `/impression`, `/click` (CONTRACT.md §4.1): validate, stamp, store, and answer
//! 200 only once the event is durably stored.

use serde::Serialize;

use sdp_core::events::{self, EventType, MAX_BODY_BYTES};
use sdp_core::ports::{EventLog, StoreError};

use crate::http::{Request, Response};

/// Seconds a client should wait after a 503 before trying again.
const RETRY_AFTER_SECONDS: &str = "1";

#[derive(Serialize)]
struct Accepted<'a> {
    tx_id: &'a str,
    #[serde(rename = "type")]
    event_type: &'static str,
    ts: i64,
}

/// Answers one ingestion request received at `received_at` (epoch ms).
pub async fn handle<L: EventLog>(log: &L, request: &Request, received_at: i64) -> Response {
    let route = request.path.trim_end_matches('/');
    if route.strip_prefix('/') == Some(events::BATCH_ROUTE) {
        return crate::batch::handle(log, request, received_at).await;
    }
    let Some(event_type) = EventType::ALL
        .into_iter()
        .find(|t| route.strip_prefix('/') == Some(t.route()))
    else {
        return Response::not_found(&request.path);
    };
    if let Some(refusal) = unreadable(request, is_json, "application/json") {
        return refusal;
    }
    let event = match events::validate(event_type, &request.body, received_at) {
        Ok(event) => event,
        Err(err) => return Response::error(400, &err.message, err.field.as_deref()),
    };
    match log.append(std::slice::from_ref(&event)).await {
        Ok(()) => Response::json(
            200,
            &Accepted {
                tx_id: &event.tx_id,
                event_type: event_type.tag(),
                ts: event.ts,
            },
        ),
        Err(err) => not_stored(&err),
    }
}

/// The refusal of a request an ingestion route cannot read: a method other than POST (405), a
/// content type `accepted` refuses (415, asking for `wanted`; none at all is taken), a body over
/// [`MAX_BODY_BYTES`] (413).
pub(crate) fn unreadable(
    request: &Request,
    accepted: fn(&str) -> bool,
    wanted: &str,
) -> Option<Response> {
    if request.method != "POST" {
        return Some(Response::method_not_allowed(&request.method, "POST"));
    }
    if let Some(content_type) = request.header("content-type") {
        if !accepted(content_type) {
            return Some(Response::error(
                415,
                &format!("content type `{content_type}` is not accepted; send {wanted}"),
                None,
            ));
        }
    }
    if request.body.len() > MAX_BODY_BYTES {
        return Some(Response::error(
            413,
            &format!(
                "the body is {} bytes; the limit is {MAX_BODY_BYTES}",
                request.body.len()
            ),
            None,
        ));
    }
    None
}

/// The answer when the event log refused an append: 503 with `Retry-After` when it may take it
/// later (throttled, busy), 500 otherwise.
pub(crate) fn not_stored(err: &StoreError) -> Response {
    if err.is_transient() {
        tracing::warn!(error = %err, "event stream refused the events; answering 503");
        Response::error(503, "the event stream is busy; retry shortly", None)
            .with_header("retry-after", RETRY_AFTER_SECONDS)
    } else {
        tracing::error!(error = %err, "storing events failed");
        Response::error(500, "the events could not be stored", None)
    }
}

/// `application/json` or any `+json` type, parameters (charset) ignored.
pub(crate) fn is_json(content_type: &str) -> bool {
    let media = media_type(content_type);
    media == "application/json" || (media.starts_with("application/") && media.ends_with("+json"))
}

/// The media type of a `Content-Type`, lower case, without its parameters.
pub(crate) fn media_type(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

#[cfg(test)]
mod tests {

    use super::*;
    use crate::testing::Log;

    fn post(path: &str, body: &str) -> Request {
        let mut request = Request {
            method: "POST".into(),
            path: path.into(),
            body: body.as_bytes().to_vec(),
            ..Request::default()
        };
        request.headers.insert(
            "content-type".into(),
            "application/json; charset=utf-8".into(),
        );
        request
    }

    const NOW: i64 = 1_763_780_000_000;

    #[tokio::test]
    async fn a_valid_event_is_stored_before_the_200() {
        let log = Log::default();
        let response = handle(
            &log,
            &post("/impression", r#"{"tx_id":"t1","win_price":5}"#),
            NOW,
        )
        .await;
        assert_eq!(response.status, 200, "{}", response.body);
        assert_eq!(
            response.body,
            format!(r#"{{"tx_id":"t1","type":"imp","ts":{NOW}}}"#)
        );
        assert_eq!(log.stored.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn an_invalid_event_is_a_400_naming_the_field_and_nothing_is_stored() {
        let log = Log::default();
        let response = handle(&log, &post("/bid", r#"{"tx_id":"t1","app_uid":"u"}"#), NOW).await;
        assert_eq!(
            (response.status, response.body.as_str()),
            (
                400,
                r#"{"error":"`campaign_item_id` is required","field":"campaign_item_id"}"#
            )
        );
        assert!(log.stored.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_non_json_content_type_is_a_415_and_a_missing_one_is_accepted() {
        let log = Log::default();
        let mut request = post("/click", r#"{"tx_id":"t"}"#);
        request.headers.insert(
            "content-type".into(),
            "application/x-www-form-urlencoded".into(),
        );
        assert_eq!(handle(&log, &request, NOW).await.status, 415);
        request.headers.clear();
        assert_eq!(handle(&log, &request, NOW).await.status, 200);
        request
            .headers
            .insert("content-type".into(), "application/vnd.api+json".into());
        assert_eq!(handle(&log, &request, NOW).await.status, 200);
    }

    #[tokio::test]
    async fn a_body_over_the_limit_is_a_413() {
        let body = format!(r#"{{"tx_id":"t","pad":"{}"}}"#, "x".repeat(MAX_BODY_BYTES));
        assert_eq!(
            handle(&Log::default(), &post("/click", &body), NOW)
                .await
                .status,
            413
        );
    }

    #[tokio::test]
    async fn a_throttled_stream_is_a_503_with_retry_after_and_a_broken_one_a_500() {
        let throttled = Log {
            refuse: Some(true),
            ..Log::default()
        };
        let response = handle(&throttled, &post("/click", r#"{"tx_id":"t"}"#), NOW).await;
        assert_eq!(response.status, 503);
        assert!(response.headers.contains(&("retry-after", "1".to_owned())));
        let broken = Log {
            refuse: Some(false),
            ..Log::default()
        };
        assert_eq!(
            handle(&broken, &post("/click", r#"{"tx_id":"t"}"#), NOW)
                .await
                .status,
            500
        );
    }

    #[tokio::test]
    async fn unknown_routes_are_404_and_other_methods_405() {
        let log = Log::default();
        assert_eq!(
            handle(&log, &post("/location", "{}"), NOW).await.status,
            404
        );
        let mut get = post("/bid", "");
        get.method = "GET".into();
        assert_eq!(handle(&log, &get, NOW).await.status, 405);
        assert_eq!(
            handle(&log, &post("/click/", r#"{"tx_id":"t"}"#), NOW)
                .await
                .status,
            200,
            "a trailing slash is fine"
        );
    }
}

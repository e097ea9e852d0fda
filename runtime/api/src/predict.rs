//! `POST {UrlForPredictions}` (CONTRACT.md §4.3): the probability that a bid with these attributes,
//! at this price, wins. `{"campaignItemId", "domain", "creativeId", "creativeCategory", "winPrice"}`
//! → `{"predictions":[{"score", "predicted_label"}]}`, in the original's shape.

use serde::Serialize;
use serde_json::{Map, Value};

use sdp_core::events::MAX_BODY_BYTES;
use sdp_core::model::{hour_of_day, BidFeatures, Model};

use crate::http::{Request, Response};

#[derive(Serialize)]
struct Prediction {
    score: f64,
    predicted_label: f64,
}

#[derive(Serialize)]
struct Predictions {
    predictions: Vec<Prediction>,
}

/// Answers one prediction request with `model`, at `now_ms` (its hour of day is a feature).
pub fn handle(model: &Model, request: &Request, now_ms: i64) -> Response {
    if !request.path.trim_matches('/').is_empty() {
        return Response::not_found(&request.path);
    }
    if request.method != "POST" {
        return Response::method_not_allowed(&request.method, "POST");
    }
    if request.body.len() > MAX_BODY_BYTES {
        return Response::error(413, "the body is over the limit", None);
    }
    let bid = match parse(&request.body, now_ms) {
        Ok(bid) => bid,
        Err((field, message)) => return Response::error(400, &message, field),
    };
    let score = model.score(&bid);
    Response::json(
        200,
        &Predictions {
            predictions: vec![Prediction {
                score,
                predicted_label: if score >= 0.5 { 1.0 } else { 0.0 },
            }],
        },
    )
}

type Invalid = (Option<&'static str>, String);

fn parse(body: &[u8], now_ms: i64) -> Result<BidFeatures, Invalid> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| (None, format!("the body is not valid JSON: {e}")))?;
    let Value::Object(fields) = value else {
        return Err((None, "the body must be a JSON object".into()));
    };
    Ok(BidFeatures {
        campaign_item_id: text_or_id(&fields, "campaignItemId")?,
        domain: text(&fields, "domain")?,
        creative_id: text(&fields, "creativeId")?,
        creative_category: text(&fields, "creativeCategory")?,
        win_price: price(&fields, "winPrice")?,
        hour: hour_of_day(now_ms),
    })
}

fn required<'a>(fields: &'a Map<String, Value>, name: &'static str) -> Result<&'a Value, Invalid> {
    match fields.get(name) {
        None | Some(Value::Null) => Err((Some(name), format!("`{name}` is required"))),
        Some(value) => Ok(value),
    }
}

fn text(fields: &Map<String, Value>, name: &'static str) -> Result<String, Invalid> {
    match required(fields, name)? {
        Value::String(s) => Ok(s.clone()),
        other => Err((
            Some(name),
            format!("`{name}` must be a string; got {other}"),
        )),
    }
}

/// Campaign ids are integers at ingestion and strings in the original's prediction example: both.
fn text_or_id(fields: &Map<String, Value>, name: &'static str) -> Result<String, Invalid> {
    match required(fields, name)? {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) if n.is_u64() => Ok(n.to_string()),
        other => Err((
            Some(name),
            format!("`{name}` must be a string or a non-negative integer; got {other}"),
        )),
    }
}

fn price(fields: &Map<String, Value>, name: &'static str) -> Result<f64, Invalid> {
    match required(fields, name)? {
        Value::Number(n) => match n.as_f64() {
            Some(p) if p >= 0.0 && p.is_finite() => Ok(p),
            _ => Err((
                Some(name),
                format!("`{name}` must not be negative; got {n}"),
            )),
        },
        other => Err((
            Some(name),
            format!("`{name}` must be a number; got {other}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn post(body: &str) -> Response {
        let request = Request {
            method: "POST".into(),
            path: "/".into(),
            body: body.as_bytes().to_vec(),
            ..Request::default()
        };
        handle(&Model::constant(0.8), &request, 1_763_780_400_000)
    }

    const VALID: &str = r#"{"campaignItemId":"1463517","domain":"example.com","creativeId":"c1","creativeCategory":"games","winPrice":100}"#;

    #[test]
    fn a_valid_request_gets_the_original_shape() {
        let response = post(VALID);
        assert_eq!(response.status, 200, "{}", response.body);
        let body: Value = serde_json::from_str(&response.body).unwrap_or_default();
        let score = body["predictions"][0]["score"].as_f64().unwrap_or(-1.0);
        assert!((score - 0.8).abs() < 1e-9, "{body}");
        assert_eq!(body["predictions"][0]["predicted_label"], 1.0);
    }

    #[test]
    fn each_missing_field_and_each_wrong_type_is_a_400_naming_it() {
        for field in [
            "campaignItemId",
            "domain",
            "creativeId",
            "creativeCategory",
            "winPrice",
        ] {
            let mut body: Map<String, Value> = serde_json::from_str(VALID).unwrap_or_default();
            body.remove(field);
            let response = post(&Value::Object(body.clone()).to_string());
            assert_eq!(response.status, 400, "{field}");
            assert!(
                response.body.contains(&format!(r#""field":"{field}""#)),
                "{}",
                response.body
            );
            body.insert(field.into(), serde_json::json!([1]));
            let response = post(&Value::Object(body).to_string());
            assert_eq!(response.status, 400, "{field}");
            assert!(
                response.body.contains(&format!(r#""field":"{field}""#)),
                "{}",
                response.body
            );
        }
        assert_eq!(post(&VALID.replace("100", "-5")).status, 400);
        assert_eq!(post("[1]").status, 400);
        assert_eq!(post("{oops").status, 400);
        let numeric_campaign = VALID.replace(r#""1463517""#, "1463517");
        assert_eq!(post(&numeric_campaign).status, 200);
    }
}

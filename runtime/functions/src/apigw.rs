//! API Gateway REST proxy events ↔ `sdp-api` requests and responses.

use aws_lambda_events::apigw::{ApiGatewayProxyRequest, ApiGatewayProxyResponse};
use aws_lambda_events::encodings::Body;
use aws_lambda_events::http::{HeaderMap, HeaderName, HeaderValue};
use base64::Engine;
use sdp_api::{Request, Response};

/// Converts a proxy event. `None` when its body claims base64 but is not.
pub fn request(event: &ApiGatewayProxyRequest) -> Option<Request> {
    let body = match &event.body {
        None => Vec::new(),
        Some(text) if event.is_base64_encoded => base64::engine::general_purpose::STANDARD
            .decode(text)
            .ok()?,
        Some(text) => text.clone().into_bytes(),
    };
    let headers = event
        .headers
        .iter()
        .filter_map(|(name, value)| {
            Some((
                name.as_str().to_ascii_lowercase(),
                value.to_str().ok()?.to_owned(),
            ))
        })
        .collect();
    let query = event
        .query_string_parameters
        .iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    Some(Request {
        method: event.http_method.as_str().to_owned(),
        path: event.path.clone().unwrap_or_default(),
        headers,
        query,
        body,
    })
}

/// Converts an answer into the proxy response API Gateway expects.
pub fn response(answer: Response) -> ApiGatewayProxyResponse {
    let mut headers = HeaderMap::new();
    for (name, value) in answer.headers {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(HeaderName::from_static(name), value);
        }
    }
    let mut proxy = ApiGatewayProxyResponse::default();
    proxy.status_code = i64::from(answer.status);
    proxy.headers = headers;
    proxy.body = Some(Body::Text(answer.body));
    proxy
}

/// The answer to an event whose body does not decode.
pub fn undecodable() -> ApiGatewayProxyResponse {
    response(Response::error(
        400,
        "the body is marked base64 but does not decode",
        None,
    ))
}

//! The three APIs over HTTP/1.1 on one loopback port, each under its own base path, answering
//! through the same `sdp-api` handlers as the Lambdas behind API Gateway.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;

use sdp_api::http::{Request, Response};
use sdp_core::events::MAX_BODY_BYTES;

use sdp_app::model_cache::ModelCache;

use crate::log::LocalLog;
use crate::scheduled::Lake;
use crate::state::LocalState;

/// Base paths: `{UrlForAPI}` is `/ingest`, `{UrlForReports}` the root (its routes start with
/// `/reports/`), `{UrlForPredictions}` is `/predictions`.
pub const INGEST_BASE: &str = "/ingest";
pub const PREDICTIONS_BASE: &str = "/predictions";

pub struct Apis {
    pub log: LocalLog,
    pub state: LocalState,
    pub model: ModelCache<Lake>,
}

/// Serves until `stop` turns true, then lets the requests in flight finish.
pub async fn serve(listener: TcpListener, apis: Arc<Apis>, mut stop: watch::Receiver<bool>) {
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.changed() => break,
        };
        let Ok((stream, _)) = accepted else {
            // A connection that failed before it started, or no file descriptors left: wait a
            // little rather than spin, then go on listening.
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            continue;
        };
        let apis = Arc::clone(&apis);
        let mut stop = stop.clone();
        connections.spawn(async move {
            let service = service_fn(move |request| {
                let apis = Arc::clone(&apis);
                async move { Ok::<_, Infallible>(answer(&apis, request).await) }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service);
            tokio::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => {}
                _ = stop.changed() => {
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.await;
                }
            }
        });
        while connections.try_join_next().is_some() {}
    }
    while connections.join_next().await.is_some() {}
}

async fn answer(apis: &Apis, request: hyper::Request<Incoming>) -> hyper::Response<Full<Bytes>> {
    let (parts, body) = request.into_parts();
    // One byte over the limit is enough for the handler to answer 413 with the limit named.
    let body = match Limited::new(body, MAX_BODY_BYTES + 1).collect().await {
        Ok(collected) => collected.to_bytes().to_vec(),
        Err(_) => {
            return to_hyper(Response::error(
                413,
                &format!("the body is over the limit of {MAX_BODY_BYTES} bytes"),
                None,
            ))
        }
    };
    let path = parts.uri.path().to_owned();
    let request = Request {
        method: parts.method.as_str().to_owned(),
        path: path.clone(),
        headers: parts
            .headers
            .iter()
            .filter_map(|(name, value)| {
                Some((name.as_str().to_owned(), value.to_str().ok()?.to_owned()))
            })
            .collect::<BTreeMap<_, _>>(),
        query: parts
            .uri
            .query()
            .map(|q| {
                q.split('&')
                    .filter(|pair| !pair.is_empty())
                    .map(|pair| {
                        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                        (percent_decode(k), percent_decode(v))
                    })
                    .collect()
            })
            .unwrap_or_default(),
        body,
    };
    let now_ms = crate::now_ms();
    let response = if let Some(rest) = below(&path, INGEST_BASE) {
        let request = Request {
            path: rest.to_owned(),
            ..request
        };
        sdp_api::ingest::handle(&apis.log, &request, now_ms).await
    } else if let Some(rest) = below(&path, PREDICTIONS_BASE) {
        let model = apis.model.model().await;
        let request = Request {
            path: rest.to_owned(),
            ..request
        };
        sdp_api::predict::handle(&model, &request, now_ms)
    } else {
        sdp_api::reports::handle(&apis.state, &request, now_ms / 1000).await
    };
    to_hyper(response)
}

/// The rest of `path` below `base` (`/ingest/bid` → `/bid`), if it is below it.
fn below<'a>(path: &'a str, base: &str) -> Option<&'a str> {
    let rest = path.strip_prefix(base)?;
    (rest.is_empty() || rest.starts_with('/')).then_some(rest)
}

fn to_hyper(response: Response) -> hyper::Response<Full<Bytes>> {
    let mut builder = hyper::Response::builder()
        .status(response.status)
        .header("content-type", "application/json");
    for (name, value) in response.headers {
        builder = builder.header(name, value);
    }
    builder
        .body(Full::new(Bytes::from(response.body)))
        .unwrap_or_else(|_| hyper::Response::new(Full::new(Bytes::from_static(b"{}"))))
}

/// `%XX` and `+` decoding of a query component (time zones arrive as `Europe%2FBerlin`).
fn percent_decode(text: &str) -> String {
    fn hex(byte: u8) -> Option<u8> {
        char::from(byte)
            .to_digit(16)
            .and_then(|d| u8::try_from(d).ok())
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| Some(hex(*bytes.get(i + 1)?)? * 16 + hex(*bytes.get(i + 2)?)?))
            .flatten();
        match (bytes[i], escaped) {
            (_, Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (b'+', None) => {
                out.push(b' ');
                i += 1;
            }
            (other, None) => {
                out.push(other);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_components_are_percent_decoded() {
        assert_eq!(percent_decode("Europe%2FBerlin"), "Europe/Berlin");
        assert_eq!(percent_decode("a+b"), "a b");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz%41"), "%zzA");
    }

    #[test]
    fn paths_below_a_base() {
        assert_eq!(below("/ingest/bid", INGEST_BASE), Some("/bid"));
        assert_eq!(below("/ingest", INGEST_BASE), Some(""));
        assert_eq!(below("/ingestx/bid", INGEST_BASE), None);
    }
}

//! The three APIs over HTTP/1.1 on one loopback port, each under its own base path, answering
//! through the same `sdp-api` handlers as the Lambdas behind API Gateway.
//!
//! Loopback is not a security boundary against the browser: a web page the user visits can send
//! requests to 127.0.0.1, and through DNS rebinding read the answers. So a request must name this
//! machine in `Host` (421 otherwise), and a request a web page sends (it carries `Origin`) must come
//! from a page served by this machine (403 otherwise). A slow or stalled client cannot hold the
//! server: headers must arrive within [`HEADER_TIMEOUT`], a body within [`BODY_TIMEOUT`], at most
//! [`MAX_CONNECTIONS`] connections are served at once (more wait in the listen backlog), and a stop
//! waits at most [`DRAIN_TIMEOUT`] for the requests in flight.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};

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

/// How long a client may take to send a request's headers (also how long an idle kept-alive
/// connection stays open).
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a client may take to send a request's body once its headers arrived.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(30);
/// Connections served at once; each holds at most one request's body in memory.
pub const MAX_CONNECTIONS: usize = 1024;
/// How long a stop waits for the requests in flight before it closes their connections.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(15);

pub struct Apis {
    pub log: LocalLog,
    pub state: LocalState,
    pub model: ModelCache<Lake>,
}

/// Serves until `stop` turns true, then lets the requests in flight finish (for at most
/// [`DRAIN_TIMEOUT`]).
pub async fn serve(listener: TcpListener, apis: Arc<Apis>, mut stop: watch::Receiver<bool>) {
    let mut connections = tokio::task::JoinSet::new();
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        // A free slot first: when every one is taken, new clients wait in the listen backlog.
        let slot = tokio::select! {
            slot = Arc::clone(&slots).acquire_owned() => slot,
            _ = stop.changed() => break,
        };
        let Ok(slot) = slot else { break };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.changed() => break,
        };
        let Ok((stream, _)) = accepted else {
            // A connection that failed before it started, or no file descriptors left: wait a
            // little rather than spin, then go on listening.
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let apis = Arc::clone(&apis);
        let mut stop = stop.clone();
        connections.spawn(async move {
            let _slot = slot;
            let service = service_fn(move |request| {
                let apis = Arc::clone(&apis);
                async move { Ok::<_, Infallible>(answer(&apis, request).await) }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
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
    let drained = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(DRAIN_TIMEOUT, drained).await.is_err() {
        // What is still open is a client that stopped sending: nothing of it was answered 200.
        connections.shutdown().await;
    }
}

/// Refuses a request that did not come from this machine's own pages and names: a `Host` other
/// than a loopback name (DNS rebinding), or an `Origin` (sent by browsers) other than a page on a
/// loopback address.
fn refused(headers: &hyper::HeaderMap) -> Option<Response> {
    let header = |name: &str| {
        headers
            .get(name)
            .map(|v| v.to_str().unwrap_or("(not text)"))
    };
    match header("host") {
        Some(host) if is_loopback_authority(host) => {}
        Some(host) => {
            return Some(Response::error(
                421,
                &format!("Host `{host}` is not this machine: sdp local answers 127.0.0.1, localhost and [::1] only"),
                None,
            ))
        }
        None => return Some(Response::error(400, "the request has no Host header", None)),
    }
    match header("origin") {
        None => None,
        Some(origin)
            if origin
                .strip_prefix("http://")
                .or_else(|| origin.strip_prefix("https://"))
                .is_some_and(is_loopback_authority) =>
        {
            None
        }
        Some(origin) => Some(Response::error(
            403,
            &format!("requests from web pages of other sites are refused (Origin `{origin}`)"),
            None,
        )),
    }
}

/// `127.0.0.1`, `localhost` or `[::1]`, with or without a port (host names are case-blind).
fn is_loopback_authority(authority: &str) -> bool {
    let authority = authority.to_ascii_lowercase();
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().map(|h| format!("[{h}]")),
        None => authority.split(':').next().map(str::to_owned),
    };
    let port_ok = |rest: &str| {
        rest.is_empty()
            || rest
                .strip_prefix(':')
                .is_some_and(|p| p.parse::<u16>().is_ok())
    };
    match host {
        Some(host) if ["127.0.0.1", "localhost", "[::1]"].contains(&host.as_str()) => {
            port_ok(&authority[host.len()..])
        }
        _ => false,
    }
}

async fn answer(apis: &Apis, request: hyper::Request<Incoming>) -> hyper::Response<Full<Bytes>> {
    let (parts, body) = request.into_parts();
    if let Some(refusal) = refused(&parts.headers) {
        return to_hyper(refusal);
    }
    // One byte over the limit is enough for the handler to answer 413 with the limit named.
    let collected = tokio::time::timeout(
        BODY_TIMEOUT,
        Limited::new(body, MAX_BODY_BYTES + 1).collect(),
    );
    let body = match collected.await {
        Ok(Ok(collected)) => collected.to_bytes().to_vec(),
        Ok(Err(_)) => {
            return to_hyper(Response::error(
                413,
                &format!("the body is over the limit of {MAX_BODY_BYTES} bytes"),
                None,
            ))
        }
        Err(_) => {
            return to_hyper(Response::error(
                408,
                &format!(
                    "the body did not arrive within {} s",
                    BODY_TIMEOUT.as_secs()
                ),
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
    // The response names its own content type (`Response::json` and `::error` both do).
    let mut builder = hyper::Response::builder().status(response.status);
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
    fn only_loopback_names_are_this_machine() {
        for ok in [
            "127.0.0.1",
            "127.0.0.1:8080",
            "localhost:1",
            "LocalHost:1",
            "[::1]:8080",
            "[::1]",
        ] {
            assert!(is_loopback_authority(ok), "{ok}");
        }
        for bad in [
            "evil.example",
            "evil.example:8080",
            "127.0.0.1.evil.example",
            "localhost.evil.example:80",
            "127.0.0.1:80x",
            "[::2]:80",
            "",
        ] {
            assert!(!is_loopback_authority(bad), "{bad}");
        }
    }

    #[test]
    fn web_pages_of_other_sites_and_other_host_names_are_refused() {
        let headers = |pairs: &[(&'static str, &'static str)]| {
            let mut map = hyper::HeaderMap::new();
            for (k, v) in pairs {
                map.insert(*k, hyper::header::HeaderValue::from_static(v));
            }
            map
        };
        let status =
            |pairs: &[(&'static str, &'static str)]| refused(&headers(pairs)).map(|r| r.status);
        assert_eq!(status(&[("host", "127.0.0.1:8080")]), None, "curl");
        assert_eq!(
            status(&[
                ("host", "localhost:8080"),
                ("origin", "http://localhost:8080")
            ]),
            None,
            "a page this machine serves"
        );
        assert_eq!(
            status(&[
                ("host", "127.0.0.1:8080"),
                ("origin", "https://evil.example")
            ]),
            Some(403),
            "a page of another site posting to loopback"
        );
        assert_eq!(
            status(&[("host", "127.0.0.1:8080"), ("origin", "null")]),
            Some(403),
            "a sandboxed page"
        );
        assert_eq!(
            status(&[("host", "evil.example:8080")]),
            Some(421),
            "a rebound DNS name"
        );
        assert_eq!(status(&[]), Some(400));
    }

    #[test]
    fn an_answer_names_its_content_type_once() {
        for response in [
            Response::error(503, "busy", None),
            Response::json(200, &serde_json::json!({"ok": true})),
        ] {
            let answer = to_hyper(response);
            let types: Vec<_> = answer.headers().get_all("content-type").iter().collect();
            assert_eq!(types, ["application/json"]);
        }
    }

    #[test]
    fn paths_below_a_base() {
        assert_eq!(below("/ingest/bid", INGEST_BASE), Some("/bid"));
        assert_eq!(below("/ingest", INGEST_BASE), Some(""));
        assert_eq!(below("/ingestx/bid", INGEST_BASE), None);
    }
}

//! The HTTP client of `sdp verify` and `sdp load`, the platform's own users' view of it: HTTP/1.1
//! with keep-alive, over TLS with the system's root certificates (as the AWS SDK trusts) for a
//! deployed stack, or plain HTTP for `sdp local`; the `x-api-key` header when the stack's APIs
//! want one (ApiAuth=API_KEY). A build without the `tls` feature speaks plain HTTP only.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

// hyper's own message ("client error (Connect)") says little without its causes.
use sdp_core::ports::with_causes;

/// An answer: the status and the whole body.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub body: Bytes,
}

impl Answer {
    /// The body as text, for messages.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// At most 200 characters of the body, for a message.
    pub fn excerpt(&self) -> String {
        let text = self.text();
        let mut short: String = text.chars().take(200).collect();
        if short.len() < text.len() {
            short.push('…');
        }
        short
    }

    /// The body as JSON, if it is.
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }
}

/// Why there was no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HttpError {
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("{0}")]
    Transport(String),
    #[error("`{0}` is not a usable URL")]
    Url(String),
}

#[cfg(feature = "tls")]
type Connector = hyper_rustls::HttpsConnector<HttpConnector>;
#[cfg(not(feature = "tls"))]
type Connector = HttpConnector;

/// HTTPS or plain HTTP, with the system's root certificates.
#[cfg(feature = "tls")]
fn connector() -> anyhow::Result<Connector> {
    // The provider is named: with more than one compiled in (the SDK's crates bring ring too),
    // rustls cannot pick a default by itself.
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    Ok(hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_native_roots(provider)
        .map_err(|e| anyhow::anyhow!("cannot load the system's root certificates: {e}"))?
        .https_or_http()
        .enable_http1()
        .build())
}

#[cfg(not(feature = "tls"))]
fn connector() -> anyhow::Result<Connector> {
    Ok(HttpConnector::new())
}

#[derive(Clone)]
pub struct Client {
    inner: hyper_util::client::legacy::Client<Connector, Full<Bytes>>,
    api_key: Option<String>,
    timeout: Duration,
}

impl Client {
    /// A client whose every request fails after `timeout` without an answer.
    pub fn new(api_key: Option<String>, timeout: Duration) -> anyhow::Result<Client> {
        let connector = connector()?;
        let inner = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        Ok(Client {
            inner,
            api_key,
            timeout,
        })
    }

    pub async fn get(&self, url: &str) -> Result<Answer, HttpError> {
        self.send("GET", url, None, Bytes::new()).await
    }

    /// POSTs `body` as `application/json`.
    pub async fn post_json(&self, url: &str, body: impl Into<Bytes>) -> Result<Answer, HttpError> {
        self.post(url, "application/json", body).await
    }

    pub async fn post(
        &self,
        url: &str,
        content_type: &str,
        body: impl Into<Bytes>,
    ) -> Result<Answer, HttpError> {
        self.send("POST", url, Some(content_type), body.into())
            .await
    }

    async fn send(
        &self,
        method: &str,
        url: &str,
        content_type: Option<&str>,
        body: Bytes,
    ) -> Result<Answer, HttpError> {
        let uri: hyper::Uri = url.parse().map_err(|_| HttpError::Url(url.to_owned()))?;
        if cfg!(not(feature = "tls")) && uri.scheme_str() == Some("https") {
            return Err(HttpError::Transport(format!(
                "{url}: this build of sdp leaves out the `tls` feature, so it speaks plain HTTP only"
            )));
        }
        let mut request = hyper::Request::builder().method(method).uri(uri);
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        if let Some(key) = &self.api_key {
            request = request.header("x-api-key", key);
        }
        let request = request
            .body(Full::new(body))
            .map_err(|e| HttpError::Transport(e.to_string()))?;
        let exchange = async {
            let response = self
                .inner
                .request(request)
                .await
                .map_err(|e| HttpError::Transport(with_causes(&e)))?;
            let status = response.status().as_u16();
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(|e| HttpError::Transport(with_causes(&e)))?
                .to_bytes();
            Ok(Answer { status, body })
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| HttpError::Timeout(self.timeout))?
    }
}

//! The background task sending queued spans to the collector: OTLP/HTTP with the JSON
//! encoding (`application/json` to `<endpoint>/v1/traces`), which needs nothing beyond the
//! serde_json and hyper the broker already has (the protobuf types of `opentelemetry-proto`
//! come only with tonic).
//!
//! Batches form by themselves: each request takes whatever queued while the previous one
//! was in flight. A failed export is logged once until one succeeds again, and its spans
//! are dropped: the collector being down must cost the broker nothing but these spans.

use std::sync::Weak;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper::header::{CONTENT_LENGTH, CONTENT_TYPE, HOST};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use super::{Span, SpanQueue, json};

/// Spans per request at most.
const BATCH: usize = 512;
/// A collector taking longer than this to answer loses the batch; meanwhile spans queue
/// (and drop once the queue is full).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The collector's endpoint is unusable.
#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    #[error("the OTLP endpoint '{0}' is not a URL: {1}")]
    NotUrl(String, String),
    #[error("the OTLP endpoint '{0}' must be http://host:port[/path] (https is not supported)")]
    Unsupported(String),
}

/// Where spans are posted.
#[derive(Debug, Clone)]
pub struct Target {
    /// `host:port`, to connect to and for the Host header.
    authority: String,
    /// The endpoint's path with `/v1/traces` appended.
    path: String,
}

impl Target {
    pub fn parse(endpoint: &str) -> Result<Target, EndpointError> {
        let uri: hyper::Uri = endpoint
            .parse()
            .map_err(|e: hyper::http::uri::InvalidUri| {
                EndpointError::NotUrl(endpoint.to_owned(), e.to_string())
            })?;
        let unsupported = || EndpointError::Unsupported(endpoint.to_owned());
        if uri.scheme_str() != Some("http") || uri.query().is_some() {
            return Err(unsupported());
        }
        let authority = uri.authority().ok_or_else(unsupported)?;
        let port = authority.port_u16().unwrap_or(80);
        Ok(Target {
            authority: format!("{}:{port}", authority.host()),
            path: format!("{}/v1/traces", uri.path().trim_end_matches('/')),
        })
    }

    pub fn url(&self) -> String {
        format!("http://{}{}", self.authority, self.path)
    }
}

/// Exports until every [`super::Tracer`] is gone.
pub(super) async fn run(target: Target, mut spans: mpsc::Receiver<Span>, queue: Weak<SpanQueue>) {
    let url = target.url();
    tracing::info!(%url, "exporting traces over OTLP/HTTP");
    let mut failing = false;
    let mut dropped_reported = 0;
    let mut batch = Vec::with_capacity(BATCH);
    while spans.recv_many(&mut batch, BATCH).await > 0 {
        let body = json::export_request(&batch);
        let count = batch.len();
        batch.clear();
        let outcome = match tokio::time::timeout(REQUEST_TIMEOUT, post(&target, body)).await {
            Ok(outcome) => outcome,
            Err(_) => Err(format!("no answer within {REQUEST_TIMEOUT:?}")),
        };
        if outcome.is_err()
            && let Some(queue) = queue.upgrade()
        {
            queue.count_failed(count);
        }
        match outcome {
            Ok(()) if failing => {
                tracing::info!(%url, "trace export works again");
                failing = false;
            }
            Err(why) if !failing => {
                tracing::warn!(%url, %why, spans = count, "trace export failed; its spans are dropped");
                failing = true;
            }
            _ => {}
        }
        let dropped = queue
            .upgrade()
            .map_or(dropped_reported, |queue| queue.overflowed());
        if dropped > dropped_reported {
            tracing::warn!(
                spans = dropped - dropped_reported,
                "spans dropped: the export queue was full"
            );
            dropped_reported = dropped;
        }
    }
}

/// One request on its own connection: one per batch, and a fresh connection needs no
/// recovery after the collector restarts.
async fn post(target: &Target, body: Vec<u8>) -> Result<(), String> {
    let stream = TcpStream::connect(&target.authority)
        .await
        .map_err(|e| format!("cannot connect: {e}"))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("HTTP handshake failed: {e}"))?;
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::debug!(%error, "OTLP connection ended");
        }
    });
    let length = body.len();
    let request = Request::post(&target.path)
        .header(HOST, &target.authority)
        .header(CONTENT_TYPE, "application/json")
        .header(CONTENT_LENGTH, length)
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| format!("bad request: {e}"))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("request failed: {e}"))?;
    let status = response.status();
    // Read the answer out so the collector sees the exchange completed.
    let answer = response
        .into_body()
        .collect()
        .await
        .map(|body| body.to_bytes())
        .unwrap_or_default();
    if status.is_success() {
        Ok(())
    } else {
        let answer = String::from_utf8_lossy(&answer[..answer.len().min(200)]).into_owned();
        Err(format!("the collector answered {status}: {answer}"))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_path_follows_the_endpoint() {
        let target = Target::parse("http://127.0.0.1:4318").unwrap();
        assert_eq!(target.url(), "http://127.0.0.1:4318/v1/traces");
        let target = Target::parse("http://collector/otlp/").unwrap();
        assert_eq!(target.url(), "http://collector:80/otlp/v1/traces");
    }

    #[test]
    fn refuses_what_it_cannot_post_to() {
        for endpoint in [
            "https://collector:4318",
            "collector:4318",
            "not a url",
            "http://c/?q",
        ] {
            assert!(Target::parse(endpoint).is_err(), "{endpoint}");
        }
    }
}

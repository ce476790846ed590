#![warn(missing_docs)]

//! HTTP/1.1 to one origin: hyper's client over TCP or tokio-rustls, keeping the connections
//! that finished a request for the next one. The administration client speaks it, and so
//! does the `busbar` CLI to a broker's HTTP API.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::{Request, header};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

pub use hyper::{Method, StatusCode};

use crate::servicebus::{ErrorKind, ServiceBusError, ServiceBusResult as Result};

/// What a connection is, plain or TLS.
trait Stream: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Stream for T {}

/// One origin (`host:port`, HTTPS or HTTP) and its idle connections.
///
/// ```no_run
/// use std::time::Duration;
/// use busbar_client::http::{HttpClient, Method};
///
/// # async fn example() -> busbar_client::servicebus::ServiceBusResult<()> {
/// let http = HttpClient::new("127.0.0.1".into(), 5672, "127.0.0.1:5672".into(), None, Duration::from_secs(10));
/// let answer = http.send(Method::GET, "/health", &[], None).await?;
/// println!("{} {}", answer.status, answer.body);
/// # Ok(())
/// # }
/// ```
pub struct HttpClient {
    host: String,
    port: u16,
    /// The `Host` header: the endpoint's `host[:port]` as written.
    authority: String,
    tls: Option<TlsConnector>,
    try_timeout: Duration,
    idle: Mutex<Vec<SendRequest<Full<Bytes>>>>,
}

/// An answer: its status and its body as text.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The answer's status.
    pub status: StatusCode,
    /// The body, read as UTF-8 (lossily).
    pub body: String,
}

fn communication(what: &str, error: impl std::fmt::Display) -> ServiceBusError {
    ServiceBusError::new(ErrorKind::ServiceCommunication, format!("{what}: {error}"))
}

/// A refused certificate (or any TLS protocol error) won't change by trying again; a
/// connection lost during the handshake may.
fn handshake_error(error: std::io::Error) -> ServiceBusError {
    let refused = error
        .get_ref()
        .is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some());
    if refused {
        ServiceBusError::new(
            ErrorKind::Other,
            format!("the TLS handshake failed: {error}"),
        )
    } else {
        communication("the TLS handshake failed", error)
    }
}

impl HttpClient {
    /// A client of `host:port`, sending `authority` as the `Host` header: HTTPS with
    /// `tls`, plain HTTP without; each request may take `try_timeout`.
    pub fn new(
        host: String,
        port: u16,
        authority: String,
        tls: Option<Arc<rustls::ClientConfig>>,
        try_timeout: Duration,
    ) -> Self {
        HttpClient {
            host,
            port,
            authority,
            tls: tls.map(TlsConnector::from),
            try_timeout,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// Sends one request and reads the whole answer, within the try timeout. `Accept`
    /// defaults to the administration API's XML types.
    pub async fn send(
        &self,
        method: Method,
        path_and_query: &str,
        headers: &[(&str, &str)],
        body: Option<String>,
    ) -> Result<Answer> {
        tokio::time::timeout(
            self.try_timeout,
            self.send_untimed(method, path_and_query, headers, body),
        )
        .await
        .map_err(|_| {
            ServiceBusError::new(
                ErrorKind::ServiceTimeout,
                format!(
                    "no answer from {}:{} within {:?}",
                    self.host, self.port, self.try_timeout
                ),
            )
        })?
    }

    async fn send_untimed(
        &self,
        method: Method,
        path_and_query: &str,
        headers: &[(&str, &str)],
        body: Option<String>,
    ) -> Result<Answer> {
        let request = || -> Result<Request<Full<Bytes>>> {
            let mut builder = Request::builder()
                .method(method.clone())
                .uri(path_and_query)
                .header(header::HOST, &self.authority);
            if !headers
                .iter()
                .any(|(name, _)| name.eq_ignore_ascii_case("accept"))
            {
                builder = builder.header(header::ACCEPT, "application/xml, application/atom+xml");
            }
            for (name, value) in headers {
                builder = builder.header(*name, *value);
            }
            builder
                .body(Full::new(Bytes::from(body.clone().unwrap_or_default())))
                .map_err(|e| {
                    ServiceBusError::new(ErrorKind::InvalidArgument, format!("a bad request: {e}"))
                })
        };
        // A kept connection the server has closed since fails before anything is sent; the
        // request then goes on a new one.
        if let Some(mut sender) = self.take_idle() {
            if sender.ready().await.is_ok() {
                if let Ok(response) = sender.send_request(request()?).await {
                    return self.read(sender, response).await;
                }
            }
        }
        let mut sender = self.connect().await?;
        sender
            .ready()
            .await
            .map_err(|e| communication("the HTTP connection closed", e))?;
        let response = sender
            .send_request(request()?)
            .await
            .map_err(|e| communication("the HTTP request failed", e))?;
        self.read(sender, response).await
    }

    async fn read(
        &self,
        sender: SendRequest<Full<Bytes>>,
        response: hyper::Response<hyper::body::Incoming>,
    ) -> Result<Answer> {
        let (parts, body) = response.into_parts();
        let body = body
            .collect()
            .await
            .map_err(|e| communication("reading the HTTP answer failed", e))?
            .to_bytes();
        if !sender.is_closed() {
            if let Ok(mut idle) = self.idle.lock() {
                idle.push(sender);
            }
        }
        Ok(Answer {
            status: parts.status,
            body: String::from_utf8_lossy(&body).into_owned(),
        })
    }

    fn take_idle(&self) -> Option<SendRequest<Full<Bytes>>> {
        self.idle.lock().ok()?.pop()
    }

    async fn connect(&self) -> Result<SendRequest<Full<Bytes>>> {
        let tcp = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| communication(&format!("connecting to {}:{}", self.host, self.port), e))?;
        let _ = tcp.set_nodelay(true);
        let stream: Box<dyn Stream> = match &self.tls {
            Some(tls) => {
                let name = ServerName::try_from(self.host.clone()).map_err(|e| {
                    ServiceBusError::new(
                        ErrorKind::InvalidArgument,
                        format!("'{}' is not a TLS server name: {e}", self.host),
                    )
                })?;
                Box::new(tls.connect(name, tcp).await.map_err(handshake_error)?)
            }
            None => Box::new(tcp),
        };
        let (sender, connection) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| communication("the HTTP handshake failed", e))?;
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "administration HTTP connection ended");
            }
        });
        Ok(sender)
    }
}

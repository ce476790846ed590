//! The CLI's requests to a running broker's HTTP listener, on busbar-client's HTTP/1.1
//! client: over TLS when a CA to trust is given (the broker's listeners serve HTTPS and
//! HTTP on one port), signed with a SAS token for the namespace when a key is given.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use std::time::Duration;

use anyhow::Context as _;
use busbar_client::http::{HttpClient, Method};
use busbar_servicebus::sas;

/// How long the broker may take to answer one request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// A running broker's HTTP API, and the `Authorization` header value to send it.
pub struct Api {
    pub http: SocketAddr,
    pub authorization: Option<String>,
    /// Speak HTTPS, trusting these CAs.
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

impl Api {
    /// Signs requests with a SAS token for the whole namespace when a key is given (the
    /// API answers without one only on a loopback broker running the development key).
    pub fn new(http: SocketAddr, key_name: &str, key: Option<&str>) -> Self {
        const TOKEN_LIFETIME_SECS: u64 = 3600;
        let authorization = key.map(|key| {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |elapsed| elapsed.as_secs());
            sas::generate_token(
                &format!("sb://{http}/"),
                key_name,
                key,
                now + TOKEN_LIFETIME_SECS,
            )
        });
        Api {
            http,
            authorization,
            tls: None,
        }
    }

    /// Speaks HTTPS, trusting the CA certificates in the PEM file `ca` (for example the
    /// broker's development CA, `busbar dev-cert`).
    pub fn trusting(mut self, ca: &Path) -> anyhow::Result<Self> {
        self.tls = Some(busbar_client::tls_config_trusting(ca)?);
        Ok(self)
    }
}

/// Sends one request and returns the status and the body.
pub async fn send(
    api: &Api,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> anyhow::Result<(u16, String)> {
    let http = api.http;
    let client = HttpClient::new(
        http.ip().to_string(),
        http.port(),
        http.to_string(),
        api.tls.clone(),
        REQUEST_TIMEOUT,
    );
    let mut all_headers = headers.to_vec();
    if let Some(token) = &api.authorization {
        all_headers.push(("Authorization", token));
    }
    let method = Method::from_bytes(method.as_bytes()).context("an HTTP method")?;
    let answer = client
        .send(method, path, &all_headers, Some(body.to_owned()))
        .await
        .with_context(|| format!("the broker's HTTP listener at {http}"))?;
    Ok((answer.status.as_u16(), answer.body))
}

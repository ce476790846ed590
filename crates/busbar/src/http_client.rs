//! The CLI's HTTP/1.1 client for a running broker's HTTP listener: one request per
//! connection, over TLS when a CA to trust is given (the broker's listeners serve HTTPS and
//! HTTP on one port), signed with a SAS token for the namespace when a key is given.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use busbar_servicebus::sas;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

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

/// Sends one request and returns the status and the (de-chunked) body.
pub async fn send(
    api: &Api,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> anyhow::Result<(u16, String)> {
    let http = api.http;
    let stream = TcpStream::connect(http)
        .await
        .with_context(|| format!("cannot reach the broker's HTTP listener at {http}"))?;
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {http}\r\nConnection: close\r\n");
    if let Some(token) = &api.authorization {
        request.push_str(&format!("Authorization: {token}\r\n"));
    }
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    let response = match &api.tls {
        None => exchange(stream, &request).await?,
        Some(config) => {
            let name = rustls::pki_types::ServerName::IpAddress(http.ip().into());
            let tls = tokio_rustls::TlsConnector::from(Arc::clone(config))
                .connect(name, stream)
                .await
                .with_context(|| format!("TLS with the broker at {http}"))?;
            exchange(tls, &request).await?
        }
    };
    let text = String::from_utf8_lossy(&response);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .context("malformed HTTP response")?;
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("malformed HTTP status line")?;
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_owned()
    };
    Ok((status, body))
}

/// Writes `request` and reads the whole response (the server closes after it).
async fn exchange(
    mut stream: impl AsyncRead + AsyncWrite + Unpin,
    request: &str,
) -> anyhow::Result<Vec<u8>> {
    stream.write_all(request.as_bytes()).await?;
    stream.flush().await?;
    let mut response = Vec::new();
    match stream.read_to_end(&mut response).await {
        Ok(_) => Ok(response),
        // A server that closes without TLS close_notify after a complete answer.
        Err(error) if error.kind() == std::io::ErrorKind::UnexpectedEof && !response.is_empty() => {
            Ok(response)
        }
        Err(error) => Err(error.into()),
    }
}

fn dechunk(body: &str) -> String {
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, after)) = rest.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if size == 0 || after.len() < size {
            break;
        }
        out.push_str(&after[..size]);
        rest = after[size..].trim_start_matches("\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dechunks_a_chunked_body() {
        assert_eq!(
            dechunk("5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"),
            "hello world"
        );
    }
}

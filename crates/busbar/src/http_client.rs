//! The CLI's HTTP/1.1 client for a running broker's HTTP listener: one request per
//! connection, signed with a SAS token for the namespace when a key is given.

use std::net::SocketAddr;

use anyhow::Context as _;
use busbar_servicebus::sas;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A running broker's HTTP API, and the `Authorization` header value to send it.
pub struct Api {
    pub http: SocketAddr,
    pub authorization: Option<String>,
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
        }
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
    let mut stream = TcpStream::connect(http)
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
    stream.write_all(request.as_bytes()).await?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await?;
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

//! `busbar queues` and `busbar topics`: print queue and subscription counts from a running
//! broker's HTTP API.

use std::net::SocketAddr;

use anyhow::{Context as _, bail};
use busbar_servicebus::sas;
use serde_json::Value;
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

/// Fetches `path` from the broker's HTTP listener with a plain HTTP/1.1 GET.
async fn get(api: &Api, path: &str) -> anyhow::Result<(u16, Value)> {
    let http = api.http;
    let mut stream = TcpStream::connect(http)
        .await
        .with_context(|| format!("cannot reach the broker's HTTP listener at {http}"))?;
    let authorization = api
        .authorization
        .as_deref()
        .map(|token| format!("Authorization: {token}\r\n"))
        .unwrap_or_default();
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {http}\r\nAccept: application/json\r\n{authorization}Connection: close\r\n\r\n"
    );
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
    let json = serde_json::from_str(&body).context("the broker's answer is not JSON")?;
    Ok((status, json))
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

const COLUMNS: [(&str, &str); 7] = [
    ("ACTIVE", "active_message_count"),
    ("SCHEDULED", "scheduled_message_count"),
    ("DEFERRED", "deferred_message_count"),
    ("DEAD-LETTER", "dead_letter_message_count"),
    ("TRANSFER", "transfer_message_count"),
    ("TRANSFER-DL", "transfer_dead_letter_message_count"),
    ("LOCKED", "locked_message_count"),
];

/// Prints one queue or all of them, as a table or as the API's JSON.
pub async fn run(api: &Api, name: Option<&str>, json: bool) -> anyhow::Result<()> {
    let Some(body) = fetch(api, "queue", "/api/queues", name, json).await? else {
        return Ok(());
    };
    let queues = match body {
        Value::Array(items) => items,
        single => vec![single],
    };
    print_table(&queues);
    Ok(())
}

/// Prints the subscriptions of one topic or of all of them (one row per subscription,
/// named by its path), or the API's JSON.
pub async fn run_topics(api: &Api, name: Option<&str>, json: bool) -> anyhow::Result<()> {
    let Some(body) = fetch(api, "topic", "/api/topics", name, json).await? else {
        return Ok(());
    };
    let topics = match body {
        Value::Array(items) => items,
        single => vec![single],
    };
    let rows: Vec<Value> = topics
        .iter()
        .filter_map(|t| t["subscriptions"].as_array())
        .flatten()
        .cloned()
        .collect();
    print_table(&rows);
    Ok(())
}

/// GETs `base` or `base/name`; prints the JSON and returns `None` when asked for JSON.
async fn fetch(
    api: &Api,
    kind: &str,
    base: &str,
    name: Option<&str>,
    json: bool,
) -> anyhow::Result<Option<Value>> {
    let path = match name {
        Some(name) => format!("{base}/{name}"),
        None => base.to_owned(),
    };
    let (status, body) = get(api, &path).await?;
    if status == 404 {
        bail!("no {kind} named '{}'", name.unwrap_or_default());
    }
    if status == 401 {
        bail!(
            "the broker refused the request: {body}. Give a key with Listen rights: \
             --sas-key-name NAME --sas-key KEY (environment BUSBAR_SAS_KEY_NAME, BUSBAR_SAS_KEY)"
        );
    }
    if status != 200 {
        bail!("the broker answered {status}: {body}");
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&body)?);
        return Ok(None);
    }
    Ok(Some(body))
}

fn print_table(rows: &[Value]) {
    let width = rows
        .iter()
        .filter_map(|q| q["name"].as_str().map(str::len))
        .max()
        .unwrap_or(4)
        .max(4);
    let mut line = format!("{:width$}", "NAME");
    for (title, _) in COLUMNS {
        line.push_str(&format!("  {title:>11}"));
    }
    println!("{line}");
    for row in rows {
        let mut line = format!("{:width$}", row["name"].as_str().unwrap_or("?"));
        for (_, key) in COLUMNS {
            line.push_str(&format!("  {:>11}", row[key].as_u64().unwrap_or(0)));
        }
        println!("{line}");
    }
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

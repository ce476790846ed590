//! `busbar queues` and `busbar topics`: print queue and subscription counts from a running
//! broker's HTTP API.

use anyhow::{Context as _, bail};
use serde_json::Value;

pub use crate::http_client::Api;
use crate::http_client::send;

/// Fetches `path` from the broker's JSON API.
async fn get(api: &Api, path: &str) -> anyhow::Result<(u16, Value)> {
    let (status, body) = send(api, "GET", path, &[("Accept", "application/json")], "").await?;
    let json = serde_json::from_str(&body).context("the broker's answer is not JSON")?;
    Ok((status, json))
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

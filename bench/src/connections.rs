//! Many idle connections: a busy client's round trip on an idle broker, then again with N
//! connections open, each with its `$cbs` token (with --sas-key-name/--sas-key) and one
//! receiver link on --queue holding no credit, so it takes no message from the busy client.

use std::time::Instant;

use anyhow::{Context, Result};
use serde_json::{Value as Json, json};

use crate::stats::Snapshot;
use crate::{Common, connect, open_receiver, round1, rtt};

pub async fn run(c: &Common, connections: u32, rtt_count: u64) -> Result<Json> {
    let idle_rtt = rtt(c, rtt_count, 10)
        .await
        .context("round trip, idle broker")?;
    let rss_before = Snapshot::take(c.broker_pid).broker_rss_kib;

    let start = Instant::now();
    let mut open = Vec::with_capacity(connections as usize);
    for i in 0..connections {
        let conn = connect(c)
            .await
            .with_context(|| format!("connection {i} of {connections}"))?;
        let receiver = open_receiver(c, &conn, 0)
            .await
            .with_context(|| format!("receiver on connection {i}"))?;
        open.push((conn, receiver));
    }
    let open_secs = start.elapsed().as_secs_f64();
    let rss_with = Snapshot::take(c.broker_pid).broker_rss_kib;

    let busy_rtt = rtt(c, rtt_count, 10)
        .await
        .context("round trip with the connections open")?;
    for (conn, _receiver) in open {
        let _ = conn.close().await;
    }

    let p99 = |r: &Json| r["p99_us"].as_f64();
    let per_connection_kib = match (rss_before, rss_with) {
        (Some(a), Some(b)) if connections > 0 => {
            Some(round1(b.saturating_sub(a) as f64 / f64::from(connections)))
        }
        _ => None,
    };
    Ok(json!({
        "scenario": "connections",
        "broker": c.broker,
        "queue": c.queue,
        "connections": connections,
        "open_secs": (open_secs * 1000.0).round() / 1000.0,
        "connections_per_sec": round1(f64::from(connections) / open_secs.max(1e-9)),
        "broker_rss_mib_before": rss_before.map(|k| round1(k as f64 / 1024.0)),
        "broker_rss_mib": rss_with.map(|k| round1(k as f64 / 1024.0)),
        "broker_rss_kib_per_connection": per_connection_kib,
        "rtt_count": rtt_count,
        "rtt_p50_us_idle": idle_rtt["p50_us"],
        "rtt_p99_us_idle": idle_rtt["p99_us"],
        "rtt_p50_us_with_connections": busy_rtt["p50_us"],
        "rtt_p99_us_with_connections": busy_rtt["p99_us"],
        "p99_ratio": match (p99(&busy_rtt), p99(&idle_rtt)) {
            (Some(b), Some(a)) if a > 0.0 => Some((b / a * 100.0).round() / 100.0),
            _ => None,
        },
        "other_cores": busy_rtt["other_cores"],
        "steal_cores": busy_rtt["steal_cores"],
    }))
}

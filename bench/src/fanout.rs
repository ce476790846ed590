//! Topic fan-out: one publisher on `--queue` (a topic, or an exchange on RabbitMQ), one
//! consumer connection per subscription, every message delivered to every subscription.
//!
//! Messages carry the fixed message-id [`FANOUT_MESSAGE_ID`], so subscriptions filtered
//! with `sys.MessageId = 'fanout'` (SQL) or a correlation filter on that MessageId match
//! every message and the filters cost what they cost without dropping deliveries.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use busbar_client::{MessageOptions, encode_message_with};
use hdrhistogram::Histogram;
use serde_json::{Value as Json, json};

use crate::inflight::Inflight;
use crate::stats::Snapshot;
use crate::{Common, accepted, connect, histogram, now_ns, open_receiver, open_sender, report};

pub const FANOUT_MESSAGE_ID: &str = "fanout";

/// Where subscription `i` is received from: `{i}` in the template is replaced by the index.
pub fn subscription_address(template: &str, i: u32) -> String {
    template.replace("{i}", &i.to_string())
}

pub async fn run(
    c: &Common,
    count: u64,
    subscriptions: u32,
    template: &str,
    window: usize,
    credit: u32,
) -> Result<Json> {
    if !template.contains("{i}") && subscriptions > 1 {
        bail!("--subscription-template must contain {{i}} when there is more than one");
    }
    // Every consumer attached (and its credit granted) before the first message is sent.
    let mut receivers = Vec::new();
    for i in 0..subscriptions {
        let mut sub = c.clone();
        sub.queue = subscription_address(template, i);
        let conn = connect(&sub).await?;
        let receiver = open_receiver(&sub, &conn, credit)
            .await
            .with_context(|| format!("subscription {}", sub.queue))?;
        receivers.push((conn, receiver));
    }
    let pub_conn = connect(c).await?;
    let sender = open_sender(c, &pub_conn).await?;
    let stall = Duration::from_secs(c.stall_secs);

    let before = Snapshot::take(c.broker_pid);
    let start = Instant::now();
    let mut consumers = Vec::new();
    for (conn, mut receiver) in receivers {
        consumers.push(tokio::spawn(async move {
            let mut latency = histogram();
            let mut got = 0u64;
            while got < count {
                let d = match tokio::time::timeout(stall, receiver.recv()).await {
                    Ok(d) => d?,
                    Err(_) => bail!("no delivery for {stall:?} after {got} messages"),
                };
                if let Some(ts) = d.body().ok().as_deref().and_then(crate::body_timestamp) {
                    crate::record(&mut latency, now_ns().saturating_sub(ts) / 1000);
                }
                receiver.accept(&d)?;
                got += 1;
            }
            let done = Instant::now();
            let _ = conn.close().await;
            anyhow::Ok((latency, done))
        }));
    }

    let mut inflight = Inflight::new(window, stall);
    let mut template_body = vec![0xabu8; c.size];
    let opts = MessageOptions {
        durable: !c.transient,
        message_id: Some(FANOUT_MESSAGE_ID.to_owned()),
    };
    for seq in 0..count {
        inflight.make_room().await?;
        template_body[0..8].copy_from_slice(&now_ns().to_be_bytes());
        template_body[8..16].copy_from_slice(&seq.to_be_bytes());
        let msg = encode_message_with(&template_body, &opts);
        inflight.push(Instant::now(), accepted(sender.send(msg)));
    }
    inflight.finish().await?;
    let publish_secs = start.elapsed().as_secs_f64();

    let mut latency: Histogram<u64> = histogram();
    let mut last = start;
    for consumer in consumers {
        let (h, done) = consumer.await??;
        latency.add(&h).context("merging latency histograms")?;
        last = last.max(done);
    }
    let after = Snapshot::take(c.broker_pid);
    let _ = pub_conn.close().await;

    let deliveries = count * u64::from(subscriptions);
    let secs = last.duration_since(start).as_secs_f64();
    let mut out = report(c, "fanout", deliveries, secs, &latency, &before, &after);
    out["latency"] = json!("end-to-end publish->delivery");
    out["subscriptions"] = json!(subscriptions);
    out["published"] = json!(count);
    out["published_per_sec"] = json!(crate::round1(count as f64 / publish_secs));
    out["not_accepted"] = json!(inflight.not_accepted);
    out["window"] = json!(window);
    out["credit"] = json!(credit);
    Ok(out)
}

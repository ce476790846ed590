//! Many entities: messages spread over many queues on one connection. For each queue in
//! turn a link is attached, its messages sent (or received and accepted) and the link
//! detached, so the rate includes what a broker spends finding and attaching an entity.
//!
//! The `$cbs` token (with --sas-key-name/--sas-key) is put once for the whole namespace,
//! and every link lives on one session (a detached link's handle is reused).

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use busbar_client::ReceiverOptions;
use clap::ValueEnum;
use serde_json::{Value as Json, json};

use crate::fanout::subscription_address;
use crate::inflight::Inflight;
use crate::stats::Snapshot;
use crate::{Common, accepted, connect, histogram, make_message, report};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Phase {
    Send,
    Receive,
}

pub async fn run(
    c: &Common,
    queues: u32,
    per_queue: u32,
    template: &str,
    phase: Phase,
) -> Result<Json> {
    if !template.contains("{i}") {
        bail!("--queue-template must contain {{i}}");
    }
    // An audience of the namespace root covers every queue.
    let mut namespace = c.clone();
    namespace.queue = String::new();
    let conn = connect(&namespace).await?;
    let session = conn.session().await?;
    let stall = Duration::from_secs(c.stall_secs);
    let mut template_body = vec![0xabu8; c.size];
    let mut latency = histogram();
    let mut not_accepted = 0u64;
    let mut seq = 0u64;

    let before = Snapshot::take(c.broker_pid);
    let start = Instant::now();
    for i in 0..queues {
        let address = subscription_address(template, i);
        match phase {
            Phase::Send => {
                let sender = session
                    .sender(&address)
                    .await
                    .with_context(|| format!("attaching a sender to {address}"))?;
                let mut inflight = Inflight::new(per_queue as usize, stall);
                for _ in 0..per_queue {
                    inflight.make_room().await?;
                    let msg = make_message(c, seq, &mut template_body);
                    inflight.push(Instant::now(), accepted(sender.send(msg)));
                    seq += 1;
                }
                inflight.finish().await?;
                not_accepted += inflight.not_accepted;
                latency
                    .add(&inflight.latency)
                    .context("merging histograms")?;
                sender.close().await?;
            }
            Phase::Receive => {
                let mut receiver = session
                    .receiver(
                        &address,
                        ReceiverOptions {
                            settle_mode: busbar_client::SettleMode::PeekLock,
                            credit: per_queue,
                        },
                    )
                    .await
                    .with_context(|| format!("attaching a receiver to {address}"))?;
                for got in 0..per_queue {
                    let d = match tokio::time::timeout(stall, receiver.recv()).await {
                        Ok(d) => d?,
                        Err(_) => bail!("{address}: no delivery for {stall:?} after {got}"),
                    };
                    receiver.accept(&d)?;
                    seq += 1;
                }
                receiver.close().await?;
            }
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let after = Snapshot::take(c.broker_pid);
    let _ = conn.close().await;
    let scenario = match phase {
        Phase::Send => "spread-send",
        Phase::Receive => "spread-receive",
    };
    let mut out = report(c, scenario, seq, secs, &latency, &before, &after);
    out["queues"] = json!(queues);
    out["per_queue"] = json!(per_queue);
    out["not_accepted"] = json!(not_accepted);
    Ok(out)
}

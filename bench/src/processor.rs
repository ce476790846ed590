//! The `processor` scenario: the SDK's `ServiceBusProcessor` (peek-lock, each message
//! completed by the processor once its handler returned) draining a prefilled queue, to be
//! read next to `receive` on the same broker. The clock runs from the first handler call
//! until a peek finds the queue empty: every completion has then taken effect.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value as Json, json};
use tokio::sync::Notify;

use busbar_client::{
    ProcessErrorContext, ProcessMessageContext, ServiceBusClient, ServiceBusClientOptions,
    ServiceBusProcessorOptions, ServiceBusReceiverOptions,
};

use crate::stats::Snapshot;
use crate::{Common, histogram, report};

/// How often the queue is peeked once every message has been handed to the handler.
const EMPTY_POLL: Duration = Duration::from_millis(1);

/// The handler's tally: calls, when the first came, errors reported.
#[derive(Default)]
struct Tally {
    handled: AtomicU64,
    errors: AtomicU64,
    started: std::sync::OnceLock<Instant>,
    done: Notify,
}

/// Runs the processor until `count` messages are handled and the queue is empty (or nothing
/// progresses for `--stall-secs`).
pub(crate) async fn run(c: &Common, count: u64, concurrency: u32, prefetch: u32) -> Result<Json> {
    let (Some(key_name), Some(key)) = (&c.sas_key_name, &c.sas_key) else {
        bail!("the processor scenario speaks Service Bus: give --sas-key-name and --sas-key");
    };
    let connection_string = format!(
        "Endpoint=sb://{};SharedAccessKeyName={key_name};SharedAccessKey={key};UseDevelopmentEmulator=true",
        c.url
    );
    let client = ServiceBusClient::from_connection_string(
        &connection_string,
        ServiceBusClientOptions::default(),
    )
    .context("connection string")?;
    let options = ServiceBusProcessorOptions {
        max_concurrent_calls: concurrency,
        prefetch_count: prefetch,
        ..ServiceBusProcessorOptions::default()
    };
    let processor = client.create_processor(&c.queue, None, options);
    let tally = Arc::new(Tally::default());
    let before = Snapshot::take(c.broker_pid);
    let (handled, failed) = (tally.clone(), tally.clone());
    processor
        .start(
            move |context: ProcessMessageContext| {
                let tally = handled.clone();
                async move {
                    tally.started.get_or_init(Instant::now);
                    if context.message().body.is_empty() {
                        return Err("an empty message");
                    }
                    if tally.handled.fetch_add(1, Ordering::Relaxed) + 1 == count {
                        tally.done.notify_one();
                    }
                    Ok(())
                }
            },
            move |error: ProcessErrorContext| {
                failed.errors.fetch_add(1, Ordering::Relaxed);
                eprintln!("{:?}: {}", error.source, error.error);
                std::future::ready(())
            },
        )
        .await?;
    let stall = Duration::from_secs(c.stall_secs);
    let mut last = 0;
    while tally.handled.load(Ordering::Relaxed) < count {
        let _ = tokio::time::timeout(stall, tally.done.notified()).await;
        let now = tally.handled.load(Ordering::Relaxed);
        if now == last {
            bail!("stalled at {now} of {count} handler calls");
        }
        last = now;
    }
    let peeker = client.create_receiver(&c.queue, ServiceBusReceiverOptions::default());
    let give_up = Instant::now() + stall;
    while !peeker.peek_messages(1, Some(0)).await?.is_empty() {
        if Instant::now() > give_up {
            bail!("messages still in the queue {stall:?} after the last handler call");
        }
        tokio::time::sleep(EMPTY_POLL).await;
    }
    let _ = peeker.close().await;
    let secs = tally
        .started
        .get()
        .map_or(0.0, |started| started.elapsed().as_secs_f64());
    let after = Snapshot::take(c.broker_pid);
    processor.stop().await;
    client.close().await;
    let mut out = report(c, "processor", count, secs, &histogram(), &before, &after);
    out["concurrency"] = json!(concurrency);
    out["prefetch"] = json!(prefetch);
    out["errors"] = json!(tally.errors.load(Ordering::Relaxed));
    Ok(out)
}

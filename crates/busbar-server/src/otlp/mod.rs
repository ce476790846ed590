//! Optional OpenTelemetry trace export: the spans a traced message goes through in the
//! broker (enqueue, deliver, settle), continuing the trace the sender put in its
//! application properties (see [`context`]), exported over OTLP/HTTP (see [`export`]).
//!
//! Off by default ([`Tracer::default`]): the message path then tests one `Option` and
//! reads nothing. On, a message without a valid `traceparent`/`Diagnostic-Id` is not
//! traced either: the broker continues traces, it does not start them (a fresh trace per
//! message would flood the collector with one-span traces nobody asked for).
//!
//! Recording never blocks or grows the message path: spans go into a bounded queue, and
//! when it is full they are dropped and counted; a background task drains it in batches.

pub mod context;
pub mod export;
mod json;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use busbar_servicebus::settlement::Settlement;
use tokio::sync::mpsc;

pub use context::TraceContext;
pub use export::EndpointError;

/// Spans waiting for export at most; more are dropped.
const QUEUE_CAPACITY: usize = 8192;

/// What the broker did with a traced message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// A send arrived and was stored (the span ends when the store made it durable).
    Enqueue,
    /// Handed to a receiver; `delivery_count` earlier deliveries.
    Deliver { delivery_count: u32 },
    /// The receiver settled it.
    Settle(Outcome),
}

/// How a receiver settled a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Completed,
    Abandoned,
    DeadLettered,
    Deferred,
    Released,
}

impl Outcome {
    pub fn of(settlement: &Settlement) -> Outcome {
        match settlement {
            Settlement::Complete => Outcome::Completed,
            Settlement::Release => Outcome::Released,
            Settlement::Abandon { .. } => Outcome::Abandoned,
            Settlement::Defer { .. } => Outcome::Deferred,
            Settlement::DeadLetter { .. } => Outcome::DeadLettered,
        }
    }

    /// The `messaging.servicebus.disposition_status` of OpenTelemetry's conventions
    /// (`release`, which Service Bus has no name for, is ours).
    pub fn disposition(self) -> &'static str {
        match self {
            Outcome::Completed => "complete",
            Outcome::Abandoned => "abandon",
            Outcome::DeadLettered => "dead_letter",
            Outcome::Deferred => "defer",
            Outcome::Released => "release",
        }
    }
}

/// One finished span.
#[derive(Debug, Clone)]
pub struct Span {
    pub context: TraceContext,
    pub span_id: [u8; 8],
    pub stage: Stage,
    /// The queue, topic or subscription path.
    pub entity: String,
    pub start_unix_ns: u64,
    pub end_unix_ns: u64,
    /// Why the broker failed at this stage, if it did.
    pub failure: Option<String>,
}

impl Span {
    /// A span of `stage` at `entity` started at `start_unix_ns` and ending now.
    pub fn ending_now(
        context: TraceContext,
        stage: Stage,
        entity: &str,
        start_unix_ns: u64,
    ) -> Span {
        let random = uuid::Uuid::new_v4().into_bytes();
        let mut span_id = [0; 8];
        span_id.copy_from_slice(&random[..8]);
        Span {
            context,
            span_id,
            stage,
            entity: entity.to_owned(),
            start_unix_ns,
            end_unix_ns: now_unix_ns().max(start_unix_ns),
            failure: None,
        }
    }
}

/// Wall-clock time for span timestamps (the broker's injected clock is in milliseconds
/// and may be a test's).
pub fn now_unix_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| {
            u64::try_from(since.as_nanos()).unwrap_or(u64::MAX)
        })
}

/// Where the message path records spans; cheap to clone, off unless started.
#[derive(Debug, Clone, Default)]
pub struct Tracer {
    queue: Option<Arc<SpanQueue>>,
}

#[derive(Debug)]
struct SpanQueue {
    sender: mpsc::Sender<Span>,
    /// Spans dropped because the queue was full.
    overflowed: AtomicU64,
    /// Spans of export requests that failed.
    failed: AtomicU64,
}

impl Tracer {
    /// Starts exporting to the OTLP/HTTP collector at `endpoint` (its base URL; spans go to
    /// `<endpoint>/v1/traces`) from a task on the current tokio runtime.
    pub fn start(endpoint: &str) -> Result<Tracer, EndpointError> {
        let target = export::Target::parse(endpoint)?;
        let (sender, receiver) = mpsc::channel(QUEUE_CAPACITY);
        let queue = Arc::new(SpanQueue {
            sender,
            overflowed: AtomicU64::new(0),
            failed: AtomicU64::new(0),
        });
        tokio::spawn(export::run(target, receiver, Arc::downgrade(&queue)));
        Ok(Tracer { queue: Some(queue) })
    }

    /// Whether spans are recorded at all: the one test the message path pays when off.
    #[inline]
    pub fn is_on(&self) -> bool {
        self.queue.is_some()
    }

    /// The trace context of `message` if tracing is on and it carries one.
    #[inline]
    pub fn context_of(&self, message: &bytes::Bytes) -> Option<TraceContext> {
        if self.is_on() {
            TraceContext::of_message(message)
        } else {
            None
        }
    }

    /// Queues `span` for export, or drops and counts it if the queue is full.
    pub fn record(&self, span: Span) {
        if let Some(queue) = &self.queue
            && queue.sender.try_send(span).is_err()
        {
            queue.overflowed.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Spans recorded since start that were not exported: the queue was full, or their
    /// export request failed.
    pub fn dropped(&self) -> u64 {
        self.queue.as_ref().map_or(0, |queue| {
            queue
                .overflowed()
                .saturating_add(queue.failed.load(Ordering::Relaxed))
        })
    }
}

impl SpanQueue {
    fn overflowed(&self) -> u64 {
        self.overflowed.load(Ordering::Relaxed)
    }

    fn count_failed(&self, spans: usize) {
        self.failed.fetch_add(spans as u64, Ordering::Relaxed);
    }
}

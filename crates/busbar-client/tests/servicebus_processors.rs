//! The processors against a broker in the test process: a processor on a topic's
//! subscription, the session processor keeping a session past its lock duration and moving
//! on from an idle session, `stop` waiting for the completions still in flight, and a
//! completion the broker refuses reported to the error handler.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use busbar_client::servicebus::{
    ErrorKind, ErrorSource, ProcessErrorContext, ProcessMessageContext,
    ProcessSessionMessageContext, ServiceBusClient, ServiceBusMessage, ServiceBusProcessorOptions,
    ServiceBusReceiverOptions, ServiceBusSessionProcessorOptions, ServiceBusSessionReceiverOptions,
};
use busbar_server::config::{
    FilterDescription, QueueDefinition, QueueProperties, RuleDescription, SubscriptionDefinition,
    SubscriptionProperties, TopicConfig, TopicDefinition,
};
use common::Broker;
use tokio::sync::Semaphore;

/// How long a test waits for something the processor is expected to achieve before it
/// declares failure (never what it asserts about).
const PATIENCE: Duration = Duration::from_secs(60);
/// The lock duration of `short-sessions`.
const SESSION_LOCK: Duration = Duration::from_secs(2);

type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The common entities plus `short-sessions` (sessions, 2 s locks) and topic `colours`
/// whose subscription `red` takes only `color = 'red'`.
async fn broker() -> Broker {
    let data_dir = tempfile::tempdir().unwrap();
    let mut config = common::config(data_dir.path().to_owned());
    config.queues.push(QueueDefinition {
        name: "short-sessions".to_owned(),
        properties: QueueProperties {
            requires_session: true,
            lock_duration_ms: SESSION_LOCK.as_millis() as i64,
            ..QueueProperties::default()
        },
    });
    config.topics.push(TopicDefinition {
        name: "colours".to_owned(),
        properties: TopicConfig::default(),
        subscriptions: vec![SubscriptionDefinition {
            name: "red".to_owned(),
            properties: SubscriptionProperties::default(),
            rules: vec![RuleDescription {
                name: "only-red".to_owned(),
                filter: FilterDescription::Sql("color = 'red'".to_owned()),
                action: None,
            }],
        }],
    });
    Broker::start_with(config, data_dir).await
}

/// What a test saw: handler calls by message id (in call order) and reported errors.
#[derive(Default)]
struct Ledger {
    handled: Mutex<Vec<String>>,
    errors: Mutex<Vec<(ErrorSource, ErrorKind, String)>>,
}

impl Ledger {
    fn handled(&self, id: Option<&str>) {
        lock(&self.handled).push(id.unwrap_or_default().to_owned());
    }

    fn error(&self, context: ProcessErrorContext) {
        lock(&self.errors).push((
            context.source,
            context.error.kind,
            context.error.to_string(),
        ));
    }

    fn handled_ids(&self) -> Vec<String> {
        lock(&self.handled).clone()
    }

    fn errors(&self) -> Vec<(ErrorSource, ErrorKind, String)> {
        lock(&self.errors).clone()
    }

    /// Each id and how often it was handled.
    fn counts(&self) -> HashMap<String, usize> {
        let mut counts = HashMap::new();
        for id in self.handled_ids() {
            *counts.entry(id).or_default() += 1;
        }
        counts
    }

    /// Waits (up to [`PATIENCE`]) until `done` holds.
    async fn wait_until(&self, what: &str, done: impl Fn(&Self) -> bool) {
        let reached = eventually(|| done(self)).await;
        assert!(
            reached,
            "gave up waiting for {what}: handled {:?}, errors {:?}",
            self.handled_ids(),
            self.errors()
        );
    }

    /// A handler that only records each message's id (read by `id_of`) and succeeds.
    fn recording<C: 'static>(
        self: &Arc<Self>,
        id_of: fn(&C) -> Option<&str>,
    ) -> impl Fn(C) -> std::future::Ready<Result<(), BoxError>> + Send + Sync + 'static {
        let ledger = self.clone();
        move |context| {
            ledger.handled(id_of(&context));
            std::future::ready(Ok(()))
        }
    }

    /// The error handler: records each error.
    fn error_handler(
        self: &Arc<Self>,
    ) -> impl Fn(ProcessErrorContext) -> std::future::Ready<()> + Send + Sync + 'static {
        let ledger = self.clone();
        move |context| {
            ledger.error(context);
            std::future::ready(())
        }
    }
}

/// Whether `done` holds within [`PATIENCE`], looking every few milliseconds.
async fn eventually(done: impl Fn() -> bool) -> bool {
    tokio::time::timeout(PATIENCE, async {
        while !done() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .is_ok()
}

/// Ids of what is still in `path` (locked or not), by peeking from the start.
async fn left_in(
    client: &ServiceBusClient,
    queue: &str,
    subscription: Option<&str>,
) -> Vec<String> {
    let options = ServiceBusReceiverOptions::default();
    let receiver = match subscription {
        None => client.create_receiver(queue, options),
        Some(s) => client.create_receiver_for_subscription(queue, s, options),
    };
    let peeked = receiver.peek_messages(1_000, None).await.expect("peek");
    receiver.close().await.expect("close");
    peeked
        .iter()
        .map(|m| m.message_id.clone().unwrap_or_default())
        .collect()
}

async fn send(client: &ServiceBusClient, entity: &str, messages: Vec<ServiceBusMessage>) {
    let sender = client.create_sender(entity);
    sender.send_messages(messages).await.expect("send");
    sender.close().await.expect("close sender");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_processor_on_a_subscription_handles_and_completes_what_its_rule_lets_through() {
    let broker = broker().await;
    let client = broker.client();
    let messages = (0..10)
        .map(|n| {
            let colour = if n % 2 == 0 { "red" } else { "blue" };
            ServiceBusMessage::new(format!("{n}"))
                .with_message_id(format!("{colour}-{n}"))
                .with_application_property("color", colour)
        })
        .collect();
    send(&client, "colours", messages).await;

    let ledger = Arc::new(Ledger::default());
    let options = ServiceBusProcessorOptions {
        max_concurrent_calls: 4,
        ..Default::default()
    };
    let processor = client.create_processor("colours", Some("red"), options);
    assert_eq!(processor.entity_path(), "colours/Subscriptions/red");
    processor
        .start(
            ledger.recording(|c: &ProcessMessageContext| c.message().message_id.as_deref()),
            ledger.error_handler(),
        )
        .await
        .expect("start");
    ledger
        .wait_until("the red messages handled", |l| l.handled_ids().len() >= 5)
        .await;
    processor.stop().await;

    let mut handled = ledger.handled_ids();
    handled.sort();
    assert_eq!(
        handled,
        ["red-0", "red-2", "red-4", "red-6", "red-8"],
        "each red message once, no blue one"
    );
    assert_eq!(ledger.errors(), vec![]);
    assert_eq!(
        left_in(&client, "colours", Some("red")).await,
        Vec::<String>::new(),
        "every handled message was completed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_session_processor_keeps_a_session_past_its_lock_duration() {
    let broker = broker().await;
    let client = broker.client();
    let messages = (0..2)
        .map(|n| {
            ServiceBusMessage::new(format!("{n}"))
                .with_message_id(format!("a-{n}"))
                .with_session_id("a")
        })
        .collect();
    send(&client, "short-sessions", messages).await;

    let ledger = Arc::new(Ledger::default());
    // The first call holds the session until the test lets it go.
    let gate = Arc::new(Semaphore::new(0));
    let options = ServiceBusSessionProcessorOptions {
        max_concurrent_sessions: 1,
        // Longer than the held call: the session is let go only once both are done.
        session_idle_timeout: Duration::from_secs(30),
        ..Default::default()
    };
    let processor = client.create_session_processor("short-sessions", None, options);
    let (seen, handler_gate) = (ledger.clone(), gate.clone());
    processor
        .start(
            move |context: ProcessSessionMessageContext| {
                let (seen, gate) = (seen.clone(), handler_gate.clone());
                async move {
                    let id = context.message().message_id.clone();
                    seen.handled(id.as_deref());
                    if id.as_deref() == Some("a-0") {
                        gate.acquire().await.map(|permit| permit.forget()).ok();
                    }
                    Ok::<(), BoxError>(())
                }
            },
            ledger.error_handler(),
        )
        .await
        .expect("start");
    ledger
        .wait_until("the first call", |l| !l.handled_ids().is_empty())
        .await;
    // Well past the lock duration: without renewal the session would be free again.
    tokio::time::sleep(SESSION_LOCK * 3).await;
    let other = broker.client();
    let taken = other
        .accept_session(
            "short-sessions",
            "a",
            ServiceBusSessionReceiverOptions::default(),
        )
        .await;
    assert_eq!(
        taken.as_ref().err().map(|e| e.kind),
        Some(ErrorKind::SessionCannotBeLocked),
        "the processor still holds session a"
    );
    gate.add_permits(1);
    ledger
        .wait_until("both messages", |l| l.handled_ids().len() >= 2)
        .await;
    processor.stop().await;

    assert_eq!(ledger.handled_ids(), ["a-0", "a-1"], "each once, in order");
    assert_eq!(ledger.errors(), vec![], "the completions were accepted");
    assert_eq!(
        left_in(&client, "short-sessions", None).await,
        Vec::<String>::new()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_session_processor_lets_an_idle_session_go_and_takes_the_next() {
    let broker = broker().await;
    let client = broker.client();
    let message = |session: &str, n: u32| {
        ServiceBusMessage::new(format!("{n}"))
            .with_message_id(format!("{session}-{n}"))
            .with_session_id(session)
    };
    send(&client, "sessions", vec![message("x", 0), message("y", 0)]).await;

    let ledger = Arc::new(Ledger::default());
    // One session at a time: the second is taken only once the first is let go.
    let options = ServiceBusSessionProcessorOptions {
        max_concurrent_sessions: 1,
        session_idle_timeout: Duration::from_secs(1),
        ..Default::default()
    };
    let processor = client.create_session_processor("sessions", None, options);
    processor
        .start(
            ledger.recording(|c: &ProcessSessionMessageContext| c.message().message_id.as_deref()),
            ledger.error_handler(),
        )
        .await
        .expect("start");
    ledger
        .wait_until("both sessions' messages", |l| l.handled_ids().len() >= 2)
        .await;
    // The session handled first was let go too: a message sent to it now is handled.
    let first_session = ledger.handled_ids()[0][..1].to_owned();
    send(&client, "sessions", vec![message(&first_session, 1)]).await;
    ledger
        .wait_until("the first session taken again", |l| {
            l.handled_ids().len() >= 3
        })
        .await;
    processor.stop().await;

    let counts = ledger.counts();
    assert_eq!(counts.len(), 3, "{counts:?}");
    assert!(counts.values().all(|&n| n == 1), "{counts:?}");
    assert_eq!(ledger.errors(), vec![]);
    assert_eq!(
        left_in(&client, "sessions", None).await,
        Vec::<String>::new()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_returns_once_the_completions_of_calls_in_flight_are_done() {
    const CALLS: usize = 16;
    let broker = broker().await;
    let client = broker.client();
    let messages = (0..CALLS)
        .map(|n| ServiceBusMessage::new(format!("{n}")).with_message_id(format!("m-{n}")))
        .collect();
    send(&client, "q", messages).await;

    let ledger = Arc::new(Ledger::default());
    // Held by the handler and the error handler: gone once nothing of the processor runs.
    let alive = Arc::new(());
    let gate = Arc::new(Semaphore::new(0));
    let options = ServiceBusProcessorOptions {
        max_concurrent_calls: CALLS as u32,
        ..Default::default()
    };
    let processor = Arc::new(client.create_processor("q", None, options));
    let (seen, failed, handler_gate) = (ledger.clone(), ledger.clone(), gate.clone());
    let (alive_in_handler, alive_in_errors) = (alive.clone(), alive.clone());
    processor
        .start(
            move |context: ProcessMessageContext| {
                let _alive = &alive_in_handler;
                let (seen, gate) = (seen.clone(), handler_gate.clone());
                async move {
                    seen.handled(context.message().message_id.as_deref());
                    gate.acquire().await.map(|permit| permit.forget()).ok();
                    Ok::<(), BoxError>(())
                }
            },
            move |context: ProcessErrorContext| {
                let _alive = &alive_in_errors;
                failed.error(context);
                async {}
            },
        )
        .await
        .expect("start");
    ledger
        .wait_until("every call in flight", |l| l.handled_ids().len() == CALLS)
        .await;
    let stopping = tokio::spawn({
        let processor = processor.clone();
        async move { processor.stop().await }
    });
    while processor.is_running() {
        tokio::task::yield_now().await;
    }
    // Stop has begun with every call in its handler; now they finish.
    gate.add_permits(CALLS);
    stopping.await.expect("stop");

    // Whatever the processor still does after stop returned (a completion failing late,
    // reported or retried) ends before it lets go of the handlers.
    assert!(
        eventually(|| Arc::strong_count(&alive) == 1).await,
        "the processor kept running after stop"
    );
    assert_eq!(
        ledger.errors(),
        vec![],
        "every completion was done before stop returned"
    );
    assert_eq!(
        left_in(&client, "q", None).await,
        Vec::<String>::new(),
        "every handled message is gone"
    );
    assert_eq!(ledger.counts().len(), CALLS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_completion_the_broker_refuses_reaches_the_error_handler_as_a_complete_error() {
    let broker = broker().await;
    let client = broker.client();
    let message = ServiceBusMessage::new("late").with_message_id("late");
    send(&client, "short-lock", vec![message]).await;

    let ledger = Arc::new(Ledger::default());
    // The first call returns only once the message came again (its lock ran out, nothing
    // renewed it): the completion it then gets is refused with the lock lost.
    let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let redelivered = Arc::new(tokio::sync::Notify::new());
    let options = ServiceBusProcessorOptions {
        max_concurrent_calls: 2,
        max_auto_lock_renew_duration: Duration::ZERO,
        ..Default::default()
    };
    let processor = client.create_processor("short-lock", None, options);
    let seen = ledger.clone();
    processor
        .start(
            move |context: ProcessMessageContext| {
                seen.handled(context.message().message_id.as_deref());
                let call = calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let redelivered = redelivered.clone();
                async move {
                    if call == 0 {
                        redelivered.notified().await;
                    } else {
                        redelivered.notify_one();
                    }
                    Ok::<(), BoxError>(())
                }
            },
            ledger.error_handler(),
        )
        .await
        .expect("start");
    ledger
        .wait_until("the refused completion reported", |l| {
            !l.errors().is_empty()
        })
        .await;
    processor.stop().await;

    let errors: Vec<_> = ledger
        .errors()
        .into_iter()
        .map(|(source, kind, _)| (source, kind))
        .collect();
    assert_eq!(
        errors,
        [(ErrorSource::Complete, ErrorKind::MessageLockLost)]
    );
    assert_eq!(ledger.handled_ids(), ["late", "late"]);
    assert_eq!(
        left_in(&client, "short-lock", None).await,
        Vec::<String>::new(),
        "the second delivery was completed"
    );
}

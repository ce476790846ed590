//! The Rust SDK's processors (`busbar_client::servicebus::ServiceBusProcessor` and
//! `ServiceBusSessionProcessor`) against a real broker process: every message handled and
//! completed once under concurrency, a poison message dead-lettered after the max delivery
//! count, locks kept alive for slow handlers, a graceful stop, recovery from a broker killed
//! with SIGKILL and restarted, and sessions handled in order and in parallel.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use busbar_client::servicebus::{
    ErrorSource, ProcessErrorContext, ProcessMessageContext, ProcessSessionMessageContext,
    RetryOptions, ServiceBusClient, ServiceBusClientOptions, ServiceBusMessage,
    ServiceBusProcessor, ServiceBusProcessorOptions, ServiceBusReceiveMode,
    ServiceBusReceivedMessage, ServiceBusReceiverOptions, ServiceBusSessionProcessorOptions,
    SubQueue,
};
use busbar_interop::{Broker, QueueSpec, emulator_config};
use tokio::sync::{Notify, Semaphore};

/// How long a test waits for something the processor is expected to achieve before it
/// declares failure (never what it asserts about).
const PATIENCE: Duration = Duration::from_secs(120);
const SEND_BATCH: usize = 200;
/// How long the killed broker stays down before it is restarted.
const BROKER_AWAY: Duration = Duration::from_secs(3);

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// What a test saw: handler calls and completions by message id, and reported errors.
#[derive(Default)]
struct Ledger {
    handled: Mutex<HashMap<String, u32>>,
    completed: Mutex<HashMap<String, u32>>,
    errors: Mutex<Vec<(ErrorSource, String)>>,
    progress: Notify,
}

impl Ledger {
    fn handled(&self, id: &str) {
        *lock(&self.handled).entry(id.to_owned()).or_default() += 1;
        self.progress.notify_waiters();
    }

    fn completed(&self, id: &str) {
        *lock(&self.completed).entry(id.to_owned()).or_default() += 1;
        self.progress.notify_waiters();
    }

    fn error_handler(
        self: &Arc<Self>,
    ) -> impl Fn(ProcessErrorContext) -> std::future::Ready<()> + Send + Sync + 'static {
        let ledger = self.clone();
        move |context: ProcessErrorContext| {
            lock(&ledger.errors).push((context.source, context.error.to_string()));
            std::future::ready(())
        }
    }

    fn distinct_handled(&self) -> usize {
        lock(&self.handled).len()
    }

    fn errors(&self) -> Vec<(ErrorSource, String)> {
        lock(&self.errors).clone()
    }

    /// Waits (up to [`PATIENCE`]) until `done` holds for the ledger.
    async fn wait_until(&self, what: &str, done: impl Fn(&Self) -> bool) {
        let waited = tokio::time::timeout(PATIENCE, async {
            loop {
                let progressed = self.progress.notified();
                if done(self) {
                    return;
                }
                let _ = tokio::time::timeout(Duration::from_millis(200), progressed).await;
            }
        })
        .await;
        assert!(
            waited.is_ok(),
            "gave up waiting for {what}: {} handled, errors {:?}",
            self.distinct_handled(),
            self.errors()
        );
    }
}

fn message_id(n: usize) -> String {
    format!("m{n:06}")
}

fn client(broker: &Broker) -> ServiceBusClient {
    ServiceBusClient::from_connection_string(&broker.conn_str(), ServiceBusClientOptions::default())
        .expect("connection string")
}

async fn send_numbered(client: &ServiceBusClient, queue: &str, ids: impl Iterator<Item = String>) {
    let sender = client.create_sender(queue);
    let ids: Vec<String> = ids.collect();
    for chunk in ids.chunks(SEND_BATCH) {
        let messages = chunk
            .iter()
            .map(|id| ServiceBusMessage::new(vec![b'x'; 64]).with_message_id(id.clone()))
            .collect();
        sender.send_messages(messages).await.expect("send");
    }
    sender.close().await.expect("close sender");
}

/// Messages still in the queue (locked or not), by peeking from the start.
async fn left_in(client: &ServiceBusClient, queue: &str, sub_queue: SubQueue) -> Vec<String> {
    let options = ServiceBusReceiverOptions {
        sub_queue,
        ..Default::default()
    };
    let receiver = client.create_receiver(queue, options);
    let peeked = receiver.peek_messages(10_000, None).await.expect("peek");
    receiver.close().await.expect("close receiver");
    peeked.iter().map(id_of).collect()
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn id_of(message: &ServiceBusReceivedMessage) -> String {
    message.message_id.clone().unwrap_or_default()
}

/// Starts `processor` with a handler that records each call in `ledger`, then does `work`.
async fn start_recording<W, WF>(processor: &ServiceBusProcessor, ledger: &Arc<Ledger>, work: W)
where
    W: Fn(ProcessMessageContext, Arc<Ledger>) -> WF + Send + Sync + 'static,
    WF: Future<Output = Result<(), BoxError>> + Send + 'static,
{
    let seen = ledger.clone();
    let work = Arc::new(work);
    processor
        .start(
            move |context: ProcessMessageContext| {
                let (seen, work) = (seen.clone(), work.clone());
                async move {
                    seen.handled(&id_of(context.message()));
                    work(context, seen).await
                }
            },
            ledger.error_handler(),
        )
        .await
        .expect("start");
}

fn broker_with(queues: &[QueueSpec]) -> Broker {
    Broker::start(Some(&emulator_config(queues)), &[])
}

/// Runs a processor with `options` over `count` messages whose handler only records them,
/// and asserts each was handled once, nothing was reported (no settlement failed, none was
/// attempted that should not be) and the queue is empty.
async fn each_message_handled_once(count: usize, options: ServiceBusProcessorOptions) {
    let broker = broker_with(&[QueueSpec::new("orders")]);
    let client = client(&broker);
    send_numbered(&client, "orders", (0..count).map(message_id)).await;

    let ledger = Arc::new(Ledger::default());
    let processor = client.create_processor("orders", None, options);
    start_recording(&processor, &ledger, |_, _| async { Ok(()) }).await;
    ledger
        .wait_until("every message handled", |l| l.distinct_handled() == count)
        .await;
    processor.stop().await;

    let handled = lock(&ledger.handled).clone();
    let twice: Vec<_> = handled.iter().filter(|(_, n)| **n != 1).collect();
    assert!(twice.is_empty(), "handled more than once: {twice:?}");
    assert_eq!(ledger.errors(), vec![], "nothing failed");
    let left = left_in(&client, "orders", SubQueue::None).await;
    assert!(left.is_empty(), "{} messages left in the queue", left.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_messages_at_concurrency_32_are_each_handled_and_completed_once() {
    let options = ServiceBusProcessorOptions {
        max_concurrent_calls: 32,
        ..Default::default()
    };
    each_message_handled_once(10_000, options).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_receive_and_delete_mode_messages_are_handled_once_and_nothing_is_settled() {
    let options = ServiceBusProcessorOptions {
        max_concurrent_calls: 8,
        receive_mode: ServiceBusReceiveMode::ReceiveAndDelete,
        ..Default::default()
    };
    each_message_handled_once(500, options).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_message_is_dead_lettered_after_the_max_delivery_count_the_rest_completed() {
    const COUNT: usize = 50;
    const MAX_DELIVERIES: u32 = 3;
    let poison = message_id(7);
    let broker = broker_with(&[QueueSpec::new("orders").max_delivery_count(MAX_DELIVERIES)]);
    let client = client(&broker);
    send_numbered(&client, "orders", (0..COUNT).map(message_id)).await;

    let ledger = Arc::new(Ledger::default());
    let options = ServiceBusProcessorOptions {
        max_concurrent_calls: 4,
        ..Default::default()
    };
    let processor = client.create_processor("orders", None, options);
    let bad = poison.clone();
    start_recording(&processor, &ledger, move |context, _| {
        let bad = bad.clone();
        async move {
            match id_of(context.message()) {
                id if id == bad => Err(format!("cannot process {id}").into()),
                _ => Ok(()),
            }
        }
    })
    .await;
    let dead_letters = client.create_receiver(
        "orders",
        ServiceBusReceiverOptions {
            sub_queue: SubQueue::DeadLetter,
            ..Default::default()
        },
    );
    let dead = async {
        loop {
            let peeked = dead_letters.peek_messages(1, Some(0)).await.expect("peek");
            if !peeked.is_empty() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    tokio::time::timeout(PATIENCE, dead)
        .await
        .expect("the poison message never reached the dead-letter queue");
    ledger
        .wait_until("every message handled", |l| l.distinct_handled() == COUNT)
        .await;
    processor.stop().await;

    assert_eq!(
        left_in(&client, "orders", SubQueue::DeadLetter).await,
        vec![poison.clone()]
    );
    assert_eq!(
        left_in(&client, "orders", SubQueue::None).await,
        Vec::<String>::new()
    );
    let handled = lock(&ledger.handled).clone();
    assert_eq!(
        handled[&poison], MAX_DELIVERIES,
        "delivered max-delivery-count times"
    );
    let others: Vec<_> = handled
        .iter()
        .filter(|(id, n)| **id != poison && **n != 1)
        .collect();
    assert!(
        others.is_empty(),
        "good messages handled more than once: {others:?}"
    );
    let sources: Vec<ErrorSource> = ledger.errors().into_iter().map(|(s, _)| s).collect();
    assert_eq!(
        sources,
        vec![ErrorSource::ProcessMessageCallback; MAX_DELIVERIES as usize]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_slower_than_the_lock_still_completes_its_message() {
    let broker = broker_with(&[QueueSpec::new("slow").lock_duration("PT5S")]);
    let client = client(&broker);
    send_numbered(&client, "slow", ["slow-1".to_owned()].into_iter()).await;

    let ledger = Arc::new(Ledger::default());
    let processor = client.create_processor("slow", None, ServiceBusProcessorOptions::default());
    start_recording(&processor, &ledger, |context, ledger| async move {
        // Over two lock durations: without renewal the broker redelivers it.
        tokio::time::sleep(Duration::from_secs(12)).await;
        ledger.completed(&id_of(context.message()));
        Ok(())
    })
    .await;
    ledger
        .wait_until("the slow message handled", |l| {
            lock(&l.completed).len() == 1
        })
        .await;
    processor.stop().await;

    assert_eq!(
        ledger.errors(),
        vec![],
        "lock renewed and completion accepted"
    );
    assert_eq!(
        lock(&ledger.handled).get("slow-1"),
        Some(&1),
        "not redelivered"
    );
    assert_eq!(
        left_in(&client, "slow", SubQueue::None).await,
        Vec::<String>::new()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_lets_in_flight_handlers_finish_and_settles_their_messages() {
    const COUNT: usize = 100;
    const CALLS: usize = 8;
    let broker = broker_with(&[QueueSpec::new("orders")]);
    let client = client(&broker);
    send_numbered(&client, "orders", (0..COUNT).map(message_id)).await;

    let ledger = Arc::new(Ledger::default());
    // Handlers park here until the test lets them go, after `stop` has begun.
    let gate = Arc::new(Semaphore::new(0));
    let options = ServiceBusProcessorOptions {
        max_concurrent_calls: CALLS as u32,
        ..Default::default()
    };
    let processor = Arc::new(client.create_processor("orders", None, options));
    let handler_gate = gate.clone();
    start_recording(&processor, &ledger, move |context, ledger| {
        let gate = handler_gate.clone();
        async move {
            gate.acquire().await.map(|permit| permit.forget()).ok();
            ledger.completed(&id_of(context.message()));
            Ok(())
        }
    })
    .await;
    ledger
        .wait_until("every call in flight", |l| l.distinct_handled() == CALLS)
        .await;
    let stopping = tokio::spawn({
        let processor = processor.clone();
        async move { processor.stop().await }
    });
    // Give stop every chance to cut the handlers short before they may finish.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !stopping.is_finished(),
        "stop returned with handlers in flight"
    );
    gate.add_permits(COUNT);
    stopping.await.expect("stop");

    let handled: Vec<String> = lock(&ledger.handled).keys().cloned().collect();
    let finished = lock(&ledger.completed).len();
    assert_eq!(
        finished,
        handled.len(),
        "every handler that started finished"
    );
    assert_eq!(ledger.errors(), vec![], "their messages were completed");
    // The rest are all still there and none is locked: a new receiver gets them at once.
    let receiver = client.create_receiver("orders", ServiceBusReceiverOptions::default());
    let mut rest = Vec::new();
    while rest.len() < COUNT - handled.len() {
        let batch = receiver
            .receive_messages(COUNT, Some(Duration::from_secs(5)))
            .await
            .expect("receive");
        assert!(
            !batch.is_empty(),
            "messages left locked: got {} of {}",
            rest.len(),
            COUNT - handled.len()
        );
        rest.extend(batch.iter().map(id_of));
    }
    assert!(
        rest.iter().all(|id| !handled.contains(id)),
        "a completed message came back"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_processor_recovers_from_a_broker_killed_and_restarted_mid_run() {
    const COUNT: usize = 3_000;
    let mut broker = broker_with(&[QueueSpec::new("orders").lock_duration("PT5S")]);
    // Few and short retries inside the client: the broker stays away longer than they
    // last, so the processor's own recovery (new receiver, back-off) has to bring it back.
    let options = ServiceBusClientOptions {
        retry: RetryOptions {
            max_retries: 1,
            delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(500),
            try_timeout: Duration::from_secs(5),
            ..RetryOptions::default()
        },
        ..ServiceBusClientOptions::default()
    };
    let client = ServiceBusClient::from_connection_string(&broker.conn_str(), options)
        .expect("connection string");
    send_numbered(&client, "orders", (0..COUNT).map(message_id)).await;

    let ledger = Arc::new(Ledger::default());
    let options = ServiceBusProcessorOptions {
        max_concurrent_calls: 16,
        // The handler completes, so that it knows which completions the broker confirmed.
        auto_complete_messages: false,
        ..Default::default()
    };
    let processor = client.create_processor("orders", None, options);
    start_recording(&processor, &ledger, |context, ledger| async move {
        tokio::time::sleep(Duration::from_millis(2)).await;
        context.complete_message().await?;
        ledger.completed(&id_of(context.message()));
        Ok(())
    })
    .await;
    ledger
        .wait_until("a third handled", |l| l.distinct_handled() >= COUNT / 3)
        .await;
    broker.kill9();
    tokio::time::sleep(BROKER_AWAY).await;
    tokio::task::block_in_place(|| broker.restart());
    ledger
        .wait_until("every message handled after the restart", |l| {
            l.distinct_handled() == COUNT
        })
        .await;
    processor.stop().await;

    let completed = lock(&ledger.completed).clone();
    let twice: BTreeMap<_, _> = completed.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "completed more than once: {twice:?}");
    let left = left_in(&client, "orders", SubQueue::None).await;
    assert!(
        left.is_empty(),
        "{} messages never completed: {:?}",
        left.len(),
        &left[..left.len().min(10)]
    );
    let errors = ledger.errors();
    assert!(
        errors
            .iter()
            .any(|(source, _)| *source == ErrorSource::Receive),
        "the lost connection was reported: {errors:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_session_processor_keeps_each_sessions_order_and_runs_sessions_in_parallel() {
    const SESSIONS: usize = 4;
    const PER_SESSION: usize = 40;
    let config = r#"{"UserConfig":{"Namespaces":[{"Name":"sbemulatorns","Queues":[{"Name":"carts","Properties":{"RequiresSession":true}}],"Topics":[]}],"Logging":{"Type":"File"}}}"#;
    let broker = Broker::start(Some(config), &[]);
    let client = client(&broker);
    let sender = client.create_sender("carts");
    for s in 0..SESSIONS {
        let messages = (0..PER_SESSION)
            .map(|n| {
                ServiceBusMessage::new(n.to_string().into_bytes())
                    .with_message_id(format!("s{s}-{n}"))
                    .with_session_id(format!("s{s}"))
            })
            .collect();
        sender.send_messages(messages).await.expect("send");
    }

    let order: Arc<Mutex<HashMap<String, Vec<usize>>>> = Arc::default();
    let in_flight: Arc<Mutex<(usize, usize)>> = Arc::default();
    let ledger = Arc::new(Ledger::default());
    let options = ServiceBusSessionProcessorOptions {
        max_concurrent_sessions: SESSIONS as u32,
        session_idle_timeout: Duration::from_secs(1),
        ..Default::default()
    };
    let processor = client.create_session_processor("carts", None, options);
    let (seen, order_seen, flight) = (ledger.clone(), order.clone(), in_flight.clone());
    processor
        .start(
            move |context: ProcessSessionMessageContext| {
                let (seen, order, flight) = (seen.clone(), order_seen.clone(), flight.clone());
                async move {
                    {
                        let mut flight = lock(&flight);
                        flight.0 += 1;
                        flight.1 = flight.1.max(flight.0);
                    }
                    let n: usize = std::str::from_utf8(&context.message().body)?.parse()?;
                    // Uneven work: calls of one session that overlapped would finish (and
                    // be recorded) out of order.
                    let work = 2 + (PER_SESSION - n) % 4;
                    tokio::time::sleep(Duration::from_millis(work as u64)).await;
                    lock(&order)
                        .entry(context.session_id().to_owned())
                        .or_default()
                        .push(n);
                    lock(&flight).0 -= 1;
                    seen.handled(context.message().message_id.as_deref().unwrap_or_default());
                    Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
                }
            },
            ledger.error_handler(),
        )
        .await
        .expect("start");
    ledger
        .wait_until("every message handled", |l| {
            l.distinct_handled() == SESSIONS * PER_SESSION
        })
        .await;
    processor.stop().await;

    let order = lock(&order).clone();
    let expected: Vec<usize> = (0..PER_SESSION).collect();
    for s in 0..SESSIONS {
        assert_eq!(
            order.get(&format!("s{s}")),
            Some(&expected),
            "session s{s} out of order"
        );
    }
    let most_at_once = lock(&in_flight).1;
    assert!(most_at_once > 1, "sessions were handled one at a time");
    assert!(ledger.errors().is_empty(), "{:?}", ledger.errors());
    assert_eq!(
        left_in(&client, "carts", SubQueue::None).await,
        Vec::<String>::new()
    );
}

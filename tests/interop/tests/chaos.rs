//! Chaos: producers and peek-lock consumers keep a queue busy while the broker is killed with
//! SIGKILL at random moments and restarted on the same data directory, again and again.
//! Whatever the broker acknowledged must hold across every crash:
//!
//! * every send it accepted is received at least once;
//! * no message whose completion it confirmed is ever received again;
//! * nothing is received that was never sent;
//! * once everything is drained the queue is empty, and stays empty after one more crash.
//!
//! The clients are the Rust SDK (`busbar-client`): sends are unsettled, so `accepted` is the
//! broker's acknowledgement; receivers settle second (`accept_confirmed`), so a completion
//! counts as acknowledged only once the broker settled it, which it does after the store
//! made the completion durable.
//!
//! `BUSBAR_CHAOS_ITERATIONS` sets the number of kills (20 by default; 200 for a soak, see the
//! README) and `BUSBAR_CHAOS_SEED` replays the kill moments of an earlier run (its seed is
//! printed first).

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use busbar_client::{
    ConnectOptions, Connection, MessageOptions, Outcome, Receiver, ReceiverOptions, Sender,
    SettleMode, encode_message_with, message_body, sas_token,
};
use busbar_interop::{Broker, DEFAULT_KEY, DEFAULT_KEY_NAME, QueueSpec, emulator_config};

const QUEUE: &str = "chaos";
const DEFAULT_ITERATIONS: u32 = 20;
const PRODUCERS: u32 = 3;
const CONSUMERS: u32 = 2;
/// Unacknowledged sends each producer keeps in flight: a kill finds some of them undecided.
const SENDS_IN_FLIGHT: usize = 16;
/// Producers pause while this many acknowledged messages wait to be completed, so the queue
/// (and the log replayed at every restart) stays small however the two sides' speeds differ.
const BACKLOG_LIMIT: usize = 2_000;
const RECEIVER_CREDIT: u32 = 32;
/// Padding that makes each message a realistic size without slowing the run down.
const BODY_PADDING: usize = 200;
/// Range of the random pause between a restart and the next kill.
const KILL_DELAY_MS: std::ops::Range<u64> = 100..600;
const RECONNECT_BACKOFF_FIRST: Duration = Duration::from_millis(20);
const RECONNECT_BACKOFF_MAX: Duration = Duration::from_millis(500);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the consumers get to empty the queue once the kills stop, and the producers
/// to have their last sends answered.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(90);
/// Broken promises quoted in a failure report (the rest are counted).
const VIOLATIONS_SHOWN: usize = 20;

/// One message's identity: which producer sent it and its place in that producer's sequence.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct MessageKey {
    producer: u32,
    seq: u64,
}

impl MessageKey {
    fn body(self) -> Vec<u8> {
        let mut body = format!("chaos p{} #{} ", self.producer, self.seq).into_bytes();
        body.resize(body.len() + BODY_PADDING, b'.');
        body
    }

    fn message_id(self) -> String {
        format!("p{}-{}", self.producer, self.seq)
    }

    /// The key a received body names, or `None` for a body this test never wrote.
    fn parse(body: &[u8]) -> Option<MessageKey> {
        let text = std::str::from_utf8(body).ok()?;
        let rest = text.strip_prefix("chaos p")?;
        let (producer, rest) = rest.split_once(" #")?;
        let (seq, padding) = rest.split_once(' ')?;
        if padding.len() != BODY_PADDING || padding.bytes().any(|b| b != b'.') {
            return None;
        }
        Some(MessageKey {
            producer: producer.parse().ok()?,
            seq: seq.parse().ok()?,
        })
    }
}

/// What the clients saw, shared by every task. Each entry is written when the client learns
/// it, so the order of a completion's confirmation and a later receipt is the real order.
#[derive(Default)]
struct Ledger {
    attempted: HashSet<MessageKey>,
    acknowledged: HashSet<MessageKey>,
    refused: HashSet<MessageKey>,
    /// How many times each message was received.
    received: HashMap<MessageKey, u32>,
    /// Completions the broker confirmed (settled with `accepted`).
    completed: HashSet<MessageKey>,
    /// Completions the broker answered with anything but `accepted` (e.g. lock lost).
    completion_refused: u64,
    /// Completions sent but not yet answered.
    completions_in_flight: usize,
    /// Broken promises, in the order they were seen.
    violations: Vec<String>,
}

impl Ledger {
    fn on_received(&mut self, body: &[u8]) -> Option<MessageKey> {
        let Some(key) = MessageKey::parse(body) else {
            let shown = String::from_utf8_lossy(&body[..body.len().min(60)]).into_owned();
            self.violations
                .push(format!("received a body this test never sent: {shown:?}"));
            return None;
        };
        if !self.attempted.contains(&key) {
            self.violations
                .push(format!("received {key:?}, which was never sent"));
        }
        if self.completed.contains(&key) {
            self.violations.push(format!(
                "received {key:?} again after the broker confirmed its completion"
            ));
        }
        *self.received.entry(key).or_default() += 1;
        Some(key)
    }

    /// Acknowledged messages not yet completed (an upper bound on what the queue holds that
    /// producers are responsible for).
    fn backlog(&self) -> usize {
        self.acknowledged.len().saturating_sub(self.completed.len())
    }
}

struct Shared {
    amqp_addr: String,
    ledger: Mutex<Ledger>,
    stop_producing: AtomicBool,
}

impl Shared {
    fn ledger(&self) -> MutexGuard<'_, Ledger> {
        // A task that panicked while holding the lock left the ledger as it was; the checks
        // still read it.
        self.ledger
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A small deterministic generator (SplitMix64), so a seed replays the same kill moments.
struct KillSchedule(u64);

impl KillSchedule {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn next_delay(&mut self) -> Duration {
        let span = KILL_DELAY_MS.end - KILL_DELAY_MS.start;
        Duration::from_millis(KILL_DELAY_MS.start + self.next_u64() % span)
    }
}

fn env_number(name: &str) -> Option<u64> {
    let value = std::env::var(name).ok()?;
    Some(
        value
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={value:?} is not a whole number")),
    )
}

/// A connection with the `$cbs` token for the queue, retried with back-off while the broker
/// is down or restarting.
async fn connect(shared: &Shared) -> Connection {
    let mut backoff = RECONNECT_BACKOFF_FIRST;
    loop {
        match try_connect(&shared.amqp_addr).await {
            Ok(connection) => return connection,
            Err(_) => {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(RECONNECT_BACKOFF_MAX);
            }
        }
    }
}

async fn try_connect(addr: &str) -> busbar_client::Result<Connection> {
    let connection = Connection::connect(
        addr,
        ConnectOptions {
            connect_timeout: CONNECT_TIMEOUT,
            ..ConnectOptions::default()
        },
    )
    .await?;
    let audience = format!("sb://{addr}/{QUEUE}");
    let expiry = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |now| now.as_secs())
        + 3600;
    let token = sas_token(&audience, DEFAULT_KEY_NAME, DEFAULT_KEY, expiry);
    connection.put_token(&audience, &token).await?;
    Ok(connection)
}

async fn open_sender(shared: &Shared) -> (Connection, Sender) {
    loop {
        let connection = connect(shared).await;
        let attached = async { connection.session().await?.sender(QUEUE).await }.await;
        if let Ok(sender) = attached {
            return (connection, sender);
        }
        tokio::time::sleep(RECONNECT_BACKOFF_FIRST).await;
    }
}

async fn open_receiver(shared: &Shared) -> (Connection, Receiver) {
    let options = ReceiverOptions {
        settle_mode: SettleMode::PeekLockConfirmed,
        credit: RECEIVER_CREDIT,
    };
    loop {
        let connection = connect(shared).await;
        let attached = async {
            let session = connection.session().await?;
            session.receiver(QUEUE, options.clone()).await
        }
        .await;
        if let Ok(receiver) = attached {
            return (connection, receiver);
        }
        tokio::time::sleep(RECONNECT_BACKOFF_FIRST).await;
    }
}

/// Sends `p<producer>-0`, `-1`, ... until told to stop, keeping [`SENDS_IN_FLIGHT`] unanswered.
/// A connection lost mid-way leaves its undecided sends undecided; new ones continue the
/// sequence, so every message is sent at most once.
async fn produce(shared: Arc<Shared>, producer: u32) {
    let mut seq = 0u64;
    while !shared.stop_producing.load(Ordering::Relaxed) {
        let (_connection, sender) = open_sender(&shared).await;
        let mut in_flight = VecDeque::new();
        loop {
            while in_flight.len() < SENDS_IN_FLIGHT
                && !shared.stop_producing.load(Ordering::Relaxed)
                && shared.ledger().backlog() < BACKLOG_LIMIT
            {
                let key = MessageKey { producer, seq };
                seq += 1;
                shared.ledger().attempted.insert(key);
                let options = MessageOptions {
                    durable: true,
                    message_id: Some(key.message_id()),
                };
                let message = encode_message_with(&key.body(), &options);
                in_flight.push_back((key, sender.send(message)));
            }
            let Some((key, outcome)) = in_flight.pop_front() else {
                if shared.stop_producing.load(Ordering::Relaxed) {
                    return;
                }
                // Backlog full: let the consumers catch up.
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            };
            let outcome = outcome.await;
            let lost = outcome.is_err();
            record_send(&shared, key, outcome);
            if lost {
                // The connection is gone; the rest resolve at once, some perhaps answered
                // just before it went.
                for (key, outcome) in in_flight.drain(..) {
                    let outcome = outcome.await;
                    record_send(&shared, key, outcome);
                }
                break;
            }
        }
    }
}

fn record_send(shared: &Shared, key: MessageKey, outcome: busbar_client::Result<Outcome>) {
    let mut ledger = shared.ledger();
    match outcome {
        Ok(Outcome::Accepted) => {
            ledger.acknowledged.insert(key);
        }
        Ok(_) => {
            ledger.refused.insert(key);
        }
        // Undecided: the broker may or may not have stored it.
        Err(_) => {}
    }
}

/// Receives in peek-lock mode and completes every message, each completion confirmed by
/// the broker's settlement, until the task is aborted.
async fn consume(shared: Arc<Shared>) {
    loop {
        let (_connection, mut receiver) = open_receiver(&shared).await;
        loop {
            let Ok(delivery) = receiver.recv().await else {
                break;
            };
            let body = message_body(&delivery.payload).unwrap_or_default();
            let Some(key) = shared.ledger().on_received(&body) else {
                continue;
            };
            shared.ledger().completions_in_flight += 1;
            let confirmation = receiver.accept_confirmed(&delivery);
            let shared = Arc::clone(&shared);
            tokio::spawn(async move {
                let outcome = confirmation.await;
                let mut ledger = shared.ledger();
                ledger.completions_in_flight -= 1;
                match outcome {
                    Ok(Outcome::Accepted) => {
                        ledger.completed.insert(key);
                    }
                    Ok(_) => ledger.completion_refused += 1,
                    // Undecided: the message may come back.
                    Err(_) => {}
                }
            });
        }
    }
}

/// The queue's counts from `busbar queues --json`, the operator's view of the HTTP API.
fn queue_counts(broker: &Broker) -> serde_json::Value {
    let http = broker.http_addr().to_string();
    let outcome = broker.run_cli(&["queues", QUEUE, "--json", "--http", &http]);
    if !matches!(outcome.status, Some(status) if status.success()) {
        broker.fail(&format!(
            "busbar queues {QUEUE} failed: {:?}\n{}",
            outcome.status, outcome.output
        ));
    }
    serde_json::from_str(&outcome.output).unwrap_or_else(|error| {
        broker.fail(&format!(
            "busbar queues --json printed something that is not JSON ({error}):\n{}",
            outcome.output
        ))
    })
}

fn count(counts: &serde_json::Value, field: &str) -> u64 {
    counts
        .get(field)
        .and_then(serde_json::Value::as_u64)
        .unwrap_or_else(|| panic!("queue counts lack {field}: {counts}"))
}

const COUNT_FIELDS: [&str; 6] = [
    "total_message_count",
    "active_message_count",
    "locked_message_count",
    "scheduled_message_count",
    "deferred_message_count",
    "dead_letter_message_count",
];

fn is_empty(counts: &serde_json::Value) -> bool {
    COUNT_FIELDS.iter().all(|field| count(counts, field) == 0)
}

fn summary(ledger: &Ledger, kills: u32, seed: u64) -> String {
    let undecided = ledger
        .attempted
        .len()
        .saturating_sub(ledger.acknowledged.len() + ledger.refused.len());
    let undecided_arrived = ledger
        .received
        .keys()
        .filter(|key| !ledger.acknowledged.contains(key) && !ledger.refused.contains(key))
        .count();
    let redeliveries: u64 = ledger
        .received
        .values()
        .map(|&times| u64::from(times.saturating_sub(1)))
        .sum();
    let mut text = String::new();
    let _ = writeln!(text, "seed {seed}, {kills} kills");
    let _ = writeln!(
        text,
        "sends: {} attempted, {} acknowledged, {} refused, {undecided} undecided at a kill \
         ({undecided_arrived} of those arrived)",
        ledger.attempted.len(),
        ledger.acknowledged.len(),
        ledger.refused.len(),
    );
    let _ = writeln!(
        text,
        "receipts: {} messages, {redeliveries} redeliveries; completions: {} confirmed, {} \
         refused, {} undecided at a kill",
        ledger.received.len(),
        ledger.completed.len(),
        ledger.completion_refused,
        ledger.received.len().saturating_sub(ledger.completed.len()),
    );
    text
}

#[test]
fn kill9_at_random_moments_loses_no_acknowledged_send_and_revives_no_completion() {
    let iterations = env_number("BUSBAR_CHAOS_ITERATIONS")
        .map_or(DEFAULT_ITERATIONS, |n| u32::try_from(n).unwrap_or(u32::MAX));
    let seed = env_number("BUSBAR_CHAOS_SEED").unwrap_or_else(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |now| now.subsec_nanos().into())
    });
    println!(
        "chaos: seed {seed} (BUSBAR_CHAOS_SEED={seed} replays the kill moments), {iterations} kills"
    );

    // Locks outlast the run, so only a crash makes a message come back; max delivery count
    // high enough that many crashes never dead-letter one.
    let config = emulator_config(&[QueueSpec::new(QUEUE)
        .lock_duration("PT5M")
        .max_delivery_count(2_000)]);
    let mut broker = Broker::start(Some(&config), &[]);
    let shared = Arc::new(Shared {
        amqp_addr: broker.amqp_addr().to_string(),
        ledger: Mutex::default(),
        stop_producing: AtomicBool::new(false),
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|producer| runtime.spawn(produce(Arc::clone(&shared), producer)))
        .collect();
    let consumers: Vec<_> = (0..CONSUMERS)
        .map(|_| runtime.spawn(consume(Arc::clone(&shared))))
        .collect();

    let started = Instant::now();
    let mut schedule = KillSchedule(seed);
    for _ in 0..iterations {
        thread::sleep(schedule.next_delay());
        broker.kill9();
        broker.restart();
    }
    let chaos_took = started.elapsed();

    shared.stop_producing.store(true, Ordering::Relaxed);
    for producer in producers {
        // A producer stops once its sends in flight are answered; one that never is would
        // be a broker that stopped answering.
        match runtime.block_on(async { tokio::time::timeout(DRAIN_TIMEOUT, producer).await }) {
            Ok(Ok(())) => {}
            Ok(Err(error)) => panic!("a producer failed: {error}"),
            Err(_) => broker.fail(&format!(
                "a producer's sends were not answered within {DRAIN_TIMEOUT:?} of the last \
                 restart\n{}",
                summary(&shared.ledger(), iterations, seed)
            )),
        }
    }

    // Drain: the consumers take what is left until the broker holds nothing and every
    // completion has been answered.
    let drain_deadline = Instant::now() + DRAIN_TIMEOUT;
    let final_counts = loop {
        let counts = queue_counts(&broker);
        if is_empty(&counts) && shared.ledger().completions_in_flight == 0 {
            break counts;
        }
        if Instant::now() >= drain_deadline {
            let report = summary(&shared.ledger(), iterations, seed);
            broker.fail(&format!(
                "the queue was not drained within {DRAIN_TIMEOUT:?}: {counts}\n{report}"
            ));
        }
        thread::sleep(Duration::from_millis(200));
    };
    for consumer in consumers {
        consumer.abort();
    }
    runtime.shutdown_timeout(Duration::from_secs(5));

    // One more crash: completions confirmed during the drain must stay done.
    broker.kill9();
    broker.restart();
    let after_restart = queue_counts(&broker);

    let ledger = shared.ledger();
    let report = summary(&ledger, iterations, seed);
    println!("{report}chaos phase took {chaos_took:?}");
    let mut problems: Vec<String> = ledger
        .violations
        .iter()
        .take(VIOLATIONS_SHOWN)
        .cloned()
        .collect();
    if ledger.violations.len() > VIOLATIONS_SHOWN {
        problems.push(format!(
            "... {} more broken promises of these kinds",
            ledger.violations.len() - VIOLATIONS_SHOWN
        ));
    }
    let mut lost: Vec<_> = ledger
        .acknowledged
        .iter()
        .filter(|key| !ledger.received.contains_key(key))
        .collect();
    lost.sort();
    if !lost.is_empty() {
        problems.push(format!(
            "{} acknowledged sends never arrived, first ones: {:?}",
            lost.len(),
            &lost[..lost.len().min(10)]
        ));
    }
    let mut revived_refusals: Vec<_> = ledger
        .refused
        .iter()
        .filter(|key| ledger.received.contains_key(key))
        .collect();
    revived_refusals.sort();
    if !revived_refusals.is_empty() {
        problems.push(format!(
            "sends the broker refused were delivered: {revived_refusals:?}"
        ));
    }
    if !ledger
        .completed
        .iter()
        .all(|key| ledger.received.contains_key(key))
    {
        problems.push("a completion was confirmed for a message never received".to_owned());
    }
    if !is_empty(&after_restart) {
        problems.push(format!(
            "after the drain ({final_counts}) and one more kill -9, the queue holds messages \
             again: {after_restart}"
        ));
    }
    if ledger.acknowledged.is_empty() || ledger.completed.is_empty() {
        problems.push("no progress: nothing was acknowledged or completed".to_owned());
    }
    drop(ledger);
    if !problems.is_empty() {
        broker.fail(&format!(
            "chaos broke the broker's promises:\n  {}\n{report}",
            problems.join("\n  ")
        ));
    }
}

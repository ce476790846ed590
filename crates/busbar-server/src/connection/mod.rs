//! One AMQP connection: the protocol headers and SASL, then a loop that feeds socket bytes
//! to the engine, turns engine events into queue operations, pushes messages to receivers
//! with credit, and acknowledges sends and settlements only once the store has made them
//! durable.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use busbar_amqp::engine::{Connection, ConnectionConfig, Event, LinkRef, TickAction};
use busbar_amqp::frame::FrameDecoder;
use busbar_amqp::performative::{DeliveryState, ErrorCondition};
use busbar_amqp::value::Value;
use busbar_core::{ConsumerId, ReceiveMode, SubQueueKind};
use busbar_servicebus::authorization::Action;
use busbar_servicebus::conditions;
use busbar_servicebus::request::management_response;
use busbar_servicebus::sas::Claims;
use busbar_servicebus::settlement::rejected;
use busbar_store::Store;
use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{Notify, watch};

use crate::broker::{Broker, Entity, TopicEntity};
use crate::limits::LimitExceeded;

mod attach;
mod completions;
mod delivery;
mod delivery_buffer;
mod gathered_write;
mod handshake;
mod message_sessions;
mod read_buffer;
mod refusal;
mod requests;

pub use refusal::refuse;

/// Largest frame the broker accepts.
const MAX_FRAME_SIZE: u32 = 1024 * 1024;
/// Deliveries taken from a queue per lock acquisition.
const DELIVERY_BATCH: u32 = 256;
/// How often a connection looks for expired tokens.
const TOKEN_CHECK_INTERVAL: Duration = Duration::from_secs(5);
/// How often a session receiver waiting for a session looks again.
const SESSION_RETRY_INTERVAL: Duration = Duration::from_millis(200);
/// How long a client may take over the protocol headers, SASL and its `open`.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);
/// The same for a connection over the connection limit, which is only told so.
const REFUSAL_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a connection may stay open without any valid token.
const TOKEN_TIMEOUT: Duration = Duration::from_secs(60);

/// What a link is for.
enum LinkKind {
    /// Client → `$cbs`.
    CbsRequests,
    /// Client → `<entity>/$management`.
    ManagementRequests {
        entity: Arc<Entity>,
        kind: SubQueueKind,
    },
    /// Client → `<topic>/$management`.
    TopicManagementRequests(Arc<TopicEntity>),
    /// `$cbs` or `$management` → client: responses.
    Responses,
    /// Client → queue or topic.
    Producer(SendTarget),
    /// Queue → client.
    Consumer(ConsumerLink),
}

/// Where a producer link sends.
enum SendTarget {
    Queue(Arc<Entity>),
    Topic(Arc<TopicEntity>),
}

impl LinkKind {
    /// The path and action a token must keep allowing for the link to stay attached;
    /// `None` for links every connection may hold.
    fn authorization(&self) -> Option<(String, Action<'static>)> {
        match self {
            LinkKind::Producer(target) => Some((target.name().to_owned(), Action::SendLink)),
            LinkKind::Consumer(consumer) => Some((
                attach::parsed_path(&consumer.entity.name, attach::sub_queue_of(consumer.kind)),
                Action::ReceiveLink,
            )),
            LinkKind::ManagementRequests { entity, kind } => Some((
                attach::parsed_path(&entity.name, attach::sub_queue_of(*kind)),
                Action::ManagementLink,
            )),
            LinkKind::TopicManagementRequests(topic) => {
                Some((topic.name.clone(), Action::ManagementLink))
            }
            LinkKind::CbsRequests | LinkKind::Responses => None,
        }
    }
}

impl SendTarget {
    fn name(&self) -> &str {
        match self {
            SendTarget::Queue(entity) => &entity.name,
            SendTarget::Topic(topic) => &topic.name,
        }
    }

    /// Why sends here are refused now (the entity was deleted, or its status refuses
    /// sends): the condition and description, as Service Bus says it.
    fn refusal(&self, host: &str) -> Option<(&'static str, String)> {
        let (deleted, status) = match self {
            SendTarget::Queue(entity) => (entity.is_deleted(), entity.status()),
            SendTarget::Topic(topic) => (topic.is_deleted(), topic.status()),
        };
        if deleted {
            Some((
                conditions::NOT_FOUND,
                conditions::entity_not_found_description(host, self.name()),
            ))
        } else if !status.allows_send() {
            Some((
                conditions::ENTITY_DISABLED,
                conditions::entity_disabled_description(
                    &format!("sb://{host}/{}", self.name()),
                    status.as_str(),
                ),
            ))
        } else {
            None
        }
    }
}

impl ConsumerLink {
    /// Why this receiver may not go on (its entity was deleted, or its status refuses
    /// receives): the condition and description, as Service Bus says it.
    fn refusal(&self, host: &str) -> Option<(&'static str, String)> {
        let status = self.entity.status();
        if status.allows_receive() && !self.entity.is_deleted() {
            return None;
        }
        let path = attach::parsed_path(&self.entity.name, attach::sub_queue_of(self.kind));
        if self.entity.is_deleted() {
            Some((
                conditions::NOT_FOUND,
                conditions::entity_not_found_description(host, &path),
            ))
        } else if !status.allows_receive() {
            Some((
                conditions::ENTITY_DISABLED,
                conditions::entity_disabled_description(
                    &format!("sb://{host}/{path}"),
                    status.as_str(),
                ),
            ))
        } else {
            None
        }
    }
}

impl LinkKind {
    /// Why the link must be detached after an entity change: its entity is gone (all
    /// links), or a receiver's entity no longer gives out messages. Senders stay attached
    /// to an entity that refuses sends; each send is refused instead.
    fn detach_reason(&self, host: &str) -> Option<(&'static str, String)> {
        let gone = |deleted: bool, path: &str| {
            deleted.then(|| {
                (
                    conditions::NOT_FOUND,
                    conditions::entity_not_found_description(host, path),
                )
            })
        };
        match self {
            LinkKind::Consumer(consumer) => consumer.refusal(host),
            LinkKind::Producer(target) => target
                .refusal(host)
                .filter(|(condition, _)| *condition == conditions::NOT_FOUND),
            LinkKind::ManagementRequests { entity, .. } => gone(entity.is_deleted(), &entity.name),
            LinkKind::TopicManagementRequests(topic) => gone(topic.is_deleted(), &topic.name),
            LinkKind::CbsRequests | LinkKind::Responses => None,
        }
    }
}

struct ConsumerLink {
    entity: Arc<Entity>,
    kind: SubQueueKind,
    mode: ReceiveMode,
    consumer: ConsumerId,
    /// The session this receiver holds the lock of, for a session receiver.
    message_session: Option<Box<str>>,
    /// Deliveries sent on this link that the client has not settled.
    unsettled: usize,
}

/// A session receiver's attach, unanswered until a session is free or its wait runs out.
struct PendingSessionReceiver {
    link: LinkRef,
    consumer: ConsumerLink,
    source: Option<busbar_amqp::performative::Source>,
    /// `None`: the next available session.
    requested: Option<String>,
    /// Broker clock.
    deadline_ms: i64,
}

/// A response link, with what routes responses to it (see the dialect's three-step rule).
struct ResponseLink {
    link: LinkRef,
    name: String,
    /// The node it listens to (`$cbs`, `q1/$management`), normalised, lower case.
    node: String,
    target: Option<String>,
    pending: VecDeque<Bytes>,
}

/// A peek-locked delivery awaiting the client's settlement.
struct Outstanding {
    link: LinkRef,
    entity: Arc<Entity>,
    kind: SubQueueKind,
    lock: uuid::Uuid,
    /// The message's trace context, when traces are exported and it carries one.
    trace: Option<crate::otlp::TraceContext>,
}

/// Something to do once the store has made a change durable.
enum AfterCommit {
    Settle {
        link: LinkRef,
        delivery_id: u32,
        state: DeliveryState,
    },
    Respond {
        request_link: LinkRef,
        reply_to: Option<String>,
        node: String,
        payload: Bytes,
        /// The request's message-id, for the failure answered instead when the commit fails.
        request_id: Option<Value>,
    },
    /// Sent bytes that are no longer waiting to become durable (see back-pressure).
    Settled { bytes: u64 },
    /// Spans of traced messages whose enqueueing ends with the commit.
    Trace(Vec<crate::otlp::Span>),
}

type PendingCommit = Pin<Box<dyn Future<Output = Result<(), busbar_store::StoreError>> + Send>>;

/// A byte stream a client reaches the broker's AMQP over: TCP, TLS, or a WebSocket.
pub trait ClientStream: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> ClientStream for T {}

/// An AMQP connection that arrived some other way than the plain AMQP listener (inside
/// TLS, or a WebSocket), handed to the broker to serve like any other.
pub struct Handoff {
    pub stream: Box<dyn ClientStream>,
    /// Bytes already read from `stream` (while finding out what protocol it speaks),
    /// served before anything read later.
    pub read_ahead: BytesMut,
    /// Who is connected, for logs.
    pub peer: String,
}

/// Serves one client connection until it closes. `read_ahead` holds bytes already read
/// from `stream`.
pub async fn serve<S: Store>(
    broker: Arc<Broker<S>>,
    mut stream: impl ClientStream,
    read_ahead: BytesMut,
    peer: String,
    connection_id: u64,
    epoch: Instant,
    mut shutdown: watch::Receiver<bool>,
) {
    // Counted from the first byte: a socket still in its handshake holds a slot too.
    let counted = Arc::clone(&broker);
    let permit = counted.usage.open_connection(&counted.settings.limits);
    // One over the limit is told why, and quickly.
    let handshake_timeout = if permit.is_ok() {
        HANDSHAKE_TIMEOUT
    } else {
        REFUSAL_TIMEOUT
    };
    let mut read_buf = read_buffer::read_buffer(&read_ahead);
    drop(read_ahead);
    let handshake = tokio::time::timeout(
        handshake_timeout,
        handshake::handshake(
            &mut stream,
            &mut read_buf,
            handshake::Credentials::Policies(&broker.settings.policies),
        ),
    );
    let sasl_claims = match handshake.await {
        Ok(Ok(claims)) => claims,
        Ok(Err(reason)) => {
            tracing::debug!(%peer, %reason, "handshake refused");
            return;
        }
        Err(_) => {
            tracing::debug!(%peer, "handshake timed out");
            return;
        }
    };
    let now = elapsed_ms(epoch);
    let config = ConnectionConfig {
        container_id: "busbar".to_owned(),
        max_frame_size: MAX_FRAME_SIZE,
        max_message_size: broker.settings.max_message_size,
        channel_max: broker.settings.limits.channel_max(),
        ..ConnectionConfig::default()
    };
    let mut conn = Conn {
        broker,
        engine: Connection::new(config, now),
        hostname: "localhost".to_owned(),
        claims: sasl_claims.into_iter().collect(),
        links: FastMap::default(),
        responders: Vec::new(),
        outstanding: FastMap::default(),
        completions: Vec::new(),
        completion_locks: Vec::new(),
        deliveries: delivery_buffer::DeliveryBuffer::default(),
        next_token: 1,
        notify: Arc::new(Notify::new()),
        round_commit: None,
        round_actions: Vec::new(),
        round_uncommitted_bytes: 0,
        pending: VecDeque::new(),
        waiting_session_receivers: Vec::new(),
        epoch,
        refusal: permit.as_ref().err().cloned(),
        started: Instant::now(),
        opened: false,
        counted_open: false,
        tokenless_since: None,
        unfinished_bytes: 0,
        uncommitted_bytes: 0,
        uncommitted_share: 0,
    };
    // Connections over the limit are refused, not opened (they count as throttled).
    if let Some(refusal) = &conn.refusal {
        tracing::warn!(%peer, %refusal, "connection refused");
    } else {
        conn.broker.stats.connection_opened();
        conn.counted_open = true;
    }
    conn.run(stream, read_buf, &mut shutdown).await;
    conn.release_everything();
    conn.release_usage();
    conn.count_closed();
    drop(permit);
    tracing::debug!(%peer, connection_id, "connection finished");
}

/// The connection's per-delivery maps, looked up several times per message: keyed by the
/// broker's own tokens and link references, so a fast hash serves (SipHash was a
/// noticeable share of each settlement).
type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

fn elapsed_ms(epoch: Instant) -> u64 {
    u64::try_from(epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
}

struct Conn<S: Store> {
    broker: Arc<Broker<S>>,
    engine: Connection,
    hostname: String,
    claims: Vec<Claims>,
    links: FastMap<LinkRef, LinkKind>,
    responders: Vec<ResponseLink>,
    outstanding: FastMap<u64, Outstanding>,
    /// Settled-by-peer completions not applied yet (see [`completions`]).
    completions: Vec<completions::Completion>,
    /// The locks of one entity's completions, while they are applied.
    completion_locks: Vec<uuid::Uuid>,
    /// What the deliveries this connection sends are written to.
    deliveries: delivery_buffer::DeliveryBuffer,
    next_token: u64,
    /// Woken when a queue this connection waits on may have messages.
    notify: Arc<Notify>,
    /// The newest commit of the current round, and what waits for it.
    round_commit: Option<S::Commit>,
    round_actions: Vec<AfterCommit>,
    /// Bytes sent this round, not yet durable (see [`Self::count_uncommitted`]).
    round_uncommitted_bytes: u64,
    /// Rounds waiting for their commit, oldest first, with when each started waiting.
    pending: VecDeque<(PendingCommit, Vec<AfterCommit>, Instant)>,
    waiting_session_receivers: Vec<PendingSessionReceiver>,
    epoch: Instant,
    /// Set when the connection is over a broker-wide limit: it is closed with this once
    /// the client's open arrives.
    refusal: Option<LimitExceeded>,
    /// This connection's share of [`crate::limits::Usage`]'s unfinished deliveries.
    unfinished_bytes: u64,
    /// Bytes of messages this connection sent that are not durable yet.
    uncommitted_bytes: u64,
    /// The part of `uncommitted_bytes` last reported to [`crate::limits::Usage`].
    uncommitted_share: u64,
    started: Instant,
    /// The client's `open` arrived.
    opened: bool,
    /// Counted as opened in the metrics and not yet as closed.
    counted_open: bool,
    /// Since when the connection has held no valid token.
    tokenless_since: Option<Instant>,
}

impl<S: Store> Conn<S> {
    async fn run(
        &mut self,
        mut stream: impl ClientStream,
        mut read_buf: BytesMut,
        shutdown: &mut watch::Receiver<bool>,
    ) {
        let mut decoder = FrameDecoder::new(MAX_FRAME_SIZE);
        let mut frames = Vec::new();
        let mut output = gathered_write::Output::new(64 * 1024);
        let mut eof = false;
        let mut entity_changes = self.broker.entity_changes();
        let mut token_check = tokio::time::interval(TOKEN_CHECK_INTERVAL);
        token_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Bytes that arrived with the handshake are processed before reading more.
        let mut have_input = !read_buf.is_empty();
        loop {
            // Every turn spends from the task's cooperative budget, so a connection whose
            // events are always ready still yields to the others and to shutdown.
            tokio::task::coop::consume_budget().await;
            if have_input {
                have_input = false;
                // No credit goes back while frames are read: whether it may is decided
                // once their messages are counted (see `apply_back_pressure`).
                self.engine.hold_credit(true);
                loop {
                    match decoder.decode(&mut read_buf) {
                        Ok(Some(frame)) => {
                            let now = elapsed_ms(self.epoch);
                            if self.engine.handle(frame, now).is_err() {
                                break;
                            }
                        }
                        Ok(None) => break,
                        Err(error) => {
                            tracing::debug!(%error, "undecodable frame");
                            self.engine.close(Some(ErrorCondition::new(
                                conditions::CONNECTION_FRAMING_ERROR,
                                error.to_string(),
                            )));
                            break;
                        }
                    }
                }
                self.check_unfinished_deliveries();
            }
            if eof {
                self.engine.connection_lost();
            }
            self.process_events();
            self.end_round();
            self.apply_back_pressure();

            // Flush.
            let now = elapsed_ms(self.epoch);
            self.engine.poll_output(&mut frames, now);
            if !frames.is_empty() {
                output.encode(&mut frames);
                // Flushed: over a WebSocket or TLS, nothing goes out before.
                let write = async {
                    output.write_to(&mut stream).await?;
                    stream.flush().await
                };
                let written =
                    tokio::time::timeout(self.broker.settings.limits.write_timeout, write);
                if !matches!(written.await, Ok(Ok(()))) {
                    // Gone, or not reading what it is sent: either way it holds buffers
                    // the broker needs back.
                    self.engine.connection_lost();
                    self.process_events();
                    return;
                }
            }
            if self.engine.is_closed() || eof {
                return;
            }

            let deadline = self.engine.next_deadline_ms();
            let mut sleep_for = deadline
                .map(|at| Duration::from_millis(at.saturating_sub(elapsed_ms(self.epoch))))
                .unwrap_or(Duration::from_secs(3600));
            if !self.waiting_session_receivers.is_empty() {
                // Sessions also free up without a wake-up (a lock running out, a receiver
                // leaving), so waiting receivers look again now and then.
                sleep_for = sleep_for.min(SESSION_RETRY_INTERVAL);
            }
            let has_pending = !self.pending.is_empty();
            let held_until = self
                .pending
                .front()
                .map(|(_, _, since)| *since + self.broker.settings.limits.held_write_timeout);
            // A client that keeps sending without credit is not read from until the disk
            // has caught up with what it already sent.
            let reading = self.broker.settings.limits.keep_reading(
                self.uncommitted_bytes,
                self.broker.usage.uncommitted_bytes(),
            );
            if reading {
                read_buffer::make_read_room(&mut read_buf);
            }
            tokio::select! {
                read = stream.read_buf(&mut read_buf), if reading => {
                    match read {
                        Ok(0) | Err(_) => eof = true,
                        Ok(_) => have_input = true,
                    }
                }
                result = poll_front(&mut self.pending), if has_pending => {
                    self.finish_commit(result);
                    // Later commits are usually ready too: one group sync covers them.
                    while let Some(result) = ready_front(&mut self.pending) {
                        self.finish_commit(result);
                    }
                }
                () = sleep_until(held_until), if held_until.is_some() => {
                    self.give_up_held_writes();
                }
                () = self.notify.notified() => {
                    self.pump_all();
                    self.retry_session_receivers();
                }
                Ok(()) = entity_changes.changed() => {
                    self.drop_links_of_changed_entities();
                    self.retry_session_receivers();
                }
                _ = token_check.tick() => {
                    self.enforce_deadlines();
                    self.drop_expired_claims();
                    // Receivers held back while the store could not write go on once it can.
                    self.pump_all();
                    self.drop_lost_message_sessions();
                }
                () = tokio::time::sleep(sleep_for) => {
                    self.retry_session_receivers();
                    let now = elapsed_ms(self.epoch);
                    match self.engine.tick(now) {
                        TickAction::IdleTimeout => tracing::debug!("idle timeout"),
                        TickAction::SendHeartbeat | TickAction::Nothing => {}
                    }
                }
                changed = shutdown.changed() => {
                    if changed.is_err() || *shutdown.borrow() {
                        // Finish in-flight writes before saying goodbye.
                        while let Some((commit, actions, _)) = self.pending.pop_front() {
                            let result = commit.await;
                            self.finish_commit((result, actions));
                        }
                        self.engine.close(Some(ErrorCondition::new(
                            conditions::CONNECTION_FORCED,
                            self.broker.stop_reason(),
                        )));
                    }
                }
            }
        }
    }

    fn finish_commit(&mut self, result: (Result<(), busbar_store::StoreError>, Vec<AfterCommit>)) {
        let (outcome, actions) = result;
        match outcome {
            Ok(()) => self.apply_actions(None, actions),
            Err(error) => {
                tracing::error!(%error, "store commit failed");
                let why = format!("The broker could not store the change: {error}");
                self.apply_actions(Some(&why), actions);
            }
        }
    }

    /// The oldest round has waited for its commit longer than the limit. While the store
    /// can't write (a full disk), its senders are told to retry rather than kept waiting
    /// without end; the write itself still lands once space is back, so a retried send may
    /// be stored twice (duplicate detection drops the copy). A store that is only slow is
    /// waited for.
    fn give_up_held_writes(&mut self) {
        let health = self.broker.store.health();
        if matches!(health, busbar_store::StoreHealth::Ok) {
            if let Some((_, _, since)) = self.pending.front_mut() {
                *since = Instant::now();
            }
            return;
        }
        while let Some((_, actions, _)) = self.pending.pop_front() {
            let why = format!(
                "The broker could not make the change durable in time ({health:?}); retry later."
            );
            self.apply_actions(Some(&why), actions);
        }
    }

    /// Moves this round's actions behind its commit (or runs them now if nothing needed
    /// to become durable).
    fn end_round(&mut self) {
        // One action per round gives back what the round's sends counted.
        let bytes = std::mem::take(&mut self.round_uncommitted_bytes);
        if bytes > 0 {
            self.round_actions.push(AfterCommit::Settled { bytes });
        }
        let actions = std::mem::take(&mut self.round_actions);
        match self.round_commit.take() {
            Some(commit) => self
                .pending
                .push_back((Box::pin(commit), actions, Instant::now())),
            None if actions.is_empty() => {}
            None => match self.pending.back_mut() {
                // Keep acknowledgements in order behind earlier durable work.
                Some((_, earlier, _)) => earlier.extend(actions),
                None => self.apply_actions(None, actions),
            },
        }
    }

    /// Runs what waited for a commit: with `failure`, the commit failed, and senders and
    /// settlers are told to retry (`com.microsoft:server-busy`) with that description.
    fn apply_actions(&mut self, failure: Option<&str>, mut actions: Vec<AfterCommit>) {
        for action in actions.drain(..) {
            match action {
                AfterCommit::Settle {
                    link,
                    delivery_id,
                    state,
                } => {
                    let state = match failure {
                        None => state,
                        Some(why) => {
                            self.broker.stats.count_refusal(conditions::SERVER_BUSY);
                            rejected(conditions::SERVER_BUSY, why)
                        }
                    };
                    let _ = self.engine.settle(link, delivery_id, state);
                }
                AfterCommit::Respond {
                    request_link,
                    reply_to,
                    node,
                    payload,
                    request_id,
                } => {
                    // A change that did not become durable is not reported done.
                    let payload = match failure {
                        None => payload,
                        Some(why) => {
                            self.broker.stats.count_refusal(conditions::SERVER_BUSY);
                            management_response(
                                request_id.as_ref(),
                                503,
                                why,
                                Some(conditions::SERVER_BUSY),
                                None,
                            )
                        }
                    };
                    self.respond(request_link, reply_to.as_deref(), &node, payload);
                }
                AfterCommit::Settled { bytes } => {
                    self.uncommitted_bytes = self.uncommitted_bytes.saturating_sub(bytes);
                }
                AfterCommit::Trace(spans) => {
                    let end = crate::otlp::now_unix_ns();
                    for mut span in spans {
                        span.end_unix_ns = end.max(span.start_unix_ns);
                        span.failure = failure.map(str::to_owned);
                        self.broker.tracer.record(span);
                    }
                }
            }
        }
        // The next round's actions reuse the allocation: a round of settle-second
        // completions holds one action per message, and a fresh list grew step by step.
        if self.round_actions.capacity() < actions.capacity() && self.round_actions.is_empty() {
            self.round_actions = actions;
        }
    }

    /// Counts bytes sent by this connection that are waiting to become durable; they stop
    /// counting once the round holding them is committed.
    fn count_uncommitted(&mut self, bytes: u64) {
        self.uncommitted_bytes = self.uncommitted_bytes.saturating_add(bytes);
        self.round_uncommitted_bytes = self.round_uncommitted_bytes.saturating_add(bytes);
    }

    /// Withholds the senders' credit while this connection, or the broker as a whole, has
    /// more sent and not yet durable than its limit, and gives it back once the disk caught
    /// up: senders slow down to the disk's pace instead of growing the broker's memory.
    fn apply_back_pressure(&mut self) {
        let usage = &self.broker.usage;
        usage.set_uncommitted(self.uncommitted_share, self.uncommitted_bytes);
        self.uncommitted_share = self.uncommitted_bytes;
        let hold = self
            .broker
            .settings
            .limits
            .hold_credit(self.uncommitted_bytes, usage.uncommitted_bytes());
        if hold {
            tracing::trace!(
                uncommitted = self.uncommitted_bytes,
                "sender credit held for back-pressure"
            );
        }
        self.engine.hold_credit(hold);
    }

    /// Closes the connection when its unfinished deliveries, or everyone's, hold more
    /// memory than the limits allow.
    fn check_unfinished_deliveries(&mut self) {
        let held = self.engine.unfinished_delivery_bytes();
        let usage = &self.broker.usage;
        usage.set_unfinished(self.unfinished_bytes, held);
        self.unfinished_bytes = held;
        let limits = &self.broker.settings.limits;
        if let Err(exceeded) = limits.check_unfinished(
            held,
            usage.unfinished_bytes(),
            self.broker.settings.max_message_size,
        ) {
            tracing::warn!(%exceeded, "connection closed");
            self.close_over_limit(exceeded.to_string());
        }
    }

    /// Closes the connection with `amqp:resource-limit-exceeded`: a throttled request.
    fn close_over_limit(&mut self, description: String) {
        self.broker
            .stats
            .count_refusal(conditions::RESOURCE_LIMIT_EXCEEDED);
        self.engine.close(Some(ErrorCondition::new(
            conditions::RESOURCE_LIMIT_EXCEEDED,
            description,
        )));
    }

    /// Closes a connection that never sent its `open` within the handshake time (or the
    /// refusal time, over the connection limit), or that has held no valid token for a
    /// minute: neither may keep a connection slot.
    fn enforce_deadlines(&mut self) {
        let age = self.started.elapsed();
        let open_deadline = if self.refusal.is_some() {
            REFUSAL_TIMEOUT
        } else {
            HANDSHAKE_TIMEOUT
        };
        if !self.opened && age > open_deadline {
            tracing::debug!("no open in time; closing");
            self.engine.close(Some(ErrorCondition::new(
                conditions::CONNECTION_FORCED,
                "The connection was not opened in time.",
            )));
            self.engine.connection_lost();
            return;
        }
        if self.claims.is_empty() {
            let since = *self.tokenless_since.get_or_insert_with(Instant::now);
            if since.elapsed() > TOKEN_TIMEOUT {
                self.engine.close(Some(ErrorCondition::new(
                    conditions::UNAUTHORIZED_ACCESS,
                    format!(
                        "No valid token for {} s: send one on $cbs (put-token) after connecting.",
                        TOKEN_TIMEOUT.as_secs()
                    ),
                )));
            }
        } else {
            self.tokenless_since = None;
        }
    }

    /// Gives back this connection's share of the broker-wide usage; it is gone.
    fn release_usage(&mut self) {
        let usage = &self.broker.usage;
        usage.set_unfinished(self.unfinished_bytes, 0);
        usage.set_uncommitted(self.uncommitted_share, 0);
        self.unfinished_bytes = 0;
        self.uncommitted_share = 0;
    }

    /// Counts the connection closed in the metrics, once.
    fn count_closed(&mut self) {
        if std::mem::take(&mut self.counted_open) {
            self.broker.stats.connection_closed();
        }
    }

    fn keep_commit(&mut self, commit: Option<S::Commit>) {
        if commit.is_some() {
            self.round_commit = commit;
        }
    }

    // -----------------------------------------------------------------------------------
    // Events
    // -----------------------------------------------------------------------------------

    fn process_events(&mut self) {
        while let Some(event) = self.engine.poll_event() {
            if !matches!(event, Event::Settled { .. }) {
                self.apply_completions();
            }
            match event {
                Event::Opened { hostname, .. } => {
                    self.opened = true;
                    if let Some(host) = hostname.filter(|h| !h.is_empty()) {
                        self.hostname = host;
                    }
                    if let Some(refusal) = &self.refusal {
                        let description = refusal.to_string();
                        self.close_over_limit(description);
                    }
                }
                Event::SessionBegun { .. } | Event::SessionEnded { .. } => {}
                Event::AttachRequested { link, attach } => self.on_attach(link, &attach),
                Event::Message(message) => self.on_message(message),
                Event::MessageTooLarge { link, limit, .. } => {
                    tracing::debug!(handle = link.handle(), limit, "message too large refused");
                }
                Event::CreditChanged { link, .. } => {
                    if self.is_responder(link) {
                        self.flush_responses(link);
                    } else {
                        self.pump(link);
                    }
                }
                Event::Drain { link, .. } => {
                    self.pump(link);
                    let _ = self.engine.drain_complete(link);
                }
                Event::Settled {
                    link,
                    delivery_id,
                    token,
                    state,
                    settled_by_peer,
                } => self.on_settled(link, delivery_id, token, state, settled_by_peer),
                Event::Detached { link, .. } => self.on_detached(link),
                // Counted before the broker's own close goes out, so a client that saw it
                // finds the connection counted closed.
                Event::Closed { .. } => self.count_closed(),
            }
        }
        self.apply_completions();
    }

    fn is_responder(&self, link: LinkRef) -> bool {
        matches!(self.links.get(&link), Some(LinkKind::Responses))
    }
}

/// Sleeps until `deadline` (forever without one).
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

/// Awaits the oldest pending commit.
async fn poll_front(
    pending: &mut VecDeque<(PendingCommit, Vec<AfterCommit>, Instant)>,
) -> (Result<(), busbar_store::StoreError>, Vec<AfterCommit>) {
    std::future::poll_fn(|cx| match pending.front_mut() {
        Some((commit, _, _)) => match commit.as_mut().poll(cx) {
            Poll::Ready(result) => {
                let actions = pending
                    .pop_front()
                    .map(|(_, actions, _)| actions)
                    .unwrap_or_default();
                Poll::Ready((result, actions))
            }
            Poll::Pending => Poll::Pending,
        },
        None => Poll::Pending,
    })
    .await
}

/// The oldest pending commit's result, if it is already resolved.
fn ready_front(
    pending: &mut VecDeque<(PendingCommit, Vec<AfterCommit>, Instant)>,
) -> Option<(Result<(), busbar_store::StoreError>, Vec<AfterCommit>)> {
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    let (commit, _, _) = pending.front_mut()?;
    match commit.as_mut().poll(&mut cx) {
        Poll::Ready(result) => pending.pop_front().map(|(_, actions, _)| (result, actions)),
        Poll::Pending => None,
    }
}

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

use busbar_amqp::engine::{
    AttachReply, Connection, ConnectionConfig, Event, IncomingMessage, LinkRef, TickAction, sasl,
};
use busbar_amqp::frame::{Frame, FrameBody, FrameDecoder, ProtocolHeader, encode_frame};
use busbar_amqp::performative::{
    Attach, DeliveryState, ErrorCondition, Role, SaslCode, SenderSettleMode, TargetKind,
};
use busbar_amqp::value::Value;
use busbar_core::{ConsumerId, CoreError, Delivery, ReceiveMode, SessionPick, SubQueueKind};
use busbar_servicebus::address::{self, Address, SubQueue};
use busbar_servicebus::conditions;
use busbar_servicebus::message::{Stamp, new_messages, write_delivery};
use busbar_servicebus::request::{Request, cbs_response};
use busbar_servicebus::sas::{self, Claims};
use busbar_servicebus::settlement::{Settlement, lock_lost, rejected};
use busbar_store::Store;
use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{Notify, watch};

use crate::broker::{Broker, Entity, Route, TOKEN_GRACE_SECS, TopicEntity, wake};
use crate::management;
use crate::sessions;

/// Largest frame the broker accepts.
const MAX_FRAME_SIZE: u32 = 1024 * 1024;
/// Deliveries taken from a queue per lock acquisition.
const DELIVERY_BATCH: u32 = 256;
/// How often a connection looks for expired tokens.
const TOKEN_CHECK_INTERVAL: Duration = Duration::from_secs(5);
/// How often a session receiver waiting for a session looks again.
const SESSION_RETRY_INTERVAL: Duration = Duration::from_millis(200);
/// How long a client may take over the protocol headers and SASL.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

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

impl SendTarget {
    fn name(&self) -> &str {
        match self {
            SendTarget::Queue(entity) => &entity.name,
            SendTarget::Topic(topic) => &topic.name,
        }
    }
}

struct ConsumerLink {
    entity: Arc<Entity>,
    kind: SubQueueKind,
    mode: ReceiveMode,
    consumer: ConsumerId,
    /// The session this receiver holds the lock of, for a session receiver.
    session: Option<Box<str>>,
}

/// A session receiver's attach, unanswered until a session is free or its wait runs out.
struct PendingSession {
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
    },
}

type PendingCommit = Pin<Box<dyn Future<Output = Result<(), busbar_store::StoreError>> + Send>>;

/// Serves one accepted TCP connection until it closes.
pub async fn serve<S: Store>(
    broker: Arc<Broker<S>>,
    mut stream: TcpStream,
    connection_id: u64,
    epoch: Instant,
    mut shutdown: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let peer = stream
        .peer_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let mut read_buf = BytesMut::with_capacity(64 * 1024);
    let handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake(&mut stream, &mut read_buf));
    match handshake.await {
        Ok(Ok(())) => {}
        Ok(Err(reason)) => {
            tracing::debug!(%peer, %reason, "handshake refused");
            return;
        }
        Err(_) => {
            tracing::debug!(%peer, "handshake timed out");
            return;
        }
    }
    let now = elapsed_ms(epoch);
    let config = ConnectionConfig {
        container_id: "busbar".to_owned(),
        max_frame_size: MAX_FRAME_SIZE,
        max_message_size: broker.settings.max_message_size,
        ..ConnectionConfig::default()
    };
    let mut conn = Conn {
        broker,
        engine: Connection::new(config, now),
        connection_id,
        hostname: "localhost".to_owned(),
        claims: Vec::new(),
        links: HashMap::new(),
        responders: Vec::new(),
        outstanding: HashMap::new(),
        next_token: 1,
        next_consumer: 1,
        notify: Arc::new(Notify::new()),
        round_commit: None,
        round_actions: Vec::new(),
        pending: VecDeque::new(),
        pending_sessions: Vec::new(),
        epoch,
    };
    conn.run(stream, read_buf, &mut shutdown).await;
    conn.release_everything();
    tracing::debug!(%peer, "connection finished");
}

fn elapsed_ms(epoch: Instant) -> u64 {
    u64::try_from(epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// Reads until `buf` holds at least `n` bytes.
async fn fill(stream: &mut TcpStream, buf: &mut BytesMut, n: usize) -> Result<(), String> {
    while buf.len() < n {
        let read = stream.read_buf(buf).await.map_err(|e| e.to_string())?;
        if read == 0 {
            return Err("connection closed during handshake".to_owned());
        }
    }
    Ok(())
}

async fn read_header(stream: &mut TcpStream, buf: &mut BytesMut) -> Result<ProtocolHeader, String> {
    fill(stream, buf, ProtocolHeader::LEN).await?;
    let head = buf.split_to(ProtocolHeader::LEN);
    let mut bytes = [0u8; ProtocolHeader::LEN];
    bytes.copy_from_slice(&head);
    match ProtocolHeader::parse(&bytes) {
        Some(header) => Ok(header),
        None => {
            // Answer with the header we speak, then hang up (AMQP 1.0 §2.2).
            let _ = stream.write_all(&ProtocolHeader::Sasl.bytes()).await;
            Err("unsupported protocol header".to_owned())
        }
    }
}

/// The protocol headers and, when the client starts with it, SASL (ANONYMOUS or PLAIN;
/// identity comes from `$cbs` tokens, not from SASL).
async fn handshake(stream: &mut TcpStream, buf: &mut BytesMut) -> Result<(), String> {
    let header = read_header(stream, buf).await?;
    if header == ProtocolHeader::Sasl {
        let mut out = BytesMut::new();
        out.extend_from_slice(&ProtocolHeader::Sasl.bytes());
        encode_frame(&Frame::sasl(sasl::mechanisms(true)), &mut out);
        stream.write_all(&out).await.map_err(|e| e.to_string())?;
        let mut decoder = FrameDecoder::new(64 * 1024);
        let init = loop {
            match decoder.decode(buf).map_err(|e| e.to_string())? {
                Some(Frame {
                    body: FrameBody::Sasl(frame),
                    ..
                }) => break frame,
                Some(_) => return Err("expected sasl-init".to_owned()),
                None => {
                    let read = stream.read_buf(buf).await.map_err(|e| e.to_string())?;
                    if read == 0 {
                        return Err("connection closed during SASL".to_owned());
                    }
                }
            }
        };
        let code = match sasl::accept_init(&init, true) {
            Ok(_) => SaslCode::Ok,
            Err(_) => SaslCode::Auth,
        };
        out.clear();
        encode_frame(&Frame::sasl(sasl::outcome(code)), &mut out);
        stream.write_all(&out).await.map_err(|e| e.to_string())?;
        if code != SaslCode::Ok {
            return Err("SASL mechanism refused".to_owned());
        }
        let header = read_header(stream, buf).await?;
        if header != ProtocolHeader::Amqp {
            return Err("expected the AMQP header after SASL".to_owned());
        }
    }
    stream
        .write_all(&ProtocolHeader::Amqp.bytes())
        .await
        .map_err(|e| e.to_string())
}

struct Conn<S: Store> {
    broker: Arc<Broker<S>>,
    engine: Connection,
    connection_id: u64,
    hostname: String,
    claims: Vec<Claims>,
    links: HashMap<LinkRef, LinkKind>,
    responders: Vec<ResponseLink>,
    outstanding: HashMap<u64, Outstanding>,
    next_token: u64,
    next_consumer: u64,
    /// Woken when a queue this connection waits on may have messages.
    notify: Arc<Notify>,
    /// The newest commit of the current round, and what waits for it.
    round_commit: Option<S::Commit>,
    round_actions: Vec<AfterCommit>,
    pending: VecDeque<(PendingCommit, Vec<AfterCommit>)>,
    pending_sessions: Vec<PendingSession>,
    epoch: Instant,
}

impl<S: Store> Conn<S> {
    async fn run(
        &mut self,
        mut stream: TcpStream,
        mut read_buf: BytesMut,
        shutdown: &mut watch::Receiver<bool>,
    ) {
        let mut decoder = FrameDecoder::new(MAX_FRAME_SIZE);
        let mut frames = Vec::new();
        let mut write_buf = BytesMut::with_capacity(64 * 1024);
        let mut eof = false;
        let mut token_check = tokio::time::interval(TOKEN_CHECK_INTERVAL);
        token_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Bytes that arrived with the handshake are processed before reading more.
        let mut have_input = !read_buf.is_empty();
        loop {
            if have_input {
                have_input = false;
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
            }
            if eof {
                self.engine.connection_lost();
            }
            self.process_events();
            self.end_round();

            // Flush.
            let now = elapsed_ms(self.epoch);
            self.engine.poll_output(&mut frames, now);
            if !frames.is_empty() {
                write_buf.clear();
                for frame in frames.drain(..) {
                    encode_frame(&frame, &mut write_buf);
                }
                if stream.write_all(&write_buf).await.is_err() {
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
            if !self.pending_sessions.is_empty() {
                // Sessions also free up without a wake-up (a lock running out, a receiver
                // leaving), so waiting receivers look again now and then.
                sleep_for = sleep_for.min(SESSION_RETRY_INTERVAL);
            }
            let has_pending = !self.pending.is_empty();
            tokio::select! {
                read = stream.read_buf(&mut read_buf) => {
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
                () = self.notify.notified() => {
                    self.pump_all();
                    self.retry_pending_sessions();
                }
                _ = token_check.tick() => {
                    self.drop_expired_claims();
                    self.drop_lost_sessions();
                }
                () = tokio::time::sleep(sleep_for) => {
                    self.retry_pending_sessions();
                    let now = elapsed_ms(self.epoch);
                    match self.engine.tick(now) {
                        TickAction::IdleTimeout => tracing::debug!("idle timeout"),
                        TickAction::SendHeartbeat | TickAction::Nothing => {}
                    }
                }
                changed = shutdown.changed() => {
                    if changed.is_err() || *shutdown.borrow() {
                        // Finish in-flight writes before saying goodbye.
                        while let Some((commit, actions)) = self.pending.pop_front() {
                            let result = commit.await;
                            self.apply_actions(result.is_ok(), actions);
                        }
                        self.engine.close(Some(ErrorCondition::new(
                            conditions::CONNECTION_FORCED,
                            "The broker is shutting down.",
                        )));
                    }
                }
            }
        }
    }

    fn finish_commit(&mut self, result: (Result<(), busbar_store::StoreError>, Vec<AfterCommit>)) {
        let (outcome, actions) = result;
        if let Err(error) = &outcome {
            tracing::error!(%error, "store commit failed");
        }
        self.apply_actions(outcome.is_ok(), actions);
    }

    /// Moves this round's actions behind its commit (or runs them now if nothing needed
    /// to become durable).
    fn end_round(&mut self) {
        let actions = std::mem::take(&mut self.round_actions);
        match self.round_commit.take() {
            Some(commit) => self.pending.push_back((Box::pin(commit), actions)),
            None if actions.is_empty() => {}
            None => match self.pending.back_mut() {
                // Keep acknowledgements in order behind earlier durable work.
                Some((_, earlier)) => earlier.extend(actions),
                None => self.apply_actions(true, actions),
            },
        }
    }

    fn apply_actions(&mut self, durable: bool, actions: Vec<AfterCommit>) {
        for action in actions {
            match action {
                AfterCommit::Settle {
                    link,
                    delivery_id,
                    state,
                } => {
                    let state = if durable {
                        state
                    } else {
                        rejected(
                            conditions::INTERNAL_ERROR,
                            "The broker could not store the change.",
                        )
                    };
                    let _ = self.engine.settle(link, delivery_id, state);
                }
                AfterCommit::Respond {
                    request_link,
                    reply_to,
                    node,
                    payload,
                } => self.respond(request_link, reply_to.as_deref(), &node, payload),
            }
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
            match event {
                Event::Opened { hostname, .. } => {
                    if let Some(host) = hostname.filter(|h| !h.is_empty()) {
                        self.hostname = host;
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
                Event::Closed { .. } => {}
            }
        }
    }

    fn is_responder(&self, link: LinkRef) -> bool {
        matches!(self.links.get(&link), Some(LinkKind::Responses))
    }

    fn refuse(&mut self, link: LinkRef, condition: &str, description: String) {
        tracing::debug!(condition, %description, "attach refused");
        let _ = self
            .engine
            .refuse_attach(link, ErrorCondition::new(condition, description));
    }

    fn not_found(&mut self, link: LinkRef, path: &str) {
        let description = conditions::entity_not_found_description(&self.hostname, path);
        self.refuse(link, conditions::NOT_FOUND, description);
    }

    fn on_attach(&mut self, link: LinkRef, attach: &Attach) {
        let broker_sends = link.role() == Role::Sender;
        let raw_address = if broker_sends {
            attach.source.as_ref().and_then(|s| s.address.clone())
        } else {
            match &attach.target {
                Some(TargetKind::Target(t)) => t.address.clone(),
                Some(TargetKind::Other(_)) => {
                    self.refuse(
                        link,
                        conditions::NOT_IMPLEMENTED,
                        "Transactions are not supported.".to_owned(),
                    );
                    return;
                }
                None => None,
            }
        };
        let Some(raw_address) = raw_address else {
            self.refuse(
                link,
                conditions::INVALID_FIELD,
                "The link has no address.".to_owned(),
            );
            return;
        };
        let parsed = match address::parse(&raw_address) {
            Ok(parsed) => parsed,
            Err(error) => {
                self.refuse(link, conditions::NOT_FOUND, error.to_string());
                return;
            }
        };
        match parsed {
            Address::Cbs => {
                if broker_sends {
                    self.accept_responder(link, attach, "$cbs".to_owned());
                } else {
                    self.accept(link, AttachReply::default(), LinkKind::CbsRequests);
                }
            }
            Address::Management { path, sub } => {
                let (node, requests) = if sub == SubQueue::Main
                    && let Some(topic) = self.broker.topic(&path)
                {
                    let node = format!("{}/$management", topic.name);
                    (node, LinkKind::TopicManagementRequests(topic))
                } else {
                    let Some(entity) = self.broker.entity(&path) else {
                        return self.not_found(link, &path);
                    };
                    let Some(kind) = sub_queue_kind(sub) else {
                        return self.not_found(link, &parsed_path(&path, sub));
                    };
                    let node = format!("{}/$management", parsed_path(&path, sub));
                    (node, LinkKind::ManagementRequests { entity, kind })
                };
                if !self.broker.authorized(&self.claims, &node, |_| true) {
                    return self.unauthorized(link, &node);
                }
                let node = node.to_ascii_lowercase();
                if broker_sends {
                    self.accept_responder(link, attach, node);
                } else {
                    self.accept(link, AttachReply::default(), requests);
                }
            }
            Address::Entity { path, sub } => {
                if let Some(topic) = self.broker.topic(&path) {
                    return self.attach_topic(link, topic, sub, broker_sends);
                }
                let Some(entity) = self.broker.entity(&path) else {
                    return self.not_found(link, &path);
                };
                let Some(kind) = sub_queue_kind(sub) else {
                    return self.not_found(link, &parsed_path(&path, sub));
                };
                if broker_sends {
                    let full_path = parsed_path(&path, sub);
                    if !self
                        .broker
                        .authorized(&self.claims, &full_path, |c| c.rights.can_listen())
                    {
                        return self.unauthorized(link, &full_path);
                    }
                    let mode = if attach.snd_settle_mode == SenderSettleMode::Settled {
                        ReceiveMode::ReceiveAndDelete
                    } else {
                        ReceiveMode::PeekLock
                    };
                    let consumer = ConsumerId((self.connection_id << 24) | self.next_consumer);
                    self.next_consumer += 1;
                    let consumer = ConsumerLink {
                        entity,
                        kind,
                        mode,
                        consumer,
                        session: None,
                    };
                    self.attach_consumer(link, attach, consumer, &raw_address);
                } else {
                    if kind != SubQueueKind::Main || is_subscription_path(&path) {
                        self.refuse(
                            link,
                            conditions::NOT_ALLOWED,
                            format!("Messages can't be sent to '{raw_address}'."),
                        );
                        return;
                    }
                    if !self
                        .broker
                        .authorized(&self.claims, &path, |c| c.rights.can_send())
                    {
                        return self.unauthorized(link, &path);
                    }
                    let reply = AttachReply {
                        max_message_size: Some(self.broker.settings.max_message_size),
                        ..AttachReply::default()
                    };
                    self.accept(link, reply, LinkKind::Producer(SendTarget::Queue(entity)));
                }
            }
        }
    }

    /// A receiver on a queue or subscription: plain, or a session receiver (which waits for
    /// a free session, see [`PendingSession`]).
    fn attach_consumer(
        &mut self,
        link: LinkRef,
        attach: &Attach,
        consumer: ConsumerLink,
        address: &str,
    ) {
        let requires_session =
            consumer.kind == SubQueueKind::Main && consumer.entity.requires_session;
        match (sessions::requested_session(attach), requires_session) {
            (None, false) => {
                let reply = AttachReply {
                    initial_delivery_count: Some(0),
                    ..AttachReply::default()
                };
                self.accept(link, reply, LinkKind::Consumer(consumer));
            }
            (None, true) => self.refuse(
                link,
                conditions::NOT_ALLOWED,
                format!("'{address}' requires sessions: receive from it with a session receiver."),
            ),
            (Some(_), false) => self.refuse(
                link,
                conditions::NOT_ALLOWED,
                format!(
                    "'{address}' does not require sessions: receive from it without a session."
                ),
            ),
            (Some(requested), true) => {
                let wait = sessions::wait_ms(attach).unwrap_or(sessions::DEFAULT_WAIT_MS);
                let pending = PendingSession {
                    link,
                    consumer,
                    source: attach.source.clone(),
                    requested,
                    deadline_ms: self.broker.now_ms().saturating_add(wait),
                };
                if let Some(waiting) = self.try_accept_session(pending) {
                    self.pending_sessions.push(waiting);
                }
            }
        }
    }

    /// Answers a session receiver's attach if it can be: with the session, or with the
    /// refusal; gives it back if it must go on waiting.
    fn try_accept_session(&mut self, mut pending: PendingSession) -> Option<PendingSession> {
        let now = self.broker.now_ms();
        let pick = match &pending.requested {
            Some(id) => SessionPick::Id(id),
            None => SessionPick::NextAvailable,
        };
        let result = {
            let mut state = pending.consumer.entity.lock();
            let result = state
                .queue
                .accept_session(pick, pending.consumer.consumer, now);
            if matches!(result, Ok(None)) {
                state.wait(&self.notify);
            }
            result
        };
        match result {
            Ok(Some(grant)) => {
                let reply = sessions::attach_reply(pending.source.as_ref(), &grant);
                pending.consumer.session = Some(grant.session_id);
                self.accept(pending.link, reply, LinkKind::Consumer(pending.consumer));
                None
            }
            Ok(None) if now < pending.deadline_ms => Some(pending),
            Ok(None) => {
                self.refuse(
                    pending.link,
                    conditions::TIMEOUT,
                    "The operation did not complete within the allotted timeout.".to_owned(),
                );
                None
            }
            Err(CoreError::SessionCannotBeLocked(id)) => {
                self.refuse(
                    pending.link,
                    conditions::SESSION_CANNOT_BE_LOCKED,
                    format!(
                        "The requested session '{id}' cannot be accepted. It may be locked by another receiver."
                    ),
                );
                None
            }
            Err(error) => {
                self.refuse(pending.link, conditions::INTERNAL_ERROR, error.to_string());
                None
            }
        }
    }

    /// Retries every waiting session receiver.
    fn retry_pending_sessions(&mut self) {
        for pending in std::mem::take(&mut self.pending_sessions) {
            if let Some(waiting) = self.try_accept_session(pending) {
                self.pending_sessions.push(waiting);
            }
        }
    }

    /// Detaches session receivers whose session lock ran out, as the service does.
    fn drop_lost_sessions(&mut self) {
        let now = self.broker.now_ms();
        let lost: Vec<LinkRef> = self
            .links
            .iter()
            .filter_map(|(link, kind)| match kind {
                LinkKind::Consumer(ConsumerLink {
                    entity,
                    consumer,
                    session: Some(id),
                    ..
                }) if !entity.lock().queue.holds_session(id, *consumer, now) => Some(*link),
                _ => None,
            })
            .collect();
        for link in lost {
            self.detach_with(
                link,
                conditions::SESSION_LOCK_LOST,
                "The session lock has expired; accept the session again.",
            );
        }
    }

    /// Detaches `link` with an error, and forgets it.
    fn detach_with(&mut self, link: LinkRef, condition: &str, description: &str) {
        let _ = self
            .engine
            .detach(link, Some(ErrorCondition::new(condition, description)));
        // The engine reports no Detached for links the broker detaches itself.
        self.on_detached(link);
    }

    /// A link to a topic: senders publish to it; receivers must name a subscription.
    fn attach_topic(
        &mut self,
        link: LinkRef,
        topic: Arc<TopicEntity>,
        sub: SubQueue,
        broker_sends: bool,
    ) {
        if broker_sends || sub != SubQueue::Main {
            return self.refuse(
                link,
                conditions::NOT_ALLOWED,
                format!(
                    "'{}' is a topic: receive from one of its subscriptions, '{}/Subscriptions/<name>'.",
                    topic.name, topic.name
                ),
            );
        }
        if !self
            .broker
            .authorized(&self.claims, &topic.name, |c| c.rights.can_send())
        {
            let name = topic.name.clone();
            return self.unauthorized(link, &name);
        }
        let reply = AttachReply {
            max_message_size: Some(self.broker.settings.max_message_size),
            ..AttachReply::default()
        };
        self.accept(link, reply, LinkKind::Producer(SendTarget::Topic(topic)));
    }

    /// Forgets expired tokens and detaches, with `amqp:unauthorized-access`, every link
    /// that no remaining token covers (as Service Bus drops links when a token expires).
    fn drop_expired_claims(&mut self) {
        let now = self.broker.now_unix_secs();
        if !self
            .claims
            .iter()
            .any(|c| c.is_expired(now, TOKEN_GRACE_SECS))
        {
            return;
        }
        self.claims.retain(|c| !c.is_expired(now, TOKEN_GRACE_SECS));
        let mut lost = Vec::new();
        for (link, kind) in &self.links {
            let still_allowed = match kind {
                LinkKind::Producer(target) => {
                    self.broker
                        .authorized(&self.claims, target.name(), |c| c.rights.can_send())
                }
                LinkKind::Consumer(consumer) => self.broker.authorized(
                    &self.claims,
                    &parsed_path(&consumer.entity.name, sub_queue_of(consumer.kind)),
                    |c| c.rights.can_listen(),
                ),
                LinkKind::ManagementRequests { entity, kind } => self.broker.authorized(
                    &self.claims,
                    &parsed_path(&entity.name, sub_queue_of(*kind)),
                    |_| true,
                ),
                LinkKind::TopicManagementRequests(topic) => {
                    self.broker.authorized(&self.claims, &topic.name, |_| true)
                }
                LinkKind::CbsRequests | LinkKind::Responses => true,
            };
            if !still_allowed {
                lost.push(*link);
            }
        }
        for link in lost {
            tracing::debug!(handle = link.handle(), "token expired; detaching");
            self.detach_with(
                link,
                conditions::UNAUTHORIZED_ACCESS,
                "The token for this link has expired; send a new one on $cbs.",
            );
        }
    }

    fn unauthorized(&mut self, link: LinkRef, path: &str) {
        self.refuse(
            link,
            conditions::UNAUTHORIZED_ACCESS,
            format!(
                "Unauthorized access to '{path}': send a valid token for it on $cbs (put-token) first."
            ),
        );
    }

    fn accept(&mut self, link: LinkRef, reply: AttachReply, kind: LinkKind) {
        if self.engine.accept_attach(link, reply).is_ok() {
            self.links.insert(link, kind);
        }
    }

    fn accept_responder(&mut self, link: LinkRef, attach: &Attach, node: String) {
        let target = match &attach.target {
            Some(TargetKind::Target(t)) => t.address.clone(),
            _ => None,
        };
        let reply = AttachReply {
            initial_delivery_count: Some(0),
            ..AttachReply::default()
        };
        if self.engine.accept_attach(link, reply).is_ok() {
            self.links.insert(link, LinkKind::Responses);
            self.responders.push(ResponseLink {
                link,
                name: attach.name.clone(),
                node,
                target,
                pending: VecDeque::new(),
            });
        }
    }

    fn on_detached(&mut self, link: LinkRef) {
        self.pending_sessions.retain(|p| p.link != link);
        match self.links.remove(&link) {
            Some(LinkKind::Consumer(consumer)) => {
                self.outstanding.retain(|_, o| o.link != link);
                let waiters = {
                    let mut state = consumer.entity.lock();
                    let released = state.queue.release_all(consumer.consumer);
                    if released > 0 {
                        state.take_waiters()
                    } else {
                        Vec::new()
                    }
                };
                wake(waiters);
            }
            Some(LinkKind::Responses) => self.responders.retain(|r| r.link != link),
            _ => {}
        }
    }

    /// Unlocks everything this connection held; the connection is gone.
    fn release_everything(&mut self) {
        let links: Vec<LinkRef> = self.links.keys().copied().collect();
        for link in links {
            self.on_detached(link);
        }
    }

    // -----------------------------------------------------------------------------------
    // Incoming messages
    // -----------------------------------------------------------------------------------

    fn on_message(&mut self, message: IncomingMessage) {
        match self.links.get(&message.link) {
            Some(LinkKind::Producer(target)) => {
                let route = match target {
                    SendTarget::Queue(entity) => self.broker.route(entity),
                    SendTarget::Topic(topic) => Route::Publish(Arc::clone(topic)),
                };
                self.enqueue(route, message);
            }
            Some(LinkKind::CbsRequests) => self.put_token(message),
            Some(LinkKind::ManagementRequests { entity, kind }) => {
                let node = format!(
                    "{}/$management",
                    parsed_path(&entity.name, sub_queue_of(*kind))
                );
                let entity = Arc::clone(entity);
                let kind = *kind;
                self.management(&node, message, |broker, request| {
                    let context = management::Context {
                        broker,
                        entity: &entity,
                        kind,
                    };
                    management::handle(&context, request)
                });
            }
            Some(LinkKind::TopicManagementRequests(topic)) => {
                let node = format!("{}/$management", topic.name);
                let topic = Arc::clone(topic);
                self.management(&node, message, |broker, request| {
                    management::handle_topic(broker, &topic, request)
                });
            }
            _ => {
                if !message.settled {
                    let _ = self.engine.settle(
                        message.link,
                        message.delivery_id,
                        rejected(conditions::NOT_ALLOWED, "This link does not take messages."),
                    );
                }
            }
        }
    }

    fn settle_now(&mut self, message: &IncomingMessage, state: DeliveryState) {
        if !message.settled {
            let _ = self.engine.settle(message.link, message.delivery_id, state);
        }
    }

    fn enqueue(&mut self, route: Route, message: IncomingMessage) {
        let batch = match new_messages(&message.payload, message.message_format) {
            Ok(batch) => batch,
            Err(error) => {
                return self.settle_now(
                    &message,
                    rejected(
                        conditions::DECODE_ERROR,
                        format!("The message can't be read: {error}"),
                    ),
                );
            }
        };
        if let Route::Deliver(entity) = &route
            && entity.requires_session
            && batch.iter().any(|m| m.session_id.is_none())
        {
            return self.settle_now(
                &message,
                rejected(
                    conditions::NOT_ALLOWED,
                    format!(
                        "'{}' requires sessions: every message sent to it needs a session id.",
                        entity.name
                    ),
                ),
            );
        }
        let now = self.broker.now_ms();
        let mut journal = self.broker.journal();
        let result = self.broker.store_routed(&route, batch, now, &mut journal);
        match result {
            Ok(_) => {
                self.keep_commit(journal.into_commit());
                if !message.settled {
                    self.round_actions.push(AfterCommit::Settle {
                        link: message.link,
                        delivery_id: message.delivery_id,
                        state: DeliveryState::Accepted,
                    });
                }
            }
            Err(error) => {
                let condition = match error {
                    CoreError::QuotaExceeded { .. } => conditions::RESOURCE_LIMIT_EXCEEDED,
                    _ => {
                        tracing::error!(%error, "enqueue failed");
                        conditions::INTERNAL_ERROR
                    }
                };
                self.settle_now(&message, rejected(condition, error.to_string()));
            }
        }
    }

    fn put_token(&mut self, message: IncomingMessage) {
        self.settle_now(&message, DeliveryState::Accepted);
        let request = match Request::parse(&message.payload) {
            Ok(request) => request,
            Err(error) => {
                tracing::debug!(%error, "unreadable put-token request");
                return;
            }
        };
        let (status, description) = match request.body.as_str() {
            Some(token) => match sas::validate(
                token,
                &self.broker.settings.policies,
                self.broker.now_unix_secs(),
                TOKEN_GRACE_SECS,
            ) {
                Ok(claims) => {
                    self.claims.retain(|c| c.audience != claims.audience);
                    self.claims.push(claims);
                    (200, "OK".to_owned())
                }
                Err(error) => {
                    tracing::debug!(%error, "put-token refused");
                    (error.cbs_status_code(), error.to_string())
                }
            },
            None => (
                400,
                "The request body must be the token as a string.".to_owned(),
            ),
        };
        let payload = cbs_response(request.message_id.as_ref(), status, &description);
        self.respond(message.link, request.reply_to.as_deref(), "$cbs", payload);
    }

    /// Answers a request to the management node `node` with what `handle` makes of it,
    /// once what it changed is durable.
    fn management(
        &mut self,
        node: &str,
        message: IncomingMessage,
        handle: impl FnOnce(&Arc<Broker<S>>, &Request) -> (Bytes, Option<S::Commit>),
    ) {
        self.settle_now(&message, DeliveryState::Accepted);
        let request = match Request::parse(&message.payload) {
            Ok(request) => request,
            Err(error) => {
                tracing::debug!(%error, "unreadable management request");
                return;
            }
        };
        let node = node.to_ascii_lowercase();
        let (payload, commit) = handle(&self.broker, &request);
        let reply_to = request.reply_to.clone();
        match commit {
            Some(commit) => {
                self.keep_commit(Some(commit));
                self.round_actions.push(AfterCommit::Respond {
                    request_link: message.link,
                    reply_to,
                    node,
                    payload,
                });
            }
            None => self.respond(message.link, reply_to.as_deref(), &node, payload),
        }
    }

    /// Routes a response: the link whose target is the reply-to, else the link named by
    /// it, else the node's response link on the request's session.
    fn respond(
        &mut self,
        request_link: LinkRef,
        reply_to: Option<&str>,
        node: &str,
        payload: Bytes,
    ) {
        let index = reply_to
            .and_then(|to| {
                self.responders
                    .iter()
                    .position(|r| r.target.as_deref() == Some(to))
                    .or_else(|| self.responders.iter().position(|r| r.name == to))
            })
            .or_else(|| {
                self.responders
                    .iter()
                    .position(|r| r.node == node && r.link.session() == request_link.session())
            })
            .or_else(|| self.responders.iter().position(|r| r.node == node));
        let Some(index) = index else {
            tracing::debug!(node, "no response link for a request");
            return;
        };
        self.responders[index].pending.push_back(payload);
        let link = self.responders[index].link;
        self.flush_responses(link);
    }

    fn flush_responses(&mut self, link: LinkRef) {
        let Some(responder) = self.responders.iter_mut().find(|r| r.link == link) else {
            return;
        };
        while self.engine.send_capacity(link) > 0 {
            let Some(payload) = responder.pending.pop_front() else {
                break;
            };
            let tag = Bytes::copy_from_slice(&self.next_token.to_be_bytes());
            self.next_token += 1;
            if self
                .engine
                .send_message(link, tag, payload, true, 0)
                .is_err()
            {
                break;
            }
        }
    }

    // -----------------------------------------------------------------------------------
    // Deliveries
    // -----------------------------------------------------------------------------------

    fn pump_all(&mut self) {
        let consumers: Vec<LinkRef> = self
            .links
            .iter()
            .filter(|(_, kind)| matches!(kind, LinkKind::Consumer(_)))
            .map(|(link, _)| *link)
            .collect();
        for link in consumers {
            self.pump(link);
            if self.engine.link_draining(link) {
                let _ = self.engine.drain_complete(link);
            }
        }
    }

    /// Sends what the link's credit allows; with nothing to send, waits on the queue.
    fn pump(&mut self, link: LinkRef) {
        let Some(LinkKind::Consumer(consumer)) = self.links.get(&link) else {
            return;
        };
        let entity = Arc::clone(&consumer.entity);
        let (kind, mode, consumer_id) = (consumer.kind, consumer.mode, consumer.consumer);
        let session = consumer.session.clone();
        loop {
            let capacity = self.engine.send_capacity(link).min(DELIVERY_BATCH);
            if capacity == 0 {
                return;
            }
            let now = self.broker.now_ms();
            let mut journal = self.broker.journal();
            let mut deliveries = Vec::with_capacity(capacity as usize);
            let mut failure = None;
            {
                let mut state = entity.lock();
                while deliveries.len() < capacity as usize {
                    let next = match session.as_deref() {
                        Some(id) => {
                            state
                                .queue
                                .next_in_session(id, mode, consumer_id, now, &mut journal)
                        }
                        None => state.queue.next_for_delivery(
                            kind,
                            mode,
                            consumer_id,
                            now,
                            &mut journal,
                        ),
                    };
                    match next {
                        Ok(Some(delivery)) => deliveries.push(delivery),
                        Ok(None) => {
                            state.wait(&self.notify);
                            break;
                        }
                        Err(error) => {
                            failure = Some(error);
                            break;
                        }
                    }
                }
            }
            // Receive-and-delete removals are not waited for: the message is handed out
            // either way, and a crash before the sync redelivers it (at least once).
            drop(journal.into_commit());
            entity.stats.add_delivered(deliveries.len());
            if let Some(CoreError::SessionLockLost) = failure {
                for delivery in deliveries {
                    self.send_delivery(link, &entity, kind, delivery);
                }
                return self.detach_with(
                    link,
                    conditions::SESSION_LOCK_LOST,
                    "The session lock has expired; accept the session again.",
                );
            }
            if let Some(error) = failure {
                tracing::error!(entity = %entity.name, %error, "delivery failed");
            }
            let full_batch = deliveries.len() == capacity as usize;
            for delivery in deliveries {
                self.send_delivery(link, &entity, kind, delivery);
            }
            if !full_batch {
                return;
            }
        }
    }

    fn send_delivery(
        &mut self,
        link: LinkRef,
        entity: &Arc<Entity>,
        kind: SubQueueKind,
        delivery: Delivery,
    ) {
        let body = match delivery.body {
            Some(body) => body,
            None => match self.broker.store.read_body(delivery.body_ref) {
                Ok(body) => body,
                Err(error) => {
                    tracing::error!(entity = %entity.name, seq = delivery.seq, %error, "body unreadable");
                    if let Some(lock) = delivery.lock {
                        let _ = entity
                            .lock()
                            .queue
                            .release(kind, lock.token, self.broker.now_ms());
                    }
                    return;
                }
            },
        };
        let stamp = Stamp {
            sequence_number: i64::try_from(delivery.seq).unwrap_or(i64::MAX),
            enqueued_at_ms: delivery.meta.enqueued_at_ms,
            delivery_count: delivery.meta.delivery_count,
            locked_until_ms: delivery.lock.map(|l| l.locked_until_ms),
            state: delivery.meta.state as i32,
            expires_at_ms: delivery.meta.expires_at_ms,
        };
        let mut payload = BytesMut::with_capacity(body.len() + 96);
        if let Err(error) = write_delivery(&mut payload, &body, &stamp) {
            tracing::error!(entity = %entity.name, seq = delivery.seq, %error, "stored message unreadable");
            return;
        }
        let token = self.next_token;
        self.next_token += 1;
        let (tag, settled) = match delivery.lock {
            Some(lock) => (Bytes::copy_from_slice(&lock.token.to_bytes_le()), false),
            None => (
                Bytes::copy_from_slice(&u128::from(delivery.seq).to_le_bytes()),
                true,
            ),
        };
        match self
            .engine
            .send_message(link, tag, payload.freeze(), settled, token)
        {
            Ok(_) => {
                if let Some(lock) = delivery.lock {
                    self.outstanding.insert(
                        token,
                        Outstanding {
                            link,
                            entity: Arc::clone(entity),
                            kind,
                            lock: lock.token,
                        },
                    );
                }
            }
            Err(error) => {
                tracing::debug!(%error, "delivery not sent");
                if let Some(lock) = delivery.lock {
                    let _ = entity
                        .lock()
                        .queue
                        .release(kind, lock.token, self.broker.now_ms());
                }
            }
        }
    }

    fn on_settled(
        &mut self,
        link: LinkRef,
        delivery_id: u32,
        token: u64,
        state: Option<DeliveryState>,
        settled_by_peer: bool,
    ) {
        let settlement = match Settlement::from_state(state.as_ref()) {
            Some(settlement) => settlement,
            // Settled without an outcome: nothing was decided, so the lock goes back.
            None if settled_by_peer => Settlement::Release,
            None => return,
        };
        let Some(outstanding) = self.outstanding.remove(&token) else {
            if !settled_by_peer {
                let _ = self.engine.settle(link, delivery_id, lock_lost());
            }
            return;
        };
        let echo = settlement.echo();
        let now = self.broker.now_ms();
        // A completion the client settled itself is acknowledged to no one: losing it in a
        // crash redelivers the message, so it needs no sync of its own.
        let relaxed = settled_by_peer && matches!(settlement, Settlement::Complete);
        let mut journal = if relaxed {
            self.broker.relaxed_journal()
        } else {
            self.broker.journal()
        };
        let kind = outstanding.kind;
        let lock = outstanding.lock;
        let (result, waiters) = {
            let mut state = outstanding.entity.lock();
            let queue = &mut state.queue;
            let result = match &settlement {
                Settlement::Complete => queue.complete(kind, lock, now, &mut journal),
                Settlement::Release => queue.release(kind, lock, now),
                Settlement::Abandon { properties } => {
                    let edit = body_edit(properties);
                    queue.abandon(kind, lock, now, edit.as_ref().map(|e| e as _), &mut journal)
                }
                Settlement::Defer { properties } => {
                    let edit = body_edit(properties);
                    queue.defer(kind, lock, now, edit.as_ref().map(|e| e as _), &mut journal)
                }
                Settlement::DeadLetter {
                    reason,
                    description,
                    properties,
                } => {
                    let edit = body_edit(properties);
                    queue.dead_letter(
                        kind,
                        lock,
                        now,
                        reason.as_deref(),
                        description.as_deref(),
                        edit.as_ref().map(|e| e as _),
                        &mut journal,
                    )
                }
            };
            let frees_message =
                matches!(settlement, Settlement::Release | Settlement::Abandon { .. });
            let waiters = if result.is_ok() && frees_message {
                state.take_waiters()
            } else {
                Vec::new()
            };
            (result, waiters)
        };
        wake(waiters);
        match result {
            Ok(()) => {
                let commit = journal.into_commit();
                if relaxed {
                    // Nothing waits for it; later commits of this round still cover it.
                    drop(commit);
                } else if settled_by_peer {
                    self.keep_commit(commit);
                } else if commit.is_some() {
                    self.keep_commit(commit);
                    self.round_actions.push(AfterCommit::Settle {
                        link,
                        delivery_id,
                        state: echo,
                    });
                } else {
                    let _ = self.engine.settle(link, delivery_id, echo);
                }
            }
            Err(CoreError::LockLost | CoreError::MessageNotFound(_)) => {
                if !settled_by_peer {
                    let _ = self.engine.settle(link, delivery_id, lock_lost());
                }
            }
            Err(error) => {
                tracing::error!(entity = %outstanding.entity.name, %error, "settlement failed");
                if !settled_by_peer {
                    let _ = self.engine.settle(
                        link,
                        delivery_id,
                        rejected(conditions::INTERNAL_ERROR, error.to_string()),
                    );
                }
            }
        }
    }
}

type Edit = Box<dyn Fn(&Bytes) -> Bytes>;

/// The body rewrite merging `properties` into the application properties, if any.
fn body_edit(properties: &[(String, Value)]) -> Option<Edit> {
    if properties.is_empty() {
        return None;
    }
    let properties = properties.to_vec();
    Some(Box::new(move |body: &Bytes| {
        busbar_servicebus::message::with_application_properties(body, &properties)
            .unwrap_or_else(|_| body.clone())
    }))
}

/// Whether `path` names a subscription (`<topic>/Subscriptions/<name>`).
fn is_subscription_path(path: &str) -> bool {
    path.split('/')
        .rev()
        .nth(1)
        .is_some_and(|segment| segment.eq_ignore_ascii_case("Subscriptions"))
}

fn sub_queue_kind(sub: SubQueue) -> Option<SubQueueKind> {
    match sub {
        SubQueue::Main => Some(SubQueueKind::Main),
        SubQueue::DeadLetter => Some(SubQueueKind::DeadLetter),
        SubQueue::TransferDeadLetter => Some(SubQueueKind::TransferDeadLetter),
    }
}

fn sub_queue_of(kind: SubQueueKind) -> SubQueue {
    match kind {
        SubQueueKind::Main => SubQueue::Main,
        SubQueueKind::DeadLetter => SubQueue::DeadLetter,
        SubQueueKind::TransferDeadLetter => SubQueue::TransferDeadLetter,
    }
}

fn parsed_path(path: &str, sub: SubQueue) -> String {
    format!("{path}{}", sub.suffix())
}

/// Awaits the oldest pending commit.
async fn poll_front(
    pending: &mut VecDeque<(PendingCommit, Vec<AfterCommit>)>,
) -> (Result<(), busbar_store::StoreError>, Vec<AfterCommit>) {
    std::future::poll_fn(|cx| match pending.front_mut() {
        Some((commit, _)) => match commit.as_mut().poll(cx) {
            Poll::Ready(result) => {
                let actions = pending
                    .pop_front()
                    .map(|(_, actions)| actions)
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
    pending: &mut VecDeque<(PendingCommit, Vec<AfterCommit>)>,
) -> Option<(Result<(), busbar_store::StoreError>, Vec<AfterCommit>)> {
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    let (commit, _) = pending.front_mut()?;
    match commit.as_mut().poll(&mut cx) {
        Poll::Ready(result) => pending.pop_front().map(|(_, actions)| (result, actions)),
        Poll::Pending => None,
    }
}

//! The connection state machine: frames in, frames and events out.

use std::collections::VecDeque;

use bytes::Bytes;

use super::link::{EarlyFlow, Link, LinkState, Partial, PartialBody};
use super::session::{LinkTable, OutgoingDelivery, Session, SessionCore, SessionState};
use super::{
    AttachReply, ConnectionConfig, ConnectionError, EngineError, Event, IncomingMessage, LinkRef,
    SessionRef, TickAction, condition,
};
use crate::frame::{Frame, FrameBody, MIN_MAX_FRAME_SIZE};
use crate::performative::{
    Attach, Begin, Close, DeliveryState, Detach, Disposition, End, ErrorCondition, Flow, Open,
    Performative, Role, SenderSettleMode, Transfer,
};

/// Marks an unused slot in the remote → local channel table.
const NO_CHANNEL: u16 = u16::MAX;
const FRAME_HEADER_LEN: usize = 8;
/// Upper bound of an encoded transfer performative apart from its delivery tag (small-ulong
/// descriptor, list32 header, five uints, booleans and nulls), so split frames never
/// exceed the peer's max-frame-size whatever encoding the codec picks.
const TRANSFER_OVERHEAD: usize = 64;
const MAX_TAG_LEN: usize = 32;
/// Floor of the keep-alive interval, so a peer announcing a tiny idle timeout cannot make
/// the broker spin.
const MIN_HEARTBEAT_INTERVAL_MS: u64 = 500;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ConnState {
    AwaitingOpen,
    Open,
    /// The broker sent `close`; only the client's `close` is still read.
    CloseSent,
    Closed,
}

/// Frames and events waiting for the server.
#[derive(Debug, Default)]
struct Sink {
    output: Vec<Frame>,
    events: VecDeque<Event>,
}

impl Sink {
    fn frame(&mut self, channel: u16, performative: impl Into<Performative>) {
        self.output.push(Frame::amqp(channel, performative));
    }

    fn transfer(&mut self, channel: u16, transfer: Transfer, payload: Bytes) {
        self.output.push(Frame {
            channel,
            body: FrameBody::Amqp {
                performative: Performative::Transfer(transfer),
                payload,
            },
        });
    }

    fn event(&mut self, event: Event) {
        self.events.push_back(event);
    }

    /// Queues a settled disposition, widening the previous one when it carries the same
    /// outcome for the delivery just before (a run of settlements becomes one frame).
    fn settled_disposition(
        &mut self,
        channel: u16,
        role: Role,
        delivery_id: u32,
        state: DeliveryState,
    ) {
        if let Some(Frame {
            channel: last_channel,
            body:
                FrameBody::Amqp {
                    performative: Performative::Disposition(d),
                    ..
                },
        }) = self.output.last_mut()
            && *last_channel == channel
            && d.role == role
            && d.settled
            && d.last.unwrap_or(d.first).wrapping_add(1) == delivery_id
            && d.state.as_ref() == Some(&state)
        {
            d.last = Some(delivery_id);
            return;
        }
        self.frame(
            channel,
            Disposition {
                role,
                first: delivery_id,
                last: None,
                settled: true,
                state: Some(state),
                batchable: false,
            },
        );
    }
}

/// One AMQP connection, broker side, after the protocol headers and SASL.
#[derive(Debug)]
pub struct Connection {
    config: ConnectionConfig,
    state: ConnState,
    peer_max_frame_size: u32,
    peer_channel_max: u16,
    peer_idle_time_out_ms: Option<u32>,
    /// Indexed by the broker's channel.
    sessions: Vec<Option<Session>>,
    /// Client channel → broker channel.
    remote_channels: Vec<u16>,
    sink: Sink,
    next_serial: u32,
    last_received_ms: u64,
    last_sent_ms: u64,
    /// Reused for the delivery-ids a ranged disposition settles.
    scratch_ids: Vec<u32>,
    /// Credit of client senders is not topped up (see [`Connection::hold_credit`]).
    credit_held: bool,
}

/// A session's counters with the means to write frames for it.
struct SessionOut<'a> {
    config: &'a ConnectionConfig,
    sink: &'a mut Sink,
    channel: u16,
    core: &'a mut SessionCore,
}

/// What a handler of client frames needs, borrowed apart from the rest of the connection.
struct SessionCtx<'a> {
    out: SessionOut<'a>,
    links: &'a mut LinkTable,
    next_serial: &'a mut u32,
    scratch_ids: &'a mut Vec<u32>,
    credit_held: bool,
}

type FrameResult = Result<(), ConnectionError>;

impl Connection {
    /// A connection whose transport was established at `now_ms`.
    pub fn new(config: ConnectionConfig, now_ms: u64) -> Self {
        Connection {
            config,
            state: ConnState::AwaitingOpen,
            peer_max_frame_size: MIN_MAX_FRAME_SIZE,
            peer_channel_max: 0,
            peer_idle_time_out_ms: None,
            sessions: Vec::new(),
            remote_channels: Vec::new(),
            sink: Sink::default(),
            next_serial: 1,
            last_received_ms: now_ms,
            last_sent_ms: now_ms,
            scratch_ids: Vec::new(),
            credit_held: false,
        }
    }

    pub fn config(&self) -> &ConnectionConfig {
        &self.config
    }

    /// The client's max-frame-size (512 until its `open` arrives).
    pub fn peer_max_frame_size(&self) -> u32 {
        self.peer_max_frame_size
    }

    /// True once the broker or the client has closed the connection (or the transport was
    /// lost): flush the output, then drop the socket.
    pub fn is_closed(&self) -> bool {
        matches!(self.state, ConnState::CloseSent | ConnState::Closed)
    }

    // -----------------------------------------------------------------------------------
    // Input
    // -----------------------------------------------------------------------------------

    /// Feeds one decoded frame of any kind.
    pub fn handle(&mut self, frame: Frame, now_ms: u64) -> FrameResult {
        match frame.body {
            FrameBody::Empty => {
                self.handle_heartbeat(now_ms);
                Ok(())
            }
            FrameBody::Amqp {
                performative,
                payload,
            } => self.handle_frame(frame.channel, performative, payload, now_ms),
            FrameBody::Sasl(_) => {
                self.last_received_ms = now_ms;
                Err(self.fail(ConnectionError::new(
                    condition::FRAMING_ERROR,
                    "SASL frame after the SASL exchange",
                )))
            }
        }
    }

    /// An empty frame (keep-alive) arrived.
    pub fn handle_heartbeat(&mut self, now_ms: u64) {
        self.last_received_ms = now_ms;
    }

    /// Feeds one performative with its payload (non-empty only for transfers). An error
    /// means the connection is over: `close(error)` is already queued.
    pub fn handle_frame(
        &mut self,
        channel: u16,
        performative: Performative,
        payload: Bytes,
        now_ms: u64,
    ) -> FrameResult {
        self.last_received_ms = now_ms;
        match self.state {
            ConnState::Closed => return Ok(()),
            ConnState::CloseSent => {
                if matches!(performative, Performative::Close(_)) {
                    self.state = ConnState::Closed;
                }
                return Ok(());
            }
            ConnState::AwaitingOpen => {
                return match performative {
                    Performative::Open(open) => self.on_open(*open),
                    other => Err(self.fail(ConnectionError::new(
                        condition::FRAMING_ERROR,
                        format!("expected open, got {}", other.name()),
                    ))),
                };
            }
            ConnState::Open => {}
        }
        match performative {
            Performative::Open(_) => Err(self.fail(ConnectionError::new(
                condition::NOT_ALLOWED,
                "open received twice",
            ))),
            Performative::Close(close) => {
                self.on_close(close);
                Ok(())
            }
            Performative::Begin(begin) => self.on_begin(channel, begin),
            other => self.on_session_frame(channel, other, payload),
        }
    }

    /// The transport is gone (socket closed or failed): every link and session is
    /// reported gone, then [`Event::Closed`] (unless already reported).
    pub fn connection_lost(&mut self) {
        let already_reported =
            self.state != ConnState::Open && self.state != ConnState::AwaitingOpen;
        self.state = ConnState::Closed;
        if !already_reported {
            self.teardown_sessions();
            self.sink.event(Event::Closed {
                error: None,
                by_peer: true,
            });
        }
    }

    fn on_open(&mut self, open: Open) -> FrameResult {
        let max_frame_size = open.max_frame_size.unwrap_or(u32::MAX);
        if max_frame_size < MIN_MAX_FRAME_SIZE {
            return Err(self.fail(ConnectionError::new(
                condition::INVALID_FIELD,
                format!("max-frame-size {max_frame_size} is below {MIN_MAX_FRAME_SIZE}"),
            )));
        }
        self.peer_max_frame_size = max_frame_size;
        self.peer_channel_max = open.channel_max.unwrap_or(u16::MAX);
        self.peer_idle_time_out_ms = open.idle_time_out.filter(|&t| t > 0);
        self.state = ConnState::Open;
        self.queue_open();
        self.sink.event(Event::Opened {
            container_id: open.container_id,
            hostname: open.hostname,
            max_frame_size,
            idle_time_out_ms: self.peer_idle_time_out_ms,
            properties: open.properties,
        });
        Ok(())
    }

    fn queue_open(&mut self) {
        let open = Open {
            container_id: self.config.container_id.clone(),
            max_frame_size: Some(self.config.max_frame_size.max(MIN_MAX_FRAME_SIZE)),
            channel_max: Some(self.config.channel_max),
            idle_time_out: self.config.idle_time_out_ms,
            ..Open::default()
        };
        self.sink.frame(0, open);
    }

    fn on_close(&mut self, close: Close) {
        self.sink.frame(0, Close { error: None });
        self.state = ConnState::Closed;
        self.teardown_sessions();
        self.sink.event(Event::Closed {
            error: close.error,
            by_peer: true,
        });
    }

    fn on_begin(&mut self, channel: u16, begin: Begin) -> FrameResult {
        if begin.remote_channel.is_some() {
            return Err(self.fail(ConnectionError::new(
                condition::NOT_ALLOWED,
                "begin answers a session the broker never began",
            )));
        }
        if channel > self.config.channel_max {
            return Err(self.fail(ConnectionError::new(
                condition::FRAMING_ERROR,
                format!("channel {channel} is above channel-max"),
            )));
        }
        if self.local_channel(channel).is_some() {
            return Err(self.fail(ConnectionError::new(
                condition::NOT_ALLOWED,
                format!("channel {channel} already has a session"),
            )));
        }
        let max_local = usize::from(self.config.channel_max.min(self.peer_channel_max));
        let local = self
            .sessions
            .iter()
            .position(Option::is_none)
            .unwrap_or(self.sessions.len());
        let Some(local_channel) = u16::try_from(local).ok().filter(|_| local <= max_local) else {
            return Err(self.fail(ConnectionError::new(
                condition::RESOURCE_LIMIT_EXCEEDED,
                "no free channel",
            )));
        };
        let serial = self.take_serial();
        let session = Session::new(
            serial,
            channel,
            begin.next_outgoing_id,
            self.config.incoming_window,
            begin.incoming_window,
            begin.handle_max.unwrap_or(u32::MAX),
        );
        let reply = Begin {
            remote_channel: Some(channel),
            next_outgoing_id: session.core.next_transfer_id,
            incoming_window: self.config.incoming_window,
            outgoing_window: self.config.outgoing_window,
            handle_max: Some(self.config.handle_max),
            ..Begin::default()
        };
        let remote = usize::from(channel);
        if self.remote_channels.len() <= remote {
            self.remote_channels.resize(remote + 1, NO_CHANNEL);
        }
        if let Some(slot) = self.remote_channels.get_mut(remote) {
            *slot = local_channel;
        }
        if self.sessions.len() <= local {
            self.sessions.resize_with(local + 1, || None);
        }
        if let Some(slot) = self.sessions.get_mut(local) {
            *slot = Some(session);
        }
        self.sink.frame(local_channel, reply);
        self.sink.event(Event::SessionBegun {
            session: SessionRef {
                channel: local_channel,
                serial,
            },
        });
        Ok(())
    }

    fn on_session_frame(
        &mut self,
        remote_channel: u16,
        performative: Performative,
        payload: Bytes,
    ) -> FrameResult {
        // Frames for channels never begun or already ended (Python sends detach after
        // end) are dropped rather than treated as fatal.
        let Some(local) = self.local_channel(remote_channel) else {
            return Ok(());
        };
        let Connection {
            config,
            sessions,
            sink,
            next_serial,
            scratch_ids,
            credit_held,
            ..
        } = self;
        let Some(Some(session)) = sessions.get_mut(usize::from(local)) else {
            return Ok(());
        };
        let mut session_gone = false;
        let result = if session.core.state == SessionState::EndSent {
            // Only the client's end, which completes the handshake, still matters.
            session_gone = matches!(performative, Performative::End(_));
            Ok(())
        } else {
            let mut ctx = SessionCtx {
                out: SessionOut {
                    config,
                    sink,
                    channel: local,
                    core: &mut session.core,
                },
                links: &mut session.links,
                next_serial,
                scratch_ids,
                credit_held: *credit_held,
            };
            match performative {
                Performative::Attach(attach) => ctx.on_attach(*attach),
                Performative::Flow(flow) => {
                    ctx.on_flow(&flow);
                    Ok(())
                }
                Performative::Transfer(transfer) => ctx.on_transfer(transfer, payload),
                Performative::Disposition(disposition) => {
                    ctx.on_disposition(disposition);
                    Ok(())
                }
                Performative::Detach(detach) => {
                    ctx.on_detach(detach);
                    Ok(())
                }
                Performative::End(end) => {
                    ctx.on_end(end);
                    session_gone = true;
                    Ok(())
                }
                // Connection-level performatives are dispatched before this point.
                Performative::Open(_) | Performative::Begin(_) | Performative::Close(_) => Ok(()),
            }
        };
        if session_gone {
            self.free_session(local);
        }
        result.map_err(|e| self.fail(e))
    }

    // -----------------------------------------------------------------------------------
    // Output
    // -----------------------------------------------------------------------------------

    /// Moves every queued frame into `out`, in order, to be encoded and written in one
    /// go. `now_ms` is when they will be written (keep-alive bookkeeping).
    pub fn poll_output(&mut self, out: &mut Vec<Frame>, now_ms: u64) {
        if self.sink.output.is_empty() {
            return;
        }
        self.last_sent_ms = now_ms;
        if out.is_empty() {
            std::mem::swap(out, &mut self.sink.output);
        } else {
            out.append(&mut self.sink.output);
        }
    }

    pub fn has_output(&self) -> bool {
        !self.sink.output.is_empty()
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        self.sink.events.pop_front()
    }

    // -----------------------------------------------------------------------------------
    // Time
    // -----------------------------------------------------------------------------------

    /// Checks the idle timers. Call it at [`Connection::next_deadline_ms`] (calling more
    /// often is harmless).
    pub fn tick(&mut self, now_ms: u64) -> TickAction {
        if self.is_closed() {
            return TickAction::Nothing;
        }
        if let Some(limit) = self.peer_silence_limit_ms()
            && now_ms.saturating_sub(self.last_received_ms) > limit
        {
            self.fail(ConnectionError::new(
                condition::RESOURCE_LIMIT_EXCEEDED,
                "idle timeout",
            ));
            return TickAction::IdleTimeout;
        }
        if let Some(interval) = self.heartbeat_interval_ms()
            && self.sink.output.is_empty()
            && now_ms.saturating_sub(self.last_sent_ms) >= interval
        {
            self.sink.output.push(Frame::heartbeat());
            return TickAction::SendHeartbeat;
        }
        TickAction::Nothing
    }

    /// When [`Connection::tick`] next has something to check, if ever.
    pub fn next_deadline_ms(&self) -> Option<u64> {
        if self.is_closed() {
            return None;
        }
        let silence = self
            .peer_silence_limit_ms()
            .map(|l| self.last_received_ms.saturating_add(l).saturating_add(1));
        let heartbeat = self
            .heartbeat_interval_ms()
            .map(|i| self.last_sent_ms.saturating_add(i));
        match (silence, heartbeat) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The peer is dropped after twice the idle timeout the broker announced.
    fn peer_silence_limit_ms(&self) -> Option<u64> {
        self.config
            .idle_time_out_ms
            .filter(|&t| t > 0)
            .map(|t| u64::from(t) * 2)
    }

    /// Half the peer's idle timeout, as the specification advises.
    fn heartbeat_interval_ms(&self) -> Option<u64> {
        if self.state != ConnState::Open {
            return None;
        }
        self.peer_idle_time_out_ms
            .map(|t| (u64::from(t) / 2).max(MIN_HEARTBEAT_INTERVAL_MS))
    }

    // -----------------------------------------------------------------------------------
    // Broker actions
    // -----------------------------------------------------------------------------------

    /// Answers an attach positively: the broker's attach (source and target echoed unless
    /// replaced), then for broker-as-receiver links the initial credit.
    pub fn accept_attach(&mut self, link: LinkRef, reply: AttachReply) -> Result<(), EngineError> {
        let (mut out, l) = self.link_parts(link)?;
        if l.state != LinkState::Attaching {
            return Err(EngineError::AlreadyAnswered);
        }
        let max_message_size = reply
            .max_message_size
            .filter(|&m| m > 0)
            .unwrap_or(out.config.max_message_size);
        let initial_delivery_count = l
            .is_sender()
            .then(|| reply.initial_delivery_count.unwrap_or(0));
        let attach = Attach {
            name: l.name.clone(),
            handle: link.handle,
            role: l.role,
            snd_settle_mode: l.snd_settle_mode,
            rcv_settle_mode: l.rcv_settle_mode,
            source: reply.source.or_else(|| l.requested_source.take()),
            target: reply.target.or_else(|| l.requested_target.take()),
            unsettled: None,
            incomplete_unsettled: false,
            initial_delivery_count,
            max_message_size: Some(max_message_size),
            offered_capabilities: reply.offered_capabilities,
            desired_capabilities: None,
            properties: reply.properties,
        };
        l.requested_source = None;
        l.requested_target = None;
        l.state = LinkState::Attached;
        out.sink.frame(out.channel, attach);
        if l.is_sender() {
            l.delivery_count = initial_delivery_count.unwrap_or(0);
            if let Some(early) = l.early_flow.take() {
                apply_sender_flow(out.sink, link, l, early);
            }
        } else {
            l.max_message_size = max_message_size;
            let credit = reply.credit.unwrap_or(out.config.receiver_credit);
            l.credit_target = credit;
            if credit > 0 {
                l.credit = credit;
                out.link_flow(link.handle, l.delivery_count, credit, false);
            }
        }
        Ok(())
    }

    /// Refuses an attach the way Service Bus does: the broker's attach with null source
    /// and target, immediately followed by `detach(closed=true, error)`. The client's own
    /// detach then completes the handshake silently. No further events for this link.
    pub fn refuse_attach(
        &mut self,
        link: LinkRef,
        error: ErrorCondition,
    ) -> Result<(), EngineError> {
        let (out, l) = self.link_parts(link)?;
        if l.state != LinkState::Attaching {
            return Err(EngineError::AlreadyAnswered);
        }
        queue_refusal(out.sink, out.channel, link.handle, l, true, Some(error));
        l.state = LinkState::DetachSent;
        l.partial = None;
        Ok(())
    }

    /// Detaches (closes) a link; for an unanswered attach this is a refusal. The link's
    /// unsettled deliveries are forgotten. No further events for this link.
    pub fn detach(
        &mut self,
        link: LinkRef,
        error: Option<ErrorCondition>,
    ) -> Result<(), EngineError> {
        let (out, l) = self.link_parts(link)?;
        match l.state {
            LinkState::DetachSent => return Ok(()),
            LinkState::Attaching => {
                queue_refusal(out.sink, out.channel, link.handle, l, true, error);
            }
            LinkState::Attached => {
                out.sink.frame(
                    out.channel,
                    Detach {
                        handle: link.handle,
                        closed: true,
                        error,
                    },
                );
            }
        }
        l.state = LinkState::DetachSent;
        l.partial = None;
        out.core.forget_unsettled(link.handle, l.serial);
        Ok(())
    }

    /// Sends one message (message-format 0); see [`Connection::send_delivery`].
    pub fn send_message(
        &mut self,
        link: LinkRef,
        tag: Bytes,
        payload: Bytes,
        settled: bool,
        token: u64,
    ) -> Result<u32, EngineError> {
        self.send_delivery(link, tag, payload, 0, settled, token)
    }

    /// Sends one delivery on a broker-as-sender link and returns its delivery-id: uses
    /// one credit, takes the session's next delivery-id, and splits the payload into
    /// frames that fit the client's max-frame-size. `token` comes back in
    /// [`Event::Settled`] when the client settles an unsettled delivery. On a link
    /// attached with snd-settle-mode `settled` every delivery goes settled.
    ///
    /// Refused (nothing sent) without credit or while the client's session window is
    /// closed; in the latter case [`Event::CreditChanged`] follows when it reopens.
    pub fn send_delivery(
        &mut self,
        link: LinkRef,
        tag: Bytes,
        payload: Bytes,
        message_format: u32,
        settled: bool,
        token: u64,
    ) -> Result<u32, EngineError> {
        if tag.len() > MAX_TAG_LEN {
            return Err(EngineError::TagTooLong(tag.len()));
        }
        let peer_max_frame_size = usize::try_from(self.peer_max_frame_size).unwrap_or(usize::MAX);
        let (out, l) = self.link_parts(link)?;
        if !l.is_sender() {
            return Err(EngineError::WrongRole(Role::Sender));
        }
        if l.state != LinkState::Attached {
            return Err(EngineError::NotAttached);
        }
        if l.credit == 0 {
            return Err(EngineError::NoCredit);
        }
        let size = payload.len() as u64;
        if l.peer_max_message_size > 0 && size > l.peer_max_message_size {
            return Err(EngineError::MessageTooLarge {
                size,
                max: l.peer_max_message_size,
            });
        }
        let core = out.core;
        if core.remote_incoming_window == 0 {
            core.window_blocked = true;
            return Err(EngineError::SessionWindowClosed);
        }
        let settled = settled || l.snd_settle_mode == SenderSettleMode::Settled;
        l.credit -= 1;
        l.delivery_count = l.delivery_count.wrapping_add(1);
        let delivery_id = core.next_delivery_id;
        core.next_delivery_id = delivery_id.wrapping_add(1);

        let first_room = peer_max_frame_size
            .saturating_sub(FRAME_HEADER_LEN + TRANSFER_OVERHEAD + tag.len())
            .max(1);
        let more_room = peer_max_frame_size
            .saturating_sub(FRAME_HEADER_LEN + TRANSFER_OVERHEAD)
            .max(1);
        let total = payload.len();
        let first_len = total.min(first_room);
        let first = Transfer {
            handle: link.handle,
            delivery_id: Some(delivery_id),
            delivery_tag: Some(tag),
            message_format: Some(message_format),
            settled: Some(settled),
            more: first_len < total,
            ..Transfer::default()
        };
        let mut frames = 1u32;
        if first_len == total {
            out.sink.transfer(out.channel, first, payload);
        } else {
            out.sink
                .transfer(out.channel, first, payload.slice(..first_len));
            let mut offset = first_len;
            while offset < total {
                let end = total.min(offset.saturating_add(more_room));
                // Continuations repeat the id and the settled flag (rhea reads the
                // latter only from the first frame, other clients from any).
                let continuation = Transfer {
                    handle: link.handle,
                    delivery_id: Some(delivery_id),
                    settled: Some(settled),
                    more: end < total,
                    ..Transfer::default()
                };
                out.sink
                    .transfer(out.channel, continuation, payload.slice(offset..end));
                frames = frames.saturating_add(1);
                offset = end;
            }
        }
        core.next_transfer_id = core.next_transfer_id.wrapping_add(frames);
        core.remote_incoming_window = core.remote_incoming_window.saturating_sub(frames);
        if core.remote_incoming_window == 0 {
            // The broker sees no capacity and stops asking; it must hear of the reopening.
            core.window_blocked = true;
        }
        if !settled {
            core.unsettled_out.insert(
                delivery_id,
                OutgoingDelivery {
                    handle: link.handle,
                    link_serial: l.serial,
                    token,
                },
            );
        }
        Ok(delivery_id)
    }

    /// Settles one delivery with a settled disposition: on a broker-as-receiver link the
    /// outcome of a message the client sent (role=receiver); on a broker-as-sender link
    /// the confirmation of a client's unsettled disposition (role=sender). Works after
    /// the link is gone as long as the session lives. Consecutive settlements with the
    /// same outcome go out as one ranged disposition.
    pub fn settle(
        &mut self,
        link: LinkRef,
        delivery_id: u32,
        state: DeliveryState,
    ) -> Result<(), EngineError> {
        self.check_running()?;
        let session = session_mut(&mut self.sessions, link.session)?;
        let role = link.role();
        if role == Role::Sender && session.core.unsettled_out.remove(&delivery_id).is_none() {
            return Err(EngineError::UnknownDelivery(delivery_id));
        }
        self.sink
            .settled_disposition(link.session.channel, role, delivery_id, state);
        Ok(())
    }

    /// Sets the credit of a broker-as-receiver link and sends it; the engine keeps it
    /// topped up to `credit` as deliveries arrive (0 stops the client). Before the attach
    /// is answered it sets what the answer will grant.
    pub fn grant_credit(&mut self, link: LinkRef, credit: u32) -> Result<(), EngineError> {
        let (mut out, l) = self.link_parts(link)?;
        if l.is_sender() {
            return Err(EngineError::WrongRole(Role::Receiver));
        }
        match l.state {
            LinkState::DetachSent => Err(EngineError::UnknownLink),
            LinkState::Attaching => {
                l.credit_target = credit;
                Ok(())
            }
            LinkState::Attached => {
                l.credit_target = credit;
                l.credit = credit;
                out.link_flow(link.handle, l.delivery_count, credit, false);
                Ok(())
            }
        }
    }

    /// Finishes a drain the client asked for: the unused credit is consumed (added to the
    /// delivery-count), credit drops to 0 and `flow(drain=true, link-credit=0,
    /// delivery-count)` goes out. Returns false (and sends nothing) when no drain is
    /// pending.
    pub fn drain_complete(&mut self, link: LinkRef) -> Result<bool, EngineError> {
        let (mut out, l) = self.link_parts(link)?;
        if !l.is_sender() {
            return Err(EngineError::WrongRole(Role::Sender));
        }
        if l.state != LinkState::Attached {
            return Err(EngineError::NotAttached);
        }
        if !l.drain {
            return Ok(false);
        }
        l.delivery_count = l.delivery_count.wrapping_add(l.credit);
        l.credit = 0;
        l.drain = false;
        out.link_flow(link.handle, l.delivery_count, 0, true);
        Ok(true)
    }

    /// Holds back (`true`) or resumes the credit of every link on which the client sends:
    /// while held, credit is not topped up, so clients run out of it and stop sending; on
    /// resuming, links down to half their credit are topped up at once. How the broker
    /// slows senders down while it can't keep up with what they already sent.
    pub fn hold_credit(&mut self, hold: bool) {
        if self.credit_held == hold {
            return;
        }
        self.credit_held = hold;
        if hold {
            return;
        }
        let Connection {
            config,
            sessions,
            sink,
            ..
        } = self;
        for (channel, slot) in sessions.iter_mut().enumerate() {
            let Some(Session { core, links }) = slot else {
                continue;
            };
            let Ok(channel) = u16::try_from(channel) else {
                continue;
            };
            let mut out = SessionOut {
                config,
                sink,
                channel,
                core,
            };
            for (handle, link) in links.iter_mut() {
                if !link.is_sender()
                    && link.state == LinkState::Attached
                    && link.credit_target > 0
                    && link.credit <= link.credit_target / 2
                {
                    link.credit = link.credit_target;
                    out.link_flow(handle, link.delivery_count, link.credit, false);
                }
            }
        }
    }

    /// Whether credit is being held back (see [`Connection::hold_credit`]).
    pub fn credit_held(&self) -> bool {
        self.credit_held
    }

    /// Memory held by deliveries the client has started and not finished, over every link:
    /// what a client can pin without ever completing a message.
    pub fn unfinished_delivery_bytes(&self) -> u64 {
        self.sessions
            .iter()
            .flatten()
            .flat_map(|session| session.links.iter())
            .filter_map(|(_, link)| link.partial.as_ref())
            .map(|partial| partial.held_bytes() as u64)
            .sum()
    }

    /// Links attached or being attached, over every session.
    pub fn link_count(&self) -> usize {
        self.sessions
            .iter()
            .flatten()
            .map(|session| session.links.iter().count())
            .sum()
    }

    /// Current credit of a link as the broker sees it, or `None` if it is gone.
    pub fn link_credit(&self, link: LinkRef) -> Option<u32> {
        self.find_link(link).map(|(_, l)| l.credit)
    }

    /// True while the client asks a broker-as-sender link to drain.
    pub fn link_draining(&self, link: LinkRef) -> bool {
        self.find_link(link).is_some_and(|(_, l)| l.drain)
    }

    /// How many deliveries a broker-as-sender link may send right now: its credit, or 0
    /// while the link is not attached or the client's session window is closed.
    pub fn send_capacity(&self, link: LinkRef) -> u32 {
        match self.find_link(link) {
            Some((core, l))
                if l.is_sender()
                    && l.state == LinkState::Attached
                    && core.state == SessionState::Begun
                    && self.state == ConnState::Open
                    && core.remote_incoming_window > 0 =>
            {
                l.credit
            }
            _ => 0,
        }
    }

    /// Number of deliveries sent unsettled on a session and not settled yet.
    pub fn unsettled_count(&self, session: SessionRef) -> usize {
        self.sessions
            .get(usize::from(session.channel))
            .and_then(Option::as_ref)
            .filter(|s| s.core.serial == session.serial)
            .map_or(0, |s| s.core.unsettled_out.len())
    }

    /// Ends a session (with an error, if given). Its links are reported
    /// [`Event::Detached`], then [`Event::SessionEnded`].
    pub fn end_session(
        &mut self,
        session: SessionRef,
        error: Option<ErrorCondition>,
    ) -> Result<(), EngineError> {
        self.check_running()?;
        let s = session_mut(&mut self.sessions, session)?;
        s.core.state = SessionState::EndSent;
        teardown_links(&mut self.sink, session, s);
        self.sink.frame(
            session.channel,
            End {
                error: error.clone(),
            },
        );
        self.sink.event(Event::SessionEnded { session, error });
        Ok(())
    }

    /// Closes the connection (with an error, if given): `close` is queued, every link and
    /// session is reported gone, then [`Event::Closed`]. Flush the output, then drop the
    /// socket.
    pub fn close(&mut self, error: Option<ErrorCondition>) {
        match self.state {
            ConnState::CloseSent | ConnState::Closed => {}
            ConnState::AwaitingOpen | ConnState::Open => {
                if self.state == ConnState::AwaitingOpen {
                    // A close must follow an open.
                    self.queue_open();
                }
                self.state = ConnState::CloseSent;
                self.sink.frame(
                    0,
                    Close {
                        error: error.clone(),
                    },
                );
                self.teardown_sessions();
                self.sink.event(Event::Closed {
                    error,
                    by_peer: false,
                });
            }
        }
    }

    // -----------------------------------------------------------------------------------
    // Helpers
    // -----------------------------------------------------------------------------------

    fn fail(&mut self, error: ConnectionError) -> ConnectionError {
        self.close(Some(error.condition.clone()));
        error
    }

    fn check_running(&self) -> Result<(), EngineError> {
        if self.state == ConnState::Open {
            Ok(())
        } else {
            Err(EngineError::ConnectionClosed)
        }
    }

    fn take_serial(&mut self) -> u32 {
        let serial = self.next_serial;
        self.next_serial = self.next_serial.wrapping_add(1);
        serial
    }

    fn local_channel(&self, remote: u16) -> Option<u16> {
        match self.remote_channels.get(usize::from(remote)) {
            Some(&c) if c != NO_CHANNEL => Some(c),
            _ => None,
        }
    }

    fn free_session(&mut self, local: u16) {
        if let Some(slot) = self.sessions.get_mut(usize::from(local))
            && let Some(session) = slot.take()
            && let Some(mapped) = self
                .remote_channels
                .get_mut(usize::from(session.core.remote_channel))
            && *mapped == local
        {
            *mapped = NO_CHANNEL;
        }
    }

    /// Reports every live link and session gone and forgets them.
    fn teardown_sessions(&mut self) {
        for (channel, slot) in self.sessions.iter_mut().enumerate() {
            let Some(mut session) = slot.take() else {
                continue;
            };
            if session.core.state == SessionState::EndSent {
                continue;
            }
            let sref = SessionRef {
                channel: u16::try_from(channel).unwrap_or(NO_CHANNEL),
                serial: session.core.serial,
            };
            teardown_links(&mut self.sink, sref, &mut session);
            self.sink.event(Event::SessionEnded {
                session: sref,
                error: None,
            });
        }
        self.remote_channels.clear();
    }

    fn find_link(&self, link: LinkRef) -> Option<(&SessionCore, &Link)> {
        let session = self
            .sessions
            .get(usize::from(link.session.channel))?
            .as_ref()
            .filter(|s| s.core.serial == link.session.serial)?;
        let l = session
            .links
            .get(link.handle)
            .filter(|l| l.serial == link.serial)?;
        Some((&session.core, l))
    }

    /// The live link a reference names, with its session's means of output.
    fn link_parts(&mut self, link: LinkRef) -> Result<(SessionOut<'_>, &mut Link), EngineError> {
        self.check_running()?;
        let Connection {
            config,
            sessions,
            sink,
            ..
        } = self;
        let Session { core, links } = session_mut(sessions, link.session)?;
        let l = links
            .get_mut(link.handle)
            .filter(|l| l.serial == link.serial)
            .ok_or(EngineError::UnknownLink)?;
        Ok((
            SessionOut {
                config,
                sink,
                channel: link.session.channel,
                core,
            },
            l,
        ))
    }
}

fn session_mut(
    sessions: &mut [Option<Session>],
    session: SessionRef,
) -> Result<&mut Session, EngineError> {
    sessions
        .get_mut(usize::from(session.channel))
        .and_then(Option::as_mut)
        .filter(|s| s.core.serial == session.serial && s.core.state == SessionState::Begun)
        .ok_or(EngineError::UnknownSession)
}

/// Reports the session's links gone (except those the broker detached itself) and
/// forgets them with their unsettled deliveries.
fn teardown_links(sink: &mut Sink, session_ref: SessionRef, session: &mut Session) {
    for (handle, link) in session.links.drain() {
        if link.state != LinkState::DetachSent {
            sink.event(Event::Detached {
                link: LinkRef {
                    session: session_ref,
                    handle,
                    serial: link.serial,
                    broker_is_sender: link.is_sender(),
                },
                closed: false,
                error: None,
            });
        }
    }
    session.core.unsettled_out.clear();
}

/// The attach with null termini, then the detach: the answer to an attach the broker
/// will not (or can no longer) accept.
fn queue_refusal(
    sink: &mut Sink,
    channel: u16,
    handle: u32,
    link: &Link,
    closed: bool,
    error: Option<ErrorCondition>,
) {
    sink.frame(
        channel,
        Attach {
            name: link.name.clone(),
            handle,
            role: link.role,
            snd_settle_mode: link.snd_settle_mode,
            rcv_settle_mode: link.rcv_settle_mode,
            source: None,
            target: None,
            unsettled: None,
            incomplete_unsettled: false,
            initial_delivery_count: link.is_sender().then_some(0),
            max_message_size: None,
            offered_capabilities: None,
            desired_capabilities: None,
            properties: None,
        },
    );
    sink.frame(
        channel,
        Detach {
            handle,
            closed,
            error,
        },
    );
}

/// Applies a client's flow to a broker-as-sender link and tells the broker.
fn apply_sender_flow(sink: &mut Sink, link_ref: LinkRef, link: &mut Link, flow: EarlyFlow) {
    // credit = receiver's delivery-count + its link-credit - sender's delivery-count; the
    // receiver's count is the initial one (ours) when it has not seen our attach yet.
    let receiver_count = flow.delivery_count.unwrap_or(link.delivery_count);
    let in_flight = link.delivery_count.wrapping_sub(receiver_count);
    let credit = flow.link_credit.saturating_sub(in_flight);
    let changed = credit != link.credit;
    link.credit = credit;
    link.drain = flow.drain;
    if flow.drain {
        sink.event(Event::Drain {
            link: link_ref,
            credit,
        });
    } else if changed {
        sink.event(Event::CreditChanged {
            link: link_ref,
            credit,
        });
    }
}

impl SessionOut<'_> {
    fn session_ref(&self) -> SessionRef {
        SessionRef {
            channel: self.channel,
            serial: self.core.serial,
        }
    }

    /// Session fields of a flow; announcing them refreshes the incoming window.
    fn session_flow(&mut self) -> Flow {
        self.core.incoming_window = self.config.incoming_window;
        Flow {
            next_incoming_id: Some(self.core.next_incoming_id),
            incoming_window: self.config.incoming_window,
            next_outgoing_id: self.core.next_transfer_id,
            outgoing_window: self.config.outgoing_window,
            ..Flow::default()
        }
    }

    /// Queues a link flow carrying the session's state too.
    fn link_flow(&mut self, handle: u32, delivery_count: u32, link_credit: u32, drain: bool) {
        let flow = Flow {
            handle: Some(handle),
            delivery_count: Some(delivery_count),
            link_credit: Some(link_credit),
            drain,
            ..self.session_flow()
        };
        self.sink.frame(self.channel, flow);
    }

    /// Announces the incoming window again once half of it is used.
    fn refresh_incoming_window(&mut self) {
        if self.core.incoming_window < self.config.incoming_window / 2 {
            let flow = self.session_flow();
            self.sink.frame(self.channel, flow);
        }
    }
}

impl SessionCtx<'_> {
    fn link_ref(&self, handle: u32, link: &Link) -> LinkRef {
        LinkRef {
            session: self.out.session_ref(),
            handle,
            serial: link.serial,
            broker_is_sender: link.is_sender(),
        }
    }

    fn on_attach(&mut self, attach: Attach) -> FrameResult {
        let config = self.out.config;
        if attach.handle > config.handle_max {
            return Err(ConnectionError::new(
                condition::FRAMING_ERROR,
                format!("handle {} is above handle-max", attach.handle),
            ));
        }
        if self.links.local_handle(attach.handle).is_some() {
            return Err(ConnectionError::new(
                condition::HANDLE_IN_USE,
                format!("handle {} is already attached", attach.handle),
            ));
        }
        let max = config.handle_max.min(self.out.core.remote_handle_max);
        let Some(handle) = self.links.free_handle(max) else {
            return Err(ConnectionError::new(
                condition::RESOURCE_LIMIT_EXCEEDED,
                "too many links on the session",
            ));
        };
        let role = match attach.role {
            Role::Sender => Role::Receiver,
            Role::Receiver => Role::Sender,
        };
        let serial = *self.next_serial;
        *self.next_serial = serial.wrapping_add(1);
        let link = Link {
            serial,
            name: attach.name.clone(),
            remote_handle: attach.handle,
            role,
            state: LinkState::Attaching,
            snd_settle_mode: attach.snd_settle_mode,
            rcv_settle_mode: attach.rcv_settle_mode,
            requested_source: attach.source.clone(),
            requested_target: attach.target.clone(),
            delivery_count: if role == Role::Receiver {
                attach.initial_delivery_count.unwrap_or(0)
            } else {
                0
            },
            credit: 0,
            drain: false,
            credit_target: 0,
            max_message_size: config.max_message_size,
            peer_max_message_size: attach.max_message_size.unwrap_or(0),
            early_flow: None,
            partial: None,
        };
        let link_ref = self.link_ref(handle, &link);
        self.links.insert(handle, link);
        self.out.sink.event(Event::AttachRequested {
            link: link_ref,
            attach: Box::new(attach),
        });
        Ok(())
    }

    fn on_flow(&mut self, flow: &Flow) {
        let sref = self.out.session_ref();
        let core = &mut *self.out.core;
        // The client's incoming window, in transfer frames from its next-incoming-id
        // (our initial id when it has not seen our begin yet).
        let next_incoming = flow.next_incoming_id.unwrap_or(0);
        let in_flight = core.next_transfer_id.wrapping_sub(next_incoming);
        core.remote_incoming_window = flow.incoming_window.saturating_sub(in_flight);
        if core.window_blocked && core.remote_incoming_window > 0 {
            core.window_blocked = false;
            for (handle, l) in self.links.iter() {
                if l.is_sender() && l.state == LinkState::Attached && l.credit > 0 {
                    self.out.sink.event(Event::CreditChanged {
                        link: LinkRef {
                            session: sref,
                            handle,
                            serial: l.serial,
                            broker_is_sender: true,
                        },
                        credit: l.credit,
                    });
                }
            }
        }
        let Some(remote_handle) = flow.handle else {
            if flow.echo {
                let reply = self.out.session_flow();
                self.out.sink.frame(self.out.channel, reply);
            }
            return;
        };
        let Some((handle, link)) = self.links.by_remote(remote_handle) else {
            return;
        };
        let link_ref = LinkRef {
            session: sref,
            handle,
            serial: link.serial,
            broker_is_sender: link.is_sender(),
        };
        let early = EarlyFlow {
            delivery_count: flow.delivery_count,
            link_credit: flow.link_credit.unwrap_or(0),
            drain: flow.drain,
        };
        match link.state {
            LinkState::DetachSent => return,
            LinkState::Attaching => {
                if link.is_sender() {
                    link.early_flow = Some(early);
                }
                return;
            }
            LinkState::Attached => {}
        }
        // On a broker-as-receiver link the client (a sender) only reports its
        // delivery-count; the credit stays what the broker granted.
        if link.is_sender() {
            apply_sender_flow(self.out.sink, link_ref, link, early);
        }
        if flow.echo {
            self.out
                .link_flow(handle, link.delivery_count, link.credit, link.drain);
        }
    }

    fn on_transfer(&mut self, transfer: Transfer, payload: Bytes) -> FrameResult {
        let sref = self.out.session_ref();
        let core = &mut *self.out.core;
        core.next_incoming_id = core.next_incoming_id.wrapping_add(1);
        core.incoming_window = core.incoming_window.saturating_sub(1);
        let Some((handle, link)) = self.links.by_remote(transfer.handle) else {
            // No such link (a confused client): drop the frame, keep the session.
            if let Some(id) = transfer.delivery_id {
                core.next_delivery_in = id.wrapping_add(1);
            }
            self.out.refresh_incoming_window();
            return Ok(());
        };
        if link.is_sender() {
            return Err(ConnectionError::new(
                condition::NOT_ALLOWED,
                "transfer on a link where the client is the receiver",
            ));
        }
        let link_ref = LinkRef {
            session: sref,
            handle,
            serial: link.serial,
            broker_is_sender: false,
        };
        let limit = link.max_message_size;
        let mut top_up = None;
        let mut complete: Option<Partial> = None;
        match link.partial.take() {
            None => {
                let delivery_id = transfer.delivery_id.unwrap_or(core.next_delivery_in);
                core.next_delivery_in = delivery_id.wrapping_add(1);
                let partial = Partial {
                    delivery_id,
                    tag: transfer.delivery_tag.unwrap_or_default(),
                    settled: transfer.settled.unwrap_or(false)
                        || link.snd_settle_mode == SenderSettleMode::Settled,
                    message_format: transfer.message_format.unwrap_or(0),
                    body: if payload.len() as u64 > limit {
                        PartialBody::Discarding
                    } else {
                        PartialBody::First(payload)
                    },
                };
                // Credit is counted per delivery, on its first frame.
                link.delivery_count = link.delivery_count.wrapping_add(1);
                link.credit = link.credit.saturating_sub(1);
                if link.state == LinkState::Attached
                    && !self.credit_held
                    && link.credit_target > 0
                    && link.credit <= link.credit_target / 2
                {
                    link.credit = link.credit_target;
                    top_up = Some((link.delivery_count, link.credit));
                }
                if transfer.aborted {
                    // Aborted deliveries are forgotten without settlement.
                } else if transfer.more {
                    link.partial = Some(partial);
                } else {
                    complete = Some(partial);
                }
            }
            Some(mut partial) => {
                if let Some(id) = transfer.delivery_id
                    && id != partial.delivery_id
                {
                    return Err(ConnectionError::new(
                        condition::FRAMING_ERROR,
                        format!(
                            "delivery {} is incomplete, got a transfer for {id}",
                            partial.delivery_id
                        ),
                    ));
                }
                if !transfer.aborted {
                    if transfer.settled == Some(true) {
                        partial.settled = true;
                    }
                    partial.append(&payload, limit);
                    if transfer.more {
                        link.partial = Some(partial);
                    } else {
                        complete = Some(partial);
                    }
                }
            }
        }
        // Transfers still in flight after the broker's detach are read and dropped.
        if let Some(partial) = complete
            && link.state != LinkState::DetachSent
        {
            deliver(&mut self.out, link_ref, partial, limit);
        }
        match top_up {
            Some((delivery_count, credit)) => {
                self.out.link_flow(handle, delivery_count, credit, false);
            }
            None => self.out.refresh_incoming_window(),
        }
        Ok(())
    }

    fn on_disposition(&mut self, disposition: Disposition) {
        // Dispositions from a sender settle deliveries the client sent; the broker settles
        // those itself and keeps nothing to update.
        let core = &mut *self.out.core;
        if disposition.role == Role::Sender || core.unsettled_out.is_empty() {
            return;
        }
        let first = disposition.first;
        let span = u64::from(disposition.last.unwrap_or(first).wrapping_sub(first)) + 1;
        let session = SessionRef {
            channel: self.out.channel,
            serial: core.serial,
        };
        let unsettled = &mut core.unsettled_out;
        // A range wider than what is unsettled (possibly hostile) walks the unsettled
        // deliveries instead of the range, in the range's order.
        let wide = span > unsettled.len() as u64;
        let ids = &mut *self.scratch_ids;
        if wide {
            ids.clear();
            ids.extend(
                unsettled
                    .keys()
                    .copied()
                    .filter(|id| u64::from(id.wrapping_sub(first)) < span),
            );
            ids.sort_unstable_by_key(|id| id.wrapping_sub(first));
        }
        let sink = &mut *self.out.sink;
        let mut settle = |id: u32| {
            let delivery = if disposition.settled {
                unsettled.remove(&id)
            } else {
                unsettled.get(&id).copied()
            };
            if let Some(d) = delivery {
                sink.event(Event::Settled {
                    link: LinkRef {
                        session,
                        handle: d.handle,
                        serial: d.link_serial,
                        broker_is_sender: true,
                    },
                    delivery_id: id,
                    token: d.token,
                    state: disposition.state.clone(),
                    settled_by_peer: disposition.settled,
                });
            }
        };
        if wide {
            ids.iter().for_each(|&id| settle(id));
        } else {
            let mut id = first;
            for _ in 0..span {
                settle(id);
                id = id.wrapping_add(1);
            }
        }
    }

    fn on_detach(&mut self, detach: Detach) {
        // A detach for a handle the broker does not know is dropped.
        let Some(handle) = self.links.local_handle(detach.handle) else {
            return;
        };
        let Some(link) = self.links.remove(handle) else {
            return;
        };
        let link_ref = self.link_ref(handle, &link);
        let channel = self.out.channel;
        match link.state {
            // The client's detach completes the broker's: nothing to answer.
            LinkState::DetachSent => return,
            LinkState::Attaching => {
                queue_refusal(self.out.sink, channel, handle, &link, detach.closed, None);
            }
            LinkState::Attached => {
                self.out.sink.frame(
                    channel,
                    Detach {
                        handle,
                        closed: detach.closed,
                        error: None,
                    },
                );
            }
        }
        self.out.core.forget_unsettled(handle, link.serial);
        self.out.sink.event(Event::Detached {
            link: link_ref,
            closed: detach.closed,
            error: detach.error,
        });
    }

    fn on_end(&mut self, end: End) {
        let sref = self.out.session_ref();
        self.out.sink.frame(self.out.channel, End { error: None });
        for (handle, link) in self.links.drain() {
            if link.state != LinkState::DetachSent {
                self.out.sink.event(Event::Detached {
                    link: LinkRef {
                        session: sref,
                        handle,
                        serial: link.serial,
                        broker_is_sender: link.is_sender(),
                    },
                    closed: false,
                    error: None,
                });
            }
        }
        self.out.core.unsettled_out.clear();
        self.out.sink.event(Event::SessionEnded {
            session: sref,
            error: end.error,
        });
    }
}

/// Hands a complete delivery to the broker, or rejects it when it outgrew the link's
/// limit.
fn deliver(out: &mut SessionOut<'_>, link: LinkRef, partial: Partial, limit: u64) {
    let Partial {
        delivery_id,
        tag,
        settled,
        message_format,
        body,
    } = partial;
    let Some(payload) = body.into_payload() else {
        if !settled {
            out.sink.settled_disposition(
                out.channel,
                Role::Receiver,
                delivery_id,
                DeliveryState::Rejected {
                    error: Some(ErrorCondition::new(
                        condition::MESSAGE_SIZE_EXCEEDED,
                        format!(
                            "The message (delivery-id {delivery_id}) exceeds the limit of \
                             {limit} bytes allowed on this link."
                        ),
                    )),
                },
            );
        }
        out.sink.event(Event::MessageTooLarge {
            link,
            delivery_id,
            limit,
        });
        return;
    };
    out.sink.event(Event::Message(IncomingMessage {
        link,
        delivery_id,
        delivery_tag: tag,
        settled,
        message_format,
        payload,
    }));
}

//! The connection task: owns the socket, turns commands from the handles into frames and
//! incoming frames into replies, deliveries and outcomes.
//!
//! One task per connection does both directions on the two halves of its stream (TCP, TLS
//! over TCP, or a WebSocket over either), reading and writing in the same `select!`, so a
//! full send buffer never stops it from reading. Frames produced while handling a batch of commands or a batch of
//! input are appended to one buffer and written with one call.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::sync::{mpsc, oneshot};

use busbar_amqp::Value;
use busbar_amqp::frame::{Frame, FrameBody, FrameDecoder, encode_frame, encode_transfer_split};
use busbar_amqp::performative::{
    Attach, Begin, Close, DeliveryState, Detach, Disposition, End, Flow, Performative,
    ReceiverSettleMode, Role, SenderSettleMode, Source, Target, TargetKind, Transfer,
};

use crate::error::{Error, RemoteError, Result};
use crate::{Delivery, Outcome};

/// Our session incoming window; refreshed with a session flow once half of it is used.
pub(crate) const INCOMING_WINDOW: u32 = 65_536;
/// Our announced session outgoing window (informational for the peer).
const OUTGOING_WINDOW: u32 = i32::MAX as u32;
/// Commands handled per wake before the output is flushed.
const COMMAND_BATCH: usize = 1024;
/// Scheduler rounds that output made by commands may wait while each round brings more
/// commands, so that many (a processor's settlements, one per handled message) go out in one
/// write, and consecutive settlements in one disposition range, instead of one each.
const MAX_HELD_ROUNDS: u32 = 16;
/// Output is held back only while it is smaller than this.
const MAX_HELD_BYTES: usize = 16 * 1024;
/// Free space the read buffer has before each read.
const READ_ROOM: usize = 64 * 1024;
/// How long the last frames (a close) may take to go out once the connection is over.
const FAREWELL_TIMEOUT: Duration = Duration::from_secs(1);
/// Largest message we reassemble from `more=true` transfers.
const MAX_MESSAGE_SIZE: usize = 256 << 20;

/// The maps every frame looks up (sessions by channel, links by handle, unsettled deliveries
/// by id): SipHash's resistance to chosen keys is not worth its cost per frame here, and the
/// seed is still random per map.
type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// The terminal error of a connection, for handles whose reply channel was dropped.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    pub(crate) error: Mutex<Option<Error>>,
}

impl Shared {
    pub(crate) fn terminal(&self) -> Error {
        match self.error.lock() {
            Ok(e) => e.clone().unwrap_or(Error::Closed),
            Err(_) => Error::Closed,
        }
    }

    fn set(&self, e: Error) {
        if let Ok(mut slot) = self.error.lock()
            && slot.is_none()
        {
            *slot = Some(e);
        }
    }
}

pub(crate) type Reply<T> = oneshot::Sender<Result<T>>;

/// Where the peer's answers to settlements sent as a batch go (see
/// [`Command::Dispositions`]), as ranges of delivery ids.
pub(crate) type ConfirmationSink = mpsc::UnboundedSender<Confirmation>;

/// The peer's answer to settlements of a batch: the consecutive delivery ids `first..=last`
/// (of the batch tagged `tag`), and their outcome; `None` when the connection let go of them
/// unanswered (the session ended), as a dropped [`Reply`] would say.
#[derive(Debug)]
pub(crate) struct Confirmation {
    pub tag: u64,
    pub first: u32,
    pub last: u32,
    pub outcome: Option<Result<Outcome>>,
}

/// Who waits for the peer to settle a delivery we settled unsettled.
enum SettleWaiter {
    /// A settlement with a reply of its own.
    Reply(Reply<Outcome>),
    /// A settlement of a batch.
    Batch(BatchWaiter),
}

/// One delivery of a batch, answered through the batch's sink; dropped unanswered (with
/// its session), it says so there.
struct BatchWaiter {
    sink: ConfirmationSink,
    tag: u64,
    delivery_id: u32,
    answered: bool,
}

/// The deliveries of a [`Command::Dispositions`] not yet waiting in their session: dropped
/// (with the command, when the connection is gone), each of them says so to the sink.
pub(crate) struct BatchWaiters {
    sink: ConfirmationSink,
    tag: u64,
    delivery_ids: Vec<u32>,
    /// How many of `delivery_ids` have a [`BatchWaiter`] of their own.
    handed_over: usize,
}

impl BatchWaiters {
    pub(crate) fn new(sink: ConfirmationSink, tag: u64, delivery_ids: Vec<u32>) -> Self {
        BatchWaiters {
            sink,
            tag,
            delivery_ids,
            handed_over: 0,
        }
    }

    /// The waiter of the next delivery.
    fn next_waiter(&mut self) -> Option<BatchWaiter> {
        let &delivery_id = self.delivery_ids.get(self.handed_over)?;
        self.handed_over += 1;
        Some(BatchWaiter {
            sink: self.sink.clone(),
            tag: self.tag,
            delivery_id,
            answered: false,
        })
    }
}

impl Drop for BatchWaiters {
    fn drop(&mut self) {
        while let Some(waiter) = self.next_waiter() {
            drop(waiter);
        }
    }
}

impl SettleWaiter {
    fn answer(self, outcome: Result<Outcome>) {
        match self {
            SettleWaiter::Reply(reply) => {
                let _ = reply.send(outcome);
            }
            SettleWaiter::Batch(mut waiter) => {
                waiter.answered = true;
                let _ = waiter.sink.send(Confirmation {
                    tag: waiter.tag,
                    first: waiter.delivery_id,
                    last: waiter.delivery_id,
                    outcome: Some(outcome),
                });
            }
        }
    }
}

impl Drop for BatchWaiter {
    fn drop(&mut self) {
        if !self.answered {
            let _ = self.sink.send(Confirmation {
                tag: self.tag,
                first: self.delivery_id,
                last: self.delivery_id,
                outcome: None,
            });
        }
    }
}

/// What a link attach asks for.
#[derive(Debug, Clone)]
pub(crate) struct LinkSpec {
    pub name: String,
    pub role: Role,
    pub source: Option<String>,
    pub target: Option<String>,
    pub snd_settle_mode: SenderSettleMode,
    pub rcv_settle_mode: ReceiverSettleMode,
    /// Receivers: credit granted right after the attach completes.
    pub initial_credit: u32,
    /// The source's filter set (a map with symbol keys), e.g. a Service Bus session filter.
    pub filter: Option<Value>,
    /// The attach's properties (a map with symbol keys).
    pub properties: Option<Value>,
}

/// What the peer's attach told us about a link.
#[derive(Debug, Clone, Default)]
pub(crate) struct Attached {
    pub handle: u32,
    pub max_message_size: Option<u64>,
    pub properties: Option<Value>,
    pub source_filter: Option<Value>,
}

pub(crate) enum Command {
    Begin {
        reply: Reply<u16>,
    },
    End {
        channel: u16,
        reply: Reply<()>,
    },
    Attach {
        channel: u16,
        spec: LinkSpec,
        deliveries: Option<mpsc::UnboundedSender<Result<Delivery>>>,
        reply: Reply<Attached>,
    },
    Detach {
        channel: u16,
        handle: u32,
        reply: Option<Reply<()>>,
    },
    Transfer {
        channel: u16,
        handle: u32,
        payload: Bytes,
        kind: TransferReply,
        message_format: u32,
    },
    Disposition {
        channel: u16,
        delivery_id: u32,
        state: DeliveryState,
        /// `None`: settle at once (receiver-settles-first). `Some`: leave the delivery
        /// unsettled and answer with the outcome the peer settles it with.
        confirm: Option<Reply<Outcome>>,
    },
    /// [`Command::Disposition`] with a confirmation for each of several deliveries, their
    /// answers going to their waiters' sink in ranges instead of one reply each.
    Dispositions {
        channel: u16,
        waiters: BatchWaiters,
        state: DeliveryState,
    },
    Credit {
        channel: u16,
        handle: u32,
        add: u32,
    },
    /// Asks the peer to use up or give back a receiver's credit; answered once the
    /// receiver's credit is 0 (every delivery sent before is then in its queue).
    Drain {
        channel: u16,
        handle: u32,
        reply: Reply<()>,
    },
    Close {
        reply: Reply<()>,
    },
}

/// How the sender of a transfer learns what became of it.
pub(crate) enum TransferReply {
    /// Unsettled: resolved by the peer's disposition.
    Outcome(Reply<Outcome>),
    /// Pre-settled: resolved once the transfer is written to the output buffer.
    Written(Reply<()>),
}

struct Pending {
    payload: Bytes,
    kind: TransferReply,
    message_format: u32,
}

struct SenderLink {
    delivery_count: u32,
    credit: u32,
    queue: VecDeque<Pending>,
    next_tag: u64,
    settle_mode: SenderSettleMode,
}

struct Partial {
    delivery_id: u32,
    delivery_tag: Bytes,
    settled: bool,
    message_format: u32,
    buf: BytesMut,
}

struct ReceiverLink {
    delivery_count: u32,
    credit: u32,
    initial_credit: u32,
    deliveries: mpsc::UnboundedSender<Result<Delivery>>,
    partial: Option<Partial>,
    drained: Option<Reply<()>>,
}

enum LinkKind {
    Sender(SenderLink),
    Receiver(ReceiverLink),
}

struct Link {
    name: String,
    remote_handle: Option<u32>,
    attach_reply: Option<Reply<Attached>>,
    /// The peer attached with a null terminus: a refusal whose reason follows in a detach.
    refused: bool,
    detach_sent: bool,
    detach_reply: Option<Reply<()>>,
    kind: LinkKind,
}

struct Session {
    remote_channel: Option<u16>,
    begin_reply: Option<Reply<u16>>,
    end_reply: Option<Reply<()>>,
    end_sent: bool,
    next_outgoing_id: u32,
    remote_incoming_window: u32,
    next_incoming_id: u32,
    incoming_window: u32,
    next_delivery_id: u32,
    unsettled: FastMap<u32, Reply<Outcome>>,
    /// Deliveries we received and answered unsettled, awaiting the peer's settlement.
    awaiting_settlement: FastMap<u32, SettleWaiter>,
    links: FastMap<u32, Link>,
    remote_handles: FastMap<u32, u32>,
}

impl Session {
    fn new() -> Self {
        Session {
            remote_channel: None,
            begin_reply: None,
            end_reply: None,
            end_sent: false,
            next_outgoing_id: 0,
            remote_incoming_window: 0,
            next_incoming_id: 0,
            incoming_window: INCOMING_WINDOW,
            next_delivery_id: 0,
            unsettled: FastMap::default(),
            awaiting_settlement: FastMap::default(),
            links: FastMap::default(),
            remote_handles: FastMap::default(),
        }
    }

    fn session_flow(&self) -> Flow {
        Flow {
            next_incoming_id: self.remote_channel.map(|_| self.next_incoming_id),
            incoming_window: self.incoming_window,
            next_outgoing_id: self.next_outgoing_id,
            outgoing_window: OUTGOING_WINDOW,
            ..Flow::default()
        }
    }

    /// Fails everything waiting on this session.
    fn fail_all(&mut self, err: &Error) {
        if let Some(r) = self.begin_reply.take() {
            let _ = r.send(Err(err.clone()));
        }
        if let Some(r) = self.end_reply.take() {
            let _ = r.send(Err(err.clone()));
        }
        for (_, r) in self.unsettled.drain() {
            let _ = r.send(Err(err.clone()));
        }
        for (_, waiter) in self.awaiting_settlement.drain() {
            waiter.answer(Err(err.clone()));
        }
        for (_, mut link) in self.links.drain() {
            fail_link(&mut link, err);
        }
        self.remote_handles.clear();
    }
}

fn fail_link(link: &mut Link, err: &Error) {
    if let Some(r) = link.attach_reply.take() {
        let _ = r.send(Err(err.clone()));
    }
    if let Some(r) = link.detach_reply.take() {
        let _ = r.send(Err(err.clone()));
    }
    match &mut link.kind {
        LinkKind::Sender(s) => {
            for p in s.queue.drain(..) {
                fail_pending(p, err);
            }
        }
        LinkKind::Receiver(r) => {
            if let Some(d) = r.drained.take() {
                let _ = d.send(Err(err.clone()));
            }
            let _ = r.deliveries.send(Err(err.clone()));
        }
    }
}

fn fail_pending(p: Pending, err: &Error) {
    match p.kind {
        TransferReply::Outcome(r) => {
            let _ = r.send(Err(err.clone()));
        }
        TransferReply::Written(r) => {
            let _ = r.send(Err(err.clone()));
        }
    }
}

/// The parameters the handshake settled on.
pub(crate) struct Negotiated {
    pub remote_max_frame_size: u32,
    pub remote_idle_timeout: Option<Duration>,
    pub local_idle_timeout: Option<Duration>,
    pub local_max_frame_size: u32,
    /// The highest channel number either side allows.
    pub channel_max: u16,
}

/// A disposition being built up from consecutive settlements of the same kind.
struct PendingDisposition {
    channel: u16,
    first: u32,
    last: u32,
    state: DeliveryState,
    settled: bool,
}

pub(crate) struct Driver<R, W> {
    reader: R,
    writer: W,
    /// Bytes were written since the last flush (TLS may hold some back until flushed).
    unflushed: bool,
    /// The output holds credit the peer is waiting for: it is not held back for more
    /// commands (a processor's settlements would otherwise keep it until the whole prefetch
    /// is handled, and the peer would stop sending meanwhile).
    credit_waiting: bool,
    inbuf: BytesMut,
    out: BytesMut,
    decoder: FrameDecoder,
    rx: mpsc::UnboundedReceiver<Command>,
    shared: Arc<Shared>,
    remote_max_frame_size: u32,
    remote_idle_timeout: Option<Duration>,
    local_idle_timeout: Option<Duration>,
    last_read: Instant,
    last_write: Instant,
    sessions: FastMap<u16, Session>,
    remote_channels: FastMap<u16, u16>,
    next_channel: u16,
    channel_max: u16,
    close_sent: bool,
    close_reply: Option<Reply<()>>,
    disposition: Option<PendingDisposition>,
}

/// Why the loop stopped: cleanly (close exchanged) or with an error.
enum Exit {
    Clean,
    Failed(Error),
}

impl<R: AsyncRead + Unpin, W: AsyncWrite + Unpin> Driver<R, W> {
    pub(crate) fn new(
        (reader, writer): (R, W),
        inbuf: BytesMut,
        rx: mpsc::UnboundedReceiver<Command>,
        shared: Arc<Shared>,
        neg: Negotiated,
    ) -> Self {
        let now = Instant::now();
        Driver {
            reader,
            writer,
            unflushed: false,
            credit_waiting: false,
            inbuf,
            out: BytesMut::with_capacity(64 * 1024),
            decoder: FrameDecoder::new(neg.local_max_frame_size),
            rx,
            shared,
            remote_max_frame_size: neg.remote_max_frame_size,
            remote_idle_timeout: neg.remote_idle_timeout,
            local_idle_timeout: neg.local_idle_timeout,
            last_read: now,
            last_write: now,
            sessions: FastMap::default(),
            remote_channels: FastMap::default(),
            next_channel: 0,
            channel_max: neg.channel_max,
            close_sent: false,
            close_reply: None,
            disposition: None,
        }
    }

    pub(crate) async fn run(mut self) {
        let exit = match self.run_loop().await {
            Ok(e) => e,
            Err(e) => Exit::Failed(e),
        };
        if !self.out.is_empty() {
            // The close answering the peer's, if the socket still takes it.
            let out = std::mem::take(&mut self.out);
            let writer = &mut self.writer;
            let _ = tokio::time::timeout(FAREWELL_TIMEOUT, async move {
                writer.write_all(&out).await?;
                writer.flush().await
            })
            .await;
        }
        let err = match exit {
            Exit::Clean => Error::Closed,
            Exit::Failed(e) => {
                tracing::debug!(error = %e, "connection failed");
                e
            }
        };
        self.shared.set(err.clone());
        if let Some(r) = self.close_reply.take() {
            let _ = r.send(if matches!(err, Error::Closed) {
                Ok(())
            } else {
                Err(err.clone())
            });
        }
        for (_, mut s) in self.sessions.drain() {
            s.fail_all(&err);
        }
        self.rx.close();
        while let Ok(cmd) = self.rx.try_recv() {
            fail_command(cmd, &err);
        }
    }

    async fn run_loop(&mut self) -> Result<Exit> {
        let tick = self.tick_interval();
        let mut ticker = tokio::time::interval(tick);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Frames that arrived with the peer's open are handled first.
        if let Some(exit) = self.decode_input()? {
            return Ok(exit);
        }
        let mut commands_open = true;
        // Commands were handled since output was last held back, and how many rounds the
        // output waiting to be written has been held.
        let mut new_commands = false;
        let mut held_rounds = 0;
        loop {
            let pending = !self.out.is_empty() || self.disposition.is_some();
            if !pending {
                held_rounds = 0;
                self.credit_waiting = false;
            }
            if pending
                && new_commands
                && !self.credit_waiting
                && held_rounds < MAX_HELD_ROUNDS
                && self.out.len() < MAX_HELD_BYTES
            {
                // The tasks that are ready run first: what they ask for joins this output.
                // Once a round brings nothing new, or after a few, it is written.
                held_rounds += 1;
                tokio::task::yield_now().await;
                new_commands = self.handle_ready_commands()?;
                continue;
            }
            self.flush_disposition();
            self.make_read_room();
            let flush = self.out.is_empty() && self.unflushed;
            tokio::select! {
                read = self.reader.read_buf(&mut self.inbuf) => {
                    if let Some(exit) = self.read_input(read)? {
                        return Ok(exit);
                    }
                }
                written = write_or_flush(&mut self.writer, &self.out), if !self.out.is_empty() || flush => {
                    match written? {
                        Some(0) => return Err(io::Error::from(io::ErrorKind::WriteZero).into()),
                        Some(n) => {
                            self.out.advance(n);
                            self.last_write = Instant::now();
                            self.unflushed = true;
                        }
                        None => self.unflushed = false,
                    }
                }
                cmd = self.rx.recv(), if commands_open => {
                    match cmd {
                        Some(cmd) => {
                            new_commands = true;
                            self.handle_command(cmd)?;
                            self.handle_ready_commands()?;
                        }
                        None => {
                            // Every handle is gone: close politely, then wait for the peer's close.
                            commands_open = false;
                            self.send_close();
                        }
                    }
                }
                _ = ticker.tick() => self.on_tick()?,
            }
        }
    }

    /// Handles the commands already queued (up to a batch); answers whether there were any.
    fn handle_ready_commands(&mut self) -> Result<bool> {
        for handled in 0..COMMAND_BATCH {
            match self.rx.try_recv() {
                Ok(cmd) => self.handle_command(cmd)?,
                Err(_) => return Ok(handled > 0),
            }
        }
        Ok(true)
    }

    fn tick_interval(&self) -> Duration {
        let mut tick = Duration::from_secs(1);
        if let Some(t) = self.remote_idle_timeout {
            tick = tick.min(t / 4);
        }
        if let Some(t) = self.local_idle_timeout {
            tick = tick.min(t / 4);
        }
        tick.max(Duration::from_millis(10))
    }

    fn on_tick(&mut self) -> Result<()> {
        let now = Instant::now();
        if let Some(t) = self.remote_idle_timeout
            && now.duration_since(self.last_write) >= t / 2
            && self.out.is_empty()
        {
            encode_frame(&Frame::heartbeat(), &mut self.out);
        }
        // Lenient: twice our announced timeout, since peers heartbeat at their own pace.
        if let Some(t) = self.local_idle_timeout
            && now.duration_since(self.last_read) > t * 2
        {
            return Err(Error::IdleTimeout);
        }
        Ok(())
    }

    /// Room for the next read: the read buffer's free space is reused once the frames cut
    /// from it are gone; otherwise the bytes not yet decoded (usually a partial frame) move
    /// to a new buffer. `BytesMut::reserve` would instead grow the buffer in place, copying
    /// everything already decoded along with it, and double it each time.
    fn make_read_room(&mut self) {
        if !self.inbuf.try_reclaim(READ_ROOM) {
            let mut fresh =
                BytesMut::with_capacity((2 * READ_ROOM).max(self.inbuf.len() + READ_ROOM));
            fresh.extend_from_slice(&self.inbuf);
            self.inbuf = fresh;
        }
    }

    fn read_input(&mut self, read: io::Result<usize>) -> Result<Option<Exit>> {
        match read {
            Ok(0) => {
                return Err(if self.close_sent {
                    Error::ConnectionClosed(None)
                } else {
                    io::Error::from(io::ErrorKind::UnexpectedEof).into()
                });
            }
            Ok(_) => self.last_read = Instant::now(),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(None),
            Err(e) => return Err(e.into()),
        }
        self.decode_input()
    }

    fn decode_input(&mut self) -> Result<Option<Exit>> {
        while let Some(frame) = self.decoder.decode(&mut self.inbuf)? {
            if let Some(exit) = self.handle_frame(frame)? {
                return Ok(Some(exit));
            }
        }
        Ok(None)
    }

    // -----------------------------------------------------------------------------------
    // Output helpers
    // -----------------------------------------------------------------------------------

    fn write(&mut self, channel: u16, p: impl Into<Performative>) {
        self.flush_disposition();
        encode_frame(&Frame::amqp(channel, p), &mut self.out);
    }

    fn flush_disposition(&mut self) {
        if let Some(d) = self.disposition.take() {
            let disp = Disposition {
                role: Role::Receiver,
                first: d.first,
                last: (d.last != d.first).then_some(d.last),
                settled: d.settled,
                state: Some(d.state),
                batchable: false,
            };
            encode_frame(&Frame::amqp(d.channel, disp), &mut self.out);
        }
    }

    /// Adds a settlement to the disposition being built: consecutive settlements with the
    /// same outcome travel as one range.
    fn queue_disposition(
        &mut self,
        channel: u16,
        delivery_id: u32,
        state: &DeliveryState,
        settled: bool,
    ) {
        if let Some(d) = &mut self.disposition
            && d.channel == channel
            && d.state == *state
            && d.settled == settled
            && d.last.wrapping_add(1) == delivery_id
        {
            d.last = delivery_id;
            return;
        }
        self.flush_disposition();
        self.disposition = Some(PendingDisposition {
            channel,
            first: delivery_id,
            last: delivery_id,
            state: state.clone(),
            settled,
        });
    }

    fn send_close(&mut self) {
        if !self.close_sent {
            self.close_sent = true;
            self.write(0, Close { error: None });
        }
    }

    // -----------------------------------------------------------------------------------
    // Commands
    // -----------------------------------------------------------------------------------

    fn handle_command(&mut self, cmd: Command) -> Result<()> {
        if self.close_sent {
            fail_command(cmd, &Error::Closed);
            return Ok(());
        }
        match cmd {
            Command::Begin { reply } => self.begin(reply),
            Command::End { channel, reply } => {
                let Some(s) = self.sessions.get_mut(&channel) else {
                    let _ = reply.send(Err(Error::SessionEnded(None)));
                    return Ok(());
                };
                if s.end_sent {
                    let _ = reply.send(Ok(()));
                    return Ok(());
                }
                s.end_sent = true;
                s.end_reply = Some(reply);
                self.write(channel, End { error: None });
            }
            Command::Attach {
                channel,
                spec,
                deliveries,
                reply,
            } => self.attach(channel, spec, deliveries, reply),
            Command::Detach {
                channel,
                handle,
                reply,
            } => {
                let Some(link) = self
                    .sessions
                    .get_mut(&channel)
                    .and_then(|s| s.links.get_mut(&handle))
                else {
                    if let Some(r) = reply {
                        let _ = r.send(Ok(()));
                    }
                    return Ok(());
                };
                if link.detach_sent {
                    if let Some(r) = reply {
                        let _ = r.send(Ok(()));
                    }
                    return Ok(());
                }
                link.detach_sent = true;
                link.detach_reply = reply;
                self.write(
                    channel,
                    Detach {
                        handle,
                        closed: true,
                        error: None,
                    },
                );
            }
            Command::Transfer {
                channel,
                handle,
                payload,
                kind,
                message_format,
            } => {
                let pending = Pending {
                    payload,
                    kind,
                    message_format,
                };
                let Some(link) = self
                    .sessions
                    .get_mut(&channel)
                    .and_then(|s| s.links.get_mut(&handle))
                else {
                    fail_pending(pending, &Error::LinkDetached(None));
                    return Ok(());
                };
                match &mut link.kind {
                    LinkKind::Sender(s) if !link.detach_sent => s.queue.push_back(pending),
                    _ => {
                        fail_pending(pending, &Error::LinkDetached(None));
                        return Ok(());
                    }
                }
                self.pump(channel);
            }
            Command::Disposition {
                channel,
                delivery_id,
                state,
                confirm,
            } => {
                let Some(s) = self.sessions.get_mut(&channel) else {
                    if let Some(r) = confirm {
                        let _ = r.send(Err(Error::SessionEnded(None)));
                    }
                    return Ok(());
                };
                let settled = match confirm {
                    Some(reply) => {
                        s.awaiting_settlement
                            .insert(delivery_id, SettleWaiter::Reply(reply));
                        false
                    }
                    None => true,
                };
                self.queue_disposition(channel, delivery_id, &state, settled);
            }
            Command::Dispositions {
                channel,
                mut waiters,
                state,
            } => {
                let Some(s) = self.sessions.get_mut(&channel) else {
                    while let Some(waiter) = waiters.next_waiter() {
                        SettleWaiter::Batch(waiter).answer(Err(Error::SessionEnded(None)));
                    }
                    return Ok(());
                };
                while let Some(waiter) = waiters.next_waiter() {
                    s.awaiting_settlement
                        .insert(waiter.delivery_id, SettleWaiter::Batch(waiter));
                }
                for &delivery_id in &waiters.delivery_ids {
                    self.queue_disposition(channel, delivery_id, &state, false);
                }
            }
            Command::Credit {
                channel,
                handle,
                add,
            } => {
                let Some(s) = self.sessions.get_mut(&channel) else {
                    return Ok(());
                };
                let base = s.session_flow();
                let Some(link) = s.links.get_mut(&handle) else {
                    return Ok(());
                };
                if link.detach_sent || link.remote_handle.is_none() {
                    return Ok(());
                }
                if let LinkKind::Receiver(r) = &mut link.kind {
                    r.credit = r.credit.saturating_add(add);
                    let flow = Flow {
                        handle: Some(handle),
                        delivery_count: Some(r.delivery_count),
                        link_credit: Some(r.credit),
                        ..base
                    };
                    self.write(channel, flow);
                    self.credit_waiting = true;
                }
            }
            Command::Drain {
                channel,
                handle,
                reply,
            } => self.drain(channel, handle, reply),
            Command::Close { reply } => {
                self.close_reply = Some(reply);
                self.send_close();
            }
        }
        Ok(())
    }

    fn drain(&mut self, channel: u16, handle: u32, reply: Reply<()>) {
        let Some(s) = self.sessions.get_mut(&channel) else {
            let _ = reply.send(Err(Error::SessionEnded(None)));
            return;
        };
        let base = s.session_flow();
        let Some(link) = s.links.get_mut(&handle) else {
            let _ = reply.send(Err(Error::LinkDetached(None)));
            return;
        };
        let LinkKind::Receiver(r) = &mut link.kind else {
            let _ = reply.send(Err(Error::InvalidArgument("drain on a sender link")));
            return;
        };
        if r.credit == 0 || link.detach_sent || link.remote_handle.is_none() {
            let _ = reply.send(Ok(()));
            return;
        }
        r.drained = Some(reply);
        let flow = Flow {
            handle: Some(handle),
            delivery_count: Some(r.delivery_count),
            link_credit: Some(r.credit),
            drain: true,
            ..base
        };
        self.write(channel, flow);
    }

    fn begin(&mut self, reply: Reply<u16>) {
        // Local channels are reused once their session is gone, cycling through
        // 0..=channel_max (the peer refuses any channel above its channel-max).
        let after = |channel: u16, max: u16| if channel >= max { 0 } else { channel + 1 };
        let mut channel = if self.next_channel > self.channel_max {
            0
        } else {
            self.next_channel
        };
        let mut tries = 0u32;
        while self.sessions.contains_key(&channel) {
            channel = after(channel, self.channel_max);
            tries += 1;
            if tries > u32::from(self.channel_max) {
                let _ = reply.send(Err(Error::InvalidArgument("no free channel")));
                return;
            }
        }
        self.next_channel = after(channel, self.channel_max);
        let mut s = Session::new();
        s.begin_reply = Some(reply);
        let begin = Begin {
            remote_channel: None,
            next_outgoing_id: s.next_outgoing_id,
            incoming_window: s.incoming_window,
            outgoing_window: OUTGOING_WINDOW,
            handle_max: None,
            offered_capabilities: None,
            desired_capabilities: None,
            properties: None,
        };
        self.sessions.insert(channel, s);
        self.write(channel, begin);
    }

    fn attach(
        &mut self,
        channel: u16,
        spec: LinkSpec,
        deliveries: Option<mpsc::UnboundedSender<Result<Delivery>>>,
        reply: Reply<Attached>,
    ) {
        let Some(s) = self.sessions.get_mut(&channel) else {
            let _ = reply.send(Err(Error::SessionEnded(None)));
            return;
        };
        // The lowest handle not in use: the peer's handle-max bounds the links a session
        // has at once, so a long-lived session must reuse the handles of detached links.
        let Some(handle) = (0..=u32::MAX).find(|h| !s.links.contains_key(h)) else {
            let _ = reply.send(Err(Error::InvalidArgument("no link handle left")));
            return;
        };
        let kind = match (spec.role, deliveries) {
            (Role::Sender, _) => LinkKind::Sender(SenderLink {
                delivery_count: 0,
                credit: 0,
                queue: VecDeque::new(),
                next_tag: 0,
                settle_mode: spec.snd_settle_mode,
            }),
            (Role::Receiver, Some(tx)) => LinkKind::Receiver(ReceiverLink {
                delivery_count: 0,
                credit: 0,
                initial_credit: spec.initial_credit,
                deliveries: tx,
                partial: None,
                drained: None,
            }),
            (Role::Receiver, None) => {
                let _ = reply.send(Err(Error::InvalidArgument("receiver without a queue")));
                return;
            }
        };
        s.links.insert(
            handle,
            Link {
                name: spec.name.clone(),
                remote_handle: None,
                attach_reply: Some(reply),
                refused: false,
                detach_sent: false,
                detach_reply: None,
                kind,
            },
        );
        let attach = Attach {
            name: spec.name,
            handle,
            role: spec.role,
            snd_settle_mode: spec.snd_settle_mode,
            rcv_settle_mode: spec.rcv_settle_mode,
            source: Some(Source {
                address: spec.source,
                filter: spec.filter,
                ..Source::default()
            }),
            target: Some(TargetKind::Target(Target {
                address: spec.target,
                ..Target::default()
            })),
            unsettled: None,
            incomplete_unsettled: false,
            initial_delivery_count: (spec.role == Role::Sender).then_some(0),
            max_message_size: None,
            offered_capabilities: None,
            desired_capabilities: None,
            properties: spec.properties,
        };
        self.write(channel, attach);
    }

    /// Sends queued transfers of every sender link on `channel` while link credit and the
    /// peer's session window allow.
    fn pump(&mut self, channel: u16) {
        self.flush_disposition();
        let max_frame = self.remote_max_frame_size;
        let Some(s) = self.sessions.get_mut(&channel) else {
            return;
        };
        if s.remote_channel.is_none() {
            return;
        }
        for (&handle, link) in s.links.iter_mut() {
            let LinkKind::Sender(snd) = &mut link.kind else {
                continue;
            };
            if link.remote_handle.is_none() || link.detach_sent {
                continue;
            }
            while snd.credit > 0 && s.remote_incoming_window > 0 {
                let Some(p) = snd.queue.pop_front() else {
                    break;
                };
                let settled = matches!(p.kind, TransferReply::Written(_))
                    || snd.settle_mode == SenderSettleMode::Settled;
                let delivery_id = s.next_delivery_id;
                s.next_delivery_id = s.next_delivery_id.wrapping_add(1);
                let tag = snd.next_tag;
                snd.next_tag = snd.next_tag.wrapping_add(1);
                let transfer = Transfer {
                    handle,
                    delivery_id: Some(delivery_id),
                    delivery_tag: Some(Bytes::copy_from_slice(&tag.to_be_bytes())),
                    message_format: Some(p.message_format),
                    settled: Some(settled),
                    ..Transfer::default()
                };
                let start = self.out.len();
                encode_transfer_split(channel, &transfer, &p.payload, max_frame, &mut self.out);
                let frames = count_frames(&self.out[start..]);
                s.next_outgoing_id = s.next_outgoing_id.wrapping_add(frames);
                s.remote_incoming_window = s.remote_incoming_window.saturating_sub(frames);
                snd.credit -= 1;
                snd.delivery_count = snd.delivery_count.wrapping_add(1);
                match p.kind {
                    TransferReply::Outcome(r) if !settled => {
                        s.unsettled.insert(delivery_id, r);
                    }
                    TransferReply::Outcome(r) => {
                        let _ = r.send(Ok(Outcome::Accepted));
                    }
                    TransferReply::Written(r) => {
                        let _ = r.send(Ok(()));
                    }
                }
            }
        }
    }

    // -----------------------------------------------------------------------------------
    // Frames from the peer
    // -----------------------------------------------------------------------------------

    fn handle_frame(&mut self, frame: Frame) -> Result<Option<Exit>> {
        let (performative, payload) = match frame.body {
            FrameBody::Empty => return Ok(None),
            FrameBody::Sasl(_) => return Err(Error::Protocol("SASL frame after open".into())),
            FrameBody::Amqp {
                performative,
                payload,
            } => (performative, payload),
        };
        let remote_channel = frame.channel;
        match performative {
            Performative::Close(c) => {
                let remote = RemoteError::from_opt(c.error.as_ref());
                if !self.close_sent {
                    // Sent on the way out (see `run`).
                    self.send_close();
                    return Ok(Some(Exit::Failed(Error::ConnectionClosed(remote))));
                }
                return Ok(Some(match remote {
                    Some(e) => Exit::Failed(Error::ConnectionClosed(Some(e))),
                    None => Exit::Clean,
                }));
            }
            Performative::Open(_) => return Err(Error::Protocol("second open".into())),
            Performative::Begin(b) => self.on_begin(remote_channel, b)?,
            Performative::End(e) => self.on_end(remote_channel, e),
            Performative::Attach(a) => self.on_attach(remote_channel, *a)?,
            Performative::Detach(d) => self.on_detach(remote_channel, d),
            Performative::Flow(f) => self.on_flow(remote_channel, f),
            Performative::Transfer(t) => self.on_transfer(remote_channel, t, payload)?,
            Performative::Disposition(d) => self.on_disposition(remote_channel, d),
        }
        Ok(None)
    }

    fn local_channel(&self, remote_channel: u16) -> Option<u16> {
        self.remote_channels.get(&remote_channel).copied()
    }

    fn on_begin(&mut self, remote_channel: u16, b: Begin) -> Result<()> {
        let Some(local) = b.remote_channel else {
            return Err(Error::Protocol(
                "peer-initiated sessions are not supported".into(),
            ));
        };
        let Some(s) = self.sessions.get_mut(&local) else {
            return Err(Error::Protocol(format!(
                "begin for unknown channel {local}"
            )));
        };
        s.remote_channel = Some(remote_channel);
        s.next_incoming_id = b.next_outgoing_id;
        s.remote_incoming_window = b.incoming_window;
        self.remote_channels.insert(remote_channel, local);
        if let Some(r) = s.begin_reply.take() {
            let _ = r.send(Ok(local));
        }
        Ok(())
    }

    fn on_end(&mut self, remote_channel: u16, e: End) {
        let Some(local) = self.remote_channels.remove(&remote_channel) else {
            return;
        };
        let Some(mut s) = self.sessions.remove(&local) else {
            return;
        };
        let err = Error::SessionEnded(RemoteError::from_opt(e.error.as_ref()));
        if s.end_sent {
            if let Some(r) = s.end_reply.take() {
                let _ = r.send(Ok(()));
            }
        } else {
            self.write(local, End { error: None });
        }
        s.fail_all(&err);
    }

    fn on_attach(&mut self, remote_channel: u16, a: Attach) -> Result<()> {
        let Some(local) = self.local_channel(remote_channel) else {
            return Ok(());
        };
        let Some(s) = self.sessions.get_mut(&local) else {
            return Ok(());
        };
        let base = s.session_flow();
        let Some((&handle, link)) = s
            .links
            .iter_mut()
            .find(|(_, l)| l.remote_handle.is_none() && l.name == a.name)
        else {
            return Err(Error::Protocol(format!(
                "attach for unknown link {:?}",
                a.name
            )));
        };
        link.remote_handle = Some(a.handle);
        s.remote_handles.insert(a.handle, handle);
        let terminus_present = match link.kind {
            LinkKind::Sender(_) => a.target.is_some(),
            LinkKind::Receiver(_) => a.source.is_some(),
        };
        if !terminus_present {
            // The reason arrives in the detach that follows.
            link.refused = true;
            return Ok(());
        }
        if let Some(r) = link.attach_reply.take() {
            let _ = r.send(Ok(Attached {
                handle,
                max_message_size: a.max_message_size.filter(|&size| size > 0),
                properties: a.properties,
                source_filter: a.source.and_then(|source| source.filter),
            }));
        }
        if let LinkKind::Receiver(r) = &mut link.kind {
            if let Some(dc) = a.initial_delivery_count {
                r.delivery_count = dc;
            }
            if r.initial_credit > 0 {
                r.credit = r.initial_credit;
                let flow = Flow {
                    handle: Some(handle),
                    delivery_count: Some(r.delivery_count),
                    link_credit: Some(r.credit),
                    ..base
                };
                self.write(local, flow);
            }
        }
        Ok(())
    }

    fn on_detach(&mut self, remote_channel: u16, d: Detach) {
        let Some(local) = self.local_channel(remote_channel) else {
            return;
        };
        let Some(s) = self.sessions.get_mut(&local) else {
            return;
        };
        let Some(handle) = s.remote_handles.remove(&d.handle) else {
            return;
        };
        let Some(mut link) = s.links.remove(&handle) else {
            return;
        };
        let remote = RemoteError::from_opt(d.error.as_ref());
        let answer = !link.detach_sent;
        if let Some(r) = link.detach_reply.take() {
            let _ = r.send(Ok(()));
        }
        let err = if link.refused || link.attach_reply.is_some() {
            Error::LinkRefused(remote)
        } else {
            Error::LinkDetached(remote)
        };
        fail_link(&mut link, &err);
        if answer {
            self.write(
                local,
                Detach {
                    handle,
                    closed: true,
                    error: None,
                },
            );
        }
    }

    fn on_flow(&mut self, remote_channel: u16, f: Flow) {
        let Some(local) = self.local_channel(remote_channel) else {
            return;
        };
        let Some(s) = self.sessions.get_mut(&local) else {
            return;
        };
        // Peer's incoming window as seen from our next-outgoing-id (AMQP 2.5.6).
        let their_next_incoming = f.next_incoming_id.unwrap_or(0);
        s.remote_incoming_window = their_next_incoming
            .wrapping_add(f.incoming_window)
            .wrapping_sub(s.next_outgoing_id);
        if s.remote_incoming_window > f.incoming_window {
            // Ids that make no sense would wrap to a huge window; trust the plain value.
            s.remote_incoming_window = f.incoming_window;
        }
        let mut reply: Option<Flow> = None;
        if let Some(remote_handle) = f.handle {
            let base = s.session_flow();
            let Some(&handle) = s.remote_handles.get(&remote_handle) else {
                return;
            };
            let Some(link) = s.links.get_mut(&handle) else {
                return;
            };
            match &mut link.kind {
                LinkKind::Sender(snd) => {
                    let dc = f.delivery_count.unwrap_or(0);
                    let limit = dc.wrapping_add(f.link_credit.unwrap_or(0));
                    snd.credit = limit.wrapping_sub(snd.delivery_count);
                    if snd.credit > limit.wrapping_sub(dc) {
                        snd.credit = 0;
                    }
                    if f.drain && snd.queue.is_empty() {
                        snd.delivery_count = snd.delivery_count.wrapping_add(snd.credit);
                        snd.credit = 0;
                        reply = Some(Flow {
                            handle: Some(handle),
                            delivery_count: Some(snd.delivery_count),
                            link_credit: Some(0),
                            drain: true,
                            ..base
                        });
                    } else if f.echo {
                        reply = Some(Flow {
                            handle: Some(handle),
                            delivery_count: Some(snd.delivery_count),
                            link_credit: Some(snd.credit),
                            ..base
                        });
                    }
                }
                LinkKind::Receiver(r) => {
                    if let Some(dc) = f.delivery_count {
                        // The sender may advance its count (drain); our credit shrinks by as much.
                        let limit = r.delivery_count.wrapping_add(r.credit);
                        r.delivery_count = dc;
                        r.credit = limit.wrapping_sub(dc).min(r.credit);
                    }
                    if r.credit == 0
                        && let Some(drained) = r.drained.take()
                    {
                        let _ = drained.send(Ok(()));
                    }
                    if f.echo {
                        reply = Some(Flow {
                            handle: Some(handle),
                            delivery_count: Some(r.delivery_count),
                            link_credit: Some(r.credit),
                            ..base
                        });
                    }
                }
            }
        } else if f.echo {
            reply = Some(s.session_flow());
        }
        if let Some(flow) = reply {
            self.write(local, flow);
        }
        self.pump(local);
    }

    fn on_transfer(&mut self, remote_channel: u16, t: Transfer, payload: Bytes) -> Result<()> {
        let Some(local) = self.local_channel(remote_channel) else {
            return Ok(());
        };
        let Some(s) = self.sessions.get_mut(&local) else {
            return Ok(());
        };
        s.next_incoming_id = s.next_incoming_id.wrapping_add(1);
        s.incoming_window = s.incoming_window.saturating_sub(1);
        let refresh = s.incoming_window < INCOMING_WINDOW / 2;
        if refresh {
            s.incoming_window = INCOMING_WINDOW;
        }
        let session_flow = s.session_flow();
        let Some(&handle) = s.remote_handles.get(&t.handle) else {
            return Err(Error::Protocol(format!(
                "transfer on unknown handle {}",
                t.handle
            )));
        };
        let Some(link) = s.links.get_mut(&handle) else {
            return Ok(());
        };
        let LinkKind::Receiver(r) = &mut link.kind else {
            return Err(Error::Protocol("transfer on a sender link".into()));
        };
        let mut partial = match r.partial.take() {
            Some(p) => p,
            None => {
                let Some(delivery_id) = t.delivery_id else {
                    return Err(Error::Protocol("first transfer without delivery-id".into()));
                };
                r.delivery_count = r.delivery_count.wrapping_add(1);
                r.credit = r.credit.saturating_sub(1);
                Partial {
                    delivery_id,
                    delivery_tag: t.delivery_tag.clone().unwrap_or_default(),
                    settled: t.settled.unwrap_or(false),
                    message_format: t.message_format.unwrap_or(0),
                    buf: BytesMut::new(),
                }
            }
        };
        if t.settled == Some(true) {
            partial.settled = true;
        }
        if t.aborted {
            // Aborted deliveries are dropped whole (AMQP 2.6.14).
        } else if t.more {
            if partial.buf.len() + payload.len() > MAX_MESSAGE_SIZE {
                return Err(Error::Protocol(
                    "message exceeds the reassembly limit".into(),
                ));
            }
            partial.buf.extend_from_slice(&payload);
            r.partial = Some(partial);
        } else {
            let message = if partial.buf.is_empty() {
                payload
            } else {
                partial.buf.extend_from_slice(&payload);
                partial.buf.freeze()
            };
            let delivery = Delivery {
                payload: message,
                delivery_tag: partial.delivery_tag,
                delivery_id: partial.delivery_id,
                settled: partial.settled,
                message_format: partial.message_format,
            };
            // A dropped Receiver just means nobody reads any more; the detach follows.
            let _ = r.deliveries.send(Ok(delivery));
            if r.credit == 0
                && let Some(drained) = r.drained.take()
            {
                let _ = drained.send(Ok(()));
            }
        }
        if refresh {
            self.write(local, session_flow);
        }
        Ok(())
    }

    fn on_disposition(&mut self, remote_channel: u16, d: Disposition) {
        let Some(local) = self.local_channel(remote_channel) else {
            return;
        };
        let Some(s) = self.sessions.get_mut(&local) else {
            return;
        };
        if d.role == Role::Sender {
            // The peer settling deliveries it sent us: only those we answered unsettled
            // wait for it.
            if d.settled {
                let outcome = d
                    .state
                    .as_ref()
                    .map_or(Outcome::Released, Outcome::from_state);
                answer_settled(&mut s.awaiting_settlement, d.first, d.last, &outcome);
            }
            return;
        }
        let outcome = match &d.state {
            None | Some(DeliveryState::Received { .. }) if !d.settled => return,
            None => Outcome::Released,
            Some(state) => Outcome::from_state(state),
        };
        answer_range(&mut s.unsettled, d.first, d.last, &outcome);
        if !d.settled {
            // Receiver-settles-second peers wait for our settlement.
            let disp = Disposition {
                role: Role::Sender,
                first: d.first,
                last: d.last,
                settled: true,
                state: d.state,
                batchable: false,
            };
            self.write(local, disp);
        }
    }
}

/// The ids of `waiting` in `first..=last`. A range wider than the waiters (possibly
/// hostile) is matched against the waiters instead of being walked.
fn waiting_in<V>(waiting: &FastMap<u32, V>, first: u32, last: Option<u32>) -> Vec<u32> {
    let span = u64::from(last.unwrap_or(first).wrapping_sub(first)) + 1;
    if span <= waiting.len() as u64 {
        (0..span)
            .filter_map(|offset| u32::try_from(offset).ok())
            .map(|offset| first.wrapping_add(offset))
            .collect()
    } else {
        waiting
            .keys()
            .copied()
            .filter(|id| u64::from(id.wrapping_sub(first)) < span)
            .collect()
    }
}

/// Answers every waiter in `first..=last` with `outcome`.
fn answer_range(
    waiting: &mut FastMap<u32, Reply<Outcome>>,
    first: u32,
    last: Option<u32>,
    outcome: &Outcome,
) {
    for id in waiting_in(waiting, first, last) {
        if let Some(r) = waiting.remove(&id) {
            let _ = r.send(Ok(outcome.clone()));
        }
    }
}

/// [`answer_range`] for deliveries awaiting the peer's settlement: the deliveries of a
/// batch are answered to its sink in runs of consecutive ids, one message per run.
fn answer_settled(
    waiting: &mut FastMap<u32, SettleWaiter>,
    first: u32,
    last: Option<u32>,
    outcome: &Outcome,
) {
    // The run being gathered: its sink and tag, first and last id.
    let mut run: Option<(ConfirmationSink, u64, u32, u32)> = None;
    let send_run = |run: Option<(ConfirmationSink, u64, u32, u32)>| {
        if let Some((sink, tag, first, last)) = run {
            let _ = sink.send(Confirmation {
                tag,
                first,
                last,
                outcome: Some(Ok(outcome.clone())),
            });
        }
    };
    for id in waiting_in(waiting, first, last) {
        match waiting.remove(&id) {
            Some(SettleWaiter::Batch(mut waiter)) => {
                waiter.answered = true;
                if let Some((sink, tag, _, run_last)) = &mut run
                    && *tag == waiter.tag
                    && run_last.wrapping_add(1) == id
                    && sink.same_channel(&waiter.sink)
                {
                    *run_last = id;
                    continue;
                }
                send_run(run.replace((waiter.sink.clone(), waiter.tag, id, id)));
            }
            Some(reply @ SettleWaiter::Reply(_)) => reply.answer(Ok(outcome.clone())),
            None => {}
        }
    }
    send_run(run);
}

fn fail_command(cmd: Command, err: &Error) {
    match cmd {
        Command::Begin { reply } => {
            let _ = reply.send(Err(err.clone()));
        }
        Command::End { reply, .. } | Command::Close { reply } => {
            let _ = reply.send(Err(err.clone()));
        }
        Command::Attach { reply, .. } => {
            let _ = reply.send(Err(err.clone()));
        }
        Command::Detach { reply, .. } => {
            if let Some(r) = reply {
                let _ = r.send(Err(err.clone()));
            }
        }
        Command::Transfer {
            payload,
            kind,
            message_format,
            ..
        } => fail_pending(
            Pending {
                payload,
                kind,
                message_format,
            },
            err,
        ),
        Command::Disposition { confirm, .. } => {
            if let Some(r) = confirm {
                let _ = r.send(Err(err.clone()));
            }
        }
        Command::Dispositions { mut waiters, .. } => {
            while let Some(waiter) = waiters.next_waiter() {
                SettleWaiter::Batch(waiter).answer(Err(err.clone()));
            }
        }
        Command::Drain { reply, .. } => {
            let _ = reply.send(Err(err.clone()));
        }
        Command::Credit { .. } => {}
    }
}

/// Number of frames in a buffer of whole encoded frames.
pub(crate) fn count_frames(mut buf: &[u8]) -> u32 {
    let mut n = 0;
    while buf.len() >= 4 {
        let size = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
        if size < 8 || size > buf.len() {
            break;
        }
        buf = &buf[size..];
        n += 1;
    }
    n
}

/// Writes what it can of `out` (`Some(n)`), or flushes once `out` is empty (`None`): TLS
/// may keep written bytes back until flushed. Cancel-safe, as `select!` needs.
async fn write_or_flush<W: AsyncWrite + Unpin>(
    writer: &mut W,
    out: &[u8],
) -> io::Result<Option<usize>> {
    if out.is_empty() {
        writer.flush().await?;
        return Ok(None);
    }
    writer.write(out).await.map(Some)
}

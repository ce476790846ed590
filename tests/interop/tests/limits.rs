//! Bounded resources, tried as a hostile client would: a raw AMQP client (frames built with
//! our codec, sent over a plain socket) that opens too much, finishes nothing, takes no
//! responses or sends faster than the disk. The broker's memory is read from `/proc` while
//! the attack runs; every limit answers in AMQP's own terms and the broker keeps serving.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use busbar_amqp::frame::{Frame, FrameBody, FrameDecoder, ProtocolHeader, encode_frame};
use busbar_amqp::performative::{
    Attach, Begin, DeliveryState, ErrorCondition, Flow, Open, Performative, ReceiverSettleMode,
    Role, SaslCode, SaslFrame, SenderSettleMode, Source, Target, TargetKind, Transfer,
};
use busbar_amqp::value::{Symbol, Value};
use busbar_interop::{Broker, DEFAULT_KEY, DEFAULT_KEY_NAME, QueueSpec, emulator_config};
use bytes::{Bytes, BytesMut};

const DEADLINE: Duration = Duration::from_secs(20);
const MIB: u64 = 1 << 20;

/// One raw AMQP connection.
struct Raw<'b> {
    broker: &'b Broker,
    stream: TcpStream,
    decoder: FrameDecoder,
    input: BytesMut,
    closed: bool,
}

enum Sasl {
    Anonymous,
    /// The development policy's key name and key: rights without a `$cbs` token.
    Plain,
}

impl<'b> Raw<'b> {
    /// Connects, authenticates and exchanges `open`; returns the broker's `open`.
    fn connect(broker: &'b Broker, sasl: Sasl) -> (Self, Option<Open>) {
        let stream = TcpStream::connect_timeout(&broker.amqp_addr(), Duration::from_secs(5))
            .unwrap_or_else(|error| broker.fail(&format!("connect: {error}")));
        stream
            .set_read_timeout(Some(Duration::from_millis(200)))
            .expect("read timeout");
        let mut raw = Raw {
            broker,
            stream,
            decoder: FrameDecoder::new(1 << 20),
            input: BytesMut::new(),
            closed: false,
        };
        raw.write(&ProtocolHeader::Sasl.bytes());
        raw.read_header();
        let (mechanism, response) = match sasl {
            Sasl::Anonymous => ("ANONYMOUS", None),
            Sasl::Plain => (
                "PLAIN",
                Some(Bytes::from(format!("\0{DEFAULT_KEY_NAME}\0{DEFAULT_KEY}"))),
            ),
        };
        raw.send(Frame::sasl(SaslFrame::Init {
            mechanism: Symbol::from(mechanism),
            initial_response: response,
            hostname: None,
        }));
        let outcome = raw.next_frame_where(|frame| match &frame.body {
            FrameBody::Sasl(SaslFrame::Outcome { code, .. }) => Some(*code),
            _ => None,
        });
        assert_eq!(outcome, Some(SaslCode::Ok), "SASL {mechanism} refused");
        raw.write(&ProtocolHeader::Amqp.bytes());
        raw.read_header();
        raw.send(Frame::amqp(
            0,
            Open {
                container_id: "hostile".to_owned(),
                ..Open::default()
            },
        ));
        let open = raw.next_frame_where(|frame| match &frame.body {
            FrameBody::Amqp {
                performative: Performative::Open(open),
                ..
            } => Some((**open).clone()),
            _ => None,
        });
        (raw, open)
    }

    fn write(&mut self, bytes: &[u8]) {
        if let Err(error) = self.stream.write_all(bytes) {
            if matches!(
                error.kind(),
                ErrorKind::BrokenPipe | ErrorKind::ConnectionReset
            ) {
                self.closed = true;
                return;
            }
            self.broker.fail(&format!("write: {error}"));
        }
    }

    fn send(&mut self, frame: Frame) {
        let mut out = BytesMut::new();
        encode_frame(&frame, &mut out);
        self.write(&out);
    }

    fn read_header(&mut self) {
        let deadline = Instant::now() + DEADLINE;
        while self.input.len() < 8 && Instant::now() < deadline && !self.closed {
            self.fill();
        }
        if self.input.len() < 8 {
            self.broker.fail("no protocol header from the broker");
        }
        let _ = self.input.split_to(8);
    }

    /// Reads what is available; marks the connection closed at end of stream.
    fn fill(&mut self) {
        let mut buf = [0u8; 64 * 1024];
        match self.stream.read(&mut buf) {
            Ok(0) => self.closed = true,
            Ok(n) => self.input.extend_from_slice(&buf[..n]),
            Err(error) if matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => self.closed = true,
        }
    }

    /// The next frame, or `None` once the connection is closed or the deadline passed.
    fn next_frame(&mut self) -> Option<Frame> {
        let deadline = Instant::now() + DEADLINE;
        loop {
            match self.decoder.decode(&mut self.input) {
                Ok(Some(frame)) => return Some(frame),
                Ok(None) => {}
                Err(error) => self.broker.fail(&format!("undecodable frame: {error}")),
            }
            if self.closed || Instant::now() >= deadline {
                return None;
            }
            self.fill();
        }
    }

    fn next_frame_where<T>(&mut self, mut pick: impl FnMut(&Frame) -> Option<T>) -> Option<T> {
        while let Some(frame) = self.next_frame() {
            if let Some(found) = pick(&frame) {
                return Some(found);
            }
        }
        None
    }

    /// The error condition of the broker's `close`, once it comes.
    fn close_condition(&mut self) -> Option<String> {
        self.next_frame_where(|frame| match &frame.body {
            FrameBody::Amqp {
                performative: Performative::Close(close),
                ..
            } => Some(error_text(close.error.as_ref())),
            _ => None,
        })
    }

    /// Without waiting: `Some` once the broker has closed the connection, with the
    /// condition of its `close` if one was read before the socket went.
    fn closed_yet(&mut self) -> Option<Option<String>> {
        self.fill();
        while let Ok(Some(frame)) = self.decoder.decode(&mut self.input) {
            if let FrameBody::Amqp {
                performative: Performative::Close(close),
                ..
            } = frame.body
            {
                return Some(close.error.map(|e| e.condition.as_str().to_owned()));
            }
        }
        self.closed.then_some(None)
    }

    fn begin(&mut self, channel: u16) {
        self.send(Frame::amqp(
            channel,
            Begin {
                next_outgoing_id: 0,
                incoming_window: 65_536,
                outgoing_window: 65_536,
                ..Begin::default()
            },
        ));
    }

    /// Attaches a link on which the client sends to `to`.
    fn attach_sender(&mut self, channel: u16, handle: u32, to: &str) {
        let (_, target) = address(to);
        let name = format!("sender-{channel}-{handle}");
        let link = attach(name, handle, Role::Sender, Source::default(), target);
        self.send(Frame::amqp(channel, link));
    }

    /// The broker's answer to the attach of `handle`: its attach, then its detach error if
    /// it refused.
    fn attach_answer(&mut self, channel: u16, handle: u32) -> (Attach, Option<String>) {
        let attach = self
            .next_frame_where(|frame| match &frame.body {
                FrameBody::Amqp {
                    performative: Performative::Attach(a),
                    ..
                } if frame.channel == channel && a.name.ends_with(&format!("-{handle}")) => {
                    Some(a.as_ref().clone())
                }
                _ => None,
            })
            .unwrap_or_else(|| self.broker.fail(&format!("no answer to attach {handle}")));
        if attach.target.is_some() {
            return (attach, None);
        }
        let refusal = self.next_frame_where(|frame| match &frame.body {
            FrameBody::Amqp {
                performative: Performative::Detach(d),
                ..
            } if d.handle == attach.handle => Some(error_text(d.error.as_ref())),
            _ => None,
        });
        (attach, refusal)
    }

    /// Attaches a peek-lock receiver on `from` and gives it `credit`.
    fn attach_receiver(&mut self, channel: u16, handle: u32, from: &str, credit: u32) {
        let (source, _) = address(from);
        let name = format!("receiver-{channel}-{handle}");
        let link = attach(name, handle, Role::Receiver, source, Target::default());
        self.send(Frame::amqp(channel, link));
        self.send(Frame::amqp(
            channel,
            Flow {
                next_incoming_id: Some(0),
                incoming_window: 1 << 20,
                next_outgoing_id: 0,
                outgoing_window: 1 << 20,
                handle: Some(handle),
                delivery_count: Some(0),
                link_credit: Some(credit),
                ..Flow::default()
            },
        ));
    }

    fn transfer(
        &mut self,
        channel: u16,
        handle: u32,
        delivery_id: u32,
        payload: &[u8],
        more: bool,
    ) {
        let transfer = Transfer {
            handle,
            delivery_id: Some(delivery_id),
            delivery_tag: Some(Bytes::copy_from_slice(&delivery_id.to_be_bytes())),
            message_format: Some(0),
            settled: Some(false),
            more,
            ..Transfer::default()
        };
        let mut out = BytesMut::new();
        busbar_amqp::frame::encode_transfer(channel, &transfer, payload, &mut out);
        self.write(&out);
    }
}

/// `condition: description` of an AMQP error, or empty.
fn error_text(error: Option<&ErrorCondition>) -> String {
    error
        .map(|e| {
            format!(
                "{}: {}",
                e.condition.as_str(),
                e.description.as_deref().unwrap_or("")
            )
        })
        .unwrap_or_default()
}

/// A link attach from the client: `role` is the client's.
fn attach(name: String, handle: u32, role: Role, source: Source, target: Target) -> Attach {
    Attach {
        name,
        handle,
        role,
        snd_settle_mode: SenderSettleMode::Unsettled,
        rcv_settle_mode: ReceiverSettleMode::First,
        source: Some(source),
        target: Some(TargetKind::Target(target)),
        unsettled: None,
        incomplete_unsettled: false,
        initial_delivery_count: (role == Role::Sender).then_some(0),
        max_message_size: None,
        offered_capabilities: None,
        desired_capabilities: None,
        properties: None,
    }
}

fn address(address: &str) -> (Source, Target) {
    (
        Source {
            address: Some(address.to_owned()),
            ..Source::default()
        },
        Target {
            address: Some(address.to_owned()),
            ..Target::default()
        },
    )
}

/// An AMQP message with a data body of `len` bytes.
fn message(len: usize) -> Vec<u8> {
    let mut out = vec![0x00, 0x53, 0x75, 0xb0];
    out.extend_from_slice(&u32::try_from(len).expect("small body").to_be_bytes());
    out.resize(out.len() + len, b'x');
    out
}

fn broker_with_queue(extra_args: &[&str]) -> Broker {
    Broker::start(Some(&emulator_config(&[QueueSpec::new("q")])), extra_args)
}

/// Many links, each with a large delivery started and never finished: before the limit
/// the broker kept them all (480 MiB from one connection); now the connection is closed
/// once it holds more than its share, and the broker's memory barely moves.
#[test]
fn unfinished_deliveries_cost_the_client_its_connection_not_the_broker_its_memory() {
    let broker = broker_with_queue(&[]);
    let before = broker.rss_bytes();
    let (mut raw, _) = Raw::connect(&broker, Sasl::Plain);
    let chunk = vec![b'x'; 200 * 1024];
    let mut started = 0u64;
    let mut peak = before;
    let mut condition = None;
    // The broker's close is read while the attack goes on: once it has hung up, what it
    // had sent may be lost to the reset that further writes cause.
    raw.stream
        .set_read_timeout(Some(Duration::from_millis(1)))
        .expect("read timeout");
    'attack: for channel in 0..8u16 {
        raw.begin(channel);
        for handle in 0..128u32 {
            raw.attach_sender(channel, handle, "q");
            raw.transfer(channel, handle, handle, &chunk, true);
            started += chunk.len() as u64;
            peak = peak.max(broker.rss_bytes());
            if let Some(closed) = raw.closed_yet() {
                condition = closed;
                break 'attack;
            }
        }
    }
    let grew = peak.saturating_sub(before);
    eprintln!(
        "started {} MiB of deliveries; broker RSS {} -> {} MiB; close: {condition:?}",
        started / MIB,
        before / MIB,
        peak / MIB
    );
    assert!(
        condition.as_deref() == Some("amqp:resource-limit-exceeded"),
        "the connection must be closed with resource-limit-exceeded, got {condition:?}"
    );
    assert!(
        grew < 64 * MIB,
        "the broker grew by {} MiB while one connection started {} MiB of deliveries",
        grew / MIB,
        started / MIB
    );
    // Everyone else is still served.
    let (mut other, open) = Raw::connect(&broker, Sasl::Plain);
    assert!(open.is_some(), "a new connection is opened");
    other.begin(0);
    other.attach_sender(0, 0, "q");
    let (_, refusal) = other.attach_answer(0, 0);
    assert_eq!(refusal, None);
}

/// Without a token a connection gets the `$cbs` pair and little more, the `$cbs` link
/// takes no large message, and the connection announces its session limit.
#[test]
fn a_connection_without_a_token_holds_few_small_links() {
    let broker = broker_with_queue(&[]);
    let (mut raw, open) = Raw::connect(&broker, Sasl::Anonymous);
    let open = open.unwrap_or_else(|| broker.fail("no open from the broker"));
    assert_eq!(open.channel_max, Some(255), "256 sessions per connection");
    raw.begin(0);
    for handle in 0..4 {
        raw.attach_sender(0, handle, "$cbs");
        let (attach, refusal) = raw.attach_answer(0, handle);
        assert_eq!(refusal, None, "link {handle} before a token");
        assert_eq!(
            attach.max_message_size,
            Some(64 * 1024),
            "$cbs takes small requests"
        );
    }
    raw.attach_sender(0, 4, "$cbs");
    let (_, refusal) = raw.attach_answer(0, 4);
    assert!(
        refusal
            .as_deref()
            .is_some_and(|r| r.starts_with("amqp:resource-limit-exceeded") && r.contains("token")),
        "a fifth link without a token: {refusal:?}"
    );
}

/// Beyond `--max-connections` a client is told why, and a slot that frees up is reused.
#[test]
fn connections_beyond_the_limit_are_closed_with_the_reason() {
    let broker = broker_with_queue(&["--max-connections", "2"]);
    let (first, _) = Raw::connect(&broker, Sasl::Anonymous);
    let (_second, _) = Raw::connect(&broker, Sasl::Anonymous);
    let (mut third, _) = Raw::connect(&broker, Sasl::Anonymous);
    let condition = third.close_condition();
    assert!(
        condition.as_deref().is_some_and(
            |c| c.starts_with("amqp:resource-limit-exceeded") && c.contains("2 connections")
        ),
        "the third connection: {condition:?}"
    );
    drop(first);
    drop(third);
    let deadline = Instant::now() + DEADLINE;
    loop {
        let (mut again, open) = Raw::connect(&broker, Sasl::Anonymous);
        assert!(open.is_some());
        again.begin(0);
        again.attach_sender(0, 0, "$cbs");
        let answered = again.next_frame_where(|frame| match &frame.body {
            FrameBody::Amqp {
                performative: Performative::Attach(_) | Performative::Close(_),
                ..
            } => Some(matches!(
                frame.body,
                FrameBody::Amqp {
                    performative: Performative::Attach(_),
                    ..
                }
            )),
            _ => None,
        });
        if answered == Some(true) {
            break;
        }
        assert!(Instant::now() < deadline, "the freed slot was never reused");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A client that sends requests and never takes the responses: after the limit its
/// requests are refused instead of piling up responses.
#[test]
fn responses_a_client_does_not_take_stop_piling_up() {
    let broker = broker_with_queue(&["--max-pending-responses", "8"]);
    let (mut raw, _) = Raw::connect(&broker, Sasl::Anonymous);
    raw.begin(0);
    raw.attach_sender(0, 0, "$cbs");
    raw.attach_answer(0, 0);
    // The response link, attached with no credit: nothing can be sent on it.
    let (source, _) = address("$cbs");
    let (_, target) = address("responses");
    let responses = attach("responses-1".to_owned(), 1, Role::Receiver, source, target);
    raw.send(Frame::amqp(0, responses));
    raw.attach_answer(0, 1);
    for id in 0..12u32 {
        raw.transfer(0, 0, id, &put_token_request(id), false);
    }
    let mut accepted = 0;
    let mut refused = Vec::new();
    while accepted + refused.len() < 12 {
        let Some(frame) = raw.next_frame() else {
            break;
        };
        if let FrameBody::Amqp {
            performative: Performative::Disposition(d),
            ..
        } = frame.body
        {
            let count = d.last.unwrap_or(d.first) - d.first + 1;
            match d.state {
                Some(DeliveryState::Accepted) => accepted += count as usize,
                Some(DeliveryState::Rejected { error }) => {
                    for _ in 0..count {
                        refused.push(error.clone().map(|e| e.condition.as_str().to_owned()));
                    }
                }
                other => broker.fail(&format!("unexpected outcome {other:?}")),
            }
        }
    }
    assert_eq!(accepted, 8, "requests taken while responses can queue");
    assert_eq!(refused.len(), 4, "requests refused once 8 responses wait");
    assert!(
        refused
            .iter()
            .all(|c| c.as_deref() == Some("amqp:resource-limit-exceeded"))
    );
}

/// A put-token request (an unsigned token: the answer is a refusal, which is still a
/// response to queue).
fn put_token_request(id: u32) -> Vec<u8> {
    use busbar_amqp::Descriptor;
    use busbar_amqp::codec::{encode_descriptor, encode_value};
    use busbar_amqp::message::section;
    let mut out = BytesMut::new();
    encode_descriptor(&Descriptor::Code(section::PROPERTIES), &mut out);
    encode_value(
        &Value::List(vec![
            Value::String(format!("request-{id}")),
            Value::Null,
            Value::Null,
            Value::Null,
            Value::String("responses".to_owned()),
        ]),
        &mut out,
    );
    encode_descriptor(&Descriptor::Code(section::APPLICATION_PROPERTIES), &mut out);
    let text = |s: &str| Value::String(s.to_owned());
    encode_value(
        &Value::Map(vec![
            (text("operation"), text("put-token")),
            (text("type"), text("servicebus.windows.net:sastoken")),
            (text("name"), text("sb://localhost/q")),
        ]),
        &mut out,
    );
    encode_descriptor(&Descriptor::Code(section::AMQP_VALUE), &mut out);
    encode_value(
        &text("SharedAccessSignature sr=x&sig=y&se=1&skn=z"),
        &mut out,
    );
    out.to_vec()
}

/// Back-pressure: a sender gets new credit only once what it already sent is durable. With
/// a per-connection allowance of one byte, the credit top-up that follows the 500th message
/// (half of the 1000 granted) must come after the broker acknowledged it, never before.
#[test]
fn credit_is_given_back_only_once_sends_are_durable() {
    let broker = broker_with_queue(&["--max-uncommitted-bytes-per-connection", "1"]);
    let (mut raw, _) = Raw::connect(&broker, Sasl::Plain);
    raw.begin(0);
    raw.attach_sender(0, 0, "q");
    let (_, refusal) = raw.attach_answer(0, 0);
    assert_eq!(refusal, None);
    let body = message(100);
    let initial_credit = raw
        .next_frame_where(|frame| match &frame.body {
            FrameBody::Amqp {
                performative: Performative::Flow(f),
                ..
            } if f.handle == Some(0) => f.link_credit,
            _ => None,
        })
        .unwrap_or_else(|| broker.fail("no credit"));
    let sent = initial_credit;
    for id in 0..sent {
        raw.transfer(0, 0, id, &body, false);
    }
    let mut acknowledged = 0u32;
    let top_up = loop {
        let Some(frame) = raw.next_frame() else {
            broker.fail(&format!(
                "no credit top-up after {sent} messages ({acknowledged} acknowledged)"
            ));
        };
        match frame.body {
            FrameBody::Amqp {
                performative: Performative::Disposition(d),
                ..
            } => {
                acknowledged = acknowledged.max(d.last.unwrap_or(d.first) + 1);
            }
            FrameBody::Amqp {
                performative: Performative::Flow(f),
                ..
            } if f.handle == Some(0) => {
                break f.delivery_count.unwrap_or(0);
            }
            _ => {}
        }
    };
    eprintln!("top-up at delivery-count {top_up} with {acknowledged} acknowledged");
    assert!(
        acknowledged >= top_up,
        "credit came back at delivery-count {top_up} while only {acknowledged} sends were durable"
    );
}

/// A client that takes deliveries and never reads them holds the broker's writes: after
/// `--write-timeout-secs` it is disconnected and its locks go back, so other receivers get
/// the messages instead of waiting for the locks to run out.
#[test]
fn a_client_that_does_not_read_is_disconnected_and_its_messages_go_to_others() {
    const MESSAGES: u32 = 100;
    let broker = broker_with_queue(&["--write-timeout-secs", "1"]);
    let (mut sender, _) = Raw::connect(&broker, Sasl::Plain);
    sender.begin(0);
    sender.attach_sender(0, 0, "q");
    sender.attach_answer(0, 0);
    let body = message(200 * 1024);
    for id in 0..MESSAGES {
        sender.transfer(0, 0, id, &body, false);
    }
    let mut acknowledged = 0;
    while acknowledged < MESSAGES {
        match sender.next_frame() {
            Some(Frame {
                body:
                    FrameBody::Amqp {
                        performative: Performative::Disposition(d),
                        ..
                    },
                ..
            }) => acknowledged = acknowledged.max(d.last.unwrap_or(d.first) + 1),
            Some(_) => {}
            None => broker.fail(&format!("only {acknowledged} sends acknowledged")),
        }
    }

    // 20 MiB of deliveries to a client that never reads: far more than socket buffers hold.
    let (mut stuck, _) = Raw::connect(&broker, Sasl::Plain);
    stuck.begin(0);
    stuck.attach_receiver(0, 0, "q", 1_000);
    std::thread::sleep(Duration::from_secs(3));

    let (mut patient, _) = Raw::connect(&broker, Sasl::Plain);
    patient.begin(0);
    patient.attach_receiver(0, 0, "q", 1_000);
    let mut received = 0;
    let deadline = Instant::now() + Duration::from_secs(15);
    while received < MESSAGES && Instant::now() < deadline {
        if let Some(Frame {
            body:
                FrameBody::Amqp {
                    performative: Performative::Transfer(t),
                    ..
                },
            ..
        }) = patient.next_frame()
            && t.delivery_id.is_some()
        {
            received += 1;
        }
    }
    assert_eq!(
        received, MESSAGES,
        "messages another receiver got while the first one did not read"
    );
    drop(stuck);
}

/// Refused attaches stay with the broker until the client detaches them: a client that
/// attaches again and again without detaching, with names as large as an attach may carry,
/// is closed before it holds much, and a larger attach closes its connection at once.
#[test]
fn refused_attaches_a_client_never_detaches_pin_no_memory() {
    let broker = broker_with_queue(&[]);
    let before = broker.rss_bytes();
    let (mut raw, _) = Raw::connect(&broker, Sasl::Anonymous);
    raw.stream
        .set_read_timeout(Some(Duration::from_millis(1)))
        .expect("read timeout");
    let mut attached = 0;
    let mut condition = None;
    'attack: for channel in 0..2u16 {
        raw.begin(channel);
        for handle in 0..200u32 {
            let name = format!("{}-{channel}-{handle}", "n".repeat(60 * 1024));
            let (source, target) = address("q");
            raw.send(Frame::amqp(
                channel,
                attach(name, handle, Role::Sender, source, target),
            ));
            attached += 1;
            if let Some(closed) = raw.closed_yet() {
                condition = closed;
                break 'attack;
            }
        }
    }
    let grew = broker.rss_bytes().saturating_sub(before);
    eprintln!(
        "{attached} attaches of 60 KiB; RSS grew {} KiB; close: {condition:?}",
        grew / 1024
    );
    assert_eq!(condition.as_deref(), Some("amqp:resource-limit-exceeded"));
    assert!(
        attached <= 16,
        "the connection was closed only after {attached} attaches"
    );
    assert!(grew < 16 * MIB, "the broker grew by {} MiB", grew / MIB);

    let (mut large, _) = Raw::connect(&broker, Sasl::Anonymous);
    large.begin(0);
    let (source, target) = address("q");
    let name = "n".repeat(100 * 1024);
    large.send(Frame::amqp(
        0,
        attach(name, 0, Role::Sender, source, target),
    ));
    let condition = large.close_condition();
    assert!(
        condition
            .as_deref()
            .is_some_and(|c| c.starts_with("amqp:invalid-field")),
        "an attach of 100 KiB: {condition:?}"
    );
}

/// Sockets that connect and say nothing hold no connection slot (a connection counts once
/// it has said what protocol it speaks): beside two of them, with room for two connections,
/// a client is served; and the broker drops them once the detection timeout has passed.
#[test]
fn silent_sockets_take_no_connection_slot_and_are_dropped() {
    let broker = broker_with_queue(&["--max-connections", "2"]);
    let silent: Vec<TcpStream> = (0..2)
        .map(|_| TcpStream::connect(broker.amqp_addr()).expect("connect"))
        .collect();
    let (mut client, open) = Raw::connect(&broker, Sasl::Anonymous);
    assert!(open.is_some(), "the client's open was answered");
    client.begin(0);
    client.attach_sender(0, 0, "$cbs");
    let answer = client.next_frame_where(|frame| match &frame.body {
        FrameBody::Amqp {
            performative: Performative::Attach(_),
            ..
        } => Some(Ok(())),
        FrameBody::Amqp {
            performative: Performative::Close(close),
            ..
        } => Some(Err(error_text(close.error.as_ref()))),
        _ => None,
    });
    assert_eq!(answer, Some(Ok(())), "a client beside two silent sockets");
    for mut socket in silent {
        // Past the detection timeout (10 s), with room for a loaded machine.
        socket
            .set_read_timeout(Some(Duration::from_secs(60)))
            .expect("read timeout");
        let mut byte = [0u8; 1];
        let read = socket.read(&mut byte);
        assert!(
            matches!(read, Ok(0))
                || matches!(&read, Err(e) if e.kind() == ErrorKind::ConnectionReset),
            "a silent socket is closed by the broker: {read:?}"
        );
    }
}

/// A receiver that takes deliveries and never settles them gets no more than
/// `--max-unsettled-per-link`; settling one makes room for one more.
#[test]
fn a_receiver_holding_its_limit_of_unsettled_deliveries_gets_no_more() {
    let broker = broker_with_queue(&["--max-unsettled-per-link", "5"]);
    let (mut sender, _) = Raw::connect(&broker, Sasl::Plain);
    sender.begin(0);
    sender.attach_sender(0, 0, "q");
    sender.attach_answer(0, 0);
    let body = message(10);
    for id in 0..20 {
        sender.transfer(0, 0, id, &body, false);
    }
    let (mut receiver, _) = Raw::connect(&broker, Sasl::Plain);
    receiver.begin(0);
    receiver.attach_receiver(0, 0, "q", 100);
    let count_transfers = |raw: &mut Raw, wait: Duration| {
        let mut ids = Vec::new();
        let deadline = Instant::now() + wait;
        while Instant::now() < deadline {
            raw.fill();
            while let Ok(Some(frame)) = raw.decoder.decode(&mut raw.input) {
                if let FrameBody::Amqp {
                    performative: Performative::Transfer(t),
                    ..
                } = frame.body
                    && let Some(id) = t.delivery_id
                {
                    ids.push(id);
                }
            }
        }
        ids
    };
    let first = count_transfers(&mut receiver, Duration::from_secs(2));
    assert_eq!(
        first.len(),
        5,
        "deliveries before any settlement: {first:?}"
    );
    receiver.send(Frame::amqp(
        0,
        busbar_amqp::performative::Disposition {
            role: Role::Receiver,
            first: first[0],
            last: None,
            settled: true,
            state: Some(DeliveryState::Accepted),
            batchable: false,
        },
    ));
    let more = count_transfers(&mut receiver, Duration::from_secs(2));
    assert_eq!(more.len(), 1, "deliveries after settling one: {more:?}");
}

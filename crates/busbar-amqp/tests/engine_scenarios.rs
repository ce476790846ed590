//! The connection engine driven with performatives the way the Python and JS Service Bus
//! SDKs drive a broker (the scenarios of the dialect brief, §10), checking every frame the
//! engine answers with and every event it raises.
#![allow(clippy::unwrap_used)]

use busbar_amqp::engine::{
    AttachReply, Connection, ConnectionConfig, EngineError, Event, IncomingMessage, LinkRef,
    SessionRef, TickAction,
};
use busbar_amqp::frame::{Frame, FrameBody, encode_frame};
use busbar_amqp::performative::*;
use busbar_amqp::value::Value;
use bytes::{Bytes, BytesMut};

const BATCH_FORMAT: u32 = 0x8001_3700;

// ---------------------------------------------------------------------------------------
// Harness: a client's view of the broker's engine
// ---------------------------------------------------------------------------------------

struct Peer {
    conn: Connection,
    now: u64,
}

impl Peer {
    fn new(config: ConnectionConfig) -> Self {
        Peer {
            conn: Connection::new(config, 0),
            now: 0,
        }
    }

    /// Python: no idle timeout, 1 MiB frames.
    fn python() -> Self {
        let mut p = Peer::new(ConnectionConfig::default());
        p.send(0, open("SBReceiver-1", Some(1_048_576), None));
        p.settle_open();
        p
    }

    /// JS: idle timeout 60 s, max-frame-size 4 GiB - 1.
    fn js() -> Self {
        let mut p = Peer::new(ConnectionConfig::default());
        p.send(0, open("js-container", Some(u32::MAX), Some(60_000)));
        p.settle_open();
        p
    }

    /// Takes the open reply and the Opened event out of the way.
    fn settle_open(&mut self) {
        assert!(matches!(
            self.written().as_slice(),
            [(0, Performative::Open(_))]
        ));
        assert!(matches!(self.events().as_slice(), [Event::Opened { .. }]));
    }

    fn send(&mut self, channel: u16, p: impl Into<Performative>) {
        self.conn
            .handle_frame(channel, p.into(), Bytes::new(), self.now)
            .unwrap();
    }

    fn try_send(&mut self, channel: u16, p: impl Into<Performative>) -> Result<(), String> {
        self.conn
            .handle_frame(channel, p.into(), Bytes::new(), self.now)
            .map_err(|e| e.condition.condition.as_str().to_owned())
    }

    fn transfer(&mut self, channel: u16, t: Transfer, payload: Bytes) {
        self.conn
            .handle_frame(channel, Performative::Transfer(t), payload, self.now)
            .unwrap();
    }

    fn frames(&mut self) -> Vec<Frame> {
        let mut out = Vec::new();
        self.conn.poll_output(&mut out, self.now);
        out
    }

    /// The performatives written, with their channels (payloads dropped).
    fn written(&mut self) -> Vec<(u16, Performative)> {
        self.frames()
            .into_iter()
            .map(|f| match f.body {
                FrameBody::Amqp { performative, .. } => (f.channel, performative),
                other => panic!("unexpected frame body {other:?}"),
            })
            .collect()
    }

    fn events(&mut self) -> Vec<Event> {
        std::iter::from_fn(|| self.conn.poll_event()).collect()
    }

    /// Begins a session on `channel`; returns the broker's channel and the session.
    fn begin(&mut self, channel: u16, incoming_window: u32) -> (u16, SessionRef) {
        self.send(
            channel,
            Begin {
                next_outgoing_id: 0,
                incoming_window,
                outgoing_window: 65_536,
                handle_max: Some(u32::MAX),
                ..Begin::default()
            },
        );
        let written = self.written();
        let [(local, Performative::Begin(b))] = written.as_slice() else {
            panic!("expected one begin, got {written:?}")
        };
        assert_eq!(b.remote_channel, Some(channel));
        let events = self.events();
        let [Event::SessionBegun { session }] = events.as_slice() else {
            panic!("expected SessionBegun")
        };
        assert_eq!(session.channel(), *local);
        (*local, *session)
    }

    /// Sends an attach and returns the link the broker is asked about.
    fn attach(&mut self, channel: u16, attach: Attach) -> LinkRef {
        let expected = attach.clone();
        self.send(channel, attach);
        let events = self.events();
        let [Event::AttachRequested { link, attach }] = events.as_slice() else {
            panic!("expected AttachRequested, got {events:?}")
        };
        assert_eq!(**attach, expected);
        *link
    }

    /// Attach, accepted with the default reply; returns the link and the broker's frames.
    fn attach_accepted(
        &mut self,
        channel: u16,
        attach: Attach,
        reply: AttachReply,
    ) -> (LinkRef, Vec<(u16, Performative)>) {
        let link = self.attach(channel, attach);
        self.conn.accept_attach(link, reply).unwrap();
        (link, self.written())
    }
}

fn open(container_id: &str, max_frame_size: Option<u32>, idle: Option<u32>) -> Open {
    Open {
        container_id: container_id.into(),
        hostname: Some("localhost".into()),
        max_frame_size,
        channel_max: Some(65_535),
        idle_time_out: idle,
        ..Open::default()
    }
}

fn source(address: &str) -> Source {
    Source {
        address: Some(address.into()),
        ..Source::default()
    }
}

fn target(address: &str) -> TargetKind {
    TargetKind::Target(Target {
        address: Some(address.into()),
        ..Target::default()
    })
}

/// A client sender link (the broker receives).
fn sender_attach(name: &str, handle: u32, to: &str) -> Attach {
    Attach {
        name: name.into(),
        handle,
        role: Role::Sender,
        snd_settle_mode: SenderSettleMode::Unsettled,
        rcv_settle_mode: ReceiverSettleMode::Second,
        source: Some(source(&format!("sender-link-{name}"))),
        target: Some(target(to)),
        unsettled: None,
        incomplete_unsettled: false,
        initial_delivery_count: Some(0),
        max_message_size: Some(0),
        offered_capabilities: None,
        desired_capabilities: None,
        properties: None,
    }
}

/// A client receiver link (the broker sends).
fn receiver_attach(name: &str, handle: u32, from: Source, snd: SenderSettleMode) -> Attach {
    let rcv = if snd == SenderSettleMode::Settled {
        ReceiverSettleMode::First
    } else {
        ReceiverSettleMode::Second
    };
    Attach {
        name: name.into(),
        handle,
        role: Role::Receiver,
        snd_settle_mode: snd,
        rcv_settle_mode: rcv,
        source: Some(from),
        target: Some(target(&format!("receiver-link-{name}"))),
        unsettled: None,
        incomplete_unsettled: false,
        initial_delivery_count: None,
        max_message_size: Some(1_048_576),
        offered_capabilities: None,
        desired_capabilities: None,
        properties: Some(Value::Map(vec![(
            Value::sym("com.microsoft:receiver-name"),
            Value::String("SBReceiver-1".into()),
        )])),
    }
}

fn link_flow(handle: u32, delivery_count: u32, credit: u32, drain: bool) -> Flow {
    Flow {
        next_incoming_id: Some(0),
        incoming_window: 65_536,
        next_outgoing_id: 0,
        outgoing_window: 65_536,
        handle: Some(handle),
        delivery_count: Some(delivery_count),
        link_credit: Some(credit),
        drain,
        ..Flow::default()
    }
}

fn client_transfer(handle: u32, delivery_id: u32, tag: &'static [u8], more: bool) -> Transfer {
    Transfer {
        handle,
        delivery_id: Some(delivery_id),
        delivery_tag: Some(Bytes::from_static(tag)),
        message_format: Some(0),
        settled: Some(false),
        more,
        ..Transfer::default()
    }
}

fn lock_token(n: u8) -> Bytes {
    Bytes::from(vec![n; 16])
}

fn disposition(first: u32, last: Option<u32>, settled: bool, state: DeliveryState) -> Disposition {
    Disposition {
        role: Role::Receiver,
        first,
        last,
        settled,
        state: Some(state),
        batchable: false,
    }
}

fn message_events(events: &[Event]) -> Vec<IncomingMessage> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Message(m) => Some(m.clone()),
            _ => None,
        })
        .collect()
}

/// Opens a JS-style receiver on a fresh session and grants it `credit`.
fn js_receiver(p: &mut Peer, channel: u16, credit: u32) -> (u16, LinkRef) {
    let (local, _) = p.begin(channel, 2048);
    let (link, _) = p.attach_accepted(
        channel,
        receiver_attach("q1-recv", 0, source("q1"), SenderSettleMode::Unsettled),
        AttachReply::default(),
    );
    if credit > 0 {
        p.send(channel, link_flow(0, 0, credit, false));
        assert_eq!(
            p.events(),
            vec![Event::CreditChanged { link, credit }],
            "credit reaches the broker"
        );
    }
    (local, link)
}

// ---------------------------------------------------------------------------------------
// §10.0 prologue and open
// ---------------------------------------------------------------------------------------

#[test]
fn open_is_answered_and_reported() {
    let mut p = Peer::new(ConnectionConfig {
        container_id: "busbar-test".into(),
        max_frame_size: 65_536,
        ..ConnectionConfig::default()
    });
    p.send(0, open("js-container", Some(u32::MAX), Some(60_000)));
    let written = p.written();
    let [(0, Performative::Open(o))] = written.as_slice() else {
        panic!("{written:?}")
    };
    assert_eq!(o.container_id, "busbar-test");
    assert_eq!(o.max_frame_size, Some(65_536));
    assert_eq!(o.idle_time_out, Some(120_000));
    assert!(o.channel_max.is_some());
    let events = p.events();
    let [
        Event::Opened {
            container_id,
            hostname,
            max_frame_size,
            idle_time_out_ms,
            ..
        },
    ] = events.as_slice()
    else {
        panic!("{events:?}")
    };
    assert_eq!(container_id, "js-container");
    assert_eq!(hostname.as_deref(), Some("localhost"));
    assert_eq!(*max_frame_size, u32::MAX);
    assert_eq!(*idle_time_out_ms, Some(60_000));
}

#[test]
fn python_prologue_cbs_pair_on_channel_1() {
    let mut p = Peer::python();
    p.written();
    p.events();
    // Python begins on channel 1 and numbers handles from 1.
    let (local, session) = p.begin(1, 65_536);
    assert_eq!(local, 0, "the broker picks its own channel");

    // $cbs: the client's sender (requests) on handle 1, its receiver (responses) on 2.
    let request = sender_attach("cbs-req", 1, "$cbs");
    let (req_link, written) = p.attach_accepted(1, request.clone(), AttachReply::default());
    assert_eq!(req_link.session(), session);
    assert_eq!(req_link.role(), Role::Receiver);
    let [(c1, Performative::Attach(a)), (c2, Performative::Flow(f))] = written.as_slice() else {
        panic!("{written:?}")
    };
    assert_eq!((*c1, *c2), (local, local));
    assert_eq!(a.name, "cbs-req");
    assert_eq!(a.role, Role::Receiver);
    assert_eq!(a.handle, req_link.handle());
    assert_eq!(a.source, request.source, "source echoed exactly");
    assert_eq!(a.target, request.target, "target echoed exactly");
    assert_eq!(a.snd_settle_mode, SenderSettleMode::Unsettled);
    assert_eq!(a.rcv_settle_mode, ReceiverSettleMode::Second);
    assert!(a.max_message_size.unwrap() > 0, "positive max-message-size");
    assert_eq!(a.initial_delivery_count, None);
    assert_eq!(f.handle, Some(req_link.handle()));
    assert_eq!(f.link_credit, Some(1000));
    assert_eq!(f.delivery_count, Some(0));

    let response = receiver_attach("cbs-resp", 2, source("$cbs"), SenderSettleMode::Unsettled);
    let (resp_link, written) = p.attach_accepted(1, response.clone(), AttachReply::default());
    assert_ne!(resp_link.handle(), req_link.handle());
    let [(_, Performative::Attach(a))] = written.as_slice() else {
        panic!("{written:?}")
    };
    assert_eq!(a.role, Role::Sender);
    assert_eq!(
        a.initial_delivery_count,
        Some(0),
        "MUST for Python receivers"
    );
    assert_eq!(a.source, response.source);
    assert_eq!(a.target, response.target);

    // put-token request, then the response once the client granted credit.
    p.transfer(
        1,
        client_transfer(1, 0, b"\x00\x00\x00\x01", false),
        Bytes::from_static(b"token"),
    );
    let messages = message_events(&p.events());
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].link, req_link);
    assert_eq!(messages[0].delivery_id, 0);
    assert_eq!(&messages[0].payload[..], b"token");
    assert_eq!(&messages[0].delivery_tag[..], b"\x00\x00\x00\x01");
    assert!(!messages[0].settled);
    p.conn.settle(req_link, 0, DeliveryState::Accepted).unwrap();

    p.send(1, link_flow(2, 0, 1, false));
    assert_eq!(
        p.events(),
        vec![Event::CreditChanged {
            link: resp_link,
            credit: 1
        }]
    );
    let id = p
        .conn
        .send_message(
            resp_link,
            lock_token(1),
            Bytes::from_static(b"200"),
            true,
            7,
        )
        .unwrap();
    assert_eq!(id, 0);
    let written = p.written();
    let [
        (_, Performative::Disposition(d)),
        (_, Performative::Transfer(t)),
    ] = written.as_slice()
    else {
        panic!("{written:?}")
    };
    assert_eq!(
        (d.role, d.first, d.last, d.settled),
        (Role::Receiver, 0, None, true)
    );
    assert_eq!(d.state, Some(DeliveryState::Accepted));
    assert_eq!(t.handle, resp_link.handle());
    assert_eq!(t.delivery_id, Some(0));
    assert_eq!(t.settled, Some(true));
    assert!(!t.more);
    assert_eq!(
        p.conn.unsettled_count(session),
        0,
        "settled sends are not tracked"
    );
}

// ---------------------------------------------------------------------------------------
// §10.1 send, batch, and refusal
// ---------------------------------------------------------------------------------------

#[test]
fn python_send_single_then_batch_gets_accepted_dispositions() {
    let mut p = Peer::python();
    p.written();
    p.events();
    let (local, _) = p.begin(1, 65_536);
    let attach = sender_attach("s1", 1, "amqps://localhost:5672/q1");
    let link = p.attach(1, attach);
    // Python flows on its own sender link before the broker even answered.
    p.send(1, link_flow(1, 0, 10_000, false));
    assert!(p.written().is_empty());
    assert!(p.events().is_empty());
    p.conn
        .accept_attach(
            link,
            AttachReply {
                max_message_size: Some(262_144),
                ..AttachReply::default()
            },
        )
        .unwrap();
    let written = p.written();
    let [(_, Performative::Attach(a)), (_, Performative::Flow(f))] = written.as_slice() else {
        panic!("{written:?}")
    };
    assert_eq!(a.max_message_size, Some(262_144));
    assert_eq!(f.link_credit, Some(1000));
    // The flow's session part announces a large incoming window.
    assert_eq!(f.incoming_window, 65_536);
    assert_eq!(f.next_incoming_id, Some(0));

    p.transfer(
        1,
        client_transfer(1, 0, b"\x00\x00\x00\x01", false),
        Bytes::from_static(b"m1"),
    );
    let mut batch = client_transfer(1, 1, b"\x00\x00\x00\x02", false);
    batch.message_format = Some(BATCH_FORMAT);
    p.transfer(1, batch, Bytes::from_static(b"envelope"));
    let messages = message_events(&p.events());
    assert_eq!(messages.len(), 2);
    assert_eq!(
        (messages[0].delivery_id, messages[0].message_format),
        (0, 0)
    );
    assert_eq!(
        (messages[1].delivery_id, messages[1].message_format),
        (1, BATCH_FORMAT)
    );
    for m in &messages {
        p.conn
            .settle(m.link, m.delivery_id, DeliveryState::Accepted)
            .unwrap();
    }
    let written = p.written();
    let [(c, Performative::Disposition(d))] = written.as_slice() else {
        panic!("{written:?}")
    };
    assert_eq!(*c, local);
    assert_eq!(
        (d.role, d.first, d.last, d.settled),
        (Role::Receiver, 0, Some(1), true),
        "consecutive settlements with one outcome coalesce into a range"
    );
    assert_eq!(p.conn.link_credit(link), Some(998));
}

#[test]
fn refusal_is_attach_then_detach_and_the_client_detach_gets_no_answer() {
    let mut p = Peer::js();
    p.written();
    p.events();
    let (local, _) = p.begin(0, 2048);
    let link = p.attach(0, sender_attach("missing-q-sender", 0, "missing-q"));
    let error = ErrorCondition::new(
        "amqp:not-found",
        "The messaging entity 'sb://localhost/missing-q' could not be found.",
    );
    p.conn.refuse_attach(link, error.clone()).unwrap();
    let written = p.written();
    let [(c1, Performative::Attach(a)), (c2, Performative::Detach(d))] = written.as_slice() else {
        panic!("expected attach + detach back-to-back, got {written:?}")
    };
    assert_eq!((*c1, *c2), (local, local));
    assert_eq!(a.name, "missing-q-sender");
    assert_eq!(a.role, Role::Receiver);
    assert_eq!((a.source.as_ref(), a.target.as_ref()), (None, None));
    assert_eq!(d.handle, a.handle);
    assert!(d.closed);
    assert_eq!(d.error, Some(error));
    assert_eq!(
        p.conn.accept_attach(link, AttachReply::default()),
        Err(EngineError::AlreadyAnswered)
    );

    // The client's detach completes the handshake: no answer, no event.
    p.send(
        0,
        Detach {
            handle: 0,
            closed: true,
            error: None,
        },
    );
    assert!(p.written().is_empty(), "never answer the closing detach");
    assert!(p.events().is_empty());
    // The handle is free again for the client's next attempt.
    let again = p.attach(0, sender_attach("q1-sender", 0, "q1"));
    assert_eq!(again.handle(), link.handle(), "the broker handle is reused");
    assert_ne!(again, link, "but the reference is new");
}

#[test]
fn client_detach_before_the_broker_answers_is_completed_with_null_attach() {
    let mut p = Peer::js();
    p.begin(0, 2048);
    p.written();
    let link = p.attach(
        0,
        receiver_attach("next-session", 0, source("sq"), SenderSettleMode::Unsettled),
    );
    p.send(
        0,
        Detach {
            handle: 0,
            closed: true,
            error: None,
        },
    );
    let written = p.written();
    let [(_, Performative::Attach(a)), (_, Performative::Detach(d))] = written.as_slice() else {
        panic!("{written:?}")
    };
    assert_eq!((a.source.as_ref(), a.handle), (None, d.handle));
    assert!(d.closed && d.error.is_none());
    assert_eq!(
        p.events(),
        vec![Event::Detached {
            link,
            closed: true,
            error: None
        }]
    );
    assert_eq!(
        p.conn.accept_attach(link, AttachReply::default()),
        Err(EngineError::UnknownLink)
    );
}

// ---------------------------------------------------------------------------------------
// §10.2 receive, credit, delivery-ids, drain, settlement
// ---------------------------------------------------------------------------------------

#[test]
fn js_receive_peek_lock_drain_and_complete() {
    let mut p = Peer::js();
    p.written();
    p.events();
    p.begin(0, 2048); // $cbs session
    p.begin(1, 2048); // sender session
    let (local, link) = js_receiver(&mut p, 2, 5);
    assert_eq!(local, 2);
    assert_eq!(p.conn.send_capacity(link), 5);

    for (n, token) in [(1u8, 100u64), (2, 101)] {
        p.conn
            .send_message(
                link,
                lock_token(n),
                Bytes::from_static(b"body"),
                false,
                token,
            )
            .unwrap();
    }
    let written = p.written();
    let ids: Vec<_> = written
        .iter()
        .map(|(c, perf)| match perf {
            Performative::Transfer(t) => {
                assert_eq!(*c, local);
                assert_eq!(t.delivery_tag.as_ref().unwrap().len(), 16);
                assert_eq!(t.settled, Some(false));
                t.delivery_id.unwrap()
            }
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(ids, vec![0, 1]);
    assert_eq!(p.conn.link_credit(link), Some(3));

    // JS drains the leftover credit: its delivery-count is 2 after two messages.
    p.send(2, link_flow(0, 2, 3, true));
    assert_eq!(p.events(), vec![Event::Drain { link, credit: 3 }]);
    assert!(p.conn.link_draining(link));
    assert!(p.conn.drain_complete(link).unwrap());
    let written = p.written();
    let [(_, Performative::Flow(f))] = written.as_slice() else {
        panic!("{written:?}")
    };
    assert_eq!(f.handle, Some(link.handle()));
    assert!(f.drain, "drain echoed");
    assert_eq!(f.link_credit, Some(0));
    assert_eq!(
        f.delivery_count,
        Some(5),
        "delivery-count advanced by the unused credit"
    );
    assert_eq!(p.conn.link_credit(link), Some(0));
    assert!(
        !p.conn.drain_complete(link).unwrap(),
        "no second drain reply"
    );
    assert!(p.written().is_empty());
    assert_eq!(
        p.conn
            .send_message(link, lock_token(3), Bytes::new(), false, 102),
        Err(EngineError::NoCredit)
    );

    // complete: unsettled disposition, answered with a settled one from the sender.
    p.send(2, disposition(0, Some(0), false, DeliveryState::Accepted));
    assert_eq!(
        p.events(),
        vec![Event::Settled {
            link,
            delivery_id: 0,
            token: 100,
            state: Some(DeliveryState::Accepted),
            settled_by_peer: false
        }]
    );
    p.conn.settle(link, 0, DeliveryState::Accepted).unwrap();
    let written = p.written();
    let [(_, Performative::Disposition(d))] = written.as_slice() else {
        panic!("{written:?}")
    };
    assert_eq!(
        (d.role, d.first, d.settled, d.state.clone()),
        (Role::Sender, 0, true, Some(DeliveryState::Accepted))
    );
    assert_eq!(
        p.conn.settle(link, 0, DeliveryState::Accepted),
        Err(EngineError::UnknownDelivery(0)),
        "a delivery is settled once"
    );
    assert_eq!(p.conn.unsettled_count(link.session()), 1);
}

#[test]
fn delivery_ids_are_consecutive_across_links_of_a_session() {
    let mut p = Peer::python();
    let (_, session) = p.begin(1, 65_536);
    let (mgmt, _) = p.attach_accepted(
        1,
        receiver_attach(
            "mgmt-resp",
            2,
            source("q1/$management"),
            SenderSettleMode::Unsettled,
        ),
        AttachReply::default(),
    );
    let (recv, _) = p.attach_accepted(
        1,
        receiver_attach(
            "r",
            3,
            source("amqps://localhost:5672/q1"),
            SenderSettleMode::Unsettled,
        ),
        AttachReply::default(),
    );
    p.send(1, link_flow(2, 0, 10, false));
    p.send(1, link_flow(3, 0, 10, false));
    p.events();
    let mut sent = Vec::new();
    for i in 0..6u8 {
        let link = if i % 2 == 0 { mgmt } else { recv };
        let settled = link == mgmt;
        let id = p
            .conn
            .send_message(
                link,
                lock_token(i),
                Bytes::from_static(b"x"),
                settled,
                u64::from(i),
            )
            .unwrap();
        sent.push((link.handle(), id));
    }
    let written: Vec<_> = p
        .written()
        .into_iter()
        .map(|(_, perf)| match perf {
            Performative::Transfer(t) => (t.handle, t.delivery_id.unwrap()),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(written, sent);
    assert_eq!(
        written.iter().map(|&(_, id)| id).collect::<Vec<_>>(),
        vec![0, 1, 2, 3, 4, 5]
    );
    assert_eq!(
        p.conn.unsettled_count(session),
        3,
        "only the unsettled ones"
    );
}

#[test]
fn no_send_without_credit() {
    let mut p = Peer::js();
    let (_, link) = js_receiver(&mut p, 0, 0);
    p.written();
    assert_eq!(p.conn.send_capacity(link), 0);
    assert_eq!(
        p.conn
            .send_message(link, lock_token(1), Bytes::new(), false, 1),
        Err(EngineError::NoCredit)
    );
    assert!(p.written().is_empty(), "nothing goes out without credit");
    p.send(0, link_flow(0, 0, 1, false));
    assert_eq!(p.events(), vec![Event::CreditChanged { link, credit: 1 }]);
    p.conn
        .send_message(link, lock_token(1), Bytes::new(), false, 1)
        .unwrap();
    assert_eq!(
        p.conn
            .send_message(link, lock_token(2), Bytes::new(), false, 2),
        Err(EngineError::NoCredit)
    );
    assert_eq!(p.written().len(), 1);
    // Python tops credit back up to 1 with its delivery-count now at 1.
    p.send(0, link_flow(0, 1, 1, false));
    assert_eq!(p.events(), vec![Event::CreditChanged { link, credit: 1 }]);
    // A flow that does not know about an in-flight delivery counts it against the credit.
    p.conn
        .send_message(link, lock_token(2), Bytes::new(), false, 2)
        .unwrap();
    p.send(0, link_flow(0, 1, 1, false));
    assert_eq!(p.conn.link_credit(link), Some(0));
}

#[test]
fn session_window_closes_and_reopens() {
    let mut p = Peer::js();
    let (_, session) = p.begin(0, 2);
    let (link, _) = p.attach_accepted(
        0,
        receiver_attach("r", 0, source("q1"), SenderSettleMode::Unsettled),
        AttachReply::default(),
    );
    p.send(
        0,
        Flow {
            incoming_window: 2,
            ..link_flow(0, 0, 10, false)
        },
    );
    p.events();
    for i in 0..2 {
        p.conn
            .send_message(link, lock_token(i), Bytes::new(), false, u64::from(i))
            .unwrap();
    }
    assert_eq!(p.conn.send_capacity(link), 0, "window used up");
    assert_eq!(
        p.conn
            .send_message(link, lock_token(9), Bytes::new(), false, 9),
        Err(EngineError::SessionWindowClosed)
    );
    assert_eq!(p.written().len(), 2);
    // The client's session flow reopens the window: the broker hears about it.
    p.send(
        0,
        Flow {
            next_incoming_id: Some(2),
            incoming_window: 2048,
            next_outgoing_id: 0,
            outgoing_window: 65_536,
            ..Flow::default()
        },
    );
    assert_eq!(p.events(), vec![Event::CreditChanged { link, credit: 8 }]);
    assert_eq!(p.conn.send_capacity(link), 8);
    assert_eq!(
        p.conn
            .send_message(link, lock_token(3), Bytes::new(), false, 3)
            .unwrap(),
        2
    );
    assert_eq!(p.conn.unsettled_count(session), 3);
}

#[test]
fn window_used_up_by_sends_is_announced_when_it_reopens() {
    let mut p = Peer::js();
    p.begin(0, 1);
    let (link, _) = p.attach_accepted(
        0,
        receiver_attach("r", 0, source("q1"), SenderSettleMode::Unsettled),
        AttachReply::default(),
    );
    p.send(
        0,
        Flow {
            incoming_window: 1,
            ..link_flow(0, 0, 5, false)
        },
    );
    p.events();
    p.conn
        .send_message(link, lock_token(0), Bytes::new(), false, 0)
        .unwrap();
    // The broker stops here because the capacity is 0; it never sees a refusal.
    assert_eq!(p.conn.send_capacity(link), 0);
    p.send(
        0,
        Flow {
            next_incoming_id: Some(1),
            incoming_window: 100,
            outgoing_window: 100,
            ..Flow::default()
        },
    );
    assert_eq!(p.events(), vec![Event::CreditChanged { link, credit: 4 }]);
}

// ---------------------------------------------------------------------------------------
// Multi-frame transfers
// ---------------------------------------------------------------------------------------

#[test]
fn incoming_multi_frame_delivery_is_reassembled() {
    let mut p = Peer::python();
    p.begin(1, 65_536);
    let (link, _) = p.attach_accepted(1, sender_attach("s", 1, "q1"), AttachReply::default());
    let parts: [&'static [u8]; 3] = [b"first-", b"second-", b"third"];
    p.transfer(
        1,
        client_transfer(1, 0, b"t0", true),
        Bytes::from_static(parts[0]),
    );
    let continuation = Transfer {
        handle: 1,
        more: true,
        ..Transfer::default()
    };
    p.transfer(1, continuation.clone(), Bytes::from_static(parts[1]));
    assert!(p.events().is_empty(), "nothing until the last frame");
    p.transfer(
        1,
        Transfer {
            more: false,
            ..continuation
        },
        Bytes::from_static(parts[2]),
    );
    let messages = message_events(&p.events());
    assert_eq!(messages.len(), 1);
    assert_eq!(&messages[0].payload[..], b"first-second-third");
    assert_eq!(&messages[0].delivery_tag[..], b"t0");
    assert_eq!((messages[0].link, messages[0].delivery_id), (link, 0));
    assert_eq!(
        p.conn.link_credit(link),
        Some(999),
        "one credit per delivery"
    );

    // A single-frame delivery is handed over without a copy.
    let body = Bytes::from(vec![7u8; 300]);
    p.transfer(1, client_transfer(1, 1, b"t1", false), body.clone());
    let messages = message_events(&p.events());
    assert_eq!(messages[0].payload.as_ptr(), body.as_ptr());
}

#[test]
fn oversized_incoming_delivery_is_rejected_and_the_link_goes_on() {
    let mut p = Peer::python();
    p.begin(1, 65_536);
    let (link, _) = p.attach_accepted(
        1,
        sender_attach("s", 1, "q1"),
        AttachReply {
            max_message_size: Some(1000),
            ..AttachReply::default()
        },
    );
    let chunk = Bytes::from(vec![1u8; 600]);
    p.transfer(1, client_transfer(1, 0, b"big", true), chunk.clone());
    p.transfer(
        1,
        Transfer {
            handle: 1,
            more: true,
            ..Transfer::default()
        },
        chunk.clone(),
    );
    p.transfer(
        1,
        Transfer {
            handle: 1,
            ..Transfer::default()
        },
        chunk,
    );
    assert_eq!(
        p.events(),
        vec![Event::MessageTooLarge {
            link,
            delivery_id: 0,
            limit: 1000
        }]
    );
    let written = p.written();
    let [(_, Performative::Disposition(d))] = written.as_slice() else {
        panic!("{written:?}")
    };
    assert!(d.settled);
    let Some(DeliveryState::Rejected { error: Some(e) }) = &d.state else {
        panic!("{d:?}")
    };
    assert_eq!(e.condition.as_str(), "amqp:link:message-size-exceeded");

    p.transfer(
        1,
        client_transfer(1, 1, b"ok", false),
        Bytes::from_static(b"fits"),
    );
    let messages = message_events(&p.events());
    assert_eq!((messages.len(), messages[0].delivery_id), (1, 1));
}

#[test]
fn outgoing_payload_is_split_to_the_peer_max_frame_size() {
    let mut p = Peer::new(ConnectionConfig::default());
    p.send(0, open("tiny-frames", Some(512), None));
    p.settle_open();
    let (local, _) = p.begin(0, 65_536);
    let (link, _) = p.attach_accepted(
        0,
        receiver_attach("r", 0, source("q1"), SenderSettleMode::Unsettled),
        AttachReply::default(),
    );
    p.send(0, link_flow(0, 0, 2, false));
    p.frames();
    let payload: Bytes = (0..2000u32).map(|i| i as u8).collect::<Vec<_>>().into();
    let id = p
        .conn
        .send_message(link, lock_token(9), payload.clone(), false, 42)
        .unwrap();
    let frames = p.frames();
    assert!(
        frames.len() >= 4,
        "2000 bytes need at least 4 frames of 512"
    );
    let mut joined = Vec::new();
    for (i, frame) in frames.iter().enumerate() {
        let mut encoded = BytesMut::new();
        encode_frame(frame, &mut encoded);
        assert!(encoded.len() <= 512, "frame {i} is {} bytes", encoded.len());
        assert_eq!(frame.channel, local);
        let FrameBody::Amqp {
            performative: Performative::Transfer(t),
            payload,
        } = &frame.body
        else {
            panic!("{frame:?}")
        };
        assert_eq!(t.delivery_id, Some(id));
        assert_eq!(t.handle, link.handle());
        assert_eq!(t.more, i + 1 < frames.len(), "more on all but the last");
        assert_eq!(t.delivery_tag.is_some(), i == 0, "tag on the first frame");
        joined.extend_from_slice(payload);
    }
    assert_eq!(joined, payload);
    assert_eq!(
        p.conn.link_credit(link),
        Some(1),
        "one credit for the whole delivery"
    );
    // The next delivery still takes the next delivery-id.
    assert_eq!(
        p.conn
            .send_message(link, lock_token(10), Bytes::from_static(b"x"), false, 43)
            .unwrap(),
        id + 1
    );
}

// ---------------------------------------------------------------------------------------
// Dispositions from the client (§10.2, 10.4, 10.5, 10.6, 10.12)
// ---------------------------------------------------------------------------------------

/// A Python peek-lock receiver with `n` unsettled deliveries out, tokens 1000 + i.
fn receiver_with_deliveries(n: u32, snd: SenderSettleMode) -> (Peer, LinkRef) {
    let mut p = Peer::python();
    p.begin(1, 65_536);
    let (link, _) = p.attach_accepted(
        1,
        receiver_attach("r", 1, source("amqps://localhost:5672/q1"), snd),
        AttachReply::default(),
    );
    p.send(1, link_flow(1, 0, n, false));
    p.events();
    for i in 0..n {
        let token = 1000 + u64::from(i);
        p.conn
            .send_message(
                link,
                lock_token(i as u8),
                Bytes::from_static(b"m"),
                false,
                token,
            )
            .unwrap();
    }
    p.frames();
    (p, link)
}

fn settled_tokens(events: &[Event]) -> Vec<(u32, u64, bool)> {
    events
        .iter()
        .map(|e| match e {
            Event::Settled {
                delivery_id,
                token,
                settled_by_peer,
                ..
            } => (*delivery_id, *token, *settled_by_peer),
            other => panic!("{other:?}"),
        })
        .collect()
}

#[test]
fn ranged_disposition_settles_every_delivery_in_the_range() {
    let (mut p, link) = receiver_with_deliveries(5, SenderSettleMode::Unsettled);
    p.send(1, disposition(1, Some(3), true, DeliveryState::Accepted));
    assert_eq!(
        settled_tokens(&p.events()),
        vec![(1, 1001, true), (2, 1002, true), (3, 1003, true)]
    );
    assert_eq!(p.conn.unsettled_count(link.session()), 2);
    // Settled ones are gone; a wider range reaches only what is left.
    p.send(1, disposition(0, Some(4), true, DeliveryState::Released));
    assert_eq!(
        settled_tokens(&p.events()),
        vec![(0, 1000, true), (4, 1004, true)]
    );
    assert_eq!(p.conn.unsettled_count(link.session()), 0);
    assert!(p.written().is_empty(), "settled dispositions get no answer");
}

#[test]
fn hostile_full_range_disposition_walks_only_unsettled_deliveries() {
    let (mut p, link) = receiver_with_deliveries(3, SenderSettleMode::Unsettled);
    p.send(
        1,
        disposition(0, Some(u32::MAX), true, DeliveryState::Accepted),
    );
    assert_eq!(
        settled_tokens(&p.events()),
        vec![(0, 1000, true), (1, 1001, true), (2, 1002, true)]
    );
    assert_eq!(p.conn.unsettled_count(link.session()), 0);
}

#[test]
fn abandon_and_dead_letter_are_reported_and_echoed_with_the_same_outcome() {
    let (mut p, link) = receiver_with_deliveries(2, SenderSettleMode::Unsettled);
    let abandon = DeliveryState::Modified {
        delivery_failed: Some(true),
        undeliverable_here: Some(false),
        message_annotations: None,
    };
    p.send(1, disposition(0, None, false, abandon.clone()));
    let events = p.events();
    let [Event::Settled { state, .. }] = events.as_slice() else {
        panic!("{events:?}")
    };
    assert_eq!(state.as_ref(), Some(&abandon));
    p.conn.settle(link, 0, abandon.clone()).unwrap();

    let dead_letter = DeliveryState::Rejected {
        error: Some(ErrorCondition {
            condition: "com.microsoft:dead-letter".into(),
            description: Some("desc".into()),
            info: Some(Value::Map(vec![(
                Value::sym("DeadLetterReason"),
                Value::String("why".into()),
            )])),
        }),
    };
    p.send(1, disposition(1, None, false, dead_letter.clone()));
    let events = p.events();
    let [Event::Settled { state, token, .. }] = events.as_slice() else {
        panic!("{events:?}")
    };
    assert_eq!((state.as_ref(), *token), (Some(&dead_letter), 1001));
    p.conn
        .settle(link, 1, DeliveryState::Rejected { error: None })
        .unwrap();
    let written = p.written();
    let [
        (_, Performative::Disposition(a)),
        (_, Performative::Disposition(b)),
    ] = written.as_slice()
    else {
        panic!("different outcomes are not merged: {written:?}")
    };
    assert_eq!((a.role, a.first, a.settled), (Role::Sender, 0, true));
    assert_eq!(a.state.as_ref(), Some(&abandon));
    assert_eq!((b.first, b.last), (1, None));
    assert_eq!(b.state, Some(DeliveryState::Rejected { error: None }));
}

#[test]
fn receive_and_delete_sends_settled_and_tracks_nothing() {
    let mut p = Peer::js();
    let (_, session) = p.begin(0, 2048);
    let (link, _) = p.attach_accepted(
        0,
        receiver_attach("rad", 0, source("q1"), SenderSettleMode::Settled),
        AttachReply::default(),
    );
    p.send(0, link_flow(0, 0, 3, false));
    p.events();
    for i in 0..3 {
        // Even a caller asking for unsettled gets settled on a settled-mode link.
        p.conn
            .send_message(link, lock_token(i), Bytes::from_static(b"m"), false, 0)
            .unwrap();
    }
    for (_, perf) in p.written() {
        let Performative::Transfer(t) = perf else {
            panic!("{perf:?}")
        };
        assert_eq!(t.settled, Some(true));
    }
    assert_eq!(p.conn.unsettled_count(session), 0);
}

// ---------------------------------------------------------------------------------------
// §10.12 close and release, and the quirks around it
// ---------------------------------------------------------------------------------------

#[test]
fn python_close_drains_releases_detaches_then_frames_after_end_are_ignored() {
    let (mut p, link) = receiver_with_deliveries(2, SenderSettleMode::Unsettled);
    // Credit is still outstanding (the flow granted 2, both used): Python drains anyway.
    p.send(1, link_flow(1, 2, 0, true));
    assert_eq!(p.events(), vec![Event::Drain { link, credit: 0 }]);
    assert!(p.conn.drain_complete(link).unwrap());
    let written = p.written();
    let [(_, Performative::Flow(f))] = written.as_slice() else {
        panic!("{written:?}")
    };
    assert_eq!(
        (f.drain, f.link_credit, f.delivery_count),
        (true, Some(0), Some(2))
    );

    for id in 0..2 {
        p.send(1, disposition(id, None, true, DeliveryState::Released));
    }
    assert_eq!(
        settled_tokens(&p.events()),
        vec![(0, 1000, true), (1, 1001, true)]
    );

    p.send(
        1,
        Detach {
            handle: 1,
            closed: true,
            error: None,
        },
    );
    let written = p.written();
    let [(_, Performative::Detach(d))] = written.as_slice() else {
        panic!("{written:?}")
    };
    assert_eq!((d.handle, d.closed), (link.handle(), true));
    assert_eq!(
        p.events(),
        vec![Event::Detached {
            link,
            closed: true,
            error: None
        }]
    );

    // A detach for a handle the broker does not know is ignored.
    p.send(
        1,
        Detach {
            handle: 77,
            closed: true,
            error: None,
        },
    );
    assert!(p.written().is_empty());

    p.send(1, End { error: None });
    let written = p.written();
    assert!(matches!(written.as_slice(), [(0, Performative::End(_))]));
    assert_eq!(
        p.events(),
        vec![Event::SessionEnded {
            session: link.session(),
            error: None
        }]
    );
    // Python's detach after end, and more stray frames: ignored, connection alive.
    p.send(
        1,
        Detach {
            handle: 2,
            closed: true,
            error: None,
        },
    );
    p.send(1, link_flow(2, 0, 1, false));
    p.send(1, disposition(0, None, true, DeliveryState::Accepted));
    assert!(p.written().is_empty());
    assert!(p.events().is_empty());
    assert!(!p.conn.is_closed());
    assert_eq!(
        p.conn.settle(link, 0, DeliveryState::Accepted),
        Err(EngineError::UnknownSession)
    );
}

#[test]
fn js_polite_close_detach_end_close() {
    let mut p = Peer::js();
    p.written();
    p.events();
    let (_, s0) = p.begin(0, 2048);
    let (sender, _) = p.attach_accepted(0, sender_attach("s", 0, "q1"), AttachReply::default());
    let (_, s1) = p.begin(1, 2048);
    let (receiver, _) = p.attach_accepted(
        1,
        receiver_attach("r", 0, source("q1"), SenderSettleMode::Unsettled),
        AttachReply::default(),
    );
    p.written();
    p.send(
        0,
        Detach {
            handle: 0,
            closed: true,
            error: None,
        },
    );
    p.send(0, End { error: None });
    let written = p.written();
    assert!(matches!(
        written.as_slice(),
        [(0, Performative::Detach(_)), (0, Performative::End(_))]
    ));
    assert_eq!(
        p.events(),
        vec![
            Event::Detached {
                link: sender,
                closed: true,
                error: None
            },
            Event::SessionEnded {
                session: s0,
                error: None
            }
        ]
    );
    // Closing with a session still open reports its links and the session gone.
    p.send(0, Close { error: None });
    let written = p.written();
    assert!(matches!(written.as_slice(), [(0, Performative::Close(c))] if c.error.is_none()));
    assert_eq!(
        p.events(),
        vec![
            Event::Detached {
                link: receiver,
                closed: false,
                error: None
            },
            Event::SessionEnded {
                session: s1,
                error: None
            },
            Event::Closed {
                error: None,
                by_peer: true
            }
        ]
    );
    assert!(p.conn.is_closed());
    p.send(1, End { error: None });
    assert!(p.written().is_empty(), "nothing after close");
}

#[test]
fn channels_are_mapped_both_ways_and_reused_after_end() {
    let mut p = Peer::js();
    let (l5, s5) = p.begin(5, 2048);
    let (l9, _) = p.begin(9, 2048);
    assert_eq!((l5, l9), (0, 1));
    // Frames on client channel 9 are answered on broker channel 1.
    let (_, written) = p.attach_accepted(9, sender_attach("s", 3, "q1"), AttachReply::default());
    assert!(written.iter().all(|(c, _)| *c == 1));
    p.send(5, End { error: None });
    p.written();
    p.events();
    // The client reuses channel 5; the broker reuses its channel 0 with a new session.
    let (again, s5_again) = p.begin(5, 2048);
    assert_eq!(again, 0);
    assert_ne!(s5, s5_again);
    assert_eq!(
        p.conn.end_session(s5, None),
        Err(EngineError::UnknownSession),
        "a stale session reference does not reach the new session"
    );
}

#[test]
fn broker_end_session_reports_links_and_waits_for_the_client_end() {
    let mut p = Peer::js();
    let (local, session) = p.begin(0, 2048);
    let (link, _) = p.attach_accepted(0, sender_attach("s", 0, "q1"), AttachReply::default());
    p.conn
        .end_session(
            session,
            Some(ErrorCondition::new("amqp:internal-error", "boom")),
        )
        .unwrap();
    let written = p.written();
    let [(c, Performative::End(e))] = written.as_slice() else {
        panic!("{written:?}")
    };
    assert_eq!(*c, local);
    assert!(e.error.is_some());
    assert_eq!(
        p.events().len(),
        2,
        "Detached for the link, then SessionEnded"
    );
    // Frames in flight are ignored; the client's end completes silently.
    p.transfer(
        0,
        client_transfer(0, 0, b"t", false),
        Bytes::from_static(b"late"),
    );
    p.send(0, End { error: None });
    assert!(p.written().is_empty());
    assert!(p.events().is_empty());
    assert_eq!(p.conn.link_credit(link), None);
    // The channel is free again.
    p.begin(0, 2048);
}

#[test]
fn broker_detach_is_completed_by_the_client_detach_silently() {
    let mut p = Peer::js();
    p.begin(0, 2048);
    let (link, _) = p.attach_accepted(0, sender_attach("s", 0, "q1"), AttachReply::default());
    p.conn
        .detach(
            link,
            Some(ErrorCondition::new(
                "com.microsoft:session-lock-lost",
                "lost",
            )),
        )
        .unwrap();
    let written = p.written();
    assert!(matches!(written.as_slice(), [(_, Performative::Detach(d))] if d.closed));
    // A transfer already in flight is dropped; then the client's detach completes.
    p.transfer(
        0,
        client_transfer(0, 0, b"t", false),
        Bytes::from_static(b"late"),
    );
    p.send(
        0,
        Detach {
            handle: 0,
            closed: true,
            error: None,
        },
    );
    assert!(
        p.written()
            .iter()
            .all(|(_, perf)| !matches!(perf, Performative::Detach(_)))
    );
    assert!(p.events().is_empty());
}

#[test]
fn flow_with_echo_is_answered() {
    let mut p = Peer::js();
    let (_, link) = js_receiver(&mut p, 0, 0);
    p.written();
    let mut flow = link_flow(0, 0, 4, false);
    flow.echo = true;
    p.send(0, flow);
    let written = p.written();
    let [(_, Performative::Flow(f))] = written.as_slice() else {
        panic!("{written:?}")
    };
    assert_eq!(f.handle, Some(link.handle()));
    assert_eq!(f.link_credit, Some(4));
    assert!(!f.echo);
    // A session-level echo gets a session-level answer.
    p.send(
        0,
        Flow {
            incoming_window: 100,
            outgoing_window: 100,
            echo: true,
            ..Flow::default()
        },
    );
    let written = p.written();
    assert!(matches!(written.as_slice(), [(_, Performative::Flow(f))] if f.handle.is_none()));
}

#[test]
fn incoming_credit_is_topped_up_when_half_used_and_window_refreshed() {
    let mut p = Peer::new(ConnectionConfig {
        incoming_window: 10,
        ..ConnectionConfig::default()
    });
    p.send(0, open("c", None, None));
    p.settle_open();
    p.begin(0, 2048);
    let (link, _) = p.attach_accepted(
        0,
        sender_attach("s", 0, "q1"),
        AttachReply {
            credit: Some(4),
            ..AttachReply::default()
        },
    );
    p.frames();
    p.transfer(
        0,
        client_transfer(0, 0, b"a", false),
        Bytes::from_static(b"1"),
    );
    assert!(p.written().is_empty());
    p.transfer(
        0,
        client_transfer(0, 1, b"b", false),
        Bytes::from_static(b"2"),
    );
    let written = p.written();
    let [(_, Performative::Flow(f))] = written.as_slice() else {
        panic!("{written:?}")
    };
    assert_eq!((f.link_credit, f.delivery_count), (Some(4), Some(2)));
    assert_eq!((f.next_incoming_id, f.incoming_window), (Some(2), 10));
    // Stopping the client: credit 0 is sent and never topped up.
    p.conn.grant_credit(link, 0).unwrap();
    p.written();
    for id in 2..8 {
        p.transfer(
            0,
            client_transfer(0, id, b"c", false),
            Bytes::from_static(b"3"),
        );
    }
    let written = p.written();
    assert_eq!(
        written.len(),
        1,
        "only the session window refresh: {written:?}"
    );
    let (_, Performative::Flow(f)) = &written[0] else {
        panic!()
    };
    assert_eq!((f.handle, f.incoming_window), (None, 10));
}

#[test]
fn held_credit_is_not_topped_up_until_resumed() {
    let mut p = Peer::python();
    p.begin(1, 65_536);
    let (link, _) = p.attach_accepted(
        1,
        sender_attach("s", 1, "q1"),
        AttachReply {
            credit: Some(4),
            ..AttachReply::default()
        },
    );
    p.frames();
    p.conn.hold_credit(true);
    assert!(p.conn.credit_held());
    for id in 0..4 {
        p.transfer(
            1,
            client_transfer(1, id, b"a", false),
            Bytes::from_static(b"1"),
        );
    }
    assert_eq!(p.conn.link_credit(link), Some(0), "the client ran out");
    assert!(
        !p.written()
            .iter()
            .any(|(_, f)| matches!(f, Performative::Flow(f) if f.handle.is_some())),
        "no link credit while held"
    );
    p.conn.hold_credit(false);
    let written = p.written();
    let flows: Vec<_> = written
        .iter()
        .filter_map(|(_, f)| match f {
            Performative::Flow(f) if f.handle.is_some() => Some(f),
            _ => None,
        })
        .collect();
    assert_eq!(flows.len(), 1, "{written:?}");
    assert_eq!(
        (flows[0].link_credit, flows[0].delivery_count),
        (Some(4), Some(4))
    );
    assert_eq!(p.conn.link_credit(link), Some(4));
}

#[test]
fn unfinished_deliveries_are_counted_until_they_complete() {
    let mut p = Peer::python();
    p.begin(1, 65_536);
    p.attach_accepted(1, sender_attach("s", 1, "q1"), AttachReply::default());
    p.attach_accepted(1, sender_attach("t", 2, "q2"), AttachReply::default());
    assert_eq!(p.conn.link_count(), 2);
    assert_eq!(p.conn.unfinished_delivery_bytes(), 0);
    p.transfer(
        1,
        client_transfer(1, 0, b"a", true),
        Bytes::from(vec![1u8; 1000]),
    );
    p.transfer(
        1,
        client_transfer(2, 1, b"b", true),
        Bytes::from(vec![2u8; 500]),
    );
    assert_eq!(p.conn.unfinished_delivery_bytes(), 1500);
    let last = Transfer {
        handle: 1,
        more: false,
        ..Transfer::default()
    };
    p.transfer(1, last, Bytes::from(vec![1u8; 10]));
    assert_eq!(message_events(&p.events()).len(), 1);
    assert_eq!(p.conn.unfinished_delivery_bytes(), 500);
}

// ---------------------------------------------------------------------------------------
// Keep-alive and idle timeout
// ---------------------------------------------------------------------------------------

#[test]
fn heartbeats_go_out_at_half_the_js_idle_timeout() {
    let mut p = Peer::new(ConnectionConfig::default());
    p.now = 10;
    p.send(0, open("js-container", Some(u32::MAX), Some(60_000)));
    p.frames(); // the open goes out at t=10
    assert_eq!(p.conn.next_deadline_ms(), Some(30_010));
    assert_eq!(p.conn.tick(30_009), TickAction::Nothing);
    assert_eq!(p.conn.tick(30_010), TickAction::SendHeartbeat);
    assert_eq!(
        p.conn.tick(30_020),
        TickAction::Nothing,
        "one is queued already"
    );
    p.now = 30_020;
    let frames = p.frames();
    assert_eq!(frames, vec![Frame::heartbeat()]);
    assert_eq!(p.conn.tick(30_021), TickAction::Nothing);
    // Other output counts as traffic.
    p.now = 50_000;
    p.events();
    p.begin(0, 2048);
    assert_eq!(p.conn.tick(79_999), TickAction::Nothing);
    assert_eq!(p.conn.tick(80_000), TickAction::SendHeartbeat);
}

#[test]
fn python_gets_no_heartbeats_and_a_silent_peer_is_timed_out() {
    let mut p = Peer::python();
    p.frames();
    assert_eq!(
        p.conn.tick(200_000),
        TickAction::Nothing,
        "Python asked for none"
    );
    // It sends an empty frame now and then; that keeps it alive.
    p.conn.handle_heartbeat(200_000);
    assert_eq!(p.conn.next_deadline_ms(), Some(440_001));
    assert_eq!(p.conn.tick(440_000), TickAction::Nothing);
    assert_eq!(p.conn.tick(440_001), TickAction::IdleTimeout);
    let written = p.written();
    let [(0, Performative::Close(c))] = written.as_slice() else {
        panic!("{written:?}")
    };
    assert_eq!(
        c.error.as_ref().unwrap().condition.as_str(),
        "amqp:resource-limit-exceeded"
    );
    assert!(p.conn.is_closed());
    assert!(matches!(
        p.events().last(),
        Some(Event::Closed { by_peer: false, .. })
    ));
}

#[test]
fn no_idle_timeout_configured_never_times_out() {
    let mut p = Peer::new(ConnectionConfig {
        idle_time_out_ms: None,
        ..ConnectionConfig::default()
    });
    p.send(0, open("c", None, None));
    let written = p.written();
    let [(_, Performative::Open(o))] = written.as_slice() else {
        panic!()
    };
    assert_eq!(o.idle_time_out, None);
    assert_eq!(p.conn.next_deadline_ms(), None);
    assert_eq!(p.conn.tick(u64::MAX / 2), TickAction::Nothing);
}

// ---------------------------------------------------------------------------------------
// Protocol errors close the connection
// ---------------------------------------------------------------------------------------

#[test]
fn protocol_violations_close_with_a_condition() {
    // Anything before open: open then close(framing-error).
    let mut p = Peer::new(ConnectionConfig::default());
    assert_eq!(
        p.try_send(0, Begin::default()),
        Err("amqp:connection:framing-error".into())
    );
    let written = p.written();
    assert!(matches!(
        written.as_slice(),
        [(0, Performative::Open(_)), (0, Performative::Close(c))] if c.error.is_some()
    ));

    // A max-frame-size below 512.
    let mut p = Peer::new(ConnectionConfig::default());
    assert_eq!(
        p.try_send(0, open("c", Some(100), None)),
        Err("amqp:invalid-field".into())
    );

    // A handle above the broker's handle-max.
    let mut p = Peer::js();
    p.begin(0, 2048);
    assert_eq!(
        p.try_send(0, sender_attach("s", 100_000, "q1")),
        Err("amqp:connection:framing-error".into())
    );
    assert!(p.conn.is_closed());

    // A handle attached twice.
    let mut p = Peer::js();
    p.begin(0, 2048);
    p.attach(0, sender_attach("a", 0, "q1"));
    assert_eq!(
        p.try_send(0, sender_attach("b", 0, "q1")),
        Err("amqp:session:handle-in-use".into())
    );

    // A channel begun twice.
    let mut p = Peer::js();
    p.begin(0, 2048);
    assert_eq!(
        p.try_send(
            0,
            Begin {
                incoming_window: 1,
                outgoing_window: 1,
                ..Begin::default()
            }
        ),
        Err("amqp:not-allowed".into())
    );
}

#[test]
fn transport_loss_reports_everything_gone_once() {
    let mut p = Peer::python();
    p.events();
    let (_, session) = p.begin(1, 65_536);
    let (a, _) = p.attach_accepted(1, sender_attach("s", 1, "q1"), AttachReply::default());
    let b = p.attach(
        1,
        receiver_attach("r", 2, source("q1"), SenderSettleMode::Unsettled),
    );
    p.conn.connection_lost();
    let events = p.events();
    assert_eq!(events.len(), 4, "{events:?}");
    let detached: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            Event::Detached { link, .. } => Some(*link),
            _ => None,
        })
        .collect();
    assert_eq!(
        detached,
        vec![a, b],
        "answered or not, every link is reported"
    );
    assert_eq!(
        events[2],
        Event::SessionEnded {
            session,
            error: None
        }
    );
    assert!(matches!(events[3], Event::Closed { .. }));
    p.conn.connection_lost();
    assert!(p.events().is_empty());
    assert_eq!(
        p.conn.send_message(a, lock_token(1), Bytes::new(), true, 0),
        Err(EngineError::ConnectionClosed)
    );
}

#[test]
fn early_flow_on_an_unanswered_receiver_attach_becomes_credit() {
    let mut p = Peer::js();
    p.begin(0, 2048);
    let link = p.attach(
        0,
        receiver_attach("sess", 0, source("sq"), SenderSettleMode::Unsettled),
    );
    // The session receiver's credit arrives while the broker looks for a session.
    p.send(0, link_flow(0, 0, 5, false));
    assert!(p.events().is_empty());
    assert_eq!(
        p.conn
            .send_message(link, lock_token(1), Bytes::new(), false, 1),
        Err(EngineError::NotAttached)
    );
    p.conn.accept_attach(link, AttachReply::default()).unwrap();
    assert_eq!(p.events(), vec![Event::CreditChanged { link, credit: 5 }]);
    assert_eq!(p.conn.send_capacity(link), 5);
}

//! The client against a scripted peer on a loopback socket: every frame the client writes
//! is decoded and checked, every answer is written by hand.

use super::*;
use busbar_amqp::frame::encode_transfer;
use busbar_amqp::performative::{
    Attach, Begin, Close, Detach, Disposition, Flow, TargetKind, Transfer,
};
use tokio::net::TcpListener;

use crate::driver::count_frames;

#[test]
fn host_of_strips_port() {
    assert_eq!(host_of("localhost:5672"), "localhost");
    assert_eq!(host_of("[::1]:5672"), "::1");
    assert_eq!(host_of("h"), "h");
}

#[test]
fn counts_whole_frames_only() {
    let mut out = BytesMut::new();
    encode_frame(&Frame::heartbeat(), &mut out);
    let t = Transfer {
        handle: 0,
        delivery_id: Some(0),
        delivery_tag: Some(Bytes::from_static(b"t")),
        ..Transfer::default()
    };
    busbar_amqp::frame::encode_transfer_split(0, &t, &[1u8; 3000], 1000, &mut out);
    assert_eq!(count_frames(&out), 5);
    // A truncated trailing frame is not counted.
    assert_eq!(count_frames(&out[..out.len() - 1]), 4);
}

#[test]
fn sasl_init_picks_the_configured_mechanism() {
    let offered = [Symbol::from("ANONYMOUS"), Symbol::from("PLAIN")];
    let plain = Sasl::Plain {
        user: "u".into(),
        pass: "p".into(),
    };
    match sasl_init(&plain, &offered, "h").unwrap() {
        SaslFrame::Init {
            mechanism,
            initial_response,
            hostname,
        } => {
            assert_eq!(mechanism.as_str(), "PLAIN");
            assert_eq!(initial_response.as_deref(), Some(&b"\0u\0p"[..]));
            assert_eq!(hostname.as_deref(), Some("h"));
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(matches!(
        sasl_init(&plain, &offered[..1], "h"),
        Err(Error::SaslMechanism("PLAIN"))
    ));
}

struct Peer {
    stream: TcpStream,
    buf: BytesMut,
    dec: FrameDecoder,
}

impl Peer {
    async fn accept(listener: &TcpListener) -> Peer {
        let (stream, _) = listener.accept().await.unwrap();
        Peer {
            stream,
            buf: BytesMut::new(),
            dec: FrameDecoder::new(1 << 20),
        }
    }

    async fn header(&mut self) -> [u8; 8] {
        while self.buf.len() < 8 {
            fill(&mut self.stream, &mut self.buf).await.unwrap();
        }
        let h = self.buf.split_to(8);
        h[..].try_into().unwrap()
    }

    async fn frame(&mut self) -> Frame {
        read_frame(&mut self.stream, &mut self.buf, &mut self.dec)
            .await
            .unwrap()
    }

    /// The next non-heartbeat performative and its payload.
    async fn perf(&mut self) -> (u16, Performative, Bytes) {
        loop {
            let f = self.frame().await;
            match f.body {
                FrameBody::Amqp {
                    performative,
                    payload,
                } => return (f.channel, performative, payload),
                FrameBody::Empty => continue,
                FrameBody::Sasl(s) => panic!("unexpected sasl frame {s:?}"),
            }
        }
    }

    async fn send(&mut self, frames: &[Frame]) {
        let mut out = BytesMut::new();
        for f in frames {
            encode_frame(f, &mut out);
        }
        self.stream.write_all(&out).await.unwrap();
    }

    async fn raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
    }

    async fn expect_flow(&mut self) {
        let (_, p, _) = self.perf().await;
        assert!(
            matches!(p, Performative::Flow(_)),
            "expected flow, got {p:?}"
        );
    }

    /// `count` unsettled one-byte messages on channel 7, handle 3, delivery ids from 100.
    async fn send_unsettled(&mut self, count: u32) {
        let mut out = BytesMut::new();
        for i in 0..count {
            let t = Transfer {
                handle: 3,
                delivery_id: Some(100 + i),
                delivery_tag: Some(Bytes::from(format!("tag{i}"))),
                message_format: Some(0),
                settled: Some(false),
                ..Transfer::default()
            };
            encode_transfer(7, &t, &encode_message(b"m"), &mut out);
        }
        self.raw(&out).await;
    }

    /// SASL PLAIN and open; the peer announces `max_frame` and `idle_ms`.
    async fn handshake(&mut self, max_frame: u32, idle_ms: Option<u32>) {
        assert_eq!(self.header().await, ProtocolHeader::Sasl.bytes());
        self.raw(&ProtocolHeader::Sasl.bytes()).await;
        self.send(&[Frame::sasl(SaslFrame::Mechanisms {
            mechanisms: vec![Symbol::from("PLAIN"), Symbol::from("ANONYMOUS")],
        })])
        .await;
        match self.frame().await.body {
            FrameBody::Sasl(SaslFrame::Init {
                mechanism,
                initial_response,
                ..
            }) => {
                assert_eq!(mechanism.as_str(), "PLAIN");
                assert_eq!(initial_response.as_deref(), Some(&b"\0guest\0secret"[..]));
            }
            other => panic!("expected sasl-init, got {other:?}"),
        }
        self.send(&[Frame::sasl(SaslFrame::Outcome {
            code: SaslCode::Ok,
            additional_data: None,
        })])
        .await;
        assert_eq!(self.header().await, ProtocolHeader::Amqp.bytes());
        let (_, open, _) = self.perf().await;
        let Performative::Open(open) = open else {
            panic!("expected open, got {open:?}")
        };
        assert_eq!(open.hostname.as_deref(), Some("127.0.0.1"));
        self.raw(&ProtocolHeader::Amqp.bytes()).await;
        self.send(&[Frame::amqp(
            0,
            Open {
                container_id: "peer".into(),
                max_frame_size: Some(max_frame),
                idle_time_out: idle_ms,
                ..Open::default()
            },
        )])
        .await;
    }

    /// Answers the client's begin on remote channel 7 with an incoming window of `window`.
    async fn begin(&mut self, window: u32) -> u16 {
        let (ch, p, _) = self.perf().await;
        let Performative::Begin(b) = p else {
            panic!("expected begin, got {p:?}")
        };
        assert_eq!(b.remote_channel, None);
        self.send(&[Frame::amqp(
            7,
            Begin {
                remote_channel: Some(ch),
                next_outgoing_id: 100,
                incoming_window: window,
                outgoing_window: 1000,
                handle_max: None,
                offered_capabilities: None,
                desired_capabilities: None,
                properties: None,
            },
        )])
        .await;
        ch
    }

    async fn attach(&mut self) -> Attach {
        let (_, p, _) = self.perf().await;
        match p {
            Performative::Attach(a) => *a,
            other => panic!("expected attach, got {other:?}"),
        }
    }
}

fn echo_attach(a: &Attach, handle: u32) -> Attach {
    let role = match a.role {
        Role::Sender => Role::Receiver,
        Role::Receiver => Role::Sender,
    };
    Attach {
        handle,
        role,
        initial_delivery_count: (role == Role::Sender).then_some(0),
        ..a.clone()
    }
}

fn link_flow(handle: u32, delivery_count: u32, credit: u32) -> Flow {
    Flow {
        next_incoming_id: Some(0),
        incoming_window: 1000,
        next_outgoing_id: 100,
        outgoing_window: 1000,
        handle: Some(handle),
        delivery_count: Some(delivery_count),
        link_credit: Some(credit),
        ..Flow::default()
    }
}

fn plain_options() -> ConnectOptions {
    ConnectOptions {
        sasl: Sasl::Plain {
            user: "guest".into(),
            pass: "secret".into(),
        },
        ..ConnectOptions::default()
    }
}

/// Reads transfer frames until one delivery is complete: (first transfer, joined payload,
/// frame count).
async fn read_delivery(peer: &mut Peer) -> (Transfer, Vec<u8>, usize) {
    let mut first: Option<Transfer> = None;
    let mut joined = Vec::new();
    let mut frames = 0;
    loop {
        let (_, p, payload) = peer.perf().await;
        let Performative::Transfer(t) = p else {
            panic!("expected transfer, got {p:?}")
        };
        frames += 1;
        joined.extend_from_slice(&payload);
        let more = t.more;
        first.get_or_insert(t);
        if !more {
            return (first.unwrap(), joined, frames);
        }
    }
}

#[tokio::test]
async fn send_honours_credit_splits_frames_and_maps_outcomes() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let peer = tokio::spawn(async move {
        let mut peer = Peer::accept(&listener).await;
        peer.handshake(512, None).await;
        let ch = peer.begin(1000).await;
        let a = peer.attach().await;
        assert_eq!(a.role, Role::Sender);
        assert_eq!(a.snd_settle_mode, SenderSettleMode::Unsettled);
        match &a.target {
            Some(TargetKind::Target(t)) => assert_eq!(t.address.as_deref(), Some("q1")),
            other => panic!("bad target {other:?}"),
        }
        // Two credits for three sends.
        peer.send(&[
            Frame::amqp(7, echo_attach(&a, 40)),
            Frame::amqp(7, link_flow(40, 0, 2)),
        ])
        .await;
        let (t0, body0, frames0) = read_delivery(&mut peer).await;
        assert!(frames0 >= 4, "a 2000-byte message must be split at 512");
        assert_eq!(body0, encode_message_with(&[1u8; 2000], &opts("a"))[..]);
        let (t1, _, _) = read_delivery(&mut peer).await;
        assert_eq!(t0.handle, a.handle);
        assert_eq!(t1.delivery_id, Some(t0.delivery_id.unwrap() + 1));
        assert_eq!(t0.settled, Some(false));
        // No third transfer without credit: the next frame must be our own probe's answer.
        peer.send(&[Frame::amqp(
            7,
            Flow {
                echo: true,
                ..link_flow(40, 0, 2)
            },
        )])
        .await;
        let (_, p, _) = peer.perf().await;
        match p {
            Performative::Flow(f) => {
                assert_eq!(f.handle, Some(a.handle));
                assert_eq!(f.delivery_count, Some(2));
                assert_eq!(f.link_credit, Some(0));
            }
            other => panic!("expected the echoed flow before any transfer, got {other:?}"),
        }
        // Settle both as one range, reject the first's neighbour afterwards via more credit.
        peer.send(&[
            Frame::amqp(
                7,
                Disposition {
                    role: Role::Receiver,
                    first: t0.delivery_id.unwrap(),
                    last: t1.delivery_id,
                    settled: true,
                    state: Some(DeliveryState::Accepted),
                    batchable: false,
                },
            ),
            Frame::amqp(7, link_flow(40, 2, 1)),
        ])
        .await;
        let (t2, _, _) = read_delivery(&mut peer).await;
        peer.send(&[Frame::amqp(
            7,
            Disposition {
                role: Role::Receiver,
                first: t2.delivery_id.unwrap(),
                last: None,
                settled: true,
                state: Some(DeliveryState::Rejected {
                    error: Some(ErrorCondition::new(
                        "amqp:link:message-size-exceeded",
                        "big",
                    )),
                }),
                batchable: false,
            },
        )])
        .await;
        // Detach on drop, then close.
        let (_, p, _) = peer.perf().await;
        assert!(matches!(
            p,
            Performative::Detach(Detach { closed: true, .. })
        ));
        peer.send(&[Frame::amqp(
            7,
            Detach {
                handle: 40,
                closed: true,
                error: None,
            },
        )])
        .await;
        let (_, p, _) = peer.perf().await;
        assert!(matches!(p, Performative::Close(_)));
        peer.send(&[Frame::amqp(0, Close { error: None })]).await;
        ch
    });

    let conn = Connection::connect(&addr, plain_options()).await.unwrap();
    assert_eq!(conn.remote_max_frame_size(), 512);
    let session = conn.session().await.unwrap();
    let sender = session.sender("q1").await.unwrap();
    let f0 = sender.send(encode_message_with(&[1u8; 2000], &opts("a")));
    let f1 = sender.send(encode_message(b"b"));
    let f2 = sender.send(encode_message(b"c"));
    assert_eq!(f0.await.unwrap(), Outcome::Accepted);
    assert_eq!(f1.await.unwrap(), Outcome::Accepted);
    match f2.await.unwrap() {
        Outcome::Rejected(Some(e)) => assert_eq!(e.condition, "amqp:link:message-size-exceeded"),
        other => panic!("unexpected {other:?}"),
    }
    drop(sender);
    conn.close().await.unwrap();
    peer.await.unwrap();
}

fn opts(id: &str) -> MessageOptions {
    MessageOptions {
        durable: true,
        message_id: Some(id.into()),
    }
}

#[tokio::test]
async fn receive_reassembles_tops_up_credit_and_settles_in_ranges() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let big = encode_message(&[9u8; 1500]);
    let big_for_peer = big.clone();
    let peer = tokio::spawn(async move {
        let mut peer = Peer::accept(&listener).await;
        peer.handshake(1 << 16, None).await;
        peer.begin(1000).await;
        let a = peer.attach().await;
        assert_eq!(a.role, Role::Receiver);
        assert_eq!(a.snd_settle_mode, SenderSettleMode::Unsettled);
        assert_eq!(a.rcv_settle_mode, ReceiverSettleMode::First);
        assert_eq!(
            a.source.as_ref().and_then(|s| s.address.as_deref()),
            Some("q2")
        );
        peer.send(&[Frame::amqp(7, echo_attach(&a, 3))]).await;
        let (_, p, _) = peer.perf().await;
        let Performative::Flow(f) = p else {
            panic!("expected flow, got {p:?}")
        };
        assert_eq!(
            (f.handle, f.delivery_count, f.link_credit),
            (Some(a.handle), Some(0), Some(4))
        );
        assert_eq!(f.next_incoming_id, Some(100));
        // One delivery in three frames, then three small ones.
        let mut out = BytesMut::new();
        let mut t = Transfer {
            handle: 3,
            delivery_id: Some(100),
            delivery_tag: Some(Bytes::from_static(b"tag0")),
            message_format: Some(0),
            settled: Some(false),
            more: true,
            ..Transfer::default()
        };
        encode_transfer(7, &t, &big_for_peer[..500], &mut out);
        let cont = Transfer {
            handle: 3,
            more: true,
            ..Transfer::default()
        };
        encode_transfer(7, &cont, &big_for_peer[500..1000], &mut out);
        encode_transfer(
            7,
            &Transfer {
                more: false,
                ..cont.clone()
            },
            &big_for_peer[1000..],
            &mut out,
        );
        for i in 1..4u32 {
            t.delivery_id = Some(100 + i);
            t.delivery_tag = Some(Bytes::from(format!("tag{i}")));
            t.more = false;
            encode_transfer(7, &t, &encode_message(b"small"), &mut out);
        }
        peer.raw(&out).await;
        // Accepting 100..=101 travels as one range; the refill (credit 4, half consumed)
        // grants two more.
        let mut saw_range = false;
        let mut saw_refill = false;
        let mut saw_release = false;
        while !(saw_range && saw_refill && saw_release) {
            let (_, p, _) = peer.perf().await;
            match p {
                Performative::Disposition(d) if d.state == Some(DeliveryState::Accepted) => {
                    assert_eq!((d.first, d.last, d.settled), (100, Some(101), true));
                    assert_eq!(d.role, Role::Receiver);
                    saw_range = true;
                }
                Performative::Disposition(d) if d.state == Some(DeliveryState::Released) => {
                    assert_eq!((d.first, d.last), (102, None));
                    saw_release = true;
                }
                Performative::Flow(f) if f.handle.is_some() => {
                    if !saw_refill {
                        assert_eq!(f.delivery_count, Some(4));
                        assert_eq!(f.link_credit, Some(2));
                    }
                    saw_refill = true;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        // Remote detach with an error ends the receiver.
        peer.send(&[Frame::amqp(
            7,
            Detach {
                handle: 3,
                closed: true,
                error: Some(ErrorCondition::new("amqp:not-found", "gone")),
            },
        )])
        .await;
        loop {
            match peer.perf().await.1 {
                Performative::Detach(d) => {
                    assert!(d.closed);
                    break;
                }
                // The refill after the fourth delivery may still be on its way.
                Performative::Flow(f) => assert_eq!(f.link_credit, Some(4)),
                other => panic!("unexpected {other:?}"),
            }
        }
    });

    let conn = Connection::connect(&addr, plain_options()).await.unwrap();
    let session = conn.session().await.unwrap();
    let mut rx = session
        .receiver(
            "q2",
            ReceiverOptions {
                settle_mode: SettleMode::PeekLock,
                credit: 4,
            },
        )
        .await
        .unwrap();
    let d0 = rx.recv().await.unwrap();
    assert_eq!(d0.payload, big);
    assert_eq!(d0.delivery_tag, Bytes::from_static(b"tag0"));
    assert_eq!(d0.body().unwrap(), Bytes::from(vec![9u8; 1500]));
    assert!(!d0.settled);
    let d1 = rx.recv().await.unwrap();
    let d2 = rx.recv().await.unwrap();
    assert_eq!(d2.body().unwrap(), Bytes::from_static(b"small"));
    rx.accept(&d0).unwrap();
    rx.accept(&d1).unwrap();
    rx.release(&d2).unwrap();
    let _d3 = rx.recv().await.unwrap();
    match rx.recv().await {
        Err(Error::LinkDetached(Some(e))) => assert_eq!(e.condition, "amqp:not-found"),
        other => panic!("unexpected {other:?}"),
    }
    peer.await.unwrap();
}

#[tokio::test]
async fn refused_attach_reports_the_detach_error_and_heartbeats_flow() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let peer = tokio::spawn(async move {
        let mut peer = Peer::accept(&listener).await;
        // 100 ms idle timeout: the client must send an empty frame at least every 50 ms.
        peer.handshake(1 << 16, Some(100)).await;
        peer.begin(1000).await;
        let a = peer.attach().await;
        let refusal = Attach {
            source: None,
            target: None,
            ..echo_attach(&a, 9)
        };
        peer.send(&[
            Frame::amqp(7, refusal),
            Frame::amqp(
                7,
                Detach {
                    handle: 9,
                    closed: true,
                    error: Some(ErrorCondition::new("amqp:unauthorized-access", "no token")),
                },
            ),
        ])
        .await;
        let (_, p, _) = peer.perf().await;
        assert!(matches!(p, Performative::Detach(Detach { handle, .. }) if handle == a.handle));
        let started = std::time::Instant::now();
        let mut heartbeats = 0;
        while heartbeats < 3 {
            let f = tokio::time::timeout(Duration::from_millis(500), peer.frame())
                .await
                .expect("heartbeat within the idle timeout");
            if f.body == FrameBody::Empty {
                heartbeats += 1;
            }
        }
        assert!(started.elapsed() < Duration::from_millis(400));
    });
    let conn = Connection::connect(&addr, plain_options()).await.unwrap();
    let session = conn.session().await.unwrap();
    match session.sender("secret").await {
        Err(Error::LinkRefused(Some(e))) => {
            assert_eq!(e.condition, "amqp:unauthorized-access");
            assert_eq!(e.description.as_deref(), Some("no token"));
        }
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("attach should have been refused"),
    }
    peer.await.unwrap();
    // The peer is gone: the connection reports it instead of hanging.
    let err = tokio::time::timeout(Duration::from_secs(5), conn.session())
        .await
        .expect("no hang");
    assert!(err.is_err());
}

#[tokio::test]
async fn confirmed_accept_waits_for_the_peers_settlement() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let peer = tokio::spawn(async move {
        let mut peer = Peer::accept(&listener).await;
        peer.handshake(1 << 16, None).await;
        peer.begin(1000).await;
        let a = peer.attach().await;
        assert_eq!(a.snd_settle_mode, SenderSettleMode::Unsettled);
        assert_eq!(a.rcv_settle_mode, ReceiverSettleMode::Second);
        peer.send(&[Frame::amqp(7, echo_attach(&a, 3))]).await;
        peer.expect_flow().await;
        peer.send_unsettled(3).await;
        // The three accepts arrive unsettled (as one range or several).
        let mut answered = Vec::new();
        while answered.len() < 3 {
            let (_, p, _) = peer.perf().await;
            let Performative::Disposition(d) = p else {
                continue;
            };
            assert_eq!(d.role, Role::Receiver);
            assert!(
                !d.settled,
                "a confirmed accept must leave the delivery unsettled"
            );
            assert_eq!(d.state, Some(DeliveryState::Accepted));
            answered.extend(d.first..=d.last.unwrap_or(d.first));
        }
        assert_eq!(answered, vec![100, 101, 102]);
        let settle = |first, state| Disposition {
            role: Role::Sender,
            first,
            last: None,
            settled: true,
            state: Some(state),
            batchable: false,
        };
        peer.send(&[
            // Not settled yet: nobody may be answered by this.
            Frame::amqp(
                7,
                Disposition {
                    settled: false,
                    ..settle(100, DeliveryState::Accepted)
                },
            ),
            Frame::amqp(
                7,
                settle(
                    101,
                    DeliveryState::Rejected {
                        error: Some(ErrorCondition::new("com.microsoft:message-lock-lost", "")),
                    },
                ),
            ),
            Frame::amqp(7, settle(100, DeliveryState::Accepted)),
        ])
        .await;
        // 102 is never settled: the connection drops instead.
    });

    let conn = Connection::connect(&addr, plain_options()).await.unwrap();
    let session = conn.session().await.unwrap();
    let mut rx = session
        .receiver(
            "q",
            ReceiverOptions {
                settle_mode: SettleMode::PeekLockConfirmed,
                credit: 10,
            },
        )
        .await
        .unwrap();
    let mut confirmations = Vec::new();
    for _ in 0..3 {
        let d = rx.recv().await.unwrap();
        confirmations.push(rx.accept_confirmed(&d));
    }
    let mut confirmations = confirmations.into_iter();
    let (first, second, third) = (
        confirmations.next().unwrap(),
        confirmations.next().unwrap(),
        confirmations.next().unwrap(),
    );
    assert_eq!(first.await.unwrap(), Outcome::Accepted);
    match second.await.unwrap() {
        Outcome::Rejected(Some(e)) => assert_eq!(e.condition, "com.microsoft:message-lock-lost"),
        other => panic!("unexpected {other:?}"),
    }
    peer.await.unwrap();
    assert!(
        third.await.is_err(),
        "an accept the peer never settled must not look confirmed"
    );
}

#[tokio::test]
async fn a_batch_of_confirmed_accepts_is_answered_to_its_sink_in_runs() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let peer = tokio::spawn(async move {
        let mut peer = Peer::accept(&listener).await;
        peer.handshake(1 << 16, None).await;
        peer.begin(1000).await;
        let a = peer.attach().await;
        peer.send(&[Frame::amqp(7, echo_attach(&a, 3))]).await;
        peer.expect_flow().await;
        peer.send_unsettled(6).await;
        // 100..=104 in the batch (100 twice) and 105 with a reply of its own, all unsettled.
        let mut answered = Vec::new();
        while answered.len() < 7 {
            let (_, p, _) = peer.perf().await;
            let Performative::Disposition(d) = p else {
                continue;
            };
            assert_eq!((d.role, d.settled), (Role::Receiver, false));
            assert_eq!(d.state, Some(DeliveryState::Accepted));
            answered.extend(d.first..=d.last.unwrap_or(d.first));
        }
        answered.sort_unstable();
        assert_eq!(answered, vec![100, 100, 101, 102, 103, 104, 105]);
        let settle = |first, last, state| Disposition {
            role: Role::Sender,
            first,
            last,
            settled: true,
            state: Some(state),
            batchable: false,
        };
        peer.send(&[
            // One range over the batch's 100..=102 and the single settlement's 105.
            Frame::amqp(7, settle(100, Some(102), DeliveryState::Accepted)),
            Frame::amqp(
                7,
                settle(
                    103,
                    None,
                    DeliveryState::Rejected {
                        error: Some(ErrorCondition::new("com.microsoft:message-lock-lost", "")),
                    },
                ),
            ),
            Frame::amqp(7, settle(105, None, DeliveryState::Accepted)),
        ])
        .await;
        // 104 is never settled: the connection drops instead.
    });

    let conn = Connection::connect(&addr, plain_options()).await.unwrap();
    let session = conn.session().await.unwrap();
    let mut rx = session
        .receiver(
            "q",
            ReceiverOptions {
                settle_mode: SettleMode::PeekLockConfirmed,
                credit: 10,
            },
        )
        .await
        .unwrap();
    let mut deliveries = Vec::new();
    for _ in 0..6 {
        deliveries.push(rx.recv().await.unwrap());
    }
    let (sink, mut confirmations) = mpsc::unbounded_channel();
    let settler = rx.settler();
    // 100 settled twice: the first settlement's waiter is let go of unanswered.
    settler.settle_confirmed_batch(vec![100], DeliveryState::Accepted, &sink, 7);
    settler.settle_confirmed_batch((100..105).collect(), DeliveryState::Accepted, &sink, 7);
    let single = rx.accept_confirmed(&deliveries[5]);
    let mut got = Vec::new();
    while got.len() < 4 {
        let c: Confirmation = confirmations.recv().await.unwrap();
        assert_eq!(c.tag, 7);
        let outcome = match c.outcome {
            None => "let go".to_owned(),
            Some(Ok(Outcome::Accepted)) => "accepted".to_owned(),
            Some(Ok(Outcome::Rejected(Some(e)))) => e.condition.to_string(),
            Some(Ok(other)) => format!("{other:?}"),
            Some(Err(_)) => "failed".to_owned(),
        };
        got.push((c.first, c.last, outcome));
    }
    assert_eq!(
        got,
        vec![
            (100, 100, "let go".to_owned()),
            (100, 102, "accepted".to_owned()),
            (103, 103, "com.microsoft:message-lock-lost".to_owned()),
            (104, 104, "failed".to_owned()),
        ]
    );
    assert_eq!(single.await.unwrap(), Outcome::Accepted);
    peer.await.unwrap();
    // With the connection gone, a batch is still answered, each delivery failed or let go.
    settler.settle_confirmed_batch(vec![106, 107], DeliveryState::Accepted, &sink, 8);
    for delivery_id in [106, 107] {
        let c = confirmations.recv().await.unwrap();
        assert_eq!((c.tag, c.first, c.last), (8, delivery_id, delivery_id));
        assert!(matches!(c.outcome, None | Some(Err(_))), "{c:?}");
    }
}

#[tokio::test]
async fn settlements_made_one_scheduler_round_after_another_travel_as_one_range() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let peer = tokio::spawn(async move {
        let mut peer = Peer::accept(&listener).await;
        peer.handshake(1 << 16, None).await;
        peer.begin(1000).await;
        let a = peer.attach().await;
        peer.send(&[Frame::amqp(7, echo_attach(&a, 3))]).await;
        peer.expect_flow().await;
        peer.send_unsettled(4).await;
        let (_, p, _) = peer.perf().await;
        let Performative::Disposition(d) = p else {
            panic!("expected a disposition, got {p:?}")
        };
        assert_eq!(
            (d.first, d.last, d.state),
            (100, Some(103), Some(DeliveryState::Accepted)),
            "the four accepts, one per scheduler round, must go out as one range"
        );
    });

    let conn = Connection::connect(&addr, plain_options()).await.unwrap();
    let session = conn.session().await.unwrap();
    let mut rx = session
        .receiver(
            "q",
            ReceiverOptions {
                settle_mode: SettleMode::PeekLock,
                credit: 10,
            },
        )
        .await
        .unwrap();
    let mut deliveries = Vec::new();
    for _ in 0..4 {
        deliveries.push(rx.recv().await.unwrap());
    }
    // As a processor's handler calls finish: one settlement, then the other ready tasks
    // (the connection's among them), then the next.
    for d in &deliveries {
        rx.accept(d).unwrap();
        tokio::task::yield_now().await;
    }
    peer.await.unwrap();
}

#[tokio::test]
async fn a_detached_links_handle_is_used_again() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let peer = tokio::spawn(async move {
        let mut peer = Peer::accept(&listener).await;
        peer.handshake(1 << 16, None).await;
        peer.begin(1000).await;
        let mut handles = Vec::new();
        for _ in 0..3 {
            let a = peer.attach().await;
            handles.push(a.handle);
            peer.send(&[Frame::amqp(7, echo_attach(&a, 5))]).await;
            let (_, p, _) = peer.perf().await;
            assert!(
                matches!(p, Performative::Detach(Detach { handle, closed: true, .. }) if handle == a.handle)
            );
            peer.send(&[Frame::amqp(
                7,
                Detach {
                    handle: 5,
                    closed: true,
                    error: None,
                },
            )])
            .await;
        }
        handles
    });
    let conn = Connection::connect(&addr, plain_options()).await.unwrap();
    let session = conn.session().await.unwrap();
    for _ in 0..3 {
        let sender = session.sender("q").await.unwrap();
        sender.close().await.unwrap();
    }
    // A session's handle-max bounds the links it has at once, not over its life.
    assert_eq!(peer.await.unwrap(), [0, 0, 0]);
}

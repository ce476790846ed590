//! AMQP over WebSockets (`/$servicebus/websocket`, subprotocol `AMQPWSB10`): the official
//! Python and JS SDKs send and receive through it over `ws://` (over `wss://` on every
//! entry: `tls.rs`); a raw WebSocket client (tungstenite, frames built with our AMQP codec)
//! checks what SDKs don't exercise: frames split across messages, pings, refusals of a wrong
//! subprotocol, a text message and an over-sized message, and that WebSocket connections
//! count against `--max-connections`. After every refusal the broker goes on serving.

use std::net::TcpStream;
use std::time::Duration;

use busbar_amqp::frame::{Frame, FrameBody, FrameDecoder, ProtocolHeader, encode_frame};
use busbar_amqp::performative::{Open, Performative, SaslCode, SaslFrame};
use busbar_amqp::value::Symbol;
use busbar_interop::{Broker, QueueSpec, emulator_config};
use bytes::BytesMut;
use tungstenite::protocol::CloseFrame;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::{ClientRequestBuilder, Message, WebSocket};

const SUBPROTOCOL: &str = "AMQPWSB10";

fn broker_with_queue(extra_args: &[&str]) -> Broker {
    Broker::start(
        Some(&emulator_config(&[QueueSpec::new("orders")])),
        extra_args,
    )
}

/// Upgrades a connection to the broker's HTTP listener asking for `subprotocol`.
fn upgrade(
    broker: &Broker,
    subprotocol: Option<&str>,
) -> Result<WebSocket<TcpStream>, tungstenite::Error> {
    let uri = format!("ws://{}/$servicebus/websocket", broker.http_addr())
        .parse()
        .expect("a valid URI");
    let mut request = ClientRequestBuilder::new(uri);
    if let Some(subprotocol) = subprotocol {
        request = request.with_sub_protocol(subprotocol);
    }
    let stream = TcpStream::connect(broker.http_addr())
        .unwrap_or_else(|error| broker.fail(&format!("connect: {error}")));
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("read timeout");
    match tungstenite::client(request, stream) {
        Ok((socket, _)) => Ok(socket),
        Err(tungstenite::HandshakeError::Failure(error)) => Err(error),
        Err(tungstenite::HandshakeError::Interrupted(_)) => {
            broker.fail("the WebSocket handshake was interrupted on a blocking socket")
        }
    }
}

fn amqp_socket(broker: &Broker) -> WebSocket<TcpStream> {
    upgrade(broker, Some(SUBPROTOCOL))
        .unwrap_or_else(|error| broker.fail(&format!("upgrade with {SUBPROTOCOL}: {error}")))
}

/// The next message that is not a ping or pong; `None` once the socket is gone.
fn next_message(socket: &mut WebSocket<TcpStream>) -> Option<Message> {
    loop {
        match socket.read() {
            Ok(Message::Ping(_) | Message::Pong(_)) => {}
            Ok(message) => return Some(message),
            Err(_) => return None,
        }
    }
}

/// The close frame the broker ends the socket with.
fn close_frame(broker: &Broker, socket: &mut WebSocket<TcpStream>) -> CloseFrame {
    loop {
        match next_message(socket) {
            Some(Message::Close(Some(frame))) => return frame,
            Some(Message::Binary(_)) => {}
            other => broker.fail(&format!("expected a close frame, got {other:?}")),
        }
    }
}

/// AMQP over a WebSocket: bytes in, frames out.
struct AmqpOverWebSocket<'b> {
    broker: &'b Broker,
    socket: WebSocket<TcpStream>,
    input: BytesMut,
    decoder: FrameDecoder,
}

impl<'b> AmqpOverWebSocket<'b> {
    fn new(broker: &'b Broker, socket: WebSocket<TcpStream>) -> Self {
        Self {
            broker,
            socket,
            input: BytesMut::new(),
            decoder: FrameDecoder::new(1 << 20),
        }
    }

    fn send_bytes(&mut self, bytes: &[u8]) {
        if let Err(error) = self.socket.send(Message::binary(bytes.to_vec())) {
            self.broker.fail(&format!("send: {error}"));
        }
    }

    fn send(&mut self, frame: Frame) {
        let mut out = BytesMut::new();
        encode_frame(&frame, &mut out);
        self.send_bytes(&out);
    }

    /// Reads one more binary message into the input; `false` once the socket is gone.
    fn fill(&mut self) -> bool {
        match next_message(&mut self.socket) {
            Some(Message::Binary(data)) => {
                self.input.extend_from_slice(&data);
                true
            }
            Some(Message::Text(_)) => self.broker.fail("the broker sent a text message"),
            _ => false,
        }
    }

    fn expect_header(&mut self, header: ProtocolHeader) {
        while self.input.len() < ProtocolHeader::LEN {
            if !self.fill() {
                self.broker.fail(&format!("no {header:?} header came back"));
            }
        }
        let got = self.input.split_to(ProtocolHeader::LEN);
        assert_eq!(&got[..], &header.bytes()[..], "protocol header");
    }

    fn next_frame(&mut self) -> Option<Frame> {
        loop {
            match self.decoder.decode(&mut self.input) {
                Ok(Some(frame)) => return Some(frame),
                Ok(None) => {}
                Err(error) => self.broker.fail(&format!("undecodable frame: {error}")),
            }
            if !self.fill() {
                return None;
            }
        }
    }

    /// SASL ANONYMOUS and `open`, the SASL header split over two messages; returns
    /// the performative the broker answers the `open` with (its `open`, or `close`).
    fn open(&mut self) -> Performative {
        let sasl = ProtocolHeader::Sasl.bytes();
        self.send_bytes(&sasl[..3]);
        self.send_bytes(&sasl[3..]);
        self.expect_header(ProtocolHeader::Sasl);
        self.send(Frame::sasl(SaslFrame::Init {
            mechanism: Symbol::from("ANONYMOUS"),
            initial_response: None,
            hostname: None,
        }));
        loop {
            match self.next_frame().map(|frame| frame.body) {
                Some(FrameBody::Sasl(SaslFrame::Outcome { code, .. })) => {
                    assert_eq!(code, SaslCode::Ok, "SASL outcome");
                    break;
                }
                Some(_) => {}
                None => self.broker.fail("no SASL outcome"),
            }
        }
        // The AMQP header and the open in one message.
        let mut out = BytesMut::from(&ProtocolHeader::Amqp.bytes()[..]);
        encode_frame(
            &Frame::amqp(
                0,
                Open {
                    container_id: "websocket-test".to_owned(),
                    ..Open::default()
                },
            ),
            &mut out,
        );
        self.send_bytes(&out);
        self.expect_header(ProtocolHeader::Amqp);
        loop {
            match self.next_frame().map(|frame| frame.body) {
                Some(FrameBody::Amqp { performative, .. }) => return performative,
                Some(_) => {}
                None => self.broker.fail("no answer to open"),
            }
        }
    }
}

/// The broker still serves AMQP over WebSockets: a new socket gets through `open`.
fn assert_still_serving(broker: &Broker) {
    let mut amqp = AmqpOverWebSocket::new(broker, amqp_socket(broker));
    let answer = amqp.open();
    assert!(
        matches!(answer, Performative::Open(_)),
        "a fresh WebSocket after a refusal got {answer:?}"
    );
}

#[test]
fn python_sends_and_receives_over_a_websocket_on_the_http_listener() {
    // Room for the scenario's 400 KB message.
    let broker = broker_with_queue(&["--max-message-size", "1048576"]);
    let endpoint = format!("sb://{}", broker.http_addr());
    broker.run_python("websocket_send_receive.py", &["orders", &endpoint]);
}

/// The async client speaks WebSockets through aiohttp, not websocket-client: the same
/// route serves it, over `ws://` on the HTTP listener and `wss://` on the AMQP port.
#[test]
fn python_async_client_sends_and_receives_over_ws_and_wss() {
    let broker = broker_with_queue(&["--max-message-size", "1048576"]);
    let plain = format!("sb://{}", broker.http_addr());
    broker.run_python("websocket_send_receive_aio.py", &["orders", &plain]);
    let secure = format!("sb://{}", broker.amqp_addr());
    let ca = broker.dev_ca().display().to_string();
    broker.run_python_with(
        "websocket_send_receive_aio.py",
        &broker.tls_conn_str(),
        &["orders", &secure, &ca],
        &[],
    );
}

/// The JS SDK dials only `wss://`; its script swaps in a WebSocket class that dials `ws://`,
/// and the connection string names the HTTP listener's port, where the SDK takes it from.
#[test]
fn js_sends_and_receives_over_a_websocket_on_the_http_listener() {
    let broker = broker_with_queue(&["--max-message-size", "1048576"]);
    let amqp_endpoint = format!("sb://{};", broker.amqp_addr());
    let http_endpoint = format!("sb://{};", broker.http_addr());
    let conn = broker.conn_str().replace(&amqp_endpoint, &http_endpoint);
    assert_ne!(conn, broker.conn_str(), "the endpoint names the HTTP port");
    broker.run_node_with("websocket_send_receive.mjs", &conn, &["orders", "ws"], &[]);
}

#[test]
fn frames_split_across_messages_and_pings_are_served() {
    let broker = broker_with_queue(&[]);
    let mut socket = amqp_socket(&broker);
    socket
        .send(Message::Ping(b"are you there".to_vec().into()))
        .unwrap_or_else(|error| broker.fail(&format!("ping: {error}")));
    match socket.read() {
        Ok(Message::Pong(payload)) => assert_eq!(&payload[..], b"are you there"),
        other => broker.fail(&format!("expected the pong, got {other:?}")),
    }
    let mut amqp = AmqpOverWebSocket::new(&broker, socket);
    let answer = amqp.open();
    assert!(matches!(answer, Performative::Open(_)), "got {answer:?}");
}

#[test]
fn a_wrong_or_missing_subprotocol_is_refused_with_400() {
    let broker = broker_with_queue(&[]);
    for asked in [Some("mqtt"), None] {
        match upgrade(&broker, asked) {
            Err(tungstenite::Error::Http(response)) => {
                assert_eq!(response.status(), 400, "status for {asked:?}");
                let body = String::from_utf8_lossy(response.body().as_deref().unwrap_or_default())
                    .into_owned();
                assert!(body.contains(SUBPROTOCOL), "body for {asked:?}: {body}");
            }
            Ok(_) => broker.fail(&format!("subprotocol {asked:?} was accepted")),
            Err(error) => broker.fail(&format!("subprotocol {asked:?}: {error}")),
        }
    }
    assert_still_serving(&broker);
}

#[test]
fn a_text_message_is_refused_with_close_1003() {
    let broker = broker_with_queue(&[]);
    let mut socket = amqp_socket(&broker);
    socket
        .send(Message::text("AMQP\u{0}\u{1}\u{0}\u{0}"))
        .unwrap_or_else(|error| broker.fail(&format!("send: {error}")));
    let frame = close_frame(&broker, &mut socket);
    assert_eq!(frame.code, CloseCode::Unsupported, "{frame:?}");
    assert!(frame.reason.contains("binary"), "{frame:?}");
    assert_still_serving(&broker);
}

#[test]
fn a_message_over_the_size_limit_is_refused_with_close_1009() {
    let broker = broker_with_queue(&[]);
    let mut socket = amqp_socket(&broker);
    // Well past the 1 MiB AMQP frame limit and the slack the WebSocket adds.
    let oversized = vec![0u8; 3 << 20];
    // The broker may close before the whole message is written.
    let _ = socket.send(Message::binary(oversized));
    match next_message(&mut socket) {
        Some(Message::Close(Some(frame))) => {
            assert_eq!(frame.code, CloseCode::Size, "{frame:?}");
        }
        // A close that overtakes the unread rest of the message resets the socket.
        None => {}
        other => broker.fail(&format!("expected the socket closed, got {other:?}")),
    }
    assert_still_serving(&broker);
}

#[test]
fn websocket_connections_count_against_the_connection_limit() {
    let broker = broker_with_queue(&["--max-connections", "2"]);
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut amqp = AmqpOverWebSocket::new(&broker, amqp_socket(&broker));
        let answer = amqp.open();
        assert!(matches!(answer, Performative::Open(_)), "got {answer:?}");
        held.push(amqp);
    }
    let mut third = AmqpOverWebSocket::new(&broker, amqp_socket(&broker));
    let mut answer = third.open();
    if matches!(answer, Performative::Open(_)) {
        // A refused connection is opened, then closed with the reason.
        answer = loop {
            match third.next_frame().map(|frame| frame.body) {
                Some(FrameBody::Amqp { performative, .. }) => break performative,
                Some(_) => {}
                None => broker.fail("the third connection ended without a close"),
            }
        };
    }
    match answer {
        Performative::Close(close) => {
            let condition = close.error.map(|e| e.condition.as_str().to_owned());
            assert_eq!(
                condition.as_deref(),
                Some("amqp:resource-limit-exceeded"),
                "third connection"
            );
        }
        other => broker.fail(&format!("the third connection got {other:?}")),
    }
    drop(held);
}

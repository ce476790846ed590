//! Garbage on the AMQP port must cost the sender its connection and nothing else: the broker
//! closes that socket promptly and keeps serving everyone else.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use busbar_interop::{Broker, QueueSpec, emulator_config};

const SASL_HEADER: &[u8; 8] = b"AMQP\x03\x01\x00\x00";
const AMQP_HEADER: &[u8; 8] = b"AMQP\x00\x01\x00\x00";
const CLOSE_DEADLINE: Duration = Duration::from_secs(10);

/// AMQP frame descriptors (small-ulong encoded) the test looks for.
const SASL_MECHANISMS: u8 = 0x40;
const SASL_OUTCOME: u8 = 0x44;
const CLOSE: u8 = 0x18;

fn connect(broker: &Broker) -> TcpStream {
    let stream = TcpStream::connect_timeout(&broker.amqp_addr(), Duration::from_secs(5))
        .unwrap_or_else(|error| broker.fail(&format!("connect to the AMQP port: {error}")));
    stream
        .set_read_timeout(Some(Duration::from_millis(500)))
        .expect("read timeout");
    stream
}

/// Reads until the broker closes the connection. Returns everything it sent, or an error when
/// it is still open at the deadline.
fn read_until_closed(stream: &mut TcpStream) -> Result<Vec<u8>, Vec<u8>> {
    let deadline = Instant::now() + CLOSE_DEADLINE;
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        match stream.read(&mut buf) {
            Ok(0) => return Ok(received),
            Ok(n) => received.extend_from_slice(&buf[..n]),
            Err(error) if matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(error)
                if matches!(
                    error.kind(),
                    ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted
                ) =>
            {
                return Ok(received);
            }
            Err(_) => return Ok(received),
        }
    }
    Err(received)
}

fn read_exact_or_fail(broker: &Broker, stream: &mut TcpStream, len: usize, what: &str) -> Vec<u8> {
    let deadline = Instant::now() + CLOSE_DEADLINE;
    let mut out = vec![0u8; len];
    let mut filled = 0;
    while filled < len {
        match stream.read(&mut out[filled..]) {
            Ok(0) => broker.fail(&format!("connection closed while reading {what}")),
            Ok(n) => filled += n,
            Err(error) if matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                if Instant::now() >= deadline {
                    broker.fail(&format!("timed out reading {what}"));
                }
            }
            Err(error) => broker.fail(&format!("reading {what}: {error}")),
        }
    }
    out
}

/// Reads one frame and returns its body (after the extended header).
fn read_frame(broker: &Broker, stream: &mut TcpStream, what: &str) -> Vec<u8> {
    let header = read_exact_or_fail(broker, stream, 8, what);
    let size = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
    let data_offset = usize::from(header[4]) * 4;
    assert!(
        (8..=65_536).contains(&size) && data_offset >= 8 && data_offset <= size,
        "implausible {what} frame header {header:02x?}"
    );
    let rest = read_exact_or_fail(broker, stream, size - 8, what);
    rest[data_offset - 8..].to_vec()
}

/// The descriptor code of a performative body `00 53 <code> ...`.
fn descriptor(body: &[u8]) -> Option<u8> {
    match body {
        [0x00, 0x53, code, ..] => Some(*code),
        _ => None,
    }
}

/// The `code` field (first list element, a ubyte) of a sasl-outcome body.
fn sasl_outcome_code(body: &[u8]) -> Option<u8> {
    let fields = match body.get(3)? {
        0xc0 => body.get(6..)?,
        0xd0 => body.get(12..)?,
        _ => return None,
    };
    match fields {
        [0x50, code, ..] => Some(*code),
        _ => None,
    }
}

fn contains_close_frame(bytes: &[u8]) -> bool {
    bytes.windows(3).any(|w| w == [0x00, 0x53, CLOSE])
}

fn frame(frame_type: u8, body: &[u8]) -> Vec<u8> {
    let size = u32::try_from(8 + body.len()).expect("small frame");
    let mut out = size.to_be_bytes().to_vec();
    out.extend_from_slice(&[2, frame_type, 0, 0]);
    out.extend_from_slice(body);
    out
}

/// sasl-init(mechanism = ANONYMOUS) as a SASL frame.
fn sasl_init_anonymous() -> Vec<u8> {
    let mut body = vec![0x00, 0x53, 0x41, 0xc0, 12, 1, 0xa3, 9];
    body.extend_from_slice(b"ANONYMOUS");
    frame(1, &body)
}

fn expect_closed(broker: &Broker, stream: &mut TcpStream, case: &str) {
    match read_until_closed(stream) {
        Ok(bytes) => {
            println!(
                "{case}: broker closed the connection after sending {} bytes (close frame: {})",
                bytes.len(),
                contains_close_frame(&bytes)
            );
        }
        Err(bytes) => broker.fail(&format!(
            "{case}: connection still open {CLOSE_DEADLINE:?} after garbage; broker sent {:02x?}",
            &bytes[..bytes.len().min(64)]
        )),
    }
    assert!(
        broker.is_healthy(),
        "{case}: /health stopped answering 200\n{}",
        broker.log_tail(40)
    );
}

#[test]
fn garbage_input_closes_only_that_connection() {
    let broker = Broker::start(
        Some(&emulator_config(&[QueueSpec::new("after-abuse")])),
        &[],
    );

    // 1. Random bytes where the SASL frames should be.
    let mut stream = connect(&broker);
    stream.write_all(SASL_HEADER).expect("write header");
    stream
        .write_all(&[
            0x13, 0x37, 0xde, 0xad, 0xbe, 0xef, 0x00, 0xff, 0x42, 0x42, 0x42, 0x42,
        ])
        .expect("write garbage");
    expect_closed(&broker, &mut stream, "garbage instead of SASL frames");

    // 2. A frame header announcing a ~4 GiB frame: must be refused, not buffered.
    let mut stream = connect(&broker);
    stream.write_all(SASL_HEADER).expect("write header");
    stream
        .write_all(&[0xff, 0xff, 0xff, 0xf0, 0x02, 0x01, 0x00, 0x00, 0x00, 0x53])
        .expect("write huge frame header");
    expect_closed(&broker, &mut stream, "frame claiming 4 GiB");

    // 3. A clean SASL ANONYMOUS handshake and AMQP header, then an undecodable performative.
    let mut stream = connect(&broker);
    stream.write_all(SASL_HEADER).expect("write header");
    let echoed = read_exact_or_fail(&broker, &mut stream, 8, "SASL protocol header");
    assert_eq!(&echoed, SASL_HEADER, "broker's SASL protocol header");
    let mechanisms = read_frame(&broker, &mut stream, "sasl-mechanisms");
    assert_eq!(
        descriptor(&mechanisms),
        Some(SASL_MECHANISMS),
        "expected sasl-mechanisms, got {mechanisms:02x?}"
    );
    assert!(
        mechanisms.windows(9).any(|w| w == b"ANONYMOUS"),
        "ANONYMOUS must be offered: {mechanisms:02x?}"
    );
    stream
        .write_all(&sasl_init_anonymous())
        .expect("write sasl-init");
    let outcome = read_frame(&broker, &mut stream, "sasl-outcome");
    assert_eq!(
        descriptor(&outcome),
        Some(SASL_OUTCOME),
        "expected sasl-outcome, got {outcome:02x?}"
    );
    assert_eq!(
        sasl_outcome_code(&outcome),
        Some(0),
        "sasl-outcome should carry code 0 (ok): {outcome:02x?}"
    );
    stream.write_all(AMQP_HEADER).expect("write AMQP header");
    let echoed = read_exact_or_fail(&broker, &mut stream, 8, "AMQP protocol header");
    assert_eq!(&echoed, AMQP_HEADER, "broker's AMQP protocol header");
    // An "open" descriptor followed by an invalid constructor byte.
    stream
        .write_all(&frame(0, &[0x00, 0x53, 0x10, 0xff, 0xfe, 0xfd, 0xfc, 0xfb]))
        .expect("write garbage performative");
    expect_closed(
        &broker,
        &mut stream,
        "undecodable performative after the handshake",
    );

    // The broker still serves a real client.
    broker.run_python("smoke_send_receive.py", &["after-abuse"]);
}

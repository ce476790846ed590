//! OpenTelemetry trace export (`--otlp-endpoint`) from a broker process: the spans of
//! messages the Python SDK sends with a trace context reach a collector this test runs on
//! a loopback socket (`python/trace_context.py`), and a collector that is down costs the
//! message path nothing.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use busbar_interop::{Broker, QueueSpec, emulator_config};
use serde_json::Value;

const QUEUE: &str = "traced";
const TRACE_ID: &str = "0af7651916cd43dd8448eb211c80319c";
const PARENT_SPAN_ID: &str = "b7ad6b7169203331";
const OLDER_TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const OLDER_PARENT_SPAN_ID: &str = "00f067aa0ba902b7";

/// What the collector was sent: the request's path, its content type and its body.
struct Export {
    path: String,
    content_type: String,
    body: Vec<u8>,
}

/// A minimal OTLP/HTTP collector: answers every request 200 and hands it to the test.
fn start_collector() -> (String, mpsc::Receiver<Export>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
    let endpoint = format!("http://{}", listener.local_addr().expect("its address"));
    let (exports, received) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            if let Some(export) = read_request(stream)
                && exports.send(export).is_err()
            {
                return;
            }
        }
    });
    (endpoint, received)
}

fn read_request(stream: TcpStream) -> Option<Export> {
    let mut reader = BufReader::new(stream);
    let mut request_line = String::new();
    reader.read_line(&mut request_line).ok()?;
    let path = request_line.split_whitespace().nth(1)?.to_owned();
    let (mut length, mut content_type) = (0, String::new());
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).ok()?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':')?;
        match name.to_ascii_lowercase().as_str() {
            "content-length" => length = value.trim().parse().ok()?,
            "content-type" => content_type = value.trim().to_owned(),
            _ => {}
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    let answer = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}";
    reader.get_mut().write_all(answer.as_bytes()).ok()?;
    Some(Export {
        path,
        content_type,
        body,
    })
}

/// `busbar_trace_spans_dropped_total` from the broker's `/metrics` (open on loopback with
/// the development key).
fn spans_dropped(broker: &Broker) -> u64 {
    let mut stream = TcpStream::connect(broker.http_addr()).expect("connect to /metrics");
    let request = "GET /metrics HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n";
    stream
        .write_all(request.as_bytes())
        .expect("ask for /metrics");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read /metrics");
    let line = response
        .lines()
        .find(|line| line.starts_with("busbar_trace_spans_dropped_total "))
        .unwrap_or_else(|| panic!("no busbar_trace_spans_dropped_total in {response}"));
    line.rsplit(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .expect("a count")
}

fn traceparent(trace_id: &str, span_id: &str) -> String {
    format!("00-{trace_id}-{span_id}-01")
}

/// The spans of an OTLP/HTTP JSON export request.
fn spans_of(export: &Export) -> Vec<Value> {
    let request: Value = serde_json::from_slice(&export.body).expect("an OTLP JSON request");
    let mut spans = Vec::new();
    for resource in request["resourceSpans"].as_array().expect("resourceSpans") {
        for scope in resource["scopeSpans"].as_array().expect("scopeSpans") {
            spans.extend(scope["spans"].as_array().expect("spans").iter().cloned());
        }
    }
    spans
}

fn attribute<'a>(span: &'a Value, key: &str) -> Option<&'a str> {
    span["attributes"]
        .as_array()?
        .iter()
        .find(|attribute| attribute["key"] == key)?["value"]["stringValue"]
        .as_str()
}

/// The span of `operation` in the trace `trace_id`, failing with what was exported if
/// there is none.
fn stage<'a>(spans: &'a [Value], trace_id: &str, operation: &str) -> &'a Value {
    spans
        .iter()
        .find(|span| {
            span["traceId"] == trace_id
                && attribute(span, "messaging.operation.name") == Some(operation)
        })
        .unwrap_or_else(|| panic!("no {operation} span in trace {trace_id}: {spans:#?}"))
}

fn broker_exporting_to(endpoint: &str) -> Broker {
    Broker::start(
        Some(&emulator_config(&[QueueSpec::new(QUEUE)])),
        &["--otlp-endpoint", endpoint],
    )
}

/// Runs `python/trace_context.py`: a message with `traceparent` completed, one with
/// `Diagnostic-Id` dead-lettered.
fn send_and_settle_traced_messages(broker: &Broker) {
    broker.run_python(
        "trace_context.py",
        &[
            QUEUE,
            &traceparent(TRACE_ID, PARENT_SPAN_ID),
            &traceparent(OLDER_TRACE_ID, OLDER_PARENT_SPAN_ID),
        ],
    );
}

#[test]
fn python_messages_with_a_trace_context_export_enqueue_deliver_and_settle_spans() {
    let (endpoint, exports) = start_collector();
    let broker = broker_exporting_to(&endpoint);
    send_and_settle_traced_messages(&broker);

    // Two messages, three stages each; exports arrive in batches of whatever was queued.
    let mut spans = Vec::new();
    while spans.len() < 6 {
        let export = exports
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| {
                broker.fail(&format!("only these spans were exported: {spans:#?}"))
            });
        assert_eq!(export.path, "/v1/traces");
        assert_eq!(export.content_type, "application/json");
        spans.extend(spans_of(&export));
    }
    assert_eq!(spans.len(), 6, "{spans:#?}");
    assert_eq!(spans_dropped(&broker), 0);

    for (trace_id, parent, outcome) in [
        (TRACE_ID, PARENT_SPAN_ID, "complete"),
        (OLDER_TRACE_ID, OLDER_PARENT_SPAN_ID, "dead_letter"),
    ] {
        let mut span_ids = Vec::new();
        for operation in ["enqueue", "deliver", "settle"] {
            let span = stage(&spans, trace_id, operation);
            assert_eq!(span["parentSpanId"], parent, "{span:#}");
            assert_eq!(
                attribute(span, "messaging.destination.name"),
                Some(QUEUE),
                "{span:#}"
            );
            assert_eq!(span["status"].get("code"), None, "{span:#}");
            let time = |field: &str| -> u64 {
                let text = span[field].as_str().expect("a time as a decimal string");
                text.parse().expect("nanoseconds")
            };
            let (start, end) = (time("startTimeUnixNano"), time("endTimeUnixNano"));
            assert!(start > 0 && start <= end, "{span:#}");
            let span_id = span["spanId"].as_str().expect("a span id").to_owned();
            assert_eq!(span_id.len(), 16);
            span_ids.push(span_id);
        }
        span_ids.sort();
        span_ids.dedup();
        assert_eq!(span_ids.len(), 3, "each stage is a span of its own");
        let settle = stage(&spans, trace_id, "settle");
        assert_eq!(
            attribute(settle, "messaging.servicebus.disposition_status"),
            Some(outcome)
        );
    }
}

#[test]
fn a_collector_that_is_down_changes_nothing_for_clients() {
    // A port nothing listens on any more.
    let endpoint = {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
        format!("http://{}", listener.local_addr().expect("its address"))
    };
    let broker = broker_exporting_to(&endpoint);
    send_and_settle_traced_messages(&broker);
    // The export fails in the background, is reported once, and the broker serves on.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !broker.log_tail(200).contains("trace export failed") {
        if Instant::now() > deadline {
            broker.fail("the failed export was not reported");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(broker.is_healthy());
    assert!(
        spans_dropped(&broker) > 0,
        "the spans of the failed export count as dropped"
    );
    send_and_settle_traced_messages(&broker);
    assert_eq!(
        broker.log_tail(200).matches("trace export failed").count(),
        1
    );
}

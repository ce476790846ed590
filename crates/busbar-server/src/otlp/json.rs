//! Spans as an OTLP `ExportTraceServiceRequest` in the OTLP/HTTP JSON encoding: ids as
//! lowercase hex, 64-bit integers as decimal strings, enums as their numbers.

use serde_json::{Value, json};

use super::{Span, Stage};

/// `SPAN_KIND_SERVER`: the broker answering a client's send or settlement.
const KIND_SERVER: u8 = 2;
/// `SPAN_KIND_PRODUCER`: the broker handing a message on to a receiver.
const KIND_PRODUCER: u8 = 4;
const STATUS_ERROR: u8 = 2;

pub fn export_request(spans: &[Span]) -> Vec<u8> {
    let spans: Vec<Value> = spans.iter().map(span).collect();
    let request = json!({
        "resourceSpans": [{
            "resource": {"attributes": [string("service.name", "busbar")]},
            "scopeSpans": [{
                "scope": {"name": "busbar", "version": env!("CARGO_PKG_VERSION")},
                "spans": spans,
            }],
        }],
    });
    // Serialising a `Value` cannot fail.
    serde_json::to_vec(&request).unwrap_or_default()
}

fn span(span: &Span) -> Value {
    let (operation, kind) = match span.stage {
        Stage::Enqueue => ("enqueue", KIND_SERVER),
        Stage::Deliver { .. } => ("deliver", KIND_PRODUCER),
        Stage::Settle(_) => ("settle", KIND_SERVER),
    };
    let mut attributes = vec![
        string("messaging.system", "servicebus"),
        string("messaging.operation.name", operation),
        string("messaging.destination.name", &span.entity),
    ];
    match span.stage {
        Stage::Enqueue => {}
        Stage::Deliver { delivery_count } => attributes.push(json!({
            "key": "messaging.servicebus.message.delivery_count",
            "value": {"intValue": delivery_count.to_string()},
        })),
        Stage::Settle(outcome) => attributes.push(string(
            "messaging.servicebus.disposition_status",
            outcome.disposition(),
        )),
    }
    let status = match &span.failure {
        Some(why) => json!({"code": STATUS_ERROR, "message": why}),
        None => json!({}),
    };
    json!({
        "traceId": hex(&span.context.trace_id),
        "spanId": hex(&span.span_id),
        "parentSpanId": hex(&span.context.parent_span_id),
        "name": format!("{operation} {}", span.entity),
        "kind": kind,
        "startTimeUnixNano": span.start_unix_ns.to_string(),
        "endTimeUnixNano": span.end_unix_ns.to_string(),
        "attributes": attributes,
        "status": status,
    })
}

fn string(key: &str, value: &str) -> Value {
    json!({"key": key, "value": {"stringValue": value}})
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

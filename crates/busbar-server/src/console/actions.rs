//! The console's changes to messages: send (the REST send path), delete chosen messages,
//! cancel scheduled ones, and resubmit dead-lettered ones. Each is journaled and answered
//! only once durable.

use busbar_amqp::message::scan_sections;
use busbar_amqp::value::Value;
use busbar_atom::timestamp::parse_utc;
use busbar_core::{CoreError, NewMessage, SubQueueKind};
use busbar_http::console_api::{
    CancelOutcome, CancelRequest, ConsoleError, DeleteOutcome, DeleteRequest, ResubmitFailure,
    ResubmitOutcome, ResubmitRequest, SendOutcome, SendRequest,
};
use busbar_servicebus::message::{DEAD_LETTER_REASON, inbound, resubmitted_body};
use busbar_servicebus::rest_message::{batch_from_http, format_date_ms, json_property};
use busbar_store::{Seq, Store};
use bytes::Bytes;
use serde_json::{Map, Value as Json};

use super::browse::stream_of;
use super::{console_failure, queue_entity};
use crate::ServedBroker;
use crate::broker::wake;
use crate::rest::{core_failure, durable, send_encoded};

/// Dead-lettered messages resubmitted per append.
const RESUBMIT_BATCH: usize = 256;

fn bad(why: impl Into<String>) -> ConsoleError {
    ConsoleError::BadRequest(why.into())
}

fn core_error(error: &CoreError) -> ConsoleError {
    console_failure(core_failure(error))
}

/// A text body as its bytes; any other JSON as its text.
fn payload(body: &Json) -> Bytes {
    match body {
        Json::Null => Bytes::new(),
        Json::String(text) => Bytes::from(text.clone()),
        other => Bytes::from(other.to_string()),
    }
}

/// The AMQP message `request` describes, written as a REST batch entry is, so both APIs
/// encode one way.
pub(super) fn encode_message(request: &SendRequest) -> Result<Vec<Bytes>, ConsoleError> {
    let mut properties = Map::new();
    let mut put = |key: &str, value: Option<String>| {
        if let Some(value) = value {
            properties.insert(key.to_owned(), Json::String(value));
        }
    };
    put("MessageId", request.message_id.clone());
    put("SessionId", request.session_id.clone());
    put("CorrelationId", request.correlation_id.clone());
    put("Label", request.subject.clone());
    put("ContentType", request.content_type.clone());
    if let Some(text) = &request.scheduled_enqueue_time {
        let at = parse_utc(text)
            .map_err(|why| bad(format!("scheduled_enqueue_time: {why}")))?
            .ok_or_else(|| bad("scheduled_enqueue_time is not a real time"))?;
        put("ScheduledEnqueueTimeUtc", Some(format_date_ms(at)));
    }
    for (name, value) in &request.application_properties {
        if json_property(value).is_none() {
            return Err(bad(format!(
                "application property '{name}' must be a string, number or boolean"
            )));
        }
    }
    let entry = serde_json::json!([{
        "Body": request.body,
        "BrokerProperties": properties,
        "UserProperties": request.application_properties,
    }]);
    batch_from_http(entry.to_string().as_bytes()).map_err(|e| bad(e.to_string()))
}

pub(super) async fn send(
    broker: &ServedBroker,
    request: SendRequest,
) -> Result<SendOutcome, ConsoleError> {
    let encoded = encode_message(&request)?;
    let seqs = send_encoded(broker, &request.entity, encoded)
        .await
        .map_err(console_failure)?;
    let is_topic = broker.topic(&request.entity).is_some();
    Ok(SendOutcome {
        sequence_number: (!is_topic && !seqs.is_empty()).then_some(seqs.start),
    })
}

pub(super) async fn delete(
    broker: &ServedBroker,
    request: DeleteRequest,
) -> Result<DeleteOutcome, ConsoleError> {
    let entity = queue_entity(broker, &request.entity)?;
    let (kind, state) = stream_of(request.state);
    let mut journal = broker.journal();
    let removed = entity
        .lock()
        .queue
        .remove_unlocked(kind, &request.sequence_numbers, state, &mut journal)
        .map_err(|e| core_error(&e))?;
    durable(broker, journal.into_commit())
        .await
        .map_err(console_failure)?;
    Ok(DeleteOutcome {
        deleted: removed.len(),
    })
}

pub(super) async fn cancel_scheduled(
    broker: &ServedBroker,
    request: CancelRequest,
) -> Result<CancelOutcome, ConsoleError> {
    let entity = queue_entity(broker, &request.entity)?;
    let mut journal = broker.journal();
    entity
        .lock()
        .queue
        .cancel_scheduled_all(&request.sequence_numbers, &mut journal)
        .map_err(|error| match error {
            CoreError::MessageNotFound(seq) => ConsoleError::Conflict(format!(
                "{seq} is not a scheduled message of '{}' (or is named twice): nothing was cancelled",
                request.entity
            )),
            other => core_error(&other),
        })?;
    durable(broker, journal.into_commit())
        .await
        .map_err(console_failure)?;
    Ok(CancelOutcome {
        cancelled: request.sequence_numbers.len(),
    })
}

/// A dead-lettered message chosen for resubmission, with its stored form.
struct Candidate {
    seq: Seq,
    stored: Result<Bytes, String>,
}

pub(super) async fn resubmit(
    broker: &ServedBroker,
    request: ResubmitRequest,
) -> Result<ResubmitOutcome, ConsoleError> {
    let entity = queue_entity(broker, &request.entity)?;
    if !request.all && request.sequence_numbers.is_empty() {
        return Err(bad("name sequence_numbers, or set all"));
    }
    let edit = request.edit.unwrap_or_default();
    let new_payload = edit.body.as_ref().map(payload);
    let mut set_properties = Vec::new();
    for (name, value) in edit.application_properties.iter().flatten() {
        let value = json_property(value).ok_or_else(|| {
            bad(format!(
                "application property '{name}' must be a string, number or boolean"
            ))
        })?;
        set_properties.push((name.clone(), value));
    }
    let filter = request.filter.unwrap_or_default();
    let mut outcome = ResubmitOutcome {
        resubmitted: 0,
        failed: Vec::new(),
    };
    let mut named = request.sequence_numbers.clone();
    named.sort_unstable();
    named.dedup();
    let mut named = named.into_iter();
    let mut cursor: Seq = 0;
    loop {
        // Which dead-lettered messages this round looks at, under the lock; their bodies
        // are read after it.
        let chosen: Vec<(Seq, Option<busbar_store::BodyRef>, Option<Bytes>)> = {
            let state = entity.lock();
            let dead_letters = state.queue.sub(SubQueueKind::DeadLetter);
            if request.all {
                dead_letters
                    .page(None, cursor, RESUBMIT_BATCH)
                    .into_iter()
                    .map(|view| (view.seq, Some(view.body_ref), view.body.cloned()))
                    .collect()
            } else {
                named
                    .by_ref()
                    .take(RESUBMIT_BATCH)
                    .map(|seq| match dead_letters.get(seq) {
                        Some(view) => (seq, Some(view.body_ref), view.body.cloned()),
                        None => (seq, None, None),
                    })
                    .collect()
            }
        };
        let Some(last) = chosen.last().map(|(seq, _, _)| *seq) else {
            break;
        };
        cursor = last + 1;
        let candidates: Vec<Candidate> = chosen
            .into_iter()
            .filter_map(|(seq, body_ref, resident)| {
                let stored = match (resident, body_ref) {
                    (Some(body), _) => Ok(body),
                    (None, Some(body_ref)) => {
                        broker.store.read_body(body_ref).map_err(|e| e.to_string())
                    }
                    (None, None) => {
                        outcome.failed.push(ResubmitFailure {
                            sequence_number: seq,
                            error: "not in the dead-letter queue".to_owned(),
                        });
                        return None;
                    }
                };
                Some(Candidate { seq, stored })
            })
            .collect();
        let mut copies: Vec<(Seq, NewMessage)> = Vec::with_capacity(candidates.len());
        for candidate in candidates {
            let stored = match candidate.stored {
                Ok(stored) => stored,
                Err(error) => {
                    outcome.failed.push(ResubmitFailure {
                        sequence_number: candidate.seq,
                        error,
                    });
                    continue;
                }
            };
            if !matches_filter(&stored, filter.subject.as_deref(), filter.reason.as_deref()) {
                continue;
            }
            let copy = resubmitted_body(&stored, new_payload.clone(), &set_properties)
                .and_then(|body| inbound(&body));
            match copy {
                Ok(copy) => copies.push((candidate.seq, copy.into())),
                Err(error) => outcome.failed.push(ResubmitFailure {
                    sequence_number: candidate.seq,
                    error: format!("the message could not be rewritten: {error}"),
                }),
            }
        }
        if copies.is_empty() {
            continue;
        }
        let wanted: Vec<Seq> = copies.iter().map(|(seq, _)| *seq).collect();
        let mut journal = broker.journal();
        let (moved, waiters) = {
            let mut state = entity.lock();
            let moved = state
                .queue
                .resubmit_dead_lettered(copies, broker.now_ms(), &mut journal)
                .map_err(|e| core_error(&e))?;
            (moved, state.take_waiters())
        };
        wake(waiters);
        durable(broker, journal.into_commit())
            .await
            .map_err(console_failure)?;
        for seq in wanted {
            if !moved.contains(&seq) {
                outcome.failed.push(ResubmitFailure {
                    sequence_number: seq,
                    error: "locked by a receiver, or no longer in the dead-letter queue".to_owned(),
                });
            }
        }
        outcome.resubmitted += moved.len();
    }
    Ok(outcome)
}

/// Whether `stored` has the subject and dead-letter reason asked for (each if given).
fn matches_filter(stored: &Bytes, subject: Option<&str>, reason: Option<&str>) -> bool {
    if subject.is_none() && reason.is_none() {
        return true;
    }
    let Ok(scanned) = scan_sections(stored) else {
        return false;
    };
    if let Some(subject) = subject {
        let own = scanned.properties().ok().flatten().and_then(|p| p.subject);
        if own.as_deref() != Some(subject) {
            return false;
        }
    }
    if let Some(reason) = reason {
        let own = match scanned.application_properties() {
            Ok(Some(properties)) => properties
                .map_get(DEAD_LETTER_REASON)
                .and_then(Value::as_str)
                .map(str::to_owned),
            _ => None,
        };
        if own.as_deref() != Some(reason) {
            return false;
        }
    }
    true
}

//! The request/response pattern of Service Bus's `$cbs` and `$management` nodes: a sender
//! to the node and a receiver from it whose target address is the requests' reply-to. Each
//! request carries a fresh message-id, and its answer carries that id as correlation-id.
//! Requests may be in flight together on one pair: a task reads the answers and hands each
//! to the request it answers, dropping answers nobody waits for any more (a request that
//! timed out).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::sync::oneshot;

use busbar_amqp::codec::{decode_value, encode_descriptor, encode_value};
use busbar_amqp::message::{Properties, scan_sections, section};
use busbar_amqp::{Descriptor, Value};

use crate::{
    Connection, Error, LinkOptions, Outcome, OwnedSession, Receiver, ReceiverOptions, Result,
    Sender, SettleMode,
};

/// Answers the pair keeps room for before the reader task takes them.
const ANSWER_CREDIT: u32 = 16;

/// An open sender/receiver pair on one request/response node.
pub(crate) struct RequestResponseLink {
    sender: Sender,
    reply_to: String,
    /// `properties.to` of each request, when the node wants it (`$cbs` does).
    to: Option<String>,
    waiting: Arc<Waiting>,
    reader: tokio::task::JoinHandle<()>,
    /// Last: ends after the links above detached.
    _session: OwnedSession,
}

/// The requests waiting for their answers, by message-id; once the receiver failed, why.
#[derive(Default)]
struct Waiting(Mutex<WaitingState>);

#[derive(Default)]
struct WaitingState {
    by_id: HashMap<String, oneshot::Sender<Result<Bytes>>>,
    failed: Option<Error>,
}

impl Waiting {
    fn state(&self) -> std::sync::MutexGuard<'_, WaitingState> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers `id`; fails at once when the receiver has already failed.
    fn register(&self, id: &str) -> Result<oneshot::Receiver<Result<Bytes>>> {
        let mut state = self.state();
        if let Some(error) = &state.failed {
            return Err(error.clone());
        }
        let (tx, rx) = oneshot::channel();
        state.by_id.insert(id.to_owned(), tx);
        Ok(rx)
    }

    fn forget(&self, id: &str) {
        self.state().by_id.remove(id);
    }

    fn answer(&self, id: &str, answer: Bytes) -> bool {
        match self.state().by_id.remove(id) {
            Some(tx) => {
                let _ = tx.send(Ok(answer));
                true
            }
            None => false,
        }
    }

    fn fail_all(&self, error: Error) {
        let mut state = self.state();
        for (_, tx) in state.by_id.drain() {
            let _ = tx.send(Err(error.clone()));
        }
        state.failed = Some(error);
    }
}

/// Removes a request's entry however its wait ends (answered, timed out, dropped).
struct Registration<'a> {
    waiting: &'a Waiting,
    id: &'a str,
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        self.waiting.forget(self.id);
    }
}

/// What a node answered: its status, description, condition and amqp-value body (the
/// `$management` spelling `statusCode` or the `$cbs` one `status-code`, whichever came).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Answer {
    pub status: Option<i64>,
    pub description: String,
    pub error_condition: Option<String>,
    pub body: Option<Value>,
}

/// How a request ended when it was not answered.
#[derive(Debug)]
pub(crate) enum Unanswered {
    /// The node did not accept the request message itself.
    Refused(Outcome),
    /// The link or connection failed, or no answer came in time ([`Error::Timeout`]).
    Failed(Error),
}

impl From<Error> for Unanswered {
    fn from(error: Error) -> Self {
        Unanswered::Failed(error)
    }
}

impl RequestResponseLink {
    /// Attaches the pair to `node` on a session of its own; `to` goes into each request's
    /// properties when given. `reply_prefix` names the reply address (`cbs`, `mgmt`).
    pub async fn open(
        connection: &Connection,
        node: &str,
        to: Option<&str>,
        reply_prefix: &str,
    ) -> Result<Self> {
        let session = connection.session().await?;
        let reply_to = format!("{reply_prefix}-{}", uuid::Uuid::new_v4());
        let receiver = session
            .receiver_with(
                node,
                ReceiverOptions {
                    settle_mode: SettleMode::ReceiveAndDelete,
                    credit: ANSWER_CREDIT,
                },
                LinkOptions {
                    name: Some(reply_to.clone()),
                    target: Some(reply_to.clone()),
                    ..LinkOptions::default()
                },
            )
            .await?;
        let sender = session.sender(node).await?;
        let waiting = Arc::new(Waiting::default());
        let reader = tokio::spawn(read_answers(receiver, waiting.clone()));
        Ok(RequestResponseLink {
            sender,
            reply_to,
            to: to.map(str::to_owned),
            waiting,
            reader,
            _session: OwnedSession(session),
        })
    }

    /// Whether requests on this pair can only fail (the connection or a link is gone).
    pub fn is_closed(&self) -> bool {
        self.sender.is_closed() || self.reader.is_finished()
    }

    /// Sends a request with these application properties and amqp-value `body` and waits up
    /// to `timeout` for its answer.
    pub async fn request(
        &self,
        application_properties: Vec<(Value, Value)>,
        body: &Value,
        timeout: Duration,
    ) -> std::result::Result<Answer, Unanswered> {
        let id = uuid::Uuid::new_v4().to_string();
        let answer = self.waiting.register(&id)?;
        let _registration = Registration {
            waiting: &self.waiting,
            id: &id,
        };
        let mut out = BytesMut::new();
        Properties {
            message_id: Some(Value::String(id.clone())),
            to: self.to.clone(),
            reply_to: Some(self.reply_to.clone()),
            ..Properties::default()
        }
        .encode(&mut out);
        encode_descriptor(&Descriptor::Code(section::APPLICATION_PROPERTIES), &mut out);
        encode_value(&Value::Map(application_properties), &mut out);
        encode_descriptor(&Descriptor::Code(section::AMQP_VALUE), &mut out);
        encode_value(body, &mut out);
        let exchange = async {
            match self.sender.send(out.freeze()).await? {
                Outcome::Accepted => {}
                other => return Err(Unanswered::Refused(other)),
            }
            match answer.await {
                Ok(answer) => Ok(parse_answer(&answer?)?),
                // The reader went away without failing the request: the pair is gone.
                Err(_) => Err(Unanswered::Failed(Error::Closed)),
            }
        };
        match tokio::time::timeout(timeout, exchange).await {
            Ok(result) => result,
            Err(_) => Err(Unanswered::Failed(Error::Timeout)),
        }
    }
}

impl Drop for RequestResponseLink {
    fn drop(&mut self) {
        // The reader owns the receiver: ending it detaches the answers' link.
        self.reader.abort();
    }
}

/// Hands each answer to the request it correlates with until the receiver fails.
async fn read_answers(mut receiver: Receiver, waiting: Arc<Waiting>) {
    loop {
        let delivery = match receiver.recv().await {
            Ok(delivery) => delivery,
            Err(error) => {
                waiting.fail_all(error);
                return;
            }
        };
        if !delivery.settled {
            // A node that ignored the receiver's settle mode still gets its answer taken.
            let _ = receiver.accept(&delivery);
        }
        let correlation = scan_sections(&delivery.payload)
            .ok()
            .and_then(|scanned| scanned.properties().ok().flatten())
            .and_then(|p| p.correlation_id)
            .and_then(|c| c.as_str().map(str::to_owned));
        let answered = correlation
            .as_deref()
            .is_some_and(|id| waiting.answer(id, delivery.payload.clone()));
        if !answered {
            tracing::debug!(
                ?correlation,
                "ignoring an answer no request waits for (timed out, or not ours)"
            );
        }
    }
}

/// Reads an answer's status, description, condition and body.
pub(crate) fn parse_answer(raw: &Bytes) -> Result<Answer> {
    let scanned = scan_sections(raw)?;
    let app = scanned.application_properties()?;
    let get = |key: &str| app.as_ref().and_then(|a| a.map_get(key));
    let either = |camel: &str, hyphenated: &str| get(camel).or_else(|| get(hyphenated));
    let status = either("statusCode", "status-code").and_then(Value::as_i64);
    let description = either("statusDescription", "status-description")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let error_condition = get("errorCondition")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let mut bytes = scanned.body_bytes();
    let body = if bytes.is_empty() {
        None
    } else {
        match decode_value(&mut bytes)? {
            Value::Described(_, inner) => Some(*inner),
            other => Some(other),
        }
    };
    Ok(Answer {
        status,
        description,
        error_condition,
        body,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn answer(status_key: &str, status: Value, body: Option<Value>) -> Bytes {
        let mut out = BytesMut::new();
        Properties {
            correlation_id: Some(Value::String("id1".into())),
            ..Properties::default()
        }
        .encode(&mut out);
        encode_descriptor(&Descriptor::Code(section::APPLICATION_PROPERTIES), &mut out);
        encode_value(
            &Value::Map(vec![
                (Value::from(status_key), status),
                (Value::from("status-description"), Value::from("nope")),
                (Value::from("errorCondition"), Value::from("amqp:not-found")),
            ]),
            &mut out,
        );
        if let Some(body) = body {
            encode_descriptor(&Descriptor::Code(section::AMQP_VALUE), &mut out);
            encode_value(&body, &mut out);
        }
        out.freeze()
    }

    #[test]
    fn both_spellings_of_the_status_read_the_same() {
        let cbs = parse_answer(&answer("status-code", Value::Int(202), None)).unwrap();
        assert_eq!(cbs.status, Some(202));
        assert_eq!(cbs.description, "nope");
        assert_eq!(cbs.body, None);
        let management = parse_answer(&answer(
            "statusCode",
            Value::Int(404),
            Some(Value::Map(vec![(Value::from("k"), Value::Int(1))])),
        ))
        .unwrap();
        assert_eq!(management.status, Some(404));
        assert_eq!(
            management.error_condition.as_deref(),
            Some("amqp:not-found")
        );
        assert_eq!(
            management.body.as_ref().and_then(|b| b.map_get("k")),
            Some(&Value::Int(1))
        );
    }

    #[test]
    fn a_waiting_request_gets_its_answer_and_others_are_dropped() {
        let waiting = Waiting::default();
        let mut rx = waiting.register("a").unwrap();
        assert!(!waiting.answer("b", Bytes::from_static(b"x")));
        assert!(waiting.answer("a", Bytes::from_static(b"y")));
        assert_eq!(rx.try_recv().unwrap().unwrap(), Bytes::from_static(b"y"));
        // Answered once: a second answer finds nobody.
        assert!(!waiting.answer("a", Bytes::from_static(b"z")));
    }

    #[test]
    fn a_failed_receiver_fails_waiting_and_later_requests() {
        let waiting = Waiting::default();
        let mut rx = waiting.register("a").unwrap();
        waiting.fail_all(Error::Closed);
        assert!(matches!(rx.try_recv().unwrap(), Err(Error::Closed)));
        assert!(matches!(waiting.register("b"), Err(Error::Closed)));
    }
}

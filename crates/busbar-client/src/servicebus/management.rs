//! The `$management` node of an entity: a request/response link pair carrying operations
//! (`com.microsoft:renew-lock`, `peek-message`, `schedule-message`, ...) as amqp-value maps,
//! answered with `statusCode`, `statusDescription`, `errorCondition` and a map body.

use std::time::Duration;

use bytes::{Bytes, BytesMut};

use busbar_amqp::message::{Properties, scan_sections, section};
use busbar_amqp::{Value, codec::decode_value};

use crate::{
    Connection, LinkOptions, Outcome, OwnedSession, Receiver, ReceiverOptions, Sender, SettleMode,
};

use super::error::{ErrorKind, ServiceBusError, ServiceBusResult};
use super::message::put_section;

/// An open request/response pair on one `$management` node.
pub(crate) struct ManagementLink {
    sender: Sender,
    receiver: Receiver,
    reply_to: String,
    /// The connection generation it was opened on.
    pub generation: u64,
    /// Last: ends after the links above detached.
    _session: OwnedSession,
}

/// A successful (2xx) answer.
pub(crate) struct Response {
    pub status: i64,
    /// The amqp-value body, when the answer has one.
    pub body: Option<Value>,
}

impl Response {
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.body.as_ref().and_then(|b| b.map_get(key))
    }
}

impl ManagementLink {
    /// Attaches the pair to `<entity>/$management`; responses come back on the receiver,
    /// whose target address is the requests' reply-to.
    pub async fn open(
        connection: &Connection,
        entity: &str,
        generation: u64,
    ) -> ServiceBusResult<Self> {
        let node = format!("{entity}/$management");
        let session = connection.session().await?;
        let reply_to = format!("mgmt-{}", uuid::Uuid::new_v4());
        let receiver = session
            .receiver_with(
                &node,
                ReceiverOptions {
                    settle_mode: SettleMode::ReceiveAndDelete,
                    credit: 16,
                },
                LinkOptions {
                    name: Some(reply_to.clone()),
                    target: Some(reply_to.clone()),
                    ..LinkOptions::default()
                },
            )
            .await?;
        let sender = session.sender(&node).await?;
        Ok(ManagementLink {
            sender,
            receiver,
            reply_to,
            generation,
            _session: OwnedSession(session),
        })
    }

    /// Sends `operation` with `body` (a map) and waits up to `timeout` for the answer; a
    /// non-2xx answer is an error of the kind its `errorCondition` names.
    pub async fn request(
        &mut self,
        operation: &str,
        body: Value,
        extra_properties: &[(&str, Value)],
        timeout: Duration,
    ) -> ServiceBusResult<Response> {
        let id = uuid::Uuid::new_v4().to_string();
        let mut app = vec![
            (Value::from("operation"), Value::from(operation)),
            (
                Value::from("com.microsoft:server-timeout"),
                Value::Uint(u32::try_from(timeout.as_millis()).unwrap_or(u32::MAX)),
            ),
        ];
        app.extend(
            extra_properties
                .iter()
                .map(|(k, v)| (Value::from(*k), v.clone())),
        );
        let mut out = BytesMut::new();
        Properties {
            message_id: Some(Value::String(id.clone())),
            reply_to: Some(self.reply_to.clone()),
            ..Properties::default()
        }
        .encode(&mut out);
        put_section(section::APPLICATION_PROPERTIES, &Value::Map(app), &mut out);
        put_section(section::AMQP_VALUE, &body, &mut out);
        let work = async {
            match self.sender.send(out.freeze()).await? {
                Outcome::Accepted => {}
                Outcome::Rejected(Some(remote)) => {
                    return Err(ServiceBusError::from_remote(&remote));
                }
                other => {
                    return Err(ServiceBusError::new(
                        ErrorKind::ServiceCommunication,
                        format!("the {operation} request was answered with {other:?}"),
                    ));
                }
            }
            loop {
                let delivery = self.receiver.recv().await?;
                let (correlation, response) = parse_response(&delivery.payload)?;
                if correlation.as_deref() == Some(id.as_str()) {
                    return response;
                }
                tracing::debug!(
                    operation,
                    "ignoring a $management answer to another request"
                );
            }
        };
        match tokio::time::timeout(timeout, work).await {
            Ok(result) => result,
            Err(_) => Err(ServiceBusError::new(
                ErrorKind::ServiceTimeout,
                format!("no answer to {operation} within {timeout:?}"),
            )),
        }
    }

    pub fn is_closed(&self) -> bool {
        self.sender.is_closed()
    }
}

/// The correlation-id and the outcome of one answer.
fn parse_response(raw: &Bytes) -> ServiceBusResult<(Option<String>, ServiceBusResult<Response>)> {
    let bad = |e: busbar_amqp::CodecError| {
        ServiceBusError::new(
            ErrorKind::ServiceCommunication,
            format!("a $management answer does not decode: {e}"),
        )
    };
    let scanned = scan_sections(raw).map_err(bad)?;
    let correlation = scanned
        .properties()
        .map_err(bad)?
        .and_then(|p| p.correlation_id)
        .and_then(|c| c.as_str().map(str::to_owned));
    let app = scanned.application_properties().map_err(bad)?;
    let get = |k: &str| app.as_ref().and_then(|a| a.map_get(k));
    let status = get("statusCode")
        .or_else(|| get("status-code"))
        .and_then(Value::as_i64);
    let description = get("statusDescription")
        .or_else(|| get("status-description"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let body = {
        let mut bytes = scanned.body_bytes();
        if bytes.is_empty() {
            None
        } else {
            match decode_value(&mut bytes).map_err(bad)? {
                Value::Described(_, inner) => Some(*inner),
                other => Some(other),
            }
        }
    };
    let response = match status {
        Some(status @ 200..=299) => Ok(Response { status, body }),
        Some(status) => Err(match get("errorCondition").and_then(Value::as_str) {
            Some(condition) => ServiceBusError::from_condition(condition, description),
            None => ServiceBusError::new(
                status_kind(status),
                format!("status {status}: {description}"),
            ),
        }),
        None => Err(ServiceBusError::new(
            ErrorKind::ServiceCommunication,
            "a $management answer without statusCode",
        )),
    };
    Ok((correlation, response))
}

/// The kind a status code without a condition stands for.
fn status_kind(status: i64) -> ErrorKind {
    match status {
        400 => ErrorKind::InvalidArgument,
        401 | 403 => ErrorKind::Unauthorized,
        404 => ErrorKind::MessagingEntityNotFound,
        408 => ErrorKind::ServiceTimeout,
        409 => ErrorKind::MessagingEntityAlreadyExists,
        503 => ErrorKind::ServiceBusy,
        _ => ErrorKind::Other,
    }
}

/// A request body map with string keys.
pub(crate) fn body(entries: Vec<(&str, Value)>) -> Value {
    Value::Map(
        entries
            .into_iter()
            .map(|(k, v)| (Value::from(k), v))
            .collect(),
    )
}

/// An AMQP array of longs (sequence numbers).
pub(crate) fn longs(values: &[i64]) -> Value {
    Value::Array(values.iter().map(|&v| Value::Long(v)).collect())
}

/// The `$management` node of one entity as a sender or receiver uses it: opened on first
/// use, reopened on a new connection, requests retried by the client's policy.
pub(crate) struct ManagementClient {
    client: super::client::ServiceBusClient,
    entity: String,
    link: tokio::sync::Mutex<Option<ManagementLink>>,
}

impl ManagementClient {
    pub fn new(client: super::client::ServiceBusClient, entity: String) -> Self {
        ManagementClient {
            client,
            entity,
            link: tokio::sync::Mutex::new(None),
        }
    }

    /// `operation` with `body`, retried while the failure is transient.
    pub async fn request(
        &self,
        operation: &str,
        body: Value,
        extra_properties: &[(&str, Value)],
    ) -> ServiceBusResult<Response> {
        let retry = self.client.retry().clone();
        retry
            .run(operation, || {
                self.try_request(operation, body.clone(), extra_properties)
            })
            .await
    }

    async fn try_request(
        &self,
        operation: &str,
        body: Value,
        extra_properties: &[(&str, Value)],
    ) -> ServiceBusResult<Response> {
        let (connection, generation) = self.client.connection_for(&self.entity).await?;
        let mut guard = self.link.lock().await;
        let reusable = guard
            .as_ref()
            .is_some_and(|l| l.generation == generation && !l.is_closed());
        if !reusable {
            *guard = Some(ManagementLink::open(&connection, &self.entity, generation).await?);
        }
        let Some(link) = guard.as_mut() else {
            return Err(ServiceBusError::new(
                ErrorKind::ServiceCommunication,
                "no $management link",
            ));
        };
        let timeout = self.client.retry().try_timeout;
        let result = link
            .request(operation, body, extra_properties, timeout)
            .await;
        if matches!(&result, Err(e) if e.is_transient()) {
            // The pair may be broken (a timeout leaves a stale answer behind): start afresh.
            *guard = None;
        }
        result
    }

    pub async fn close(&self) {
        self.link.lock().await.take();
    }
}

//! [`ServiceBusSender`]: sends to a queue or topic, one message, several, or a size-checked
//! batch (one transfer in the batch format), and schedules messages for later.

use std::time::SystemTime;

use bytes::{Bytes, BytesMut};
use tokio::sync::Mutex;
use tracing::Instrument as _;

use busbar_amqp::Value;
use busbar_amqp::message::{BATCH_MESSAGE_FORMAT, Properties, section};

use crate::{Outcome, Sender};

use super::client::ServiceBusClient;
use super::error::{ErrorKind, ServiceBusError, ServiceBusResult};
use super::management::{ManagementClient, body, longs};
use super::message::{PARTITION_KEY, ServiceBusMessage, put_section};

/// The largest message assumed when the service announces no limit (Service Bus Standard's).
const DEFAULT_MAX_MESSAGE_SIZE: u64 = 256 * 1024;

/// Sends messages to one queue or topic. Made by
/// [`ServiceBusClient::create_sender`]; the link is attached on first use and again after
/// the connection drops.
///
/// ```no_run
/// # use busbar_client::{ServiceBusClient, ServiceBusMessage, CreateMessageBatchOptions};
/// # async fn run(client: ServiceBusClient) -> Result<(), busbar_client::ServiceBusError> {
/// let sender = client.create_sender("orders");
/// sender.send_message(ServiceBusMessage::new("one")).await?;
/// let mut batch = sender.create_message_batch(CreateMessageBatchOptions::default()).await?;
/// for i in 0..100 {
///     if !batch.try_add_message(ServiceBusMessage::new(format!("order {i}")))? {
///         break; // full: send it and start another
///     }
/// }
/// sender.send_message_batch(&batch).await?;
/// # Ok(()) }
/// ```
pub struct ServiceBusSender {
    client: ServiceBusClient,
    entity: String,
    link: Mutex<Option<SenderLink>>,
    management: ManagementClient,
}

struct SenderLink {
    sender: Sender,
    generation: u64,
    /// Last: ends after the link above detached.
    _session: crate::OwnedSession,
}

/// Options of [`ServiceBusSender::create_message_batch`].
#[derive(Debug, Clone, Default)]
pub struct CreateMessageBatchOptions {
    /// The batch's limit; the link's max message size when `None` (and never above it).
    pub max_size_in_bytes: Option<u64>,
}

impl ServiceBusSender {
    pub(crate) fn new(client: ServiceBusClient, entity: String) -> Self {
        ServiceBusSender {
            management: ManagementClient::new(client.clone(), entity.clone()),
            client,
            entity,
            link: Mutex::new(None),
        }
    }

    /// The queue or topic this sender sends to.
    pub fn entity_path(&self) -> &str {
        &self.entity
    }

    /// Sends one message and waits until the service has accepted it.
    pub async fn send_message(&self, message: ServiceBusMessage) -> ServiceBusResult<()> {
        self.send_messages(vec![message]).await
    }

    /// Sends several messages in one transfer (all are enqueued, or none).
    pub async fn send_messages(&self, messages: Vec<ServiceBusMessage>) -> ServiceBusResult<()> {
        let span = tracing::info_span!("servicebus.send", entity = %self.entity, messages = messages.len());
        async {
            let (payload, format) = match messages.as_slice() {
                [] => return Ok(()),
                [one] => (one.encode(&one.id_or_new()), 0),
                many => {
                    let mut batch = ServiceBusMessageBatch::new(u64::MAX);
                    for m in many {
                        batch.push(m);
                    }
                    (batch.envelope(), BATCH_MESSAGE_FORMAT)
                }
            };
            self.send_payload(payload, format).await
        }
        .instrument(span)
        .await
    }

    /// An empty batch limited to the link's max message size (or less, if asked).
    pub async fn create_message_batch(
        &self,
        options: CreateMessageBatchOptions,
    ) -> ServiceBusResult<ServiceBusMessageBatch> {
        let link_max = self
            .client
            .retry()
            .run("create_message_batch", || self.link_max_message_size())
            .await?;
        let max = match options.max_size_in_bytes {
            Some(asked) if asked > link_max => {
                return Err(ServiceBusError::invalid(format!(
                    "max_size_in_bytes {asked} is larger than the link's limit of {link_max} bytes"
                )));
            }
            Some(asked) => asked,
            None => link_max,
        };
        Ok(ServiceBusMessageBatch::new(max))
    }

    /// Sends the messages of `batch` in one transfer.
    pub async fn send_message_batch(&self, batch: &ServiceBusMessageBatch) -> ServiceBusResult<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let span =
            tracing::info_span!("servicebus.send", entity = %self.entity, messages = batch.len());
        self.send_payload(batch.envelope(), BATCH_MESSAGE_FORMAT)
            .instrument(span)
            .await
    }

    /// Schedules `messages` to be enqueued at `at`; their sequence numbers, for
    /// [`ServiceBusSender::cancel_scheduled_messages`].
    ///
    /// ```no_run
    /// # use std::time::{Duration, SystemTime};
    /// # use busbar_client::{ServiceBusClient, ServiceBusMessage};
    /// # async fn run(client: ServiceBusClient) -> Result<(), busbar_client::ServiceBusError> {
    /// let sender = client.create_sender("reminders");
    /// let at = SystemTime::now() + Duration::from_secs(3600);
    /// let sequence_numbers = sender
    ///     .schedule_messages(vec![ServiceBusMessage::new("in an hour")], at)
    ///     .await?;
    /// sender.cancel_scheduled_messages(&sequence_numbers).await?;
    /// # Ok(()) }
    /// ```
    pub async fn schedule_messages(
        &self,
        messages: Vec<ServiceBusMessage>,
        at: SystemTime,
    ) -> ServiceBusResult<Vec<i64>> {
        let span = tracing::info_span!("servicebus.schedule", entity = %self.entity, messages = messages.len());
        async {
            let entries = messages
                .into_iter()
                .map(|m| {
                    let m = m.with_scheduled_enqueue_time(at);
                    let id = m.id_or_new();
                    let mut entry = vec![
                        ("message-id", Value::from(id.as_str())),
                        ("message", Value::Binary(m.encode(&id))),
                    ];
                    if let Some(session) = &m.session_id {
                        entry.push(("session-id", Value::from(session.as_str())));
                    }
                    if let Some(key) = &m.partition_key {
                        entry.push(("partition-key", Value::from(key.as_str())));
                    }
                    body(entry)
                })
                .collect();
            let response = self
                .management
                .request(
                    "com.microsoft:schedule-message",
                    body(vec![("messages", Value::List(entries))]),
                    &[],
                )
                .await?;
            match response.get("sequence-numbers") {
                Some(Value::Array(numbers) | Value::List(numbers)) => {
                    Ok(numbers.iter().filter_map(Value::as_i64).collect())
                }
                _ => Err(ServiceBusError::new(
                    ErrorKind::ServiceCommunication,
                    "schedule-message answered without sequence-numbers",
                )),
            }
        }
        .instrument(span)
        .await
    }

    /// Cancels scheduled messages by their sequence numbers.
    pub async fn cancel_scheduled_messages(
        &self,
        sequence_numbers: &[i64],
    ) -> ServiceBusResult<()> {
        let span = tracing::info_span!("servicebus.cancel_scheduled", entity = %self.entity);
        self.management
            .request(
                "com.microsoft:cancel-scheduled-message",
                body(vec![("sequence-numbers", longs(sequence_numbers))]),
                &[],
            )
            .instrument(span)
            .await
            .map(|_| ())
    }

    /// Detaches the link (the client's connection stays open).
    pub async fn close(&self) -> ServiceBusResult<()> {
        self.management.close().await;
        if let Some(link) = self.link.lock().await.take() {
            link.sender.close().await?;
        }
        Ok(())
    }

    async fn send_payload(&self, payload: Bytes, format: u32) -> ServiceBusResult<()> {
        self.client
            .retry()
            .run("send", || self.try_send(payload.clone(), format))
            .await
    }

    async fn try_send(&self, payload: Bytes, format: u32) -> ServiceBusResult<()> {
        let pending = {
            let mut guard = self.link.lock().await;
            let link = self.ensure_link(&mut guard).await?;
            let max = link.sender.max_message_size().unwrap_or(u64::MAX);
            if payload.len() as u64 > max {
                return Err(ServiceBusError::new(
                    ErrorKind::MessageSizeExceeded,
                    format!(
                        "the message is {} bytes; {} accepts at most {max}",
                        payload.len(),
                        self.entity
                    ),
                ));
            }
            link.sender.send_with_format(payload, format)
        };
        match pending.await {
            Ok(Outcome::Accepted) => Ok(()),
            Ok(Outcome::Rejected(Some(remote))) => Err(ServiceBusError::from_remote(&remote)),
            Ok(other) => Err(ServiceBusError::new(
                ErrorKind::Other,
                format!("the service settled the send with {other:?}"),
            )),
            Err(error) => {
                self.link.lock().await.take();
                Err(error.into())
            }
        }
    }

    async fn ensure_link<'a>(
        &self,
        guard: &'a mut Option<SenderLink>,
    ) -> ServiceBusResult<&'a SenderLink> {
        let (connection, generation) = self.client.connection_for(&self.entity).await?;
        let reusable = guard
            .as_ref()
            .is_some_and(|l| l.generation == generation && !l.sender.is_closed());
        if !reusable {
            let session = connection.session().await?;
            let sender = session
                .sender_with(
                    &self.entity,
                    crate::LinkOptions {
                        name: Some(format!("{}-{}", self.entity, uuid::Uuid::new_v4())),
                        ..crate::LinkOptions::default()
                    },
                )
                .await?;
            *guard = Some(SenderLink {
                sender,
                generation,
                _session: crate::OwnedSession(session),
            });
        }
        guard
            .as_ref()
            .ok_or_else(|| ServiceBusError::new(ErrorKind::ServiceCommunication, "no sender link"))
    }

    async fn link_max_message_size(&self) -> ServiceBusResult<u64> {
        let mut guard = self.link.lock().await;
        let link = self.ensure_link(&mut guard).await?;
        Ok(link
            .sender
            .max_message_size()
            .unwrap_or(DEFAULT_MAX_MESSAGE_SIZE))
    }
}

/// Messages sent together in one transfer, refusing any that would take it over its size
/// limit. Made by [`ServiceBusSender::create_message_batch`].
#[derive(Debug, Clone)]
pub struct ServiceBusMessageBatch {
    max_size_in_bytes: u64,
    messages: Vec<Bytes>,
    /// The envelope's own sections (from the first message).
    envelope_head: Bytes,
    size: u64,
}

impl ServiceBusMessageBatch {
    fn new(max_size_in_bytes: u64) -> Self {
        ServiceBusMessageBatch {
            max_size_in_bytes,
            messages: Vec::new(),
            envelope_head: Bytes::new(),
            size: 0,
        }
    }

    /// Adds `message` if the batch stays within its limit; `Ok(false)` when it would not
    /// (the batch is unchanged). A message too large for an empty batch is an error.
    pub fn try_add_message(&mut self, message: ServiceBusMessage) -> ServiceBusResult<bool> {
        let encoded = message.encode(&message.id_or_new());
        let head = if self.messages.is_empty() {
            envelope_head(&message)
        } else {
            self.envelope_head.clone()
        };
        let size = head.len() as u64 + self.size + data_section_len(encoded.len());
        if size > self.max_size_in_bytes {
            if self.messages.is_empty() {
                return Err(ServiceBusError::new(
                    ErrorKind::MessageSizeExceeded,
                    format!(
                        "the message alone takes {size} bytes; the batch holds at most {}",
                        self.max_size_in_bytes
                    ),
                ));
            }
            return Ok(false);
        }
        self.envelope_head = head;
        self.size += data_section_len(encoded.len());
        self.messages.push(encoded);
        Ok(true)
    }

    fn push(&mut self, message: &ServiceBusMessage) {
        if self.messages.is_empty() {
            self.envelope_head = envelope_head(message);
        }
        let encoded = message.encode(&message.id_or_new());
        self.size += data_section_len(encoded.len());
        self.messages.push(encoded);
    }

    /// Messages in the batch.
    pub fn len(&self) -> usize {
        self.messages.len()
    }

    /// Whether nothing has been added.
    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }

    /// The encoded size of the batch as it will be sent.
    pub fn size_in_bytes(&self) -> u64 {
        self.envelope_head.len() as u64 + self.size
    }

    /// The most the batch may hold, in encoded bytes.
    pub fn max_size_in_bytes(&self) -> u64 {
        self.max_size_in_bytes
    }

    fn envelope(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(self.size_in_bytes() as usize);
        out.extend_from_slice(&self.envelope_head);
        for m in &self.messages {
            put_section(section::DATA, &Value::Binary(m.clone()), &mut out);
        }
        out.freeze()
    }
}

/// The envelope's sections before its data sections: the first message's partition key,
/// message id and session id, as the Python SDK writes them.
fn envelope_head(first: &ServiceBusMessage) -> Bytes {
    let mut out = BytesMut::new();
    if let Some(key) = &first.partition_key {
        put_section(
            section::MESSAGE_ANNOTATIONS,
            &Value::Map(vec![(Value::sym(PARTITION_KEY), Value::from(key.as_str()))]),
            &mut out,
        );
    }
    Properties {
        message_id: first.message_id.clone().map(Value::String),
        group_id: first.session_id.clone(),
        ..Properties::default()
    }
    .encode(&mut out);
    out.freeze()
}

/// Bytes of a `data` section holding `len` bytes: descriptor, constructor, size, bytes.
fn data_section_len(len: usize) -> u64 {
    let prefix = if len <= usize::from(u8::MAX) { 2 } else { 5 };
    (3 + prefix + len) as u64
}

impl std::fmt::Debug for ServiceBusSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceBusSender")
            .field("entity_path", &self.entity)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn batch_size_is_exactly_what_is_sent() {
        let mut batch = ServiceBusMessageBatch::new(10_000);
        for body in [vec![1u8; 10], vec![2u8; 300], vec![3u8; 2000]] {
            assert!(
                batch
                    .try_add_message(ServiceBusMessage::new(body).with_session_id("s"))
                    .unwrap()
            );
            assert_eq!(batch.size_in_bytes(), batch.envelope().len() as u64);
        }
        let inner = busbar_amqp::message::split_batch(&batch.envelope()).unwrap();
        assert_eq!(inner.len(), 3);
    }

    #[test]
    fn batch_refuses_what_does_not_fit() {
        let mut batch = ServiceBusMessageBatch::new(500);
        assert!(
            batch
                .try_add_message(ServiceBusMessage::new(vec![0u8; 200]))
                .unwrap()
        );
        assert!(
            !batch
                .try_add_message(ServiceBusMessage::new(vec![0u8; 300]))
                .unwrap()
        );
        assert_eq!(batch.len(), 1);
        assert!(batch.size_in_bytes() <= 500);
        let mut empty = ServiceBusMessageBatch::new(100);
        let error = empty
            .try_add_message(ServiceBusMessage::new(vec![0u8; 200]))
            .unwrap_err();
        assert_eq!(error.kind, ErrorKind::MessageSizeExceeded);
    }
}

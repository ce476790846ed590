//! [`ServiceBusReceiver`]: receives from a queue, a subscription or their dead-letter
//! subqueues, in peek-lock or receive-and-delete mode, and settles what it received: on
//! the link it came on while that link lives, through `$management` with the lock token
//! otherwise (and always for messages received by sequence number).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use futures_util::Stream;
use tokio::sync::Mutex;
use tokio::time::Instant;
use tracing::Instrument as _;

use busbar_amqp::performative::{DeliveryState, ErrorCondition};
use busbar_amqp::{Symbol, Value};

use crate::{Delivery, LinkOptions, Outcome, Receiver, ReceiverOptions, SettleMode, Settler};

use super::client::ServiceBusClient;
use super::error::{ErrorKind, ServiceBusError, ServiceBusResult};
use super::management::{ManagementClient, Response, body, longs};
use super::message::{
    DEAD_LETTER_DESCRIPTION, DEAD_LETTER_REASON, ServiceBusReceivedMessage, Settlement,
    lock_token_of, system_time,
};

/// How received messages are taken from the entity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ServiceBusReceiveMode {
    /// The message is locked for this receiver until settled or the lock expires.
    #[default]
    PeekLock,
    /// The message is deleted as it is delivered; nothing to settle.
    ReceiveAndDelete,
}

/// Which queue of the entity to receive from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SubQueue {
    #[default]
    /// The entity itself.
    None,
    /// `<entity>/$DeadLetterQueue`.
    DeadLetter,
    /// `<entity>/$Transfer/$DeadLetterQueue`: messages that could not be forwarded.
    TransferDeadLetter,
}

impl SubQueue {
    pub(crate) fn path(self, entity: &str) -> String {
        match self {
            SubQueue::None => entity.to_owned(),
            SubQueue::DeadLetter => format!("{entity}/$DeadLetterQueue"),
            SubQueue::TransferDeadLetter => format!("{entity}/$Transfer/$DeadLetterQueue"),
        }
    }
}

/// Options of a [`ServiceBusReceiver`].
#[derive(Debug, Clone, Default)]
pub struct ServiceBusReceiverOptions {
    /// Peek-lock (the default) or receive-and-delete.
    pub receive_mode: ServiceBusReceiveMode,
    /// The entity itself, or its dead-letter or transfer dead-letter subqueue.
    pub sub_queue: SubQueue,
    /// Messages requested ahead of [`ServiceBusReceiver::receive_messages`] calls (their
    /// locks run while they wait); 0 asks for exactly what each call wants.
    pub prefetch_count: u32,
}

/// What [`ServiceBusReceiver::dead_letter_message`] records on the message.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeadLetterOptions {
    /// Stored as the `DeadLetterReason` application property.
    pub reason: Option<String>,
    /// Stored as the `DeadLetterErrorDescription` application property.
    pub description: Option<String>,
    /// Application properties to set on the message as it moves.
    pub properties_to_modify: Option<BTreeMap<String, Value>>,
}

/// Link ids tell a message's link apart from the one that replaced it.
static NEXT_LINK_ID: AtomicU64 = AtomicU64::new(1);

pub(crate) struct ReceiverLink {
    receiver: Receiver,
    id: u64,
    /// Credit given and not yet used by a delivery.
    outstanding: u32,
    /// Last: ends after the link above detached.
    _session: crate::OwnedSession,
}

/// What receivers and session receivers share: the link, its settlement handle, the
/// `$management` node.
pub(crate) struct ReceiverCore {
    client: ServiceBusClient,
    /// The entity path the link attaches to (subqueue included).
    path: String,
    options: ServiceBusReceiverOptions,
    /// Session receivers: the session the link is locked to.
    session_id: Option<String>,
    link: Mutex<Option<ReceiverLink>>,
    settler: std::sync::Mutex<Option<(u64, Settler)>>,
    management: ManagementClient,
    last_peeked: AtomicI64,
}

impl ReceiverCore {
    pub(crate) fn new(
        client: ServiceBusClient,
        path: String,
        options: ServiceBusReceiverOptions,
        session_id: Option<String>,
        link: Option<ReceiverLink>,
    ) -> Self {
        let settler = link.as_ref().map(|l| (l.id, l.receiver.settler()));
        ReceiverCore {
            management: ManagementClient::new(client.clone(), path.clone()),
            client,
            path,
            options,
            session_id,
            link: Mutex::new(link),
            settler: std::sync::Mutex::new(settler),
            last_peeked: AtomicI64::new(0),
        }
    }

    pub(crate) fn path(&self) -> &str {
        &self.path
    }

    pub(crate) fn client(&self) -> &ServiceBusClient {
        &self.client
    }

    pub(crate) fn management(&self) -> &ManagementClient {
        &self.management
    }

    /// Attaches a receiver link to `path` (with a session filter and attach properties
    /// for session receivers).
    pub(crate) async fn attach(
        client: &ServiceBusClient,
        path: &str,
        options: &ServiceBusReceiverOptions,
        filter: Option<Value>,
        properties: Option<Value>,
    ) -> ServiceBusResult<ReceiverLink> {
        let (connection, _) = client.connection_for(path).await?;
        let session = connection.session().await?;
        let settle_mode = match options.receive_mode {
            ServiceBusReceiveMode::PeekLock => SettleMode::PeekLockConfirmed,
            ServiceBusReceiveMode::ReceiveAndDelete => SettleMode::ReceiveAndDelete,
        };
        let receiver = session
            .receiver_with(
                path,
                ReceiverOptions {
                    settle_mode,
                    credit: 0,
                },
                LinkOptions {
                    name: Some(format!("{path}-{}", uuid::Uuid::new_v4())),
                    filter,
                    properties,
                    ..LinkOptions::default()
                },
            )
            .await?;
        if options.prefetch_count > 0 {
            receiver.add_credit(options.prefetch_count)?;
        }
        Ok(ReceiverLink {
            receiver,
            id: NEXT_LINK_ID.fetch_add(1, Ordering::Relaxed),
            outstanding: options.prefetch_count,
            _session: crate::OwnedSession(session),
        })
    }

    pub(crate) fn remote_properties(link: &ReceiverLink) -> Option<&Value> {
        link.receiver.remote_properties()
    }

    pub(crate) fn remote_source_filter(link: &ReceiverLink) -> Option<&Value> {
        link.receiver.remote_source_filter()
    }

    fn session_filter(&self) -> Option<Value> {
        self.session_id.as_ref().map(|id| {
            Value::Map(vec![(
                Value::sym(super::session::SESSION_FILTER),
                Value::from(id.as_str()),
            )])
        })
    }

    async fn ensure_link<'a>(
        &self,
        guard: &'a mut Option<ReceiverLink>,
    ) -> ServiceBusResult<&'a mut ReceiverLink> {
        // The client replaces its connection only once that one is closed, so a link on
        // an open connection is current; only a new link asks for the connection (and
        // its token), which every receive call would otherwise pay for.
        let reusable = guard.as_ref().is_some_and(|l| !l.receiver.is_closed());
        if !reusable {
            let link = Self::attach(
                &self.client,
                &self.path,
                &self.options,
                self.session_filter(),
                None,
            )
            .await?;
            if let Ok(mut settler) = self.settler.lock() {
                *settler = Some((link.id, link.receiver.settler()));
            }
            *guard = Some(link);
        }
        guard.as_mut().ok_or_else(|| {
            ServiceBusError::new(ErrorKind::ServiceCommunication, "no receiver link")
        })
    }

    pub(crate) async fn receive_messages(
        &self,
        max: usize,
        max_wait: Option<Duration>,
    ) -> ServiceBusResult<Vec<ServiceBusReceivedMessage>> {
        self.receive_into(max, max_wait, |message| message).await
    }

    /// [`Self::receive_messages`], each message made into a `T` as it is decoded: a caller
    /// that keeps it inside a larger value (the processor's) saves the moves of the large
    /// message in and out of the vector.
    pub(crate) async fn receive_into<T>(
        &self,
        max: usize,
        max_wait: Option<Duration>,
        mut into: impl FnMut(ServiceBusReceivedMessage) -> T,
    ) -> ServiceBusResult<Vec<T>> {
        if max == 0 {
            return Err(ServiceBusError::invalid("max must be at least 1"));
        }
        let span = tracing::info_span!("servicebus.receive", entity = %self.path, max, received = tracing::field::Empty);
        async {
            let deadline = max_wait.map(|wait| Instant::now() + wait);
            let retry = self.client.retry().clone();
            let mut attempt = 0;
            loop {
                match self.try_receive(max, deadline, &mut into).await {
                    Err(error) if error.is_transient() && attempt < retry.max_retries => {
                        attempt += 1;
                        tracing::debug!(%error, attempt, "receive failed; attaching again");
                        tokio::time::sleep(retry.delay_for(attempt)).await;
                    }
                    other => {
                        if let Ok(messages) = &other {
                            tracing::Span::current().record("received", messages.len());
                        }
                        return other;
                    }
                }
            }
        }
        .instrument(span)
        .await
    }

    async fn try_receive<T>(
        &self,
        max: usize,
        deadline: Option<Instant>,
        into: &mut impl FnMut(ServiceBusReceivedMessage) -> T,
    ) -> ServiceBusResult<Vec<T>> {
        let mut guard = self.link.lock().await;
        let link = self.ensure_link(&mut guard).await?;
        let result = self.collect(link, max, deadline, into).await;
        if result.is_err() {
            guard.take();
        }
        result
    }

    async fn collect<T>(
        &self,
        link: &mut ReceiverLink,
        max: usize,
        deadline: Option<Instant>,
        into: &mut impl FnMut(ServiceBusReceivedMessage) -> T,
    ) -> ServiceBusResult<Vec<T>> {
        let prefetching = self.options.prefetch_count > 0;
        let mut deliveries = Vec::with_capacity(max);
        take_ready(link, max, &mut deliveries)?;
        if deliveries.is_empty() {
            let wanted = u32::try_from(max).unwrap_or(u32::MAX);
            if !prefetching && link.outstanding < wanted {
                link.receiver.add_credit(wanted - link.outstanding)?;
                link.outstanding = wanted;
            }
            let first = match deadline {
                Some(deadline) => tokio::time::timeout_at(deadline, link.receiver.recv())
                    .await
                    .ok(),
                None => Some(link.receiver.recv().await),
            };
            if let Some(first) = first {
                deliveries.push(first?);
                link.outstanding = link.outstanding.saturating_sub(1);
            }
            if !prefetching {
                // What the service has now comes at once; the rest of the credit comes back,
                // so no message gets locked for a receive that has ended.
                link.receiver.drain().await?;
                link.outstanding = 0;
            }
            take_ready(link, max, &mut deliveries)?;
        }
        if prefetching {
            // Topped back up once a quarter of it is used, not by what each call took: a
            // call taking one message would otherwise cost a flow frame (on both sides)
            // per message. A quarter rather than half keeps the broker's bursts (and the
            // messages locked on their way) smaller.
            let prefetch = self.options.prefetch_count;
            // At least one message used: a prefetch under 4 has no quarter.
            let refill = (prefetch / 4).max(1);
            if prefetch.saturating_sub(link.outstanding) >= refill {
                link.receiver.add_credit(prefetch - link.outstanding)?;
                link.outstanding = prefetch;
            }
        }
        let link_id = link.id;
        // Sized up front: collecting a fallible iterator starts from an empty vector and
        // grows it by copying its (large) messages over again.
        let mut messages = Vec::with_capacity(deliveries.len());
        for d in deliveries {
            messages.push(into(self.decode_delivery(d, link_id)?));
        }
        Ok(messages)
    }

    #[inline]
    fn decode_delivery(
        &self,
        d: Delivery,
        link_id: u64,
    ) -> ServiceBusResult<ServiceBusReceivedMessage> {
        let settlement = if d.settled {
            Settlement::None
        } else {
            Settlement::Link {
                link_id,
                delivery_id: d.delivery_id,
            }
        };
        let lock_token = if d.settled {
            None
        } else {
            lock_token_of(&d.delivery_tag)
        };
        ServiceBusReceivedMessage::decode(d.payload, lock_token, settlement)
    }

    pub(crate) async fn settle(
        &self,
        message: &ServiceBusReceivedMessage,
        how: Settle,
    ) -> ServiceBusResult<()> {
        let span = tracing::info_span!(
            "servicebus.settle",
            entity = %self.path,
            outcome = how.name(),
            sequence_number = message.sequence_number
        );
        async {
            let confirmation = match self.settle_on_link(message, &how) {
                Some(confirmation) => Some(confirmation.await),
                None => None,
            };
            self.conclude_settle(message, how, confirmation).await
        }
        .instrument(span)
        .await
    }

    /// Finishes a settlement from the link's confirmation (`None`: it was not sent on the
    /// link): the broker's answer when the link gave one, else the settlement again through
    /// `$management`, where the lock token still identifies the lock.
    pub(crate) async fn conclude_settle(
        &self,
        message: &ServiceBusReceivedMessage,
        how: Settle,
        confirmation: Option<crate::Result<Outcome>>,
    ) -> ServiceBusResult<()> {
        let Some(lock_token) = message.lock_token else {
            return Err(ServiceBusError::invalid(
                "the message has no lock to settle (peeked, or received in receive-and-delete mode)",
            ));
        };
        match confirmation {
            Some(Ok(Outcome::Rejected(Some(remote)))) => {
                return Err(ServiceBusError::from_remote(&remote));
            }
            Some(Ok(_)) => return Ok(()),
            Some(Err(error)) => tracing::debug!(%error, "settling on the link failed"),
            None => {}
        }
        // Boxed: a `$management` request is a future of several KiB, which would otherwise
        // be part of (and copied with) every settlement, the common one on the link included.
        Box::pin(self.settle_through_management(lock_token, how)).await
    }

    /// Sends the settlement on the link `message` came on, if that link is still the one
    /// attached; the broker's confirmation, which [`Self::conclude_settle`] takes from there.
    pub(crate) fn settle_on_link(
        &self,
        message: &ServiceBusReceivedMessage,
        how: &Settle,
    ) -> Option<crate::SendFuture<Outcome>> {
        let (link_id, delivery_id) = link_delivery(message)?;
        let settler = self.settler.lock().ok()?;
        let (id, settler) = settler.as_ref()?;
        (*id == link_id).then(|| settler.settle_confirmed(delivery_id, false, how.delivery_state()))
    }

    /// The settlement handle of the link attached now, and that link's id.
    pub(crate) fn link_settler(&self) -> Option<(u64, Settler)> {
        self.settler.lock().ok()?.clone()
    }

    async fn settle_through_management(
        &self,
        lock_token: uuid::Uuid,
        how: Settle,
    ) -> ServiceBusResult<()> {
        let mut entries = vec![
            ("disposition-status", Value::from(how.management_status())),
            (
                "lock-tokens",
                Value::Array(vec![Value::Uuid(*lock_token.as_bytes())]),
            ),
        ];
        if let Settle::DeadLetter(options) = &how {
            entries.push((
                "deadletter-reason",
                Value::from(options.reason.clone().unwrap_or_default()),
            ));
            entries.push((
                "deadletter-description",
                Value::from(options.description.clone().unwrap_or_default()),
            ));
        }
        if let Some(properties) = how.properties_to_modify() {
            entries.push(("properties-to-modify", string_map(properties)));
        }
        if let Some(session) = &self.session_id {
            entries.push(("session-id", Value::from(session.as_str())));
        }
        self.management
            .request("com.microsoft:update-disposition", body(entries), &[])
            .await
            .map(|_| ())
    }

    pub(crate) async fn renew_message_lock(
        &self,
        message: &ServiceBusReceivedMessage,
    ) -> ServiceBusResult<SystemTime> {
        let Some(lock_token) = message.lock_token else {
            return Err(ServiceBusError::invalid("the message has no lock to renew"));
        };
        let span = tracing::info_span!("servicebus.renew_lock", entity = %self.path, sequence_number = message.sequence_number);
        let response = self
            .management
            .request(
                "com.microsoft:renew-lock",
                body(vec![(
                    "lock-tokens",
                    Value::Array(vec![Value::Uuid(*lock_token.as_bytes())]),
                )]),
                &[],
            )
            .instrument(span)
            .await?;
        match response.get("expirations") {
            Some(Value::Array(times) | Value::List(times)) => times.first().and_then(system_time),
            _ => None,
        }
        .ok_or_else(|| {
            ServiceBusError::new(
                ErrorKind::ServiceCommunication,
                "renew-lock answered without expirations",
            )
        })
    }

    pub(crate) async fn peek_messages(
        &self,
        max: usize,
        from_sequence_number: Option<i64>,
    ) -> ServiceBusResult<Vec<ServiceBusReceivedMessage>> {
        let from =
            from_sequence_number.unwrap_or_else(|| self.last_peeked.load(Ordering::Relaxed) + 1);
        let mut entries = vec![
            ("from-sequence-number", Value::Long(from)),
            (
                "message-count",
                Value::Int(i32::try_from(max).unwrap_or(i32::MAX)),
            ),
        ];
        if let Some(session) = &self.session_id {
            entries.push(("session-id", Value::from(session.as_str())));
        }
        let span = tracing::info_span!("servicebus.peek", entity = %self.path, from, max);
        let response = self
            .management
            .request("com.microsoft:peek-message", body(entries), &[])
            .instrument(span)
            .await?;
        let messages = listed_messages(&response, |_| None, Settlement::None)?;
        if let Some(last) = messages.last() {
            self.last_peeked
                .store(last.sequence_number, Ordering::Relaxed);
        }
        Ok(messages)
    }

    pub(crate) async fn receive_deferred_messages(
        &self,
        sequence_numbers: &[i64],
    ) -> ServiceBusResult<Vec<ServiceBusReceivedMessage>> {
        let peek_lock = self.options.receive_mode == ServiceBusReceiveMode::PeekLock;
        let mut entries = vec![
            ("sequence-numbers", longs(sequence_numbers)),
            (
                "receiver-settle-mode",
                Value::Uint(if peek_lock { 1 } else { 0 }),
            ),
        ];
        if let Some(session) = &self.session_id {
            entries.push(("session-id", Value::from(session.as_str())));
        }
        let span = tracing::info_span!("servicebus.receive_deferred", entity = %self.path, count = sequence_numbers.len());
        let response = self
            .management
            .request(
                "com.microsoft:receive-by-sequence-number",
                body(entries),
                &[],
            )
            .instrument(span)
            .await?;
        let settlement = if peek_lock {
            Settlement::Management
        } else {
            Settlement::None
        };
        listed_messages(
            &response,
            |entry| match entry.map_get("lock-token") {
                Some(Value::Uuid(bytes)) => Some(uuid::Uuid::from_bytes(*bytes)),
                _ => None,
            },
            settlement,
        )
    }

    pub(crate) async fn close(&self) -> ServiceBusResult<()> {
        self.management.close().await;
        if let Ok(mut settler) = self.settler.lock() {
            settler.take();
        }
        let Some(mut link) = self.link.lock().await.take() else {
            return Ok(());
        };
        if self.options.receive_mode == ServiceBusReceiveMode::PeekLock {
            // Prefetched messages go back at once instead of waiting out their locks.
            if link.outstanding > 0 {
                let _ = link.receiver.drain().await;
            }
            while let Some(Ok(d)) = link.receiver.try_recv() {
                let _ = link.receiver.release(&d);
            }
        }
        link.receiver.close().await?;
        Ok(())
    }
}

/// Takes what has already arrived, up to `max` in all.
fn take_ready(
    link: &mut ReceiverLink,
    max: usize,
    into: &mut Vec<Delivery>,
) -> ServiceBusResult<()> {
    while into.len() < max {
        match link.receiver.try_recv() {
            Some(d) => {
                into.push(d?);
                link.outstanding = link.outstanding.saturating_sub(1);
            }
            None => break,
        }
    }
    Ok(())
}

/// The `messages` list of a peek or receive-by-sequence-number answer (204: none).
fn listed_messages(
    response: &Response,
    lock_token: impl Fn(&Value) -> Option<uuid::Uuid>,
    settlement: Settlement,
) -> ServiceBusResult<Vec<ServiceBusReceivedMessage>> {
    if response.status == 204 {
        return Ok(Vec::new());
    }
    let Some(Value::List(entries) | Value::Array(entries)) = response.get("messages") else {
        return Ok(Vec::new());
    };
    entries
        .iter()
        .map(|entry| match entry.map_get("message") {
            Some(Value::Binary(raw)) => {
                let token = lock_token(entry);
                let settlement = if token.is_some() {
                    settlement
                } else {
                    Settlement::None
                };
                ServiceBusReceivedMessage::decode(raw.clone(), token, settlement)
            }
            _ => Err(ServiceBusError::new(
                ErrorKind::ServiceCommunication,
                "a listed message without its binary",
            )),
        })
        .collect()
}

fn string_map(properties: &BTreeMap<String, Value>) -> Value {
    Value::Map(
        properties
            .iter()
            .map(|(k, v)| (Value::from(k.as_str()), v.clone()))
            .collect(),
    )
}

fn symbol_map(properties: &BTreeMap<String, Value>) -> Vec<(Value, Value)> {
    properties
        .iter()
        .map(|(k, v)| (Value::Symbol(Symbol::from(k.as_str())), v.clone()))
        .collect()
}

/// Where `message` can be settled on a link: the id of the link it came on and its
/// delivery id; `None` when it has no lock to settle (`conclude_settle` says so) or did not
/// come on a link.
pub(crate) fn link_delivery(message: &ServiceBusReceivedMessage) -> Option<(u64, u32)> {
    message.lock_token?;
    match message.settlement {
        Settlement::Link {
            link_id,
            delivery_id,
        } => Some((link_id, delivery_id)),
        Settlement::None | Settlement::Management => None,
    }
}

/// A settlement and its arguments.
pub(crate) enum Settle {
    Complete,
    Abandon(Option<BTreeMap<String, Value>>),
    Defer(Option<BTreeMap<String, Value>>),
    DeadLetter(DeadLetterOptions),
}

impl Settle {
    fn name(&self) -> &'static str {
        match self {
            Settle::Complete => "complete",
            Settle::Abandon(_) => "abandon",
            Settle::Defer(_) => "defer",
            Settle::DeadLetter(_) => "dead-letter",
        }
    }

    fn management_status(&self) -> &'static str {
        match self {
            Settle::Complete => "completed",
            Settle::Abandon(_) => "abandoned",
            // Sic: the service's spelling.
            Settle::Defer(_) => "defered",
            Settle::DeadLetter(_) => "suspended",
        }
    }

    fn properties_to_modify(&self) -> Option<&BTreeMap<String, Value>> {
        match self {
            Settle::Complete => None,
            Settle::Abandon(p) | Settle::Defer(p) => p.as_ref(),
            Settle::DeadLetter(o) => o.properties_to_modify.as_ref(),
        }
    }

    fn delivery_state(&self) -> DeliveryState {
        match self {
            Settle::Complete => DeliveryState::Accepted,
            Settle::Abandon(p) | Settle::Defer(p) => DeliveryState::Modified {
                delivery_failed: Some(true),
                undeliverable_here: Some(matches!(self, Settle::Defer(_))),
                message_annotations: p.as_ref().map(|p| Value::Map(symbol_map(p))),
            },
            Settle::DeadLetter(options) => {
                let mut info = options
                    .properties_to_modify
                    .as_ref()
                    .map(symbol_map)
                    .unwrap_or_default();
                if let Some(reason) = &options.reason {
                    info.push((Value::sym(DEAD_LETTER_REASON), Value::from(reason.as_str())));
                }
                if let Some(description) = &options.description {
                    info.push((
                        Value::sym(DEAD_LETTER_DESCRIPTION),
                        Value::from(description.as_str()),
                    ));
                }
                DeliveryState::Rejected {
                    error: Some(ErrorCondition {
                        condition: Symbol::from("com.microsoft:dead-letter"),
                        description: options.description.clone(),
                        info: Some(Value::Map(info)),
                    }),
                }
            }
        }
    }
}

/// The receive, stream, settle, renew and peek operations shared by
/// [`ServiceBusReceiver`] and [`ServiceBusSessionReceiver`](crate::ServiceBusSessionReceiver),
/// over their `core`.
macro_rules! receiver_operations {
    () => {
        /// Up to `max` messages: waits up to `max_wait` (forever when `None`) for the first,
        /// then takes what the service has ready without waiting further. Empty when nothing
        /// came in time.
        pub async fn receive_messages(
            &self,
            max: usize,
            max_wait: Option<Duration>,
        ) -> ServiceBusResult<Vec<ServiceBusReceivedMessage>> {
            self.core.receive_messages(max, max_wait).await
        }

        /// The messages as a stream, one at a time, waiting as long as it takes for each.
        ///
        /// ```no_run
        /// # use busbar_client::{ServiceBusClient, ServiceBusReceiverOptions};
        /// use futures_util::StreamExt as _;
        /// # async fn run(client: ServiceBusClient) -> Result<(), busbar_client::ServiceBusError> {
        /// let receiver = client.create_receiver("orders", ServiceBusReceiverOptions::default());
        /// let mut messages = std::pin::pin!(receiver.messages());
        /// while let Some(message) = messages.next().await {
        ///     let message = message?;
        ///     receiver.complete_message(&message).await?;
        /// }
        /// # Ok(()) }
        /// ```
        pub fn messages(
            &self,
        ) -> impl Stream<Item = ServiceBusResult<ServiceBusReceivedMessage>> + '_ {
            $crate::servicebus::receiver::message_stream(&self.core)
        }

        /// [`Self::messages`], owning the receiver.
        pub fn into_stream(
            self,
        ) -> impl Stream<Item = ServiceBusResult<ServiceBusReceivedMessage>> {
            futures_util::stream::unfold(self, |receiver| async move {
                let next = $crate::servicebus::receiver::next_message(&receiver.core).await;
                Some((next, receiver))
            })
        }

        /// Deletes the message (peek-lock).
        pub async fn complete_message(
            &self,
            message: &ServiceBusReceivedMessage,
        ) -> ServiceBusResult<()> {
            self.core
                .settle(message, $crate::servicebus::receiver::Settle::Complete)
                .await
        }

        /// Gives the message back for another delivery, counting a failed attempt; sets
        /// `properties_to_modify` on it first.
        pub async fn abandon_message(
            &self,
            message: &ServiceBusReceivedMessage,
            properties_to_modify: Option<BTreeMap<String, Value>>,
        ) -> ServiceBusResult<()> {
            self.core
                .settle(
                    message,
                    $crate::servicebus::receiver::Settle::Abandon(properties_to_modify),
                )
                .await
        }

        /// Moves the message to the dead-letter subqueue with a reason and description.
        ///
        /// ```no_run
        /// # use std::time::Duration;
        /// # use busbar_client::{DeadLetterOptions, ServiceBusClient, ServiceBusReceiverOptions, SubQueue};
        /// # async fn run(client: ServiceBusClient) -> Result<(), busbar_client::ServiceBusError> {
        /// let receiver = client.create_receiver("orders", ServiceBusReceiverOptions::default());
        /// for message in receiver.receive_messages(1, Some(Duration::from_secs(5))).await? {
        ///     let options = DeadLetterOptions {
        ///         reason: Some("unparseable".into()),
        ///         description: Some("the body is not JSON".into()),
        ///         ..DeadLetterOptions::default()
        ///     };
        ///     receiver.dead_letter_message(&message, options).await?;
        /// }
        /// let dead_letters = client.create_receiver(
        ///     "orders",
        ///     ServiceBusReceiverOptions { sub_queue: SubQueue::DeadLetter, ..Default::default() },
        /// );
        /// for message in dead_letters.peek_messages(10, None).await? {
        ///     println!("{:?}: {:?}", message.dead_letter_reason, message.body);
        /// }
        /// # Ok(()) }
        /// ```
        pub async fn dead_letter_message(
            &self,
            message: &ServiceBusReceivedMessage,
            options: DeadLetterOptions,
        ) -> ServiceBusResult<()> {
            self.core
                .settle(
                    message,
                    $crate::servicebus::receiver::Settle::DeadLetter(options),
                )
                .await
        }

        /// Sets the message aside: only [`Self::receive_deferred_messages`] with
        /// its sequence number gets it again.
        pub async fn defer_message(
            &self,
            message: &ServiceBusReceivedMessage,
            properties_to_modify: Option<BTreeMap<String, Value>>,
        ) -> ServiceBusResult<()> {
            self.core
                .settle(
                    message,
                    $crate::servicebus::receiver::Settle::Defer(properties_to_modify),
                )
                .await
        }

        /// Extends the message's lock; the new expiry.
        pub async fn renew_message_lock(
            &self,
            message: &ServiceBusReceivedMessage,
        ) -> ServiceBusResult<SystemTime> {
            self.core.renew_message_lock(message).await
        }

        /// Up to `max` messages from `from_sequence_number` on (after the last peeked when
        /// `None`), without locking or removing them; deferred and scheduled ones included.
        pub async fn peek_messages(
            &self,
            max: usize,
            from_sequence_number: Option<i64>,
        ) -> ServiceBusResult<Vec<ServiceBusReceivedMessage>> {
            self.core.peek_messages(max, from_sequence_number).await
        }

        /// Receives deferred messages by sequence number (locked in peek-lock mode; settle
        /// them like any other).
        pub async fn receive_deferred_messages(
            &self,
            sequence_numbers: &[i64],
        ) -> ServiceBusResult<Vec<ServiceBusReceivedMessage>> {
            self.core.receive_deferred_messages(sequence_numbers).await
        }
    };
}
pub(crate) use receiver_operations;

/// Receives and settles messages of one queue, subscription or dead-letter subqueue.
/// Made by [`ServiceBusClient::create_receiver`] or
/// [`ServiceBusClient::create_receiver_for_subscription`].
///
/// ```no_run
/// # use std::time::Duration;
/// # use busbar_client::{ServiceBusClient, ServiceBusReceiverOptions};
/// # async fn run(client: ServiceBusClient) -> Result<(), busbar_client::ServiceBusError> {
/// let receiver = client.create_receiver("orders", ServiceBusReceiverOptions::default());
/// for message in receiver.receive_messages(10, Some(Duration::from_secs(5))).await? {
///     println!("{:?}", message.body);
///     receiver.complete_message(&message).await?;
/// }
/// receiver.close().await?;
/// # Ok(()) }
/// ```
pub struct ServiceBusReceiver {
    core: ReceiverCore,
}

impl ServiceBusReceiver {
    pub(crate) fn new(
        client: ServiceBusClient,
        entity: String,
        options: ServiceBusReceiverOptions,
    ) -> Self {
        let path = options.sub_queue.path(&entity);
        ServiceBusReceiver {
            core: ReceiverCore::new(client, path, options, None, None),
        }
    }

    /// The path received from (with the subqueue suffix, if any).
    pub fn entity_path(&self) -> &str {
        self.core.path()
    }

    pub(crate) fn core(&self) -> &ReceiverCore {
        &self.core
    }

    receiver_operations!();

    /// Detaches; prefetched messages not yet handed out are released.
    pub async fn close(&self) -> ServiceBusResult<()> {
        self.core.close().await
    }
}

pub(crate) async fn next_message(
    core: &ReceiverCore,
) -> ServiceBusResult<ServiceBusReceivedMessage> {
    loop {
        if let Some(message) = core.receive_messages(1, None).await?.pop() {
            return Ok(message);
        }
    }
}

pub(crate) fn message_stream(
    core: &ReceiverCore,
) -> impl Stream<Item = ServiceBusResult<ServiceBusReceivedMessage>> + '_ {
    futures_util::stream::unfold(core, |core| async move {
        Some((next_message(core).await, core))
    })
}

impl std::fmt::Debug for ServiceBusReceiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceBusReceiver")
            .field("entity_path", &self.core.path)
            .field("options", &self.core.options)
            .finish_non_exhaustive()
    }
}

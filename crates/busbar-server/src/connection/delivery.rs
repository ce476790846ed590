//! Deliveries to receivers with credit, and the settlements that come back for them.

use std::sync::Arc;

use busbar_amqp::engine::{EngineError, LinkRef};
use busbar_amqp::performative::DeliveryState;
use busbar_amqp::value::Value;
use busbar_core::{CoreError, Delivery, REASON_UNREADABLE, ReceiveMode, SubQueueKind};
use busbar_servicebus::conditions;
use busbar_servicebus::message::{Stamp, write_delivery};
use busbar_servicebus::settlement::{Settlement, lock_lost};
use busbar_store::Store;
use bytes::{Bytes, BytesMut};

use super::completions::Completion;
use super::{AfterCommit, Conn, DELIVERY_BATCH, LinkKind, Outstanding};
use crate::broker::{Entity, Settled, wake};
use crate::otlp;

/// Room for what a delivery adds to the stored message (header, lock token, annotations,
/// expiry), so that a large body is not copied twice when the buffer grows.
const DELIVERY_STAMP_ROOM: usize = 512;

/// Why a locked message did not go out to the receiver.
enum Undeliverable {
    /// The link or session can't take it now (credit, window); it goes back untouched.
    Transient,
    /// The receiver can't take it at all: the attempt counts as a delivery.
    TooLarge(String),
    /// The broker can't read it back (a damaged body): it never reaches a client.
    Unreadable(String),
}

/// What became of a batch the broker tried to send.
#[derive(Debug, PartialEq, Eq)]
enum AfterSending {
    AllSent,
    /// Some could not go out and are available again.
    SomeFailed,
    /// The receiver can never take one of them: its link is detached with this reason.
    Detach(String),
}

impl<S: Store> Conn<S> {
    // -----------------------------------------------------------------------------------
    // Deliveries
    // -----------------------------------------------------------------------------------

    pub(super) fn pump_all(&mut self) {
        let consumers: Vec<LinkRef> = self
            .links
            .iter()
            .filter(|(_, kind)| matches!(kind, LinkKind::Consumer(_)))
            .map(|(link, _)| *link)
            .collect();
        for link in consumers {
            self.pump(link);
            if self.engine.link_draining(link) {
                let _ = self.engine.drain_complete(link);
            }
        }
    }

    /// Sends what the link's credit allows; with nothing to send, waits on the queue.
    ///
    /// Every message is taken locked, receive-and-delete ones too: a message leaves its
    /// queue only once the engine took it, and one that cannot be sent is counted as a
    /// delivery (or dead-lettered) instead of being picked again forever.
    pub(super) fn pump(&mut self, link: LinkRef) {
        let Some(LinkKind::Consumer(consumer)) = self.links.get(&link) else {
            return;
        };
        // Detached once the connection hears of the change; nothing goes out meanwhile.
        if consumer.refusal(&self.hostname).is_some() {
            return;
        }
        let entity = Arc::clone(&consumer.entity);
        let (kind, mode, consumer_id) = (consumer.kind, consumer.mode, consumer.consumer);
        let session = consumer.message_session.clone();

        // A receive-and-delete message leaves its queue by a write after it was sent: while
        // the store can't write, none is sent (it would come back). The connection's
        // periodic check pumps again.
        if mode == ReceiveMode::ReceiveAndDelete
            && !matches!(self.broker.store.health(), busbar_store::StoreHealth::Ok)
        {
            return;
        }
        loop {
            // A client that takes deliveries and never settles them gets no more past the
            // limit: the broker keeps every unsettled one until it does.
            let unsettled = match self.links.get(&link) {
                Some(LinkKind::Consumer(consumer)) => consumer.unsettled,
                _ => return,
            };
            let room = self
                .broker
                .settings
                .limits
                .max_unsettled_per_link
                .saturating_sub(unsettled);
            let capacity = self
                .engine
                .send_capacity(link)
                .min(DELIVERY_BATCH)
                .min(u32::try_from(room).unwrap_or(u32::MAX));
            if capacity == 0 {
                return;
            }
            let now = self.broker.now_ms();
            let mut journal = self.broker.journal();
            let mut deliveries = Vec::with_capacity(capacity as usize);
            let mut failure = None;
            {
                let mut state = entity.lock();
                while deliveries.len() < capacity as usize {
                    let next = match session.as_deref() {
                        Some(id) => state.queue.next_in_session(
                            id,
                            ReceiveMode::PeekLock,
                            consumer_id,
                            now,
                            &mut journal,
                        ),
                        None => state.queue.next_for_delivery(
                            kind,
                            ReceiveMode::PeekLock,
                            consumer_id,
                            now,
                            &mut journal,
                        ),
                    };
                    match next {
                        Ok(Some(delivery)) => deliveries.push(delivery),
                        Ok(None) => {
                            state.wait(&self.notify);
                            break;
                        }
                        Err(error) => {
                            failure = Some(error);
                            break;
                        }
                    }
                }
            }
            // Expiries met on the way are not waited for: nothing acknowledges them.
            drop(journal.into_commit());
            let bytes = deliveries.iter().map(|d| u64::from(d.body_ref.len)).sum();
            entity
                .stats
                .add_outgoing(deliveries.len() as u64, bytes, self.broker.now_ms());
            let full_batch = deliveries.len() == capacity as usize;
            let mut outcomes = Vec::with_capacity(deliveries.len());
            for delivery in deliveries {
                let Some(lock) = delivery.lock else {
                    continue;
                };
                let outcome = self.send_delivery(link, &entity, kind, mode, delivery);
                outcomes.push((lock.token, outcome));
            }
            let after = self.after_sending(&entity, kind, mode, outcomes);
            if let AfterSending::Detach(why) = after {
                return self.detach_with(link, conditions::MESSAGE_SIZE_EXCEEDED, &why);
            }
            if let Some(CoreError::SessionLockLost) = failure {
                return self.detach_with(
                    link,
                    conditions::SESSION_LOCK_LOST,
                    "The session lock has expired; accept the session again.",
                );
            }
            if let Some(error) = failure {
                tracing::error!(entity = %entity.name, %error, "delivery failed");
            }
            // After a failure the next attempt waits for the next wake-up instead of
            // looping here.
            if !full_batch || after == AfterSending::SomeFailed {
                return;
            }
        }
    }

    /// Settles what the broker itself decides about the messages it just tried to send, in
    /// one acquisition of the queue's lock: receive-and-delete messages that went out are
    /// removed, and those that could not go out are released, counted or dead-lettered.
    fn after_sending(
        &mut self,
        entity: &Arc<Entity>,
        kind: SubQueueKind,
        mode: ReceiveMode,
        outcomes: Vec<(uuid::Uuid, Result<(), Undeliverable>)>,
    ) -> AfterSending {
        let delete_sent = mode == ReceiveMode::ReceiveAndDelete;
        let failed = outcomes.iter().any(|(_, outcome)| outcome.is_err());
        let mut after = AfterSending::AllSent;
        if !delete_sent && !failed {
            return after;
        }
        if failed {
            after = AfterSending::SomeFailed;
        }
        let now = self.broker.now_ms();
        // Nothing acknowledges these changes, so nothing waits for their sync: a crash
        // before it delivers a receive-and-delete message again (at least once).
        let mut journal = self.broker.relaxed_journal();
        let waiters = {
            let mut state = entity.lock();
            let queue = &mut state.queue;
            for (token, outcome) in outcomes {
                let result = match outcome {
                    Ok(()) if delete_sent => queue.complete(kind, token, now, &mut journal),
                    Ok(()) => Ok(()),
                    Err(Undeliverable::Transient) => queue.release(kind, token, now),
                    Err(Undeliverable::TooLarge(why)) if kind == SubQueueKind::Main => {
                        tracing::warn!(entity = %entity.name, %why, "message not delivered");
                        queue.abandon(kind, token, now, None, &mut journal)
                    }
                    Err(Undeliverable::TooLarge(why)) => {
                        // A dead-letter queue counts no deliveries and sends nothing further:
                        // the receiver that can't take the message is told so and let go,
                        // and the message waits for one that can.
                        after = AfterSending::Detach(why);
                        queue.release(kind, token, now)
                    }
                    Err(Undeliverable::Unreadable(why)) => {
                        tracing::error!(entity = %entity.name, %why, "message unreadable");
                        if kind == SubQueueKind::Main {
                            queue.dead_letter(
                                kind,
                                token,
                                now,
                                Some(REASON_UNREADABLE),
                                Some(&why),
                                None,
                                &mut journal,
                            )
                        } else {
                            // A dead-letter queue has nowhere further to send it: set it
                            // aside where only receive-by-sequence-number looks.
                            queue.defer(kind, token, now, None, &mut journal)
                        }
                    }
                };
                if let Err(error) = result {
                    tracing::error!(entity = %entity.name, %error, "settling an attempted delivery failed");
                }
            }
            if failed {
                // The messages are available again, to this connection too: it tries
                // again after a trip through its event loop, not in a loop here.
                state.wait(&self.notify);
                state.take_waiters()
            } else {
                Vec::new()
            }
        };
        drop(journal.into_commit());
        wake(waiters);
        after
    }

    /// Stamps and sends one locked delivery; says why when it cannot go out.
    fn send_delivery(
        &mut self,
        link: LinkRef,
        entity: &Arc<Entity>,
        kind: SubQueueKind,
        mode: ReceiveMode,
        delivery: Delivery,
    ) -> Result<(), Undeliverable> {
        let Some(lock) = delivery.lock else {
            return Err(Undeliverable::Transient);
        };
        let started = self.broker.tracer.is_on().then(otlp::now_unix_ns);
        let peek_lock = mode == ReceiveMode::PeekLock;
        let stamp = Stamp {
            lock_token: peek_lock.then_some(lock.token),
            ..Stamp::of(&delivery, peek_lock.then_some(lock.locked_until_ms))
        };
        let body = match delivery.body {
            Some(body) => body,
            None => self
                .broker
                .store
                .read_body(delivery.body_ref)
                .map_err(|error| {
                    Undeliverable::Unreadable(format!(
                        "The stored body of message {} can't be read: {error}",
                        delivery.seq
                    ))
                })?,
        };
        let trace = self.broker.tracer.context_of(&body);
        let mut payload = BytesMut::with_capacity(body.len() + DELIVERY_STAMP_ROOM);
        write_delivery(&mut payload, &body, &stamp).map_err(|error| {
            Undeliverable::Unreadable(format!(
                "Stored message {} can't be read: {error}",
                delivery.seq
            ))
        })?;
        let token = self.next_token;
        self.next_token += 1;
        let tag = if peek_lock {
            Bytes::copy_from_slice(&lock.token.to_bytes_le())
        } else {
            Bytes::copy_from_slice(&u128::from(delivery.seq).to_le_bytes())
        };
        match self
            .engine
            .send_message(link, tag, payload.freeze(), !peek_lock, token)
        {
            Ok(_) => {
                if let (Some(context), Some(started)) = (trace, started) {
                    let stage = otlp::Stage::Deliver {
                        delivery_count: delivery.meta.delivery_count,
                    };
                    let span = otlp::Span::ending_now(context, stage, &entity.name, started);
                    self.broker.tracer.record(span);
                }
                if peek_lock {
                    if let Some(LinkKind::Consumer(consumer)) = self.links.get_mut(&link) {
                        consumer.unsettled += 1;
                    }
                    self.outstanding.insert(
                        token,
                        Outstanding {
                            link,
                            entity: Arc::clone(entity),
                            kind,
                            lock: lock.token,
                            trace,
                        },
                    );
                }
                Ok(())
            }
            Err(EngineError::MessageTooLarge { size, max }) => {
                Err(Undeliverable::TooLarge(format!(
                    "message {} is {size} bytes; the receiver takes at most {max}",
                    delivery.seq
                )))
            }
            Err(error) => {
                tracing::debug!(%error, "delivery not sent");
                Err(Undeliverable::Transient)
            }
        }
    }

    pub(super) fn on_settled(
        &mut self,
        link: LinkRef,
        delivery_id: u32,
        token: u64,
        state: Option<DeliveryState>,
        settled_by_peer: bool,
    ) {
        let settlement = match Settlement::from_state(state.as_ref()) {
            Some(settlement) => settlement,
            // Settled without an outcome: nothing was decided, so the lock goes back.
            None if settled_by_peer => Settlement::Release,
            None => return,
        };
        let Some(outstanding) = self.outstanding.remove(&token) else {
            if !settled_by_peer {
                let _ = self.engine.settle(link, delivery_id, lock_lost());
            }
            return;
        };
        if let Some(LinkKind::Consumer(consumer)) = self.links.get_mut(&outstanding.link) {
            let was_full = consumer.unsettled >= self.broker.settings.limits.max_unsettled_per_link;
            consumer.unsettled = consumer.unsettled.saturating_sub(1);
            if was_full {
                // Room again for a receiver held at its limit.
                self.notify.notify_one();
            }
        }
        if matches!(settlement, Settlement::Complete) && outstanding.trace.is_none() {
            // Applied with the others of this read (see `completions`); a traced one goes
            // alone below, where its settle span is recorded.
            self.completions.push(Completion {
                entity: outstanding.entity,
                kind: outstanding.kind,
                lock: outstanding.lock,
                answer: (!settled_by_peer).then_some((link, delivery_id)),
            });
            return;
        }
        let echo = settlement.echo();
        let started = outstanding
            .trace
            .map(|context| (context, otlp::now_unix_ns()));
        let now = self.broker.now_ms();
        let mut journal = self.broker.journal();
        let kind = outstanding.kind;
        let lock = outstanding.lock;
        let (result, waiters) = {
            let mut state = outstanding.entity.lock();
            let queue = &mut state.queue;
            let result = match &settlement {
                Settlement::Complete => queue.complete(kind, lock, now, &mut journal),
                Settlement::Release => queue.release(kind, lock, now),
                Settlement::Abandon { properties } => {
                    let edit = body_edit(properties);
                    queue.abandon(kind, lock, now, edit.as_ref().map(|e| e as _), &mut journal)
                }
                Settlement::Defer { properties } => {
                    let edit = body_edit(properties);
                    queue.defer(kind, lock, now, edit.as_ref().map(|e| e as _), &mut journal)
                }
                Settlement::DeadLetter {
                    reason,
                    description,
                    properties,
                } => {
                    let edit = body_edit(properties);
                    queue.dead_letter(
                        kind,
                        lock,
                        now,
                        reason.as_deref(),
                        description.as_deref(),
                        edit.as_ref().map(|e| e as _),
                        &mut journal,
                    )
                }
            };
            let frees_message =
                matches!(settlement, Settlement::Release | Settlement::Abandon { .. });
            let waiters = if result.is_ok() && frees_message {
                state.take_waiters()
            } else {
                Vec::new()
            };
            (result, waiters)
        };
        wake(waiters);
        if let Some((context, started)) = started {
            let stage = otlp::Stage::Settle(otlp::Outcome::of(&settlement));
            let mut span =
                otlp::Span::ending_now(context, stage, &outstanding.entity.name, started);
            span.failure = result.as_ref().err().map(ToString::to_string);
            self.broker.tracer.record(span);
        }
        match result {
            Ok(()) => {
                let settled = match settlement {
                    Settlement::Complete => Some(Settled::Completed),
                    Settlement::Abandon { .. } => Some(Settled::Abandoned),
                    _ => None,
                };
                if let Some(settled) = settled {
                    outstanding.entity.stats.count_settled(settled, 1);
                }
                let commit = journal.into_commit();
                if settled_by_peer {
                    self.keep_commit(commit);
                } else if commit.is_some() {
                    self.keep_commit(commit);
                    self.round_actions.push(AfterCommit::Settle {
                        link,
                        delivery_id,
                        state: echo,
                    });
                } else {
                    let _ = self.engine.settle(link, delivery_id, echo);
                }
            }
            Err(CoreError::LockLost | CoreError::MessageNotFound(_)) => {
                if !settled_by_peer {
                    let _ = self.engine.settle(link, delivery_id, lock_lost());
                }
            }
            Err(error) => {
                let failure = self.settlement_failure(&outstanding.entity, &error);
                if !settled_by_peer {
                    let _ = self.engine.settle(link, delivery_id, failure);
                }
            }
        }
    }
}

type Edit = Box<dyn Fn(&Bytes) -> Bytes>;

/// The body rewrite merging `properties` into the application properties, if any.
fn body_edit(properties: &[(String, Value)]) -> Option<Edit> {
    if properties.is_empty() {
        return None;
    }
    let properties = properties.to_vec();
    Some(Box::new(move |body: &Bytes| {
        busbar_servicebus::message::with_application_properties(body, &properties)
            .unwrap_or_else(|_| body.clone())
    }))
}

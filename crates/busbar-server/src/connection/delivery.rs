//! Deliveries to receivers with credit, and the settlements that come back for them.

use std::sync::Arc;

use busbar_amqp::engine::LinkRef;
use busbar_amqp::performative::DeliveryState;
use busbar_amqp::value::Value;
use busbar_core::{CoreError, Delivery, SubQueueKind};
use busbar_servicebus::conditions;
use busbar_servicebus::message::{Stamp, write_delivery};
use busbar_servicebus::settlement::{Settlement, lock_lost, rejected};
use busbar_store::Store;
use bytes::{Bytes, BytesMut};

use super::{AfterCommit, Conn, DELIVERY_BATCH, LinkKind, Outstanding};
use crate::broker::{Entity, wake};

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
    pub(super) fn pump(&mut self, link: LinkRef) {
        let Some(LinkKind::Consumer(consumer)) = self.links.get(&link) else {
            return;
        };
        let entity = Arc::clone(&consumer.entity);
        let (kind, mode, consumer_id) = (consumer.kind, consumer.mode, consumer.consumer);
        let session = consumer.session.clone();
        loop {
            let capacity = self.engine.send_capacity(link).min(DELIVERY_BATCH);
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
                        Some(id) => {
                            state
                                .queue
                                .next_in_session(id, mode, consumer_id, now, &mut journal)
                        }
                        None => state.queue.next_for_delivery(
                            kind,
                            mode,
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
            // Receive-and-delete removals are not waited for: the message is handed out
            // either way, and a crash before the sync redelivers it (at least once).
            drop(journal.into_commit());
            entity.stats.add_delivered(deliveries.len());
            if let Some(CoreError::SessionLockLost) = failure {
                for delivery in deliveries {
                    self.send_delivery(link, &entity, kind, delivery);
                }
                return self.detach_with(
                    link,
                    conditions::SESSION_LOCK_LOST,
                    "The session lock has expired; accept the session again.",
                );
            }
            if let Some(error) = failure {
                tracing::error!(entity = %entity.name, %error, "delivery failed");
            }
            let full_batch = deliveries.len() == capacity as usize;
            for delivery in deliveries {
                self.send_delivery(link, &entity, kind, delivery);
            }
            if !full_batch {
                return;
            }
        }
    }

    fn send_delivery(
        &mut self,
        link: LinkRef,
        entity: &Arc<Entity>,
        kind: SubQueueKind,
        delivery: Delivery,
    ) {
        let body = match delivery.body {
            Some(body) => body,
            None => match self.broker.store.read_body(delivery.body_ref) {
                Ok(body) => body,
                Err(error) => {
                    tracing::error!(entity = %entity.name, seq = delivery.seq, %error, "body unreadable");
                    if let Some(lock) = delivery.lock {
                        let _ = entity
                            .lock()
                            .queue
                            .release(kind, lock.token, self.broker.now_ms());
                    }
                    return;
                }
            },
        };
        let stamp = Stamp {
            sequence_number: i64::try_from(delivery.seq).unwrap_or(i64::MAX),
            enqueued_at_ms: delivery.meta.enqueued_at_ms,
            delivery_count: delivery.meta.delivery_count,
            locked_until_ms: delivery.lock.map(|l| l.locked_until_ms),
            state: delivery.meta.state as i32,
            expires_at_ms: delivery.meta.expires_at_ms,
        };
        let mut payload = BytesMut::with_capacity(body.len() + 96);
        if let Err(error) = write_delivery(&mut payload, &body, &stamp) {
            tracing::error!(entity = %entity.name, seq = delivery.seq, %error, "stored message unreadable");
            return;
        }
        let token = self.next_token;
        self.next_token += 1;
        let (tag, settled) = match delivery.lock {
            Some(lock) => (Bytes::copy_from_slice(&lock.token.to_bytes_le()), false),
            None => (
                Bytes::copy_from_slice(&u128::from(delivery.seq).to_le_bytes()),
                true,
            ),
        };
        match self
            .engine
            .send_message(link, tag, payload.freeze(), settled, token)
        {
            Ok(_) => {
                if let Some(lock) = delivery.lock {
                    self.outstanding.insert(
                        token,
                        Outstanding {
                            link,
                            entity: Arc::clone(entity),
                            kind,
                            lock: lock.token,
                        },
                    );
                }
            }
            Err(error) => {
                tracing::debug!(%error, "delivery not sent");
                if let Some(lock) = delivery.lock {
                    let _ = entity
                        .lock()
                        .queue
                        .release(kind, lock.token, self.broker.now_ms());
                }
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
        let echo = settlement.echo();
        let now = self.broker.now_ms();
        // A completion the client settled itself is acknowledged to no one: losing it in a
        // crash redelivers the message, so it needs no sync of its own.
        let relaxed = settled_by_peer && matches!(settlement, Settlement::Complete);
        let mut journal = if relaxed {
            self.broker.relaxed_journal()
        } else {
            self.broker.journal()
        };
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
        match result {
            Ok(()) => {
                let commit = journal.into_commit();
                if relaxed {
                    // Nothing waits for it; later commits of this round still cover it.
                    drop(commit);
                } else if settled_by_peer {
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
                tracing::error!(entity = %outstanding.entity.name, %error, "settlement failed");
                if !settled_by_peer {
                    let _ = self.engine.settle(
                        link,
                        delivery_id,
                        rejected(conditions::INTERNAL_ERROR, error.to_string()),
                    );
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

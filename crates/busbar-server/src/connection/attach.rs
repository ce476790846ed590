//! Attaching and detaching links: what an address names, whether the connection's tokens
//! allow it, and which link kind serves it; links lose their rights when tokens expire.

use std::collections::VecDeque;
use std::sync::Arc;

use busbar_amqp::engine::{AttachReply, LinkRef};
use busbar_amqp::performative::{Attach, ErrorCondition, Role, SenderSettleMode, TargetKind};
use busbar_core::{ReceiveMode, SubQueueKind};
use busbar_servicebus::address::{self, Address, SubQueue};
use busbar_servicebus::authorization::{Action, Denied};
use busbar_servicebus::conditions;
use busbar_store::Store;

use super::{Conn, ConsumerLink, LinkKind, PendingSessionReceiver, ResponseLink, SendTarget};
use crate::broker::{TOKEN_GRACE_SECS, TopicEntity, wake};
use crate::session_receivers;

/// Largest attach accepted: names and addresses of Service Bus entities are short, and a
/// filter on a source is a few expressions.
const MAX_ATTACH_BYTES: usize = 64 * 1024;

/// The encoded size of an attach.
fn attach_size(attach: &Attach) -> usize {
    let mut out = bytes::BytesMut::new();
    busbar_amqp::frame::encode_frame(
        &busbar_amqp::frame::Frame::amqp(0, attach.clone()),
        &mut out,
    );
    out.len()
}

/// Largest request accepted on a `$cbs` link.
const CBS_MAX_MESSAGE_SIZE: u64 = 64 * 1024;

impl<S: Store> Conn<S> {
    pub(super) fn refuse(&mut self, link: LinkRef, condition: &str, description: String) {
        tracing::debug!(condition, %description, "attach refused");
        self.broker.stats.count_refusal(condition);
        let _ = self
            .engine
            .refuse_attach(link, ErrorCondition::new(condition, description));
    }

    fn not_found(&mut self, link: LinkRef, path: &str) {
        let description = conditions::entity_not_found_description(&self.hostname, path);
        self.refuse(link, conditions::NOT_FOUND, description);
    }

    pub(super) fn on_attach(&mut self, link: LinkRef, attach: &Attach) {
        // The engine keeps an attach (name, source, target) until the client detaches, even
        // a refused one: large attaches cost the client its connection.
        let size = attach_size(attach);
        if size > MAX_ATTACH_BYTES {
            tracing::debug!(size, "attach too large; closing the connection");
            self.engine.close(Some(ErrorCondition::new(
                conditions::INVALID_FIELD,
                format!("An attach of {size} bytes is over the limit of {MAX_ATTACH_BYTES}."),
            )));
            return;
        }
        // Every link the engine holds counts, refused ones not yet detached included; the
        // one being attached is among them.
        let held = self.engine.link_count().saturating_sub(1);
        let has_token = !self.claims.is_empty();
        let limits = &self.broker.settings.limits;
        if let Err(exceeded) = limits.admit_link(held, has_token) {
            if limits.links_ignored(held, has_token) {
                return self
                    .close_over_limit(format!("{exceeded} Refused links were not detached."));
            }
            return self.refuse(
                link,
                conditions::RESOURCE_LIMIT_EXCEEDED,
                exceeded.to_string(),
            );
        }
        let broker_sends = link.role() == Role::Sender;
        let raw_address = if broker_sends {
            attach.source.as_ref().and_then(|s| s.address.clone())
        } else {
            match &attach.target {
                Some(TargetKind::Target(t)) => t.address.clone(),
                Some(TargetKind::Other(_)) => {
                    self.refuse(
                        link,
                        conditions::NOT_IMPLEMENTED,
                        "Transactions are not supported.".to_owned(),
                    );
                    return;
                }
                None => None,
            }
        };
        let Some(raw_address) = raw_address else {
            self.refuse(
                link,
                conditions::INVALID_FIELD,
                "The link has no address.".to_owned(),
            );
            return;
        };
        let parsed = match address::parse(&raw_address) {
            Ok(parsed) => parsed,
            Err(error) => {
                self.refuse(link, conditions::NOT_FOUND, error.to_string());
                return;
            }
        };
        match parsed {
            Address::Cbs => {
                if broker_sends {
                    self.accept_responder(link, attach, "$cbs".to_owned());
                } else {
                    // A put-token request is a token and a few properties: a link that
                    // needs no token must not be able to pin a large message.
                    let reply = AttachReply {
                        max_message_size: Some(CBS_MAX_MESSAGE_SIZE),
                        ..AttachReply::default()
                    };
                    self.accept(link, reply, LinkKind::CbsRequests);
                }
            }
            Address::Management { path, sub } => {
                let (node, requests) = if sub == SubQueue::Main
                    && let Some(topic) = self.broker.topic(&path)
                {
                    let node = format!("{}/$management", topic.name);
                    (node, LinkKind::TopicManagementRequests(topic))
                } else {
                    let Some(entity) = self.broker.entity(&path) else {
                        return self.not_found(link, &path);
                    };
                    let Some(kind) = sub_queue_kind(sub) else {
                        return self.not_found(link, &parsed_path(&path, sub));
                    };
                    let node = format!("{}/$management", parsed_path(&path, sub));
                    (node, LinkKind::ManagementRequests { entity, kind })
                };
                if let Err(denied) =
                    self.broker
                        .authorize(&self.claims, &node, Action::ManagementLink)
                {
                    return self.unauthorized(link, &denied);
                }
                let node = node.to_ascii_lowercase();
                if broker_sends {
                    self.accept_responder(link, attach, node);
                } else {
                    self.accept(link, AttachReply::default(), requests);
                }
            }
            Address::Entity { path, sub } => {
                if let Some(topic) = self.broker.topic(&path) {
                    return self.attach_topic(link, topic, sub, broker_sends);
                }
                let Some(entity) = self.broker.entity(&path) else {
                    return self.not_found(link, &path);
                };
                let Some(kind) = sub_queue_kind(sub) else {
                    return self.not_found(link, &parsed_path(&path, sub));
                };
                if broker_sends {
                    let full_path = parsed_path(&path, sub);
                    if let Err(denied) =
                        self.broker
                            .authorize(&self.claims, &full_path, Action::ReceiveLink)
                    {
                        return self.unauthorized(link, &denied);
                    }
                    let mode = if attach.snd_settle_mode == SenderSettleMode::Settled {
                        ReceiveMode::ReceiveAndDelete
                    } else {
                        ReceiveMode::PeekLock
                    };
                    let consumer = self.broker.usage.next_consumer();
                    let consumer = ConsumerLink {
                        entity,
                        kind,
                        mode,
                        consumer,
                        message_session: None,
                        unsettled: 0,
                    };
                    if let Some((condition, description)) = consumer.refusal(&self.hostname) {
                        return self.refuse(link, condition, description);
                    }
                    self.attach_consumer(link, attach, consumer, &raw_address);
                } else {
                    if kind != SubQueueKind::Main || is_subscription_path(&path) {
                        self.refuse(
                            link,
                            conditions::NOT_ALLOWED,
                            format!("Messages can't be sent to '{raw_address}'."),
                        );
                        return;
                    }
                    if let Err(denied) =
                        self.broker.authorize(&self.claims, &path, Action::SendLink)
                    {
                        return self.unauthorized(link, &denied);
                    }
                    let reply = AttachReply {
                        max_message_size: Some(self.broker.settings.max_message_size),
                        ..AttachReply::default()
                    };
                    self.accept(link, reply, LinkKind::Producer(SendTarget::Queue(entity)));
                }
            }
        }
    }

    /// A receiver on a queue or subscription: plain, or a session receiver (which waits for
    /// a free session, see [`PendingSessionReceiver`]).
    fn attach_consumer(
        &mut self,
        link: LinkRef,
        attach: &Attach,
        consumer: ConsumerLink,
        address: &str,
    ) {
        let requires_session =
            consumer.kind == SubQueueKind::Main && consumer.entity.requires_session;
        match (
            session_receivers::requested_session(attach),
            requires_session,
        ) {
            (None, false) => {
                let reply = AttachReply {
                    initial_delivery_count: Some(0),
                    ..AttachReply::default()
                };
                self.accept(link, reply, LinkKind::Consumer(consumer));
            }
            (None, true) => self.refuse(
                link,
                conditions::NOT_ALLOWED,
                format!("'{address}' requires sessions: receive from it with a session receiver."),
            ),
            (Some(_), false) => self.refuse(
                link,
                conditions::NOT_ALLOWED,
                format!(
                    "'{address}' does not require sessions: receive from it without a session."
                ),
            ),
            (Some(requested), true) => {
                let wait = session_receivers::wait_ms(attach)
                    .unwrap_or(session_receivers::DEFAULT_WAIT_MS);
                let pending = PendingSessionReceiver {
                    link,
                    consumer,
                    source: attach.source.clone(),
                    requested,
                    deadline_ms: self.broker.now_ms().saturating_add(wait),
                };
                if let Some(waiting) = self.try_accept_session(pending) {
                    self.waiting_session_receivers.push(waiting);
                }
            }
        }
    }

    /// Answers a session receiver's attach if it can be: with the session, or with the
    /// refusal; gives it back if it must go on waiting.
    /// Detaches `link` with an error, and forgets it.
    pub(super) fn detach_with(&mut self, link: LinkRef, condition: &str, description: &str) {
        let _ = self
            .engine
            .detach(link, Some(ErrorCondition::new(condition, description)));
        // The engine reports no Detached for links the broker detaches itself.
        self.on_detached(link);
    }

    /// A link to a topic: senders publish to it; receivers must name a subscription.
    fn attach_topic(
        &mut self,
        link: LinkRef,
        topic: Arc<TopicEntity>,
        sub: SubQueue,
        broker_sends: bool,
    ) {
        if broker_sends || sub != SubQueue::Main {
            return self.refuse(
                link,
                conditions::NOT_ALLOWED,
                format!(
                    "'{}' is a topic: receive from one of its subscriptions, '{}/Subscriptions/<name>'.",
                    topic.name, topic.name
                ),
            );
        }
        if let Err(denied) = self
            .broker
            .authorize(&self.claims, &topic.name, Action::SendLink)
        {
            return self.unauthorized(link, &denied);
        }
        let reply = AttachReply {
            max_message_size: Some(self.broker.settings.max_message_size),
            ..AttachReply::default()
        };
        self.accept(link, reply, LinkKind::Producer(SendTarget::Topic(topic)));
    }

    /// Forgets expired tokens and detaches, with `amqp:unauthorized-access`, every link
    /// that no remaining token covers (as Service Bus drops links when a token expires).
    pub(super) fn drop_expired_claims(&mut self) {
        let now = self.broker.now_unix_secs();
        if !self
            .claims
            .iter()
            .any(|c| c.is_expired(now, TOKEN_GRACE_SECS))
        {
            return;
        }
        self.claims.retain(|c| !c.is_expired(now, TOKEN_GRACE_SECS));
        self.drop_unauthorized_links(
            "The token for this link has expired; send a new one on $cbs.",
        );
    }

    /// Detaches, with `amqp:unauthorized-access`, every link the connection's tokens no
    /// longer allow: after tokens expire, or after a new token replaced one with more rights.
    pub(super) fn drop_unauthorized_links(&mut self, why: &str) {
        let mut lost = Vec::new();
        for (link, kind) in &self.links {
            let still_allowed = kind.authorization().is_none_or(|(path, action)| {
                self.broker.authorize(&self.claims, &path, action).is_ok()
            });
            if !still_allowed {
                lost.push(*link);
            }
        }
        for link in lost {
            tracing::debug!(
                handle = link.handle(),
                why,
                "link no longer authorized; detaching"
            );
            self.detach_with(link, conditions::UNAUTHORIZED_ACCESS, why);
        }
    }

    /// Detaches every link whose entity was deleted (`amqp:not-found`) and every receiver
    /// whose entity no longer gives out messages (`com.microsoft:entity-disabled`).
    pub(super) fn drop_links_of_changed_entities(&mut self) {
        let lost: Vec<_> = self
            .links
            .iter()
            .filter_map(|(link, kind)| Some((*link, kind.detach_reason(&self.hostname)?)))
            .collect();
        for (link, (condition, description)) in lost {
            tracing::debug!(handle = link.handle(), %description, "entity changed; detaching");
            self.detach_with(link, condition, &description);
        }
    }

    fn unauthorized(&mut self, link: LinkRef, denied: &Denied) {
        self.refuse(
            link,
            conditions::UNAUTHORIZED_ACCESS,
            format!("{denied} Send one on $cbs (put-token) first."),
        );
    }

    pub(super) fn accept(&mut self, link: LinkRef, reply: AttachReply, kind: LinkKind) {
        if self.engine.accept_attach(link, reply).is_ok() {
            self.links.insert(link, kind);
        }
    }

    fn accept_responder(&mut self, link: LinkRef, attach: &Attach, node: String) {
        let target = match &attach.target {
            Some(TargetKind::Target(t)) => t.address.clone(),
            _ => None,
        };
        let reply = AttachReply {
            initial_delivery_count: Some(0),
            ..AttachReply::default()
        };
        if self.engine.accept_attach(link, reply).is_ok() {
            self.links.insert(link, LinkKind::Responses);
            self.responders.push(ResponseLink {
                link,
                name: attach.name.clone(),
                node,
                target,
                pending: VecDeque::new(),
            });
        }
    }

    pub(super) fn on_detached(&mut self, link: LinkRef) {
        self.waiting_session_receivers.retain(|p| p.link != link);
        match self.links.remove(&link) {
            Some(LinkKind::Consumer(consumer)) => {
                self.outstanding.retain(|_, o| o.link != link);
                let waiters = {
                    let mut state = consumer.entity.lock();
                    let released = state.queue.release_all(consumer.consumer);
                    if released > 0 {
                        state.take_waiters()
                    } else {
                        Vec::new()
                    }
                };
                wake(waiters);
            }
            Some(LinkKind::Responses) => self.responders.retain(|r| r.link != link),
            _ => {}
        }
    }

    /// Unlocks everything this connection held; the connection is gone.
    pub(super) fn release_everything(&mut self) {
        let links: Vec<LinkRef> = self.links.keys().copied().collect();
        for link in links {
            self.on_detached(link);
        }
    }
}

/// Whether `path` names a subscription (`<topic>/Subscriptions/<name>`).
fn is_subscription_path(path: &str) -> bool {
    path.split('/')
        .rev()
        .nth(1)
        .is_some_and(|segment| segment.eq_ignore_ascii_case("Subscriptions"))
}

fn sub_queue_kind(sub: SubQueue) -> Option<SubQueueKind> {
    match sub {
        SubQueue::Main => Some(SubQueueKind::Main),
        SubQueue::DeadLetter => Some(SubQueueKind::DeadLetter),
        SubQueue::TransferDeadLetter => Some(SubQueueKind::TransferDeadLetter),
    }
}

pub(super) fn sub_queue_of(kind: SubQueueKind) -> SubQueue {
    match kind {
        SubQueueKind::Main => SubQueue::Main,
        SubQueueKind::DeadLetter => SubQueue::DeadLetter,
        SubQueueKind::TransferDeadLetter => SubQueue::TransferDeadLetter,
    }
}

pub(super) fn parsed_path(path: &str, sub: SubQueue) -> String {
    format!("{path}{}", sub.suffix())
}

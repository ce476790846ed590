//! What arrives on producer, `$cbs` and `$management` links, and the routing of responses
//! back to the client.

use std::sync::Arc;

use busbar_amqp::engine::{IncomingMessage, LinkRef};
use busbar_amqp::performative::DeliveryState;
use busbar_core::{ConsumerId, CoreError, NewMessage};
use busbar_servicebus::authorization::Action;
use busbar_servicebus::conditions;
use busbar_servicebus::message::new_messages;
use busbar_servicebus::request::{Request, cbs_response, management_response};
use busbar_servicebus::sas::{self};
use busbar_servicebus::settlement::rejected;
use busbar_store::Store;
use bytes::Bytes;

use crate::broker::{Broker, Entity, Route, TOKEN_GRACE_SECS};
use crate::management;
use crate::otlp::{self, TraceContext};

use super::attach::{parsed_path, sub_queue_of};
use super::{AfterCommit, Conn, ConsumerLink, LinkKind, SendTarget};

impl<S: Store> Conn<S> {
    // -----------------------------------------------------------------------------------
    // Incoming messages
    // -----------------------------------------------------------------------------------

    pub(super) fn on_message(&mut self, message: IncomingMessage) {
        match self.links.get(&message.link) {
            Some(LinkKind::Producer(target)) => {
                if let Some((condition, description)) = target.refusal(&self.hostname) {
                    return self.settle_now(&message, rejected(condition, &description));
                }
                let route = match target {
                    SendTarget::Queue(entity) => self.broker.route(entity),
                    SendTarget::Topic(topic) => Route::Publish(Arc::clone(topic)),
                };
                self.enqueue(route, message);
            }
            Some(LinkKind::CbsRequests) => self.put_token(message),
            Some(LinkKind::ManagementRequests { entity, kind }) => {
                let node = format!(
                    "{}/$management",
                    parsed_path(&entity.name, sub_queue_of(*kind))
                );
                let entity = Arc::clone(entity);
                let kind = *kind;
                let caller_message_sessions = self.message_sessions_held_on(&entity);
                self.management(&node, message, |broker, request| {
                    let context = management::Context {
                        broker,
                        entity: &entity,
                        kind,
                        caller_message_sessions: &caller_message_sessions,
                    };
                    management::handle(&context, request)
                });
            }
            Some(LinkKind::TopicManagementRequests(topic)) => {
                let node = format!("{}/$management", topic.name);
                let topic = Arc::clone(topic);
                self.management(&node, message, |broker, request| {
                    management::handle_topic(broker, &topic, request)
                });
            }
            _ => {
                if !message.settled {
                    let _ = self.engine.settle(
                        message.link,
                        message.delivery_id,
                        rejected(conditions::NOT_ALLOWED, "This link does not take messages."),
                    );
                }
            }
        }
    }

    fn settle_now(&mut self, message: &IncomingMessage, state: DeliveryState) {
        if let DeliveryState::Rejected { error: Some(error) } = &state {
            self.broker.stats.count_refusal(error.condition.as_str());
        }
        if !message.settled {
            let _ = self.engine.settle(message.link, message.delivery_id, state);
        }
    }

    fn enqueue(&mut self, route: Route, message: IncomingMessage) {
        let batch = match new_messages(&message.payload, message.message_format) {
            Ok(batch) => batch,
            Err(error) => {
                return self.settle_now(
                    &message,
                    rejected(
                        conditions::DECODE_ERROR,
                        format!("The message can't be read: {error}"),
                    ),
                );
            }
        };
        if let Some(why) = Broker::<S>::refuse_without_session(&route, &batch) {
            return self.settle_now(&message, rejected(conditions::NOT_ALLOWED, why));
        }
        let traced = self.traced_arrivals(&route, &batch);
        let now = self.broker.now_ms();
        let mut journal = self.broker.journal();
        let result = self.broker.store_routed(&route, batch, now, &mut journal);
        match result {
            Ok(_) => {
                if !traced.is_empty() {
                    self.round_actions.push(AfterCommit::Trace(traced));
                }
                self.keep_commit(journal.into_commit());
                self.count_uncommitted(message.payload.len() as u64);
                if !message.settled {
                    self.round_actions.push(AfterCommit::Settle {
                        link: message.link,
                        delivery_id: message.delivery_id,
                        state: DeliveryState::Accepted,
                    });
                }
            }
            Err(error) => {
                let condition = match error {
                    CoreError::QuotaExceeded { .. } => conditions::RESOURCE_LIMIT_EXCEEDED,
                    // The disk is full: retry later, as for a busy namespace.
                    CoreError::Store(ref store) if store.is_retryable() => conditions::SERVER_BUSY,
                    _ => {
                        tracing::error!(%error, "enqueue failed");
                        conditions::INTERNAL_ERROR
                    }
                };
                for mut span in traced {
                    span.failure = Some(error.to_string());
                    self.broker.tracer.record(span);
                }
                self.settle_now(&message, rejected(condition, error.to_string()));
            }
        }
    }

    /// The enqueue spans, started now, of the messages of `batch` that carry a trace
    /// context; none when traces are not exported.
    fn traced_arrivals(&self, route: &Route, batch: &[NewMessage]) -> Vec<otlp::Span> {
        let tracer = &self.broker.tracer;
        if !tracer.is_on() {
            return Vec::new();
        }
        let arrived = otlp::now_unix_ns();
        let entity = match route {
            Route::Deliver(entity) | Route::TransferFailed(entity, _) => &entity.name,
            Route::Publish(topic) => &topic.name,
        };
        batch
            .iter()
            .filter_map(|message| TraceContext::of_message(&message.body))
            .map(|context| otlp::Span::ending_now(context, otlp::Stage::Enqueue, entity, arrived))
            .collect()
    }

    /// Reads a `$cbs` or `$management` request and takes it (settles it accepted), or
    /// refuses it: unreadable, or its response link already holds as many responses as the
    /// limits allow because the client does not take them.
    fn take_request(&mut self, message: &IncomingMessage, node: &str) -> Option<Request> {
        let request = match Request::parse(&message.payload) {
            Ok(request) => request,
            Err(error) => {
                tracing::debug!(%error, node, "unreadable request");
                let why = format!("The request can't be read: {error}");
                self.settle_now(message, rejected(conditions::DECODE_ERROR, why));
                return None;
            }
        };
        let queued = self
            .responder_for(message.link, request.reply_to.as_deref(), node)
            .map_or(0, |index| self.responders[index].pending.len());
        if let Err(exceeded) = self.broker.settings.limits.admit_response(queued) {
            let refusal = rejected(conditions::RESOURCE_LIMIT_EXCEEDED, exceeded.to_string());
            self.settle_now(message, refusal);
            return None;
        }
        self.settle_now(message, DeliveryState::Accepted);
        Some(request)
    }

    fn put_token(&mut self, message: IncomingMessage) {
        let Some(request) = self.take_request(&message, "$cbs") else {
            return;
        };
        let (status, description) = match request.body.as_str() {
            Some(token) => match sas::validate(
                token,
                &self.broker.settings.policies,
                self.broker.now_unix_secs(),
                TOKEN_GRACE_SECS,
            ) {
                Ok(claims) => {
                    self.claims.retain(|c| c.audience != claims.audience);
                    self.claims.push(claims);
                    // The new token may grant less than the one it replaced.
                    self.drop_unauthorized_links(
                        "A new token for this link's entity no longer allows it.",
                    );
                    // What Service Bus answers; fe2o3-amqp-cbs (the azservicebus crate)
                    // refuses any other success code.
                    (202, "Accepted".to_owned())
                }
                Err(error) => {
                    tracing::debug!(%error, "put-token refused");
                    (error.cbs_status_code(), error.to_string())
                }
            },
            None => (
                400,
                "The request body must be the token as a string.".to_owned(),
            ),
        };
        let payload = cbs_response(request.message_id.as_ref(), status, &description);
        self.respond(message.link, request.reply_to.as_deref(), "$cbs", payload);
    }

    /// The message sessions this connection's receivers hold on `entity`: the callers whose
    /// session operations the management node may serve.
    fn message_sessions_held_on(&self, entity: &Arc<Entity>) -> Vec<(Box<str>, ConsumerId)> {
        self.links
            .values()
            .filter_map(|kind| match kind {
                LinkKind::Consumer(ConsumerLink {
                    entity: held,
                    consumer,
                    message_session: Some(id),
                    ..
                }) if Arc::ptr_eq(held, entity) => Some((id.clone(), *consumer)),
                _ => None,
            })
            .collect()
    }

    /// Answers a request to the management node `node` with what `handle` makes of it,
    /// once what it changed is durable.
    pub(super) fn management(
        &mut self,
        node: &str,
        message: IncomingMessage,
        handle: impl FnOnce(&Arc<Broker<S>>, &Request) -> (Bytes, Option<S::Commit>),
    ) {
        let node_key = node.to_ascii_lowercase();
        let Some(request) = self.take_request(&message, &node_key) else {
            return;
        };
        let operation = request.operation.as_deref().unwrap_or("");
        let (payload, commit) =
            match self
                .broker
                .authorize(&self.claims, node, Action::Management(operation))
            {
                Ok(()) => handle(&self.broker, &request),
                Err(denied) => {
                    tracing::debug!(%denied, "management request refused");
                    let payload = management_response(
                        request.message_id.as_ref(),
                        401,
                        &denied.to_string(),
                        Some(conditions::UNAUTHORIZED_ACCESS),
                        None,
                    );
                    (payload, None)
                }
            };
        let node = node_key;
        let reply_to = request.reply_to.clone();
        match commit {
            Some(commit) => {
                self.keep_commit(Some(commit));
                // Scheduled messages are data sent like any other: they count against
                // the connection's back-pressure allowance.
                self.count_uncommitted(message.payload.len() as u64);
                self.round_actions.push(AfterCommit::Respond {
                    request_link: message.link,
                    reply_to,
                    node,
                    payload,
                    request_id: request.message_id.clone(),
                });
            }
            None => self.respond(message.link, reply_to.as_deref(), &node, payload),
        }
    }

    /// Queues a response on the request's response link (see [`Self::responder_for`]).
    pub(super) fn respond(
        &mut self,
        request_link: LinkRef,
        reply_to: Option<&str>,
        node: &str,
        payload: Bytes,
    ) {
        let Some(index) = self.responder_for(request_link, reply_to, node) else {
            tracing::debug!(node, "no response link for a request");
            return;
        };
        self.responders[index].pending.push_back(payload);
        let link = self.responders[index].link;
        self.flush_responses(link);
    }

    /// The response link of a request: the link whose target is the reply-to, else the
    /// link named by it, else the node's response link on the request's session.
    fn responder_for(
        &self,
        request_link: LinkRef,
        reply_to: Option<&str>,
        node: &str,
    ) -> Option<usize> {
        reply_to
            .and_then(|to| {
                self.responders
                    .iter()
                    .position(|r| r.target.as_deref() == Some(to))
                    .or_else(|| self.responders.iter().position(|r| r.name == to))
            })
            .or_else(|| {
                self.responders
                    .iter()
                    .position(|r| r.node == node && r.link.session() == request_link.session())
            })
            .or_else(|| self.responders.iter().position(|r| r.node == node))
    }

    pub(super) fn flush_responses(&mut self, link: LinkRef) {
        let Some(responder) = self.responders.iter_mut().find(|r| r.link == link) else {
            return;
        };
        while self.engine.send_capacity(link) > 0 {
            let Some(payload) = responder.pending.pop_front() else {
                break;
            };
            let tag = Bytes::copy_from_slice(&self.next_token.to_be_bytes());
            self.next_token += 1;
            if self
                .engine
                .send_message(link, tag, payload, true, 0)
                .is_err()
            {
                break;
            }
        }
    }
}

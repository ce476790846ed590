//! Session receivers waiting for a message session, and the detach of those whose
//! session lock ran out.

use busbar_amqp::engine::LinkRef;
use busbar_core::{CoreError, MessageSessionPick};
use busbar_servicebus::conditions;
use busbar_store::Store;

use super::{Conn, ConsumerLink, LinkKind, PendingSessionReceiver};
use crate::session_receivers;

impl<S: Store> Conn<S> {
    pub(super) fn try_accept_session(
        &mut self,
        mut pending: PendingSessionReceiver,
    ) -> Option<PendingSessionReceiver> {
        // The entity may have been deleted or disabled while the receiver waited.
        if let Some((condition, description)) = pending.consumer.refusal(&self.hostname) {
            self.refuse(pending.link, condition, description);
            return None;
        }
        let now = self.broker.now_ms();
        let pick = match &pending.requested {
            Some(id) => MessageSessionPick::Id(id),
            None => MessageSessionPick::NextAvailable,
        };
        let result = {
            let mut state = pending.consumer.entity.lock();
            let result = state
                .queue
                .accept_session(pick, pending.consumer.consumer, now);
            if matches!(result, Ok(None)) {
                state.wait(&self.notify);
            }
            result
        };
        match result {
            Ok(Some(grant)) => {
                let reply = session_receivers::attach_reply(pending.source.as_ref(), &grant);
                pending.consumer.message_session = Some(grant.session_id);
                self.accept(pending.link, reply, LinkKind::Consumer(pending.consumer));
                None
            }
            Ok(None) if now < pending.deadline_ms => Some(pending),
            Ok(None) => {
                self.refuse(
                    pending.link,
                    conditions::TIMEOUT,
                    "The operation did not complete within the allotted timeout.".to_owned(),
                );
                None
            }
            Err(CoreError::SessionCannotBeLocked(id)) => {
                self.refuse(
                    pending.link,
                    conditions::SESSION_CANNOT_BE_LOCKED,
                    format!(
                        "The requested session '{id}' cannot be accepted. It may be locked by another receiver."
                    ),
                );
                None
            }
            Err(error) => {
                self.refuse(pending.link, conditions::INTERNAL_ERROR, error.to_string());
                None
            }
        }
    }

    /// Retries every waiting session receiver.
    pub(super) fn retry_session_receivers(&mut self) {
        for pending in std::mem::take(&mut self.waiting_session_receivers) {
            if let Some(waiting) = self.try_accept_session(pending) {
                self.waiting_session_receivers.push(waiting);
            }
        }
    }

    /// Detaches session receivers whose session lock ran out, as the service does.
    pub(super) fn drop_lost_message_sessions(&mut self) {
        let now = self.broker.now_ms();
        let lost: Vec<LinkRef> = self
            .links
            .iter()
            .filter_map(|(link, kind)| match kind {
                LinkKind::Consumer(ConsumerLink {
                    entity,
                    consumer,
                    message_session: Some(id),
                    ..
                }) if !entity.lock().queue.holds_session(id, *consumer, now) => Some(*link),
                _ => None,
            })
            .collect();
        for link in lost {
            self.detach_with(
                link,
                conditions::SESSION_LOCK_LOST,
                "The session lock has expired; accept the session again.",
            );
        }
    }
}

//! A page of an entity's messages in one state, read without changing anything: the
//! views are taken under the entity's lock, the bodies read after it is released.

use busbar_core::{MessageView, SubQueueKind};
use busbar_http::console_api::{BrowseQuery, ConsoleError, MessagePage, MessageState};
use busbar_store::{MessageState as StoredState, Store};
use bytes::Bytes;

use super::message_json::message_json;
use super::queue_entity;
use crate::ServedBroker;

/// The stream holding messages in `state`, and the stored state they have there (`None`:
/// every message of that stream).
pub(super) fn stream_of(state: MessageState) -> (SubQueueKind, Option<StoredState>) {
    match state {
        MessageState::Active => (SubQueueKind::Main, Some(StoredState::Active)),
        MessageState::Scheduled => (SubQueueKind::Main, Some(StoredState::Scheduled)),
        MessageState::Deferred => (SubQueueKind::Main, Some(StoredState::Deferred)),
        MessageState::DeadLetter => (SubQueueKind::DeadLetter, None),
        MessageState::TransferDeadLetter => (SubQueueKind::TransferDeadLetter, None),
    }
}

pub(super) fn page(
    broker: &ServedBroker,
    query: &BrowseQuery,
) -> Result<MessagePage, ConsoleError> {
    let entity = queue_entity(broker, &query.entity)?;
    let (kind, stored_state) = stream_of(query.state);
    let taken: Vec<(MessageView<'static>, Option<Bytes>)> = {
        let state = entity.lock();
        state
            .queue
            .sub(kind)
            .page(stored_state, query.from, query.limit)
            .into_iter()
            .map(|view| {
                let body = view.body.cloned();
                let owned = MessageView {
                    seq: view.seq,
                    meta: view.meta,
                    body_ref: view.body_ref,
                    body: None,
                    locked_until_ms: view.locked_until_ms,
                };
                (owned, body)
            })
            .collect()
    };
    let next_from = match taken.last() {
        Some((last, _)) if taken.len() == query.limit => Some(last.seq + 1),
        _ => None,
    };
    let messages = taken
        .into_iter()
        .map(|(view, resident)| {
            let stored = match resident {
                Some(body) => body,
                // A body the log can't give back shows as empty rather than failing the
                // page; receiving it dead-letters it as unreadable.
                None => broker.store.read_body(view.body_ref).unwrap_or_default(),
            };
            message_json(&view, &stored, query.state)
        })
        .collect();
    Ok(MessagePage {
        messages,
        next_from,
    })
}

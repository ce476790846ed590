//! The auto-completions of one processor pump, awaited on one task: a handler call whose
//! message is to be completed hands it over and its worker task takes the next message at
//! once, instead of waking again for the broker's confirmation (and staying alive, one task
//! per pending completion, until then).
//!
//! The completions that arrive together go out on their link as one command (the
//! connection sends consecutive ones as one disposition range), and the broker's
//! confirmations come back to this task in ranges as well, through one channel, instead of
//! a reply (an allocation, and a wake-up) each. One the link accepted is done there; any
//! other answer (a refusal such as a lost lock, or the link gone) takes the receiver's
//! ordinary conclusion on a task of its own: the error for the error handler, or the
//! settlement again through `$management`. A completion keeps its slot among the pending
//! settlements until it is concluded, so the processor's stop still waits for it; the slots
//! of the completions concluded together are given back together.

use std::collections::HashMap;
use std::sync::Arc;
use std::task::Poll;

use busbar_amqp::performative::DeliveryState;
use tokio::sync::{OwnedSemaphorePermit, mpsc};

use crate::{Confirmation, Outcome, Settler};

use super::message_pump::{ErrorReporter, PumpReceiver, Settlement};
use super::processor::ErrorSource;
use super::receiver::{Settle, link_delivery};

/// Completions by link id and delivery id: a hash per message, so the cheap one.
type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// A message whose handler returned `Ok`, to complete.
pub(crate) struct Completion {
    pub(crate) settlement: Arc<Settlement>,
    /// Held until the completion is concluded.
    pub(crate) slot: OwnedSemaphorePermit,
}

/// Starts the task completing what is sent on the answer; it ends once every sender is
/// dropped and the completions it holds are concluded.
pub(crate) fn spawn_completer(errors: ErrorReporter) -> mpsc::UnboundedSender<Completion> {
    let (sender, requests) = mpsc::unbounded_channel();
    tokio::spawn(complete_all(requests, errors));
    sender
}

/// Completions gathered for one link, to send as one command.
struct Batch {
    receiver: Arc<PumpReceiver>,
    link_id: u64,
    settler: Settler,
    delivery_ids: Vec<u32>,
}

/// What the completer holds between its wake-ups.
struct Completer {
    errors: ErrorReporter,
    /// Where the connection answers the batches.
    sink: crate::ConfirmationSink,
    /// Completions sent on their link, awaiting the broker's answer.
    waiting: FastMap<(u64, u32), Completion>,
    /// The links of the completions waiting (few: one, and its predecessor after a
    /// reattach), for the error a connection that let go of an answer ended with.
    links: Vec<(u64, Settler)>,
}

async fn complete_all(mut requests: mpsc::UnboundedReceiver<Completion>, errors: ErrorReporter) {
    let (sink, mut confirmations) = mpsc::unbounded_channel::<Confirmation>();
    let mut completer = Completer {
        errors,
        sink,
        waiting: FastMap::default(),
        links: Vec::new(),
    };
    let mut open = true;
    std::future::poll_fn(|cx| {
        let mut batch: Option<Batch> = None;
        while open {
            match requests.poll_recv(cx) {
                Poll::Ready(Some(completion)) => completer.send(completion, &mut batch),
                Poll::Ready(None) => open = false,
                Poll::Pending => break,
            }
        }
        completer.flush(batch.take());
        // The slots of the completions concluded now, given back as one.
        let mut released: Option<OwnedSemaphorePermit> = None;
        while let Poll::Ready(Some(confirmation)) = confirmations.poll_recv(cx) {
            completer.conclude(confirmation, &mut released);
        }
        drop(released);
        if completer.waiting.is_empty() {
            completer.links.clear();
            if !open {
                return Poll::Ready(());
            }
        }
        Poll::Pending
    })
    .await;
}

impl Completer {
    /// Adds `completion` to the batch for its link, or concludes it at once when it cannot
    /// be settled on the link attached now.
    fn send(&mut self, completion: Completion, batch: &mut Option<Batch>) {
        let settlement = &completion.settlement;
        let _span = tracing::info_span!(
            "servicebus.settle",
            entity = %settlement.receiver.core().path(),
            outcome = "complete",
            sequence_number = settlement.message.sequence_number
        )
        .entered();
        let Some((link_id, delivery_id)) = link_delivery(&settlement.message) else {
            return self.conclude_apart(completion, None);
        };
        if batch.as_ref().is_some_and(|b| {
            b.link_id != link_id || !Arc::ptr_eq(&b.receiver, &settlement.receiver)
        }) {
            self.flush(batch.take());
        }
        if batch.is_none() {
            // The link the message came on, if it is still the one attached.
            let Some((attached, settler)) = settlement.receiver.core().link_settler() else {
                return self.conclude_apart(completion, None);
            };
            if attached != link_id {
                return self.conclude_apart(completion, None);
            }
            *batch = Some(Batch {
                receiver: settlement.receiver.clone(),
                link_id,
                settler,
                delivery_ids: Vec::new(),
            });
        }
        if let Some(batch) = batch {
            batch.delivery_ids.push(delivery_id);
            self.waiting.insert((link_id, delivery_id), completion);
        }
    }

    /// Sends the batch's completions on its link.
    fn flush(&mut self, batch: Option<Batch>) {
        let Some(batch) = batch else { return };
        if !self.links.iter().any(|(id, _)| *id == batch.link_id) {
            self.links.push((batch.link_id, batch.settler.clone()));
        }
        batch.settler.settle_confirmed_batch(
            batch.delivery_ids,
            DeliveryState::Accepted,
            &self.sink,
            batch.link_id,
        );
    }

    /// Concludes the completions the connection answered.
    fn conclude(
        &mut self,
        confirmation: Confirmation,
        released: &mut Option<OwnedSemaphorePermit>,
    ) {
        let Confirmation {
            tag,
            first,
            last,
            outcome,
        } = confirmation;
        for offset in 0..=last.wrapping_sub(first) {
            let Some(completion) = self.waiting.remove(&(tag, first.wrapping_add(offset))) else {
                continue;
            };
            match &outcome {
                Some(Ok(Outcome::Accepted)) => {
                    let Completion { settlement, slot } = completion;
                    settlement.mark_settled();
                    drop(settlement);
                    match released {
                        Some(all) if Arc::ptr_eq(all.semaphore(), slot.semaphore()) => {
                            all.merge(slot);
                        }
                        _ => *released = Some(slot),
                    }
                }
                Some(other) => self.conclude_apart(completion, Some(other.clone())),
                None => {
                    // Let go of unanswered: what the connection ended with, as a dropped
                    // reply says it.
                    let error = self
                        .links
                        .iter()
                        .find(|(id, _)| *id == tag)
                        .map_or(crate::Error::Closed, |(_, settler)| {
                            settler.terminal_error()
                        });
                    self.conclude_apart(completion, Some(Err(error)));
                }
            }
        }
    }

    /// The receiver's own conclusion of `completion`, on a task of its own.
    fn conclude_apart(&self, completion: Completion, confirmed: Option<crate::Result<Outcome>>) {
        tokio::spawn(conclude(completion, confirmed, self.errors.clone()));
    }
}

/// The receiver's own conclusion of a completion the link did not simply accept.
async fn conclude(
    completion: Completion,
    confirmed: Option<crate::Result<Outcome>>,
    errors: ErrorReporter,
) {
    let settlement = &completion.settlement;
    let message = &settlement.message;
    let concluded = settlement.settle(settlement.receiver.core().conclude_settle(
        message,
        Settle::Complete,
        confirmed,
    ));
    if let Err(error) = concluded.await {
        errors
            .report(error, ErrorSource::Complete, message.session_id.as_deref())
            .await;
    }
}

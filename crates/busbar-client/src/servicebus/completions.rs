//! The auto-completions of one processor pump, awaited on one task: a handler call whose
//! message is to be completed hands it over and its worker task takes the next message at
//! once, instead of waking again for the broker's confirmation (and staying alive, one task
//! per pending completion, until then).
//!
//! Each completion goes out on its link at once (the connection sends consecutive ones as
//! one disposition range, and the broker confirms them in ranges, in the order sent), so the
//! confirmations are awaited in that order. One the link accepted is done there; any other
//! answer (a refusal such as a lost lock, or the link gone) takes the receiver's ordinary
//! conclusion on a task of its own: the error for the error handler, or the settlement
//! again through `$management`. A completion keeps its slot among the pending settlements
//! until it is concluded, so the processor's stop still waits for it.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;

use tokio::sync::{OwnedSemaphorePermit, mpsc};

use crate::{Outcome, SendFuture};

use super::message_pump::{ErrorReporter, Settlement};
use super::processor::ErrorSource;
use super::receiver::Settle;

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

/// A completion sent on its link (`None`: its link is gone), awaiting the broker.
struct Sent {
    completion: Completion,
    confirmation: Option<SendFuture<Outcome>>,
}

async fn complete_all(mut requests: mpsc::UnboundedReceiver<Completion>, errors: ErrorReporter) {
    let mut sent = VecDeque::new();
    let mut open = true;
    std::future::poll_fn(|cx| {
        while open {
            match requests.poll_recv(cx) {
                Poll::Ready(Some(completion)) => {
                    let settlement = &completion.settlement;
                    let _span = tracing::info_span!(
                        "servicebus.settle",
                        entity = %settlement.receiver.core().path(),
                        outcome = "complete",
                        sequence_number = settlement.message.sequence_number
                    )
                    .entered();
                    let confirmation = settlement
                        .receiver
                        .core()
                        .settle_on_link(&settlement.message, &Settle::Complete);
                    sent.push_back(Sent {
                        completion,
                        confirmation,
                    });
                }
                Poll::Ready(None) => open = false,
                Poll::Pending => break,
            }
        }
        while let Some(front) = sent.front_mut() {
            let confirmed = match &mut front.confirmation {
                Some(confirmation) => match Pin::new(confirmation).poll(cx) {
                    Poll::Ready(confirmed) => Some(confirmed),
                    Poll::Pending => return Poll::Pending,
                },
                None => None,
            };
            let Some(Sent { completion, .. }) = sent.pop_front() else {
                break;
            };
            match confirmed {
                Some(Ok(Outcome::Accepted)) => completion.settlement.mark_settled(),
                other => {
                    tokio::spawn(conclude(completion, other, errors.clone()));
                }
            }
        }
        if open { Poll::Pending } else { Poll::Ready(()) }
    })
    .await;
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

//! The `emails` queue's handler: render, deliver, record; settle by the kind of failure.

use std::sync::Arc;
use std::time::Duration;

use busbar_client::{DeadLetterOptions, ProcessMessageContext};

use super::Mailer;
use super::delivery::DeliveryError;
use super::outbox::{self, Mail};
use crate::common::contracts::{EmailKind, EmailRequest};

/// A pause before giving a transiently failed message back, growing with its deliveries,
/// so a server that is briefly down gets a moment to come back.
const RETRY_PAUSE: Duration = Duration::from_millis(300);

#[derive(Debug, thiserror::Error)]
pub enum HandleError {
    #[error("delivery failed, to be retried: {0}")]
    Transient(String),
    #[error("the email service's database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("settling the message: {0}")]
    Settle(#[from] busbar_client::ServiceBusError),
}

/// The signature every mail ends with.
fn render(body: &str) -> String {
    format!("{}\n\n-- \nThe shop\n", body.trim_end())
}

fn kind_name(kind: EmailKind) -> &'static str {
    match kind {
        EmailKind::Welcome => "welcome",
        EmailKind::PasswordReset => "password_reset",
        EmailKind::OrderCreated => "order_created",
        EmailKind::OrderReminder => "order_reminder",
        EmailKind::DeadLetterAlert => "dead_letter_alert",
    }
}

async fn dead_letter(
    context: &ProcessMessageContext,
    reason: &str,
    description: String,
) -> Result<(), HandleError> {
    tracing::warn!(reason, %description, "dead-lettering a mail");
    context
        .dead_letter_message(DeadLetterOptions {
            reason: Some(reason.into()),
            description: Some(description),
            properties_to_modify: None,
        })
        .await?;
    Ok(())
}

pub async fn handle(
    mailer: Arc<Mailer>,
    context: ProcessMessageContext,
) -> Result<(), HandleError> {
    let message = context.message();
    let message_id = message
        .message_id
        .clone()
        .unwrap_or_else(|| format!("sequence-{}", message.sequence_number));
    let request: EmailRequest = match serde_json::from_slice(&message.body) {
        Ok(request) => request,
        Err(error) => {
            return dead_letter(&context, "InvalidEmailRequest", error.to_string()).await;
        }
    };
    if outbox::delivered(&mailer.db.pool, &message_id).await? {
        return Ok(());
    }
    if request.kind == EmailKind::OrderReminder {
        // A reminder whose order was closed or deleted meanwhile has no row any more (its
        // cancellation may have come too late to stop the scheduled message).
        let order_id = request
            .order_id
            .map(|id| id.to_string())
            .unwrap_or_default();
        if outbox::reminder(&mailer.db.pool, &order_id)
            .await?
            .is_none()
        {
            tracing::info!(%order_id, "the reminder's order is no longer open; not sent");
            return Ok(());
        }
    }
    let body = render(&request.body);
    let delivered = mailer
        .transport
        .deliver(&mailer.from, &request.to, &request.subject, &body)
        .await;
    match delivered {
        Ok(()) => {
            let mail = Mail {
                to: request.to.trim().to_owned(),
                subject: request.subject,
                body,
                sent_at: outbox::sent_now(),
            };
            outbox::record(&mailer.db.pool, &message_id, &mail, kind_name(request.kind)).await?;
            if let (EmailKind::OrderReminder, Some(order_id)) = (request.kind, request.order_id) {
                outbox::remove_reminder(&mailer.db.pool, &order_id.to_string()).await?;
            }
            Ok(())
        }
        Err(DeliveryError::Permanent(reason)) => {
            dead_letter(&context, "PermanentDeliveryFailure", reason).await
        }
        Err(DeliveryError::Transient(reason)) => {
            tokio::time::sleep(RETRY_PAUSE * message.delivery_count.clamp(1, 10)).await;
            Err(HandleError::Transient(reason))
        }
    }
}

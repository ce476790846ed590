//! The `email-created` subscription's handler: an order created gets an "order created" mail
//! and a scheduled "still open" reminder; an order closed or deleted gets its reminder
//! cancelled. Mails are queued on `emails` like any other, so they share its retries and
//! dead-lettering; their message ids are derived from the order, so a redelivered event
//! never mails twice (the outbox ignores a message id it has delivered).

use std::sync::Arc;
use std::time::SystemTime;

use busbar_client::{ProcessMessageContext, ServiceBusError, ServiceBusMessage};
use uuid::Uuid;

use super::Mailer;
use super::outbox;
use crate::common::contracts::{EmailKind, EmailRequest, OrderChanged, OrderSnapshot};
use crate::common::time::to_ms;

#[derive(Debug, thiserror::Error)]
pub enum EventError {
    #[error("the order event is not an OrderChanged: {0}")]
    Invalid(#[from] serde_json::Error),
    #[error("the email service's database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("Service Bus: {0}")]
    Bus(#[from] ServiceBusError),
}

fn money(cents: i64) -> String {
    format!("{}.{:02}", cents / 100, (cents % 100).abs())
}

fn summary(order: &OrderSnapshot) -> String {
    let lines: Vec<String> = order
        .items
        .iter()
        .map(|item| {
            format!(
                "  {} × {} at {}",
                item.quantity,
                item.sku,
                money(item.unit_price)
            )
        })
        .collect();
    format!(
        "Customer: {}\nItems:\n{}\nTotal: {}",
        order.customer,
        lines.join("\n"),
        money(order.total_cents)
    )
}

fn email_message(
    request: &EmailRequest,
    message_id: String,
) -> Result<ServiceBusMessage, EventError> {
    Ok(ServiceBusMessage::new(serde_json::to_vec(request)?)
        .with_message_id(message_id)
        .with_content_type("application/json"))
}

pub async fn handle(mailer: Arc<Mailer>, context: ProcessMessageContext) -> Result<(), EventError> {
    let change: OrderChanged = serde_json::from_slice(&context.message().body)?;
    match change.event_subject() {
        "created" => created(&mailer, change.order_id, change.order.as_ref()).await,
        "closed" | "deleted" => cancel_reminder(&mailer, change.order_id).await,
        _ => Ok(()),
    }
}

async fn created(
    mailer: &Mailer,
    order_id: Uuid,
    order: Option<&OrderSnapshot>,
) -> Result<(), EventError> {
    let Some(order) = order.filter(|order| !order.owner.is_empty()) else {
        tracing::warn!(%order_id, "a created order without its owner: no mail");
        return Ok(());
    };
    let created = EmailRequest {
        to: order.owner.clone(),
        subject: format!("Order created for {}", order.customer),
        body: format!(
            "Hello,\n\nyour order {order_id} is created.\n\n{}\n",
            summary(order)
        ),
        kind: EmailKind::OrderCreated,
        order_id: Some(order_id),
    };
    mailer
        .emails
        .send_message(email_message(
            &created,
            format!("order-created-{order_id}"),
        )?)
        .await?;

    let key = order_id.to_string();
    if outbox::reminder(&mailer.db.pool, &key).await?.is_some() {
        return Ok(());
    }
    let reminder = EmailRequest {
        to: order.owner.clone(),
        subject: format!("Your order for {} is still open", order.customer),
        body: format!(
            "Hello,\n\nyour order {order_id} is still open.\n\n{}\n\nPay for it or close it on the orders page.\n",
            summary(order)
        ),
        kind: EmailKind::OrderReminder,
        order_id: Some(order_id),
    };
    let due = SystemTime::now() + mailer.order_reminder_after;
    let numbers = mailer
        .emails
        .schedule_messages(
            vec![email_message(
                &reminder,
                format!("order-reminder-{order_id}"),
            )?],
            due,
        )
        .await?;
    if let Some(&sequence_number) = numbers.first() {
        outbox::insert_reminder(
            &mailer.db.pool,
            &key,
            &order.owner,
            sequence_number,
            to_ms(due),
        )
        .await?;
        tracing::info!(%order_id, sequence_number, "order reminder scheduled");
    }
    Ok(())
}

async fn cancel_reminder(mailer: &Mailer, order_id: Uuid) -> Result<(), EventError> {
    let key = order_id.to_string();
    let Some(sequence_number) = outbox::reminder(&mailer.db.pool, &key).await? else {
        return Ok(());
    };
    // Forgotten first: should the cancellation fail or come too late, the reminder's
    // delivery finds no row and is not mailed.
    outbox::remove_reminder(&mailer.db.pool, &key).await?;
    if let Err(error) = mailer
        .emails
        .cancel_scheduled_messages(&[sequence_number])
        .await
    {
        tracing::warn!(%order_id, sequence_number, %error, "the reminder could not be cancelled; it will be dropped when due");
    } else {
        tracing::info!(%order_id, sequence_number, "order reminder cancelled");
    }
    Ok(())
}

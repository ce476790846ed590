//! Sends the authorization service's mail outbox to the `emails` queue ([`crate::common::relay`]
//! drives it): each row with message id = its outbox id, deleted once the broker
//! acknowledged it. A row re-sent after a crash between the acknowledgement and the delete
//! carries the same message id, which the queue's duplicate detection drops (and the email
//! service delivers a message id once).

use busbar_client::{ServiceBusClient, ServiceBusMessage, ServiceBusSender};
use sqlx::Row as _;

use crate::common::contracts::EMAILS_QUEUE;
use crate::common::database::Db;
use crate::common::relay::Outbox;

/// Rows sent at a time.
const BATCH_ROWS: i64 = 50;

#[derive(Debug, thiserror::Error)]
pub enum MailOutboxError {
    #[error("the mail outbox: {0}")]
    Database(#[from] sqlx::Error),
    #[error("{EMAILS_QUEUE}: {0}")]
    Send(#[from] busbar_client::ServiceBusError),
}

pub struct MailOutbox {
    db: Db,
    emails: ServiceBusSender,
}

impl MailOutbox {
    pub fn new(db: Db, client: &ServiceBusClient) -> Self {
        MailOutbox {
            db,
            emails: client.create_sender(EMAILS_QUEUE),
        }
    }
}

impl Outbox for MailOutbox {
    type Error = MailOutboxError;

    async fn publish_once(&self) -> Result<usize, MailOutboxError> {
        let rows = sqlx::query(
            "SELECT position, message_id, body FROM mail_outbox ORDER BY position LIMIT $1",
        )
        .bind(BATCH_ROWS)
        .fetch_all(&self.db.pool)
        .await?;
        // One by one, each deleted as soon as acknowledged: mails are few and small.
        for row in &rows {
            let position: i64 = row.try_get("position")?;
            let message_id: String = row.try_get("message_id")?;
            let body: String = row.try_get("body")?;
            let message = ServiceBusMessage::new(body.into_bytes())
                .with_message_id(message_id)
                .with_content_type("application/json");
            self.emails.send_message(message).await?;
            sqlx::query("DELETE FROM mail_outbox WHERE position = $1")
                .bind(position)
                .execute(&self.db.pool)
                .await?;
        }
        Ok(rows.len())
    }

    async fn close(&self) {
        let _ = self.emails.close().await;
    }
}

//! The dead-letter monitor (the article's last section): lists what the system's entities
//! dead-lettered, with reason and description, resubmits a message once its cause is fixed,
//! and mails an alert through the `emails` queue when new dead letters appear.

use std::collections::BTreeMap;
use std::time::Duration;

use busbar_client::{
    ServiceBusClient, ServiceBusMessage, ServiceBusReceivedMessage, ServiceBusReceiver,
    ServiceBusReceiverOptions, SubQueue,
};
use serde::Serialize;
use tokio::sync::watch;

use crate::common::contracts::{
    ALL_EVENTS_SUBSCRIPTION, EMAIL_CLOSED_SUBSCRIPTION, EMAIL_CREATED_SUBSCRIPTION, EMAILS_QUEUE,
    EmailKind, EmailRequest, ORDER_CHANGES_QUEUE, ORDER_EVENTS_TOPIC,
};
use crate::common::database::{Db, DbError};
use crate::common::time::to_ms;

/// Dead letters read from one entity per listing.
const PEEK_LIMIT: usize = 250;
/// How long a resubmission looks through the dead-letter queue for the message.
const FIND_WAIT: Duration = Duration::from_secs(2);
/// The application property a resubmitted subscription message carries: the topic fans it
/// out again, and this names the subscription it was meant for.
pub const RESUBMITTED_FOR: &str = "resubmitted_for";

/// An entity whose dead-letter queue the monitor watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Watched {
    /// How the API names it (`queue`, or `topic:subscription`).
    pub key: &'static str,
    pub queue_or_topic: &'static str,
    pub subscription: Option<&'static str>,
}

/// The system's entities.
pub const WATCHED: [Watched; 5] = [
    Watched {
        key: ORDER_CHANGES_QUEUE,
        queue_or_topic: ORDER_CHANGES_QUEUE,
        subscription: None,
    },
    Watched {
        key: EMAILS_QUEUE,
        queue_or_topic: EMAILS_QUEUE,
        subscription: None,
    },
    Watched {
        key: "order-events:email-created",
        queue_or_topic: ORDER_EVENTS_TOPIC,
        subscription: Some(EMAIL_CREATED_SUBSCRIPTION),
    },
    Watched {
        key: "order-events:email-closed",
        queue_or_topic: ORDER_EVENTS_TOPIC,
        subscription: Some(EMAIL_CLOSED_SUBSCRIPTION),
    },
    Watched {
        key: "order-events:all",
        queue_or_topic: ORDER_EVENTS_TOPIC,
        subscription: Some(ALL_EVENTS_SUBSCRIPTION),
    },
];

impl Watched {
    pub fn find(key: &str) -> Option<Watched> {
        WATCHED.into_iter().find(|watched| watched.key == key)
    }

    fn dead_letter_receiver(&self, client: &ServiceBusClient) -> ServiceBusReceiver {
        let options = ServiceBusReceiverOptions {
            sub_queue: SubQueue::DeadLetter,
            ..ServiceBusReceiverOptions::default()
        };
        match self.subscription {
            Some(subscription) => {
                client.create_receiver_for_subscription(self.queue_or_topic, subscription, options)
            }
            None => client.create_receiver(self.queue_or_topic, options),
        }
    }
}

/// One dead-lettered message, as `GET /dead-letters` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct DeadLetter {
    pub entity: String,
    pub sequence: i64,
    pub message_id: Option<String>,
    pub subject: Option<String>,
    pub reason: Option<String>,
    pub description: Option<String>,
    pub delivery_count: u32,
    pub enqueued_at: Option<i64>,
    /// The body as text (lossy), cut at 2000 characters.
    pub body: String,
}

fn describe(entity: &str, message: &ServiceBusReceivedMessage) -> DeadLetter {
    let mut body = String::from_utf8_lossy(&message.body).into_owned();
    if let Some((cut, _)) = body.char_indices().nth(2000) {
        body.truncate(cut);
    }
    DeadLetter {
        entity: entity.to_owned(),
        sequence: message.sequence_number,
        message_id: message.message_id.clone(),
        subject: message.subject.clone(),
        reason: message.dead_letter_reason.clone(),
        description: message.dead_letter_error_description.clone(),
        delivery_count: message.delivery_count,
        enqueued_at: message.enqueued_time.map(to_ms),
        body,
    }
}

/// Every dead-lettered message of the system's entities (peeked: nothing is locked).
pub async fn list(
    client: &ServiceBusClient,
) -> Result<Vec<DeadLetter>, busbar_client::ServiceBusError> {
    let mut all = Vec::new();
    for watched in WATCHED {
        let receiver = watched.dead_letter_receiver(client);
        let peeked = receiver.peek_messages(PEEK_LIMIT, None).await;
        let _ = receiver.close().await;
        all.extend(peeked?.iter().map(|message| describe(watched.key, message)));
    }
    Ok(all)
}

/// Why a resubmission did not happen.
#[derive(Debug, thiserror::Error)]
pub enum ResubmitError {
    #[error("'{0}' is not one of the system's entities")]
    UnknownEntity(String),
    #[error("no dead-lettered message {1} in {0}")]
    NotFound(String, i64),
    #[error(transparent)]
    Bus(#[from] busbar_client::ServiceBusError),
}

/// Sends the dead letter `sequence` of `entity` back to its entity and only then removes it
/// from the dead-letter queue. Returns the message id it was resubmitted with.
pub async fn resubmit(
    client: &ServiceBusClient,
    entity: &str,
    sequence: i64,
) -> Result<String, ResubmitError> {
    let watched =
        Watched::find(entity).ok_or_else(|| ResubmitError::UnknownEntity(entity.into()))?;
    let receiver = watched.dead_letter_receiver(client);
    let outcome = resubmit_with(client, &receiver, watched, sequence).await;
    let _ = receiver.close().await;
    outcome
}

async fn resubmit_with(
    client: &ServiceBusClient,
    receiver: &ServiceBusReceiver,
    watched: Watched,
    sequence: i64,
) -> Result<String, ResubmitError> {
    // Lock dead letters until the wanted one turns up; the others go straight back.
    let mut passed_over = Vec::new();
    let mut found = None;
    while found.is_none() {
        let messages = receiver
            .receive_messages(PEEK_LIMIT, Some(FIND_WAIT))
            .await?;
        if messages.is_empty() {
            break;
        }
        for message in messages {
            if message.sequence_number == sequence && found.is_none() {
                found = Some(message);
            } else {
                passed_over.push(message);
            }
        }
    }
    for message in &passed_over {
        if let Err(error) = receiver.abandon_message(message, None).await {
            tracing::warn!(%error, sequence = message.sequence_number, "cannot release a dead letter");
        }
    }
    let message = found.ok_or_else(|| ResubmitError::NotFound(watched.key.into(), sequence))?;
    // A new message id: the original is still in the entity's duplicate-detection window.
    let message_id = format!(
        "{}:resubmitted:{sequence}",
        message.message_id.as_deref().unwrap_or("message")
    );
    let mut copy = ServiceBusMessage::new(message.body.clone()).with_message_id(message_id.clone());
    if let Some(subject) = &message.subject {
        copy = copy.with_subject(subject.clone());
    }
    if let Some(content_type) = &message.content_type {
        copy = copy.with_content_type(content_type.clone());
    }
    if let Some(correlation_id) = &message.correlation_id {
        copy = copy.with_correlation_id(correlation_id.clone());
    }
    if let Some(session_id) = &message.session_id {
        copy = copy.with_session_id(session_id.clone());
    }
    for (name, value) in &message.application_properties {
        copy = copy.with_application_property(name.clone(), value.clone());
    }
    if let Some(subscription) = watched.subscription {
        copy = copy.with_application_property(RESUBMITTED_FOR, subscription);
    }
    let sender = client.create_sender(watched.queue_or_topic);
    let sent = sender.send_message(copy).await;
    let _ = sender.close().await;
    if let Err(error) = sent {
        let _ = receiver.abandon_message(&message, None).await;
        return Err(error.into());
    }
    receiver.complete_message(&message).await?;
    Ok(message_id)
}

pub async fn create_schema(db: &Db) -> Result<(), DbError> {
    db.schema(&["CREATE TABLE IF NOT EXISTS dead_letters_alerted (
            entity TEXT NOT NULL,
            sequence BIGINT NOT NULL,
            alerted_at BIGINT NOT NULL,
            PRIMARY KEY (entity, sequence)
        )"])
        .await
}

/// Every `interval`, mails `to` about dead letters not mailed about before; until `stopped`.
pub async fn alert_every(
    client: ServiceBusClient,
    db: Db,
    to: String,
    interval: Duration,
    mut stopped: watch::Receiver<bool>,
) {
    let sender = client.create_sender(EMAILS_QUEUE);
    while !*stopped.borrow() {
        if let Err(error) = alert_once(&client, &sender, &db, &to).await {
            tracing::warn!(%error, "dead-letter alert not sent; next time");
        }
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            _ = stopped.changed() => {}
        }
    }
    let _ = sender.close().await;
}

async fn alert_once(
    client: &ServiceBusClient,
    sender: &busbar_client::ServiceBusSender,
    db: &Db,
    to: &str,
) -> anyhow::Result<()> {
    let mut new = Vec::new();
    for dead_letter in list(client).await? {
        let seen = sqlx::query(
            "SELECT 1 AS seen FROM dead_letters_alerted WHERE entity = $1 AND sequence = $2",
        )
        .bind(&dead_letter.entity)
        .bind(dead_letter.sequence)
        .fetch_optional(&db.pool)
        .await?;
        if seen.is_none() {
            new.push(dead_letter);
        }
    }
    if new.is_empty() {
        return Ok(());
    }
    let mut by_entity: BTreeMap<&str, Vec<&DeadLetter>> = BTreeMap::new();
    for dead_letter in &new {
        by_entity
            .entry(&dead_letter.entity)
            .or_default()
            .push(dead_letter);
    }
    let mut body = format!("{} new dead-lettered message(s):\n", new.len());
    for (entity, dead_letters) in &by_entity {
        for dead_letter in dead_letters {
            body.push_str(&format!(
                "- {entity} #{}: {} ({})\n",
                dead_letter.sequence,
                dead_letter.reason.as_deref().unwrap_or("no reason"),
                dead_letter
                    .description
                    .as_deref()
                    .unwrap_or("no description"),
            ));
        }
    }
    body.push_str("\nResubmit them from the dead-letter page once the cause is fixed.\n");
    let request = EmailRequest {
        to: to.to_owned(),
        subject: format!("{} new dead-lettered message(s)", new.len()),
        body,
        kind: EmailKind::DeadLetterAlert,
        order_id: None,
    };
    sender
        .send_message(
            ServiceBusMessage::new(serde_json::to_vec(&request)?)
                .with_subject("dead_letter_alert")
                .with_content_type("application/json"),
        )
        .await?;
    let now = crate::common::time::now_ms();
    for dead_letter in &new {
        sqlx::query(
            "INSERT INTO dead_letters_alerted (entity, sequence, alerted_at) VALUES ($1, $2, $3)
             ON CONFLICT (entity, sequence) DO NOTHING",
        )
        .bind(&dead_letter.entity)
        .bind(dead_letter.sequence)
        .bind(now)
        .execute(&db.pool)
        .await?;
    }
    tracing::info!(count = new.len(), "dead-letter alert mailed");
    Ok(())
}

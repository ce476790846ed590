//! A topic: what happens to a message before it is copied to subscriptions. The topic
//! keeps no messages of its own; it drops duplicates within its detection window (kept
//! durable as marker records, like a queue's) and caps the time to live by its default.
//! Choosing the subscriptions is [`crate::rules`]' job, storing the copies the
//! subscriptions' queues'.

use std::collections::HashMap;

use busbar_store::{EntityId, Record, RecoveredMessage, Seq};
use serde::{Deserialize, Serialize};

use crate::config::{DEFAULT_MAX_MESSAGE_SIZE_KB, EntityStatus};
use crate::dedup::DuplicateWindow;
use crate::entity_id::marker_entity;
use crate::error::CoreError;
use crate::journal::Journal;
use crate::queue::NewMessage;

/// How a topic behaves. Field names follow the Service Bus topic properties.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TopicConfig {
    /// Time to live for messages that don't set a shorter one; `None` = never expire.
    pub default_ttl_ms: Option<i64>,
    pub requires_duplicate_detection: bool,
    pub duplicate_detection_window_ms: i64,
    /// `MaxSizeInMegabytes`: publishes that would take the topic beyond it are refused
    /// (see [`crate::quota`]). `None`: no cap.
    pub max_size_bytes: Option<u64>,
    pub status: EntityStatus,
    pub user_metadata: Option<String>,
    /// Kept and reported, not enforced. `None`: never.
    pub auto_delete_on_idle_ms: Option<i64>,
    pub enable_batched_operations: bool,
    /// Accepted and reported; one partition either way.
    pub enable_partitioning: bool,
    /// Kept and reported; messages are kept in order either way.
    pub support_ordering: bool,
    pub enable_express: bool,
    pub filtering_messages_before_publishing: bool,
    /// Kept and reported; the broker-wide maximum message size is enforced.
    pub max_message_size_kb: u64,
}

impl Default for TopicConfig {
    fn default() -> Self {
        TopicConfig {
            default_ttl_ms: None,
            requires_duplicate_detection: false,
            duplicate_detection_window_ms: 10 * 60 * 1000,
            max_size_bytes: None,
            status: EntityStatus::Active,
            user_metadata: None,
            auto_delete_on_idle_ms: None,
            enable_batched_operations: true,
            enable_partitioning: false,
            support_ordering: true,
            enable_express: false,
            filtering_messages_before_publishing: false,
            max_message_size_kb: DEFAULT_MAX_MESSAGE_SIZE_KB,
        }
    }
}

#[derive(Debug)]
pub struct Topic {
    name: String,
    config: TopicConfig,
    duplicates: DuplicateWindow,
}

impl Topic {
    /// Rebuilds a topic whose entity id is `entity` from its recovered duplicate markers
    /// (messages of other entities are ignored).
    pub fn restore(
        name: impl Into<String>,
        config: TopicConfig,
        entity: EntityId,
        last_seqs: &HashMap<EntityId, Seq>,
        markers: impl IntoIterator<Item = RecoveredMessage>,
    ) -> Self {
        let marker = marker_entity(entity);
        let mut duplicates =
            DuplicateWindow::new(marker, last_seqs.get(&marker).copied().unwrap_or(0));
        for message in markers {
            if message.entity == marker {
                duplicates.restore(message);
            }
        }
        Topic {
            name: name.into(),
            config,
            duplicates,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn config(&self) -> &TopicConfig {
        &self.config
    }

    pub fn set_config(&mut self, config: TopicConfig) {
        self.config = config;
    }

    /// The messages of `messages` that go on to the subscriptions: duplicates of ids seen
    /// within the window are dropped (accepted silently, as Service Bus does), and each
    /// message's time to live is capped by the topic's default. New ids are journaled
    /// before they count as seen.
    pub fn admit(
        &mut self,
        messages: Vec<NewMessage>,
        now_ms: i64,
        journal: &mut impl Journal,
    ) -> Result<Vec<NewMessage>, CoreError> {
        let mut admitted = Vec::with_capacity(messages.len());
        let mut records: Vec<Record> = Vec::new();
        let mut forgotten: Vec<Seq> = Vec::new();
        let mut remembered: Vec<(Box<str>, Seq)> = Vec::new();
        let detect = self.config.requires_duplicate_detection;
        let window_ms = self.config.duplicate_detection_window_ms;
        if detect {
            for (seq, record) in self.duplicates.expired_records(now_ms, window_ms) {
                records.push(record);
                forgotten.push(seq);
            }
        }
        let mut next_marker = self.duplicates.next_seq();
        for mut message in messages {
            if detect && let Some(id) = &message.message_id {
                let in_batch = remembered.iter().any(|(seen, _)| seen == id);
                if in_batch || self.duplicates.contains(id, now_ms, window_ms) {
                    continue;
                }
                records.push(self.duplicates.marker_record(id, now_ms, next_marker));
                remembered.push((id.clone(), next_marker));
                next_marker += 1;
            }
            message.ttl_ms = match (
                message.ttl_ms.filter(|t| *t > 0),
                self.config.default_ttl_ms,
            ) {
                (Some(own), Some(default)) => Some(own.min(default)),
                (own, default) => own.or(default),
            };
            admitted.push(message);
        }
        if !records.is_empty() {
            let refs = journal.append(records)?;
            for seq in forgotten {
                self.duplicates.forget_seq(seq);
            }
            for ((id, seq), body_ref) in remembered.into_iter().zip(refs) {
                self.duplicates.remember(id, now_ms, seq, body_ref);
            }
        }
        Ok(admitted)
    }

    /// Refuses `messages` when they would take the topic, now holding `size_bytes` (its
    /// scheduled messages and its subscriptions' messages), beyond its size cap. Called
    /// before [`Topic::admit`], so a refused message leaves no duplicate marker behind.
    /// Each message counts once, before it is copied to the subscriptions.
    pub fn ensure_room(&self, size_bytes: u64, messages: &[NewMessage]) -> Result<(), CoreError> {
        crate::quota::ensure_room(
            &self.name,
            self.config.max_size_bytes,
            size_bytes,
            crate::quota::incoming_bytes(messages.iter().map(|m| &m.body)),
        )
    }

    /// Number of message ids in the duplicate-detection window.
    pub fn remembered_ids(&self) -> usize {
        self.duplicates.len()
    }

    /// Remove records for everything the topic itself keeps (its duplicate markers), for
    /// deleting it.
    pub fn removal_records(&self) -> Vec<Record> {
        self.duplicates.removal_records()
    }
}

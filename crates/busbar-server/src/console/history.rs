//! The console's history: every queue's and subscription's counts sampled at a fixed
//! interval, the last hour kept per entity (a bounded ring each; entities that are gone
//! are dropped at the next sample). Sampling reads the same exact counts `/api/queues`
//! reports, one entity lock at a time.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, Weak};
use std::time::Duration;

use busbar_http::console_api::{History, HistoryPoint};
use busbar_http::{Admin, QueueInfo};

use crate::Current;

/// Time between samples.
pub(super) const SAMPLE_INTERVAL: Duration = Duration::from_secs(10);
/// Samples kept per entity: an hour.
const KEPT: usize = 360;

#[derive(Debug, Default)]
pub(super) struct Sampler {
    entities: Mutex<HashMap<String, VecDeque<HistoryPoint>>>,
}

impl Sampler {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, VecDeque<HistoryPoint>>> {
        self.entities
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Takes one sample of every entity `current` serves.
    pub(super) fn sample(&self, current: &Current, now_ms: i64) {
        let queues = current.queues();
        let subscriptions = current
            .topics()
            .into_iter()
            .flat_map(|topic| topic.subscriptions.into_iter().map(|s| s.queue));
        let mut seen: HashMap<String, HistoryPoint> = HashMap::new();
        for info in queues.into_iter().chain(subscriptions) {
            let point = point(&info, now_ms);
            seen.insert(info.name, point);
        }
        let mut entities = self.lock();
        entities.retain(|name, _| seen.contains_key(name));
        for (name, point) in seen {
            let ring = entities.entry(name).or_default();
            if ring.len() == KEPT {
                ring.pop_front();
            }
            ring.push_back(point);
        }
    }

    pub(super) fn history(&self) -> History {
        History {
            interval_ms: SAMPLE_INTERVAL.as_millis() as u64,
            entities: self
                .lock()
                .iter()
                .map(|(name, ring)| (name.clone(), ring.iter().copied().collect()))
                .collect(),
        }
    }
}

fn point(info: &QueueInfo, now_ms: i64) -> HistoryPoint {
    HistoryPoint {
        t_ms: now_ms,
        active: info.active_message_count,
        dead_letter: info.dead_letter_message_count,
        scheduled: info.scheduled_message_count,
        deferred: info.deferred_message_count,
        transfer: info.transfer_dead_letter_message_count,
        incoming_total: info.enqueued_total,
        outgoing_total: info.delivered_total,
    }
}

/// Samples every [`SAMPLE_INTERVAL`] while the broker runs (while `current` lives).
pub(super) async fn run(sampler: std::sync::Arc<Sampler>, current: Weak<Current>) {
    let mut ticks = tokio::time::interval(SAMPLE_INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let Some(current) = current.upgrade() else {
            return;
        };
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        sampler.sample(&current, now_ms);
    }
}

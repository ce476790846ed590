//! The snapshot `GET /metrics` reports: each entity's counts (taken under its lock, as the
//! API's are) and counters, the namespace's, and the store's own figures.

use std::sync::Arc;

use busbar_core::SubQueueKind;
use busbar_http::metrics::{
    BrokerMetrics, EntityMetrics, Histogram, Metrics, NamespaceMetrics, TopicMetrics,
};
use busbar_store::Store;
use busbar_store::stats::COMMIT_LATENCY_BOUNDS_US;

use super::{Broker, Entity, runtime_counts};

impl<S: Store> Broker<S> {
    /// Everything `/metrics` reports, now.
    pub fn metrics(&self) -> Metrics {
        let mut entities: Vec<EntityMetrics> = self.entities().iter().map(entity_metrics).collect();
        entities.sort_by(|a, b| a.entity.cmp(&b.entity));
        let mut topics: Vec<TopicMetrics> = self
            .topics()
            .iter()
            .map(|topic| {
                let state = topic.lock();
                TopicMetrics {
                    entity: topic.name.clone(),
                    scheduled: state.scheduled.counts().scheduled,
                    incoming_messages: topic.incoming.messages(),
                    incoming_bytes: topic.incoming.bytes(),
                }
            })
            .collect();
        topics.sort_by(|a, b| a.entity.cmp(&b.entity));
        let opened = self.stats.connections_opened();
        let closed = self.stats.connections_closed();
        let store = self.store.stats();
        let latency = store.commit_latency;
        Metrics {
            entities,
            topics,
            namespace: NamespaceMetrics {
                active_connections: opened.saturating_sub(closed),
                connections_opened: opened,
                connections_closed: closed,
                server_errors: self.stats.server_errors(),
                throttled_requests: self.stats.throttled(),
            },
            broker: BrokerMetrics {
                commit_latency: Histogram {
                    bounds: COMMIT_LATENCY_BOUNDS_US
                        .iter()
                        .map(|&us| us as f64 / 1e6)
                        .collect(),
                    counts: latency.buckets,
                    sum: latency.sum.as_secs_f64(),
                    count: latency.count,
                },
                fsyncs: store.fsyncs,
                store_bytes: store.bytes,
                resident_body_bytes: self.resident.used(),
                trace_spans_dropped: self.tracer.dropped(),
            },
        }
    }
}

/// An entity's figures.
fn entity_metrics(entity: &Arc<Entity>) -> EntityMetrics {
    let state = entity.lock();
    let queue = &state.queue;
    let counts = runtime_counts(queue);
    let stats = &entity.stats;
    EntityMetrics {
        entity: entity.name.clone(),
        active: counts.active,
        scheduled: counts.scheduled,
        deferred: counts.deferred,
        dead_letter: counts.dead_letter,
        transfer_dead_letter: counts.transfer_dead_letter,
        incoming_messages: stats.incoming.messages(),
        incoming_bytes: stats.incoming.bytes(),
        outgoing_messages: stats.outgoing.messages(),
        outgoing_bytes: stats.outgoing.bytes(),
        completed: stats.completed(),
        abandoned: stats.abandoned(),
        dead_lettered: stats.dead_lettered(queue.sub(SubQueueKind::DeadLetter).last_seq()),
    }
}

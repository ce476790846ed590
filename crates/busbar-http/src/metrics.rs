//! `GET /metrics`: the broker's figures in the Prometheus text format, encoded by the
//! `prometheus-client` crate from a [`Metrics`] snapshot the broker takes on each scrape
//! ([`crate::Admin::metrics`]).
//!
//! The broker counts as it works, in atomics kept with each entity; nothing here is on the
//! message path. Names and meanings are listed in the README's metrics table.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

/// The `Content-Type` of the answer.
pub use prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// What the broker reports on one scrape.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Metrics {
    /// Every queue and subscription (named `<topic>/Subscriptions/<name>`).
    pub entities: Vec<EntityMetrics>,
    pub topics: Vec<TopicMetrics>,
    pub namespace: NamespaceMetrics,
    pub broker: BrokerMetrics,
}

/// A queue's or subscription's messages now (gauges) and since start (counters).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EntityMetrics {
    pub entity: String,
    pub active: u64,
    pub scheduled: u64,
    pub deferred: u64,
    pub dead_letter: u64,
    pub transfer_dead_letter: u64,
    pub incoming_messages: u64,
    pub incoming_bytes: u64,
    pub outgoing_messages: u64,
    pub outgoing_bytes: u64,
    pub completed: u64,
    pub abandoned: u64,
    pub dead_lettered: u64,
}

/// A topic's own figures (its subscriptions are [`EntityMetrics`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TopicMetrics {
    pub entity: String,
    /// Scheduled on the topic, not yet published to its subscriptions.
    pub scheduled: u64,
    pub incoming_messages: u64,
    pub incoming_bytes: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NamespaceMetrics {
    pub active_connections: u64,
    pub connections_opened: u64,
    pub connections_closed: u64,
    pub server_errors: u64,
    pub throttled_requests: u64,
}

/// The broker's own workings.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BrokerMetrics {
    pub commit_latency: Histogram,
    pub fsyncs: u64,
    pub store_bytes: u64,
    pub resident_body_bytes: u64,
    /// Spans of traced messages not exported (see `--otlp-endpoint`).
    pub trace_spans_dropped: u64,
}

/// Observations by bucket: `counts[i]` are those of at most `bounds[i]` seconds (and more
/// than the bound before); a last count beyond the bounds is the `+Inf` bucket's own.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Histogram {
    pub bounds: Vec<f64>,
    pub counts: Vec<u64>,
    pub sum: f64,
    pub count: u64,
}

/// One figure of every queue and subscription, and of every topic where it applies.
struct EntityFamily {
    name: &'static str,
    help: &'static str,
    kind: MetricType,
    of_entity: fn(&EntityMetrics) -> u64,
    of_topic: Option<fn(&TopicMetrics) -> u64>,
}

/// Counters are named without `_total`: the encoder adds it.
const ENTITY_FAMILIES: [EntityFamily; 12] = [
    EntityFamily {
        name: "busbar_entity_active_messages",
        help: "Active messages of a queue or subscription (locked ones included).",
        kind: MetricType::Gauge,
        of_entity: |e| e.active,
        of_topic: None,
    },
    EntityFamily {
        name: "busbar_entity_scheduled_messages",
        help: "Scheduled messages of a queue, subscription or topic, not yet active.",
        kind: MetricType::Gauge,
        of_entity: |e| e.scheduled,
        of_topic: Some(|t| t.scheduled),
    },
    EntityFamily {
        name: "busbar_entity_deferred_messages",
        help: "Deferred messages of a queue or subscription.",
        kind: MetricType::Gauge,
        of_entity: |e| e.deferred,
        of_topic: None,
    },
    EntityFamily {
        name: "busbar_entity_dead_letter_messages",
        help: "Messages in the dead-letter queue of a queue or subscription.",
        kind: MetricType::Gauge,
        of_entity: |e| e.dead_letter,
        of_topic: None,
    },
    EntityFamily {
        name: "busbar_entity_transfer_dead_letter_messages",
        help: "Messages in the transfer dead-letter queue of a queue or subscription.",
        kind: MetricType::Gauge,
        of_entity: |e| e.transfer_dead_letter,
        of_topic: None,
    },
    EntityFamily {
        name: "busbar_entity_incoming_messages",
        help: "Messages a queue, subscription or topic took since start.",
        kind: MetricType::Counter,
        of_entity: |e| e.incoming_messages,
        of_topic: Some(|t| t.incoming_messages),
    },
    EntityFamily {
        name: "busbar_entity_incoming_bytes",
        help: "Bytes of the messages a queue, subscription or topic took since start.",
        kind: MetricType::Counter,
        of_entity: |e| e.incoming_bytes,
        of_topic: Some(|t| t.incoming_bytes),
    },
    EntityFamily {
        name: "busbar_entity_outgoing_messages",
        help: "Deliveries to receivers since start (redeliveries count again).",
        kind: MetricType::Counter,
        of_entity: |e| e.outgoing_messages,
        of_topic: None,
    },
    EntityFamily {
        name: "busbar_entity_outgoing_bytes",
        help: "Bytes of the messages delivered to receivers since start.",
        kind: MetricType::Counter,
        of_entity: |e| e.outgoing_bytes,
        of_topic: None,
    },
    EntityFamily {
        name: "busbar_entity_completed_messages",
        help: "Messages completed by clients since start.",
        kind: MetricType::Counter,
        of_entity: |e| e.completed,
        of_topic: None,
    },
    EntityFamily {
        name: "busbar_entity_abandoned_messages",
        help: "Messages abandoned by clients since start.",
        kind: MetricType::Counter,
        of_entity: |e| e.abandoned,
        of_topic: None,
    },
    EntityFamily {
        name: "busbar_entity_dead_lettered_messages",
        help: "Messages moved to the dead-letter queue since start, by clients or by the broker.",
        kind: MetricType::Counter,
        of_entity: |e| e.dead_lettered,
        of_topic: None,
    },
];

/// The text exposition of `metrics`.
pub fn render(metrics: Metrics) -> Result<String, std::fmt::Error> {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Scrape(metrics)));
    let mut text = String::new();
    prometheus_client::encoding::prometheus_text::encode(&mut text, &registry)?;
    Ok(text)
}

/// One scrape's snapshot, encoded when the registry is.
#[derive(Debug)]
struct Scrape(Metrics);

impl Collector for Scrape {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let metrics = &self.0;
        for family in &ENTITY_FAMILIES {
            let mut metric =
                encoder.encode_descriptor(family.name, family.help, None, family.kind)?;
            let entities = metrics
                .entities
                .iter()
                .map(|e| (e.entity.as_str(), (family.of_entity)(e)));
            let topics = family.of_topic.into_iter().flat_map(|of_topic| {
                metrics
                    .topics
                    .iter()
                    .map(move |t| (t.entity.as_str(), of_topic(t)))
            });
            for (entity, value) in entities.chain(topics) {
                let labels = [("entity", entity)];
                let mut sample = metric.encode_family(&labels)?;
                match family.kind {
                    MetricType::Counter => {
                        sample.encode_counter::<NoLabelSet, _, u64>(&value, None)?;
                    }
                    _ => sample.encode_gauge(&value)?,
                }
            }
        }

        let namespace = &metrics.namespace;
        let broker = &metrics.broker;
        let singles: [(&str, &str, MetricType, u64); 9] = [
            (
                "busbar_active_connections",
                "AMQP connections open now.",
                MetricType::Gauge,
                namespace.active_connections,
            ),
            (
                "busbar_connections_opened",
                "AMQP connections opened since start.",
                MetricType::Counter,
                namespace.connections_opened,
            ),
            (
                "busbar_connections_closed",
                "AMQP connections closed since start.",
                MetricType::Counter,
                namespace.connections_closed,
            ),
            (
                "busbar_server_errors",
                "Requests that failed by the broker's fault (amqp:internal-error, HTTP 500) since start.",
                MetricType::Counter,
                namespace.server_errors,
            ),
            (
                "busbar_throttled_requests",
                "Requests refused by a limit (amqp:resource-limit-exceeded) or while the store could not write (com.microsoft:server-busy, HTTP 503) since start.",
                MetricType::Counter,
                namespace.throttled_requests,
            ),
            (
                "busbar_store_fsyncs",
                "fdatasyncs of the log's segments since start.",
                MetricType::Counter,
                broker.fsyncs,
            ),
            (
                "busbar_store_bytes",
                "Bytes of the log's segments on disk.",
                MetricType::Gauge,
                broker.store_bytes,
            ),
            (
                "busbar_resident_body_bytes",
                "Bytes of message bodies the broker keeps in memory.",
                MetricType::Gauge,
                broker.resident_body_bytes,
            ),
            (
                "busbar_trace_spans_dropped",
                "Spans of traced messages not exported since start: the export queue was full or the collector did not take them.",
                MetricType::Counter,
                broker.trace_spans_dropped,
            ),
        ];
        for (name, help, kind, value) in singles {
            let mut metric = encoder.encode_descriptor(name, help, None, kind)?;
            match kind {
                MetricType::Counter => metric.encode_counter::<NoLabelSet, _, u64>(&value, None)?,
                _ => metric.encode_gauge(&value)?,
            }
        }

        let latency = &broker.commit_latency;
        let buckets: Vec<(f64, u64)> = latency
            .counts
            .iter()
            .enumerate()
            .map(|(i, &count)| {
                (
                    latency.bounds.get(i).copied().unwrap_or(f64::INFINITY),
                    count,
                )
            })
            .collect();
        encoder
            .encode_descriptor(
                "busbar_store_commit_latency_seconds",
                "How long each group commit's oldest write waited until it was durable.",
                None,
                MetricType::Histogram,
            )?
            .encode_histogram::<NoLabelSet>(latency.sum, latency.count, &buckets, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Metrics {
        Metrics {
            entities: vec![EntityMetrics {
                entity: "t\"1/Subscriptions/s".to_owned(),
                active: 5,
                dead_letter: 2,
                incoming_messages: 9,
                incoming_bytes: 900,
                completed: 3,
                ..EntityMetrics::default()
            }],
            topics: vec![TopicMetrics {
                entity: "t\"1".to_owned(),
                scheduled: 4,
                incoming_messages: 7,
                incoming_bytes: 70,
            }],
            namespace: NamespaceMetrics {
                active_connections: 1,
                connections_opened: 3,
                connections_closed: 2,
                server_errors: 0,
                throttled_requests: 6,
            },
            broker: BrokerMetrics {
                commit_latency: Histogram {
                    bounds: vec![0.001, 0.01],
                    counts: vec![2, 1, 1],
                    sum: 1.5,
                    count: 4,
                },
                fsyncs: 8,
                store_bytes: 4096,
                resident_body_bytes: 100,
                trace_spans_dropped: 12,
            },
        }
    }

    #[test]
    fn renders_entities_topics_namespace_and_store_with_escaped_labels() {
        let text = render(sample()).expect("render");
        for line in [
            "# TYPE busbar_entity_active_messages gauge",
            "busbar_entity_active_messages{entity=\"t\\\"1/Subscriptions/s\"} 5",
            "busbar_entity_dead_letter_messages{entity=\"t\\\"1/Subscriptions/s\"} 2",
            "# TYPE busbar_entity_incoming_messages_total counter",
            "busbar_entity_incoming_messages_total{entity=\"t\\\"1/Subscriptions/s\"} 9",
            "busbar_entity_incoming_messages_total{entity=\"t\\\"1\"} 7",
            "busbar_entity_incoming_bytes_total{entity=\"t\\\"1\"} 70",
            "busbar_entity_scheduled_messages{entity=\"t\\\"1\"} 4",
            "busbar_entity_completed_messages_total{entity=\"t\\\"1/Subscriptions/s\"} 3",
            "busbar_active_connections 1",
            "busbar_connections_opened_total 3",
            "busbar_throttled_requests_total 6",
            "busbar_store_fsyncs_total 8",
            "busbar_store_bytes 4096",
            "busbar_resident_body_bytes 100",
            "busbar_trace_spans_dropped_total 12",
            "# TYPE busbar_store_commit_latency_seconds histogram",
            "busbar_store_commit_latency_seconds_bucket{le=\"0.001\"} 2",
            "busbar_store_commit_latency_seconds_bucket{le=\"0.01\"} 3",
            "busbar_store_commit_latency_seconds_bucket{le=\"+Inf\"} 4",
            "busbar_store_commit_latency_seconds_count 4",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in:\n{text}"
            );
        }
        // Figures that don't apply to topics are not reported for them.
        assert!(
            !text
                .lines()
                .any(|l| l.starts_with("busbar_entity_active_messages{entity=\"t\\\"1\"}")),
            "{text}"
        );
    }
}

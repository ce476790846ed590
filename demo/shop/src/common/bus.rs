//! The service's Service Bus client, made from the connection string, and the check at
//! start that the entities it uses exist (a missing one is named, rather than failing later
//! on the first send).

use busbar_client::servicebus::admin::{
    AdministrationClientOptions, ServiceBusAdministrationClient,
};
use busbar_client::{ServiceBusClient, ServiceBusClientOptions};

/// An entity a service sends to or receives from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entity {
    Queue(&'static str),
    Topic(&'static str),
    Subscription(&'static str, &'static str),
}

impl std::fmt::Display for Entity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Entity::Queue(name) => write!(f, "queue '{name}'"),
            Entity::Topic(name) => write!(f, "topic '{name}'"),
            Entity::Subscription(topic, name) => {
                write!(f, "subscription '{name}' of topic '{topic}'")
            }
        }
    }
}

/// The client for `connection_string`.
pub fn connect(connection_string: &str) -> anyhow::Result<ServiceBusClient> {
    Ok(ServiceBusClient::from_connection_string(
        connection_string,
        ServiceBusClientOptions::default(),
    )?)
}

/// Fails, naming every missing entity, unless all of `entities` exist.
pub async fn check_entities(connection_string: &str, entities: &[Entity]) -> anyhow::Result<()> {
    let admin = ServiceBusAdministrationClient::from_connection_string(
        connection_string,
        AdministrationClientOptions::default(),
    )?;
    let mut missing = Vec::new();
    for entity in entities {
        let exists = match *entity {
            Entity::Queue(name) => admin.queue_exists(name).await,
            Entity::Topic(name) => admin.topic_exists(name).await,
            Entity::Subscription(topic, name) => admin.subscription_exists(topic, name).await,
        }
        .map_err(|e| anyhow::anyhow!("cannot look up the {entity} on the broker: {e}"))?;
        if !exists {
            missing.push(entity.to_string());
        }
    }
    if missing.is_empty() {
        Ok(())
    } else {
        anyhow::bail!(
            "the broker lacks the {}: declare them in demo/shop/Config.json",
            missing.join(", ")
        )
    }
}

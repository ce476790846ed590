//! The administration client: a queue and a topic with a filtered subscription created,
//! counted and listed, then deleted.
//!
//! ```text
//! cargo run -p busbar-client --example admin -- \
//!   "Endpoint=sb://localhost:5672;SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey=SAS_KEY_VALUE;UseDevelopmentEmulator=true"
//! ```
//!
//! The connection string comes from the first argument or `SERVICEBUS_CONNECTION_STRING`,
//! else it is the development one (a Busbar on localhost:5672); `BUSBAR_CA` names a CA file
//! to speak HTTPS with (Busbar's development CA, for example).

use std::time::Duration;

use busbar_client::servicebus::admin::{
    AdministrationClientOptions, ListOptions, QueueSettings, RuleAction, RuleFilter,
    ServiceBusAdministrationClient, SubscriptionSettings, TopicSettings,
};

const DEVELOPMENT: &str = "Endpoint=sb://localhost:5672;SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey=SAS_KEY_VALUE;UseDevelopmentEmulator=true";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let connection_string = std::env::args()
        .nth(1)
        .or_else(|| std::env::var("SERVICEBUS_CONNECTION_STRING").ok())
        .unwrap_or_else(|| DEVELOPMENT.to_owned());
    let admin = ServiceBusAdministrationClient::from_connection_string(
        &connection_string,
        AdministrationClientOptions {
            tls_ca: std::env::var_os("BUSBAR_CA").map(Into::into),
            ..AdministrationClientOptions::default()
        },
    )?;

    let namespace = admin.get_namespace_properties().await?;
    println!("namespace {}", namespace.name);

    let queue = admin
        .create_queue(
            "admin-example",
            &QueueSettings {
                lock_duration: Duration::from_secs(30),
                max_delivery_count: 5,
                ..QueueSettings::default()
            },
        )
        .await?;
    println!(
        "created {} (lock {:?})",
        queue.name, queue.settings.lock_duration
    );

    admin
        .create_topic("admin-example-topic", &TopicSettings::default())
        .await?;
    admin
        .create_subscription(
            "admin-example-topic",
            "urgent",
            &SubscriptionSettings::default(),
        )
        .await?;
    admin
        .delete_rule("admin-example-topic", "urgent", "$Default")
        .await?;
    admin
        .create_rule(
            "admin-example-topic",
            "urgent",
            "priority",
            RuleFilter::Sql {
                expression: "priority > 5".to_owned(),
                parameters: vec![],
            },
            RuleAction::Empty,
        )
        .await?;

    for queue in admin
        .list_queues_runtime_properties(ListOptions::default())
        .await?
    {
        println!(
            "queue {}: {} messages ({} active, {} dead-lettered)",
            queue.name, queue.total_message_count, queue.counts.active, queue.counts.dead_letter
        );
    }
    for rule in admin
        .list_rules("admin-example-topic", "urgent", ListOptions::default())
        .await?
    {
        println!("rule {}: {:?}", rule.name, rule.filter);
    }

    admin.delete_topic("admin-example-topic").await?;
    admin.delete_queue("admin-example").await?;
    Ok(())
}

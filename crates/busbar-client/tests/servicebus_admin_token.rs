//! The administration client signs a new token before the one it sends runs out, against a
//! broker in the test process.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use busbar_client::servicebus::{AdministrationClientOptions, ServiceBusAdministrationClient};
use common::Broker;

/// How long after its expiry the broker still takes a token on the HTTP API (it tolerates
/// the Python administration client, which renews its token late), and a margin.
const BROKER_GRACE: Duration = Duration::from_secs(120 + 3);

#[tokio::test]
async fn requests_keep_succeeding_past_the_first_tokens_expiry() {
    let broker = Broker::start().await;
    let options = AdministrationClientOptions {
        token_lifetime: Duration::from_secs(1),
        ..AdministrationClientOptions::default()
    };
    let admin = ServiceBusAdministrationClient::from_connection_string(
        &broker.connection_string(),
        options,
    )
    .unwrap();
    assert_eq!(admin.get_queue("q").await.expect("first request").name, "q");
    // Past the first token's expiry, even with the broker's tolerance.
    tokio::time::sleep(BROKER_GRACE).await;
    assert_eq!(
        admin
            .get_queue("q")
            .await
            .expect("a request past expiry")
            .name,
        "q"
    );
}

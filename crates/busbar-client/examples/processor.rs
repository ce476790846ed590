//! The analytics service of the article: consumes the `orders` queue with a processor. Each
//! order update is recalculated and completed; an update that cannot be processed fails, goes
//! back to the queue, and after the queue's max delivery count the broker dead-letters it.
//!
//! ```text
//! cargo run -p busbar-client --example processor -- "<connection string>" [queue]
//! ```
//! Without arguments it uses Busbar's development connection string and `orders`.

use std::time::Duration;

use busbar_client::servicebus::{
    ProcessErrorContext, ProcessMessageContext, ServiceBusClient, ServiceBusClientOptions,
    ServiceBusProcessorOptions,
};

const DEV_CONNECTION_STRING: &str = "Endpoint=sb://localhost;SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey=SAS_KEY_VALUE;UseDevelopmentEmulator=true";

#[derive(Debug, thiserror::Error)]
enum AnalyticsError {
    #[error("the order update is not UTF-8")]
    NotText(#[from] std::str::Utf8Error),
    #[error("the order update is empty")]
    Empty,
}

async fn recalculate(context: ProcessMessageContext) -> Result<(), AnalyticsError> {
    let update = std::str::from_utf8(&context.message().body)?;
    if update.trim().is_empty() {
        return Err(AnalyticsError::Empty);
    }
    println!(
        "order update {} (delivery {}): {update}",
        context.message().message_id.as_deref().unwrap_or("-"),
        context.message().delivery_count
    );
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let connection_string = args
        .next()
        .unwrap_or_else(|| DEV_CONNECTION_STRING.to_owned());
    let queue = args.next().unwrap_or_else(|| "orders".to_owned());

    let client = ServiceBusClient::from_connection_string(
        &connection_string,
        ServiceBusClientOptions::default(),
    )?;
    let options = ServiceBusProcessorOptions {
        max_concurrent_calls: 16,
        max_auto_lock_renew_duration: Duration::from_secs(10 * 60),
        ..Default::default()
    };
    let processor = client.create_processor(&queue, None, options);
    processor
        .start(recalculate, |error: ProcessErrorContext| async move {
            eprintln!("{}: {:?}: {}", error.entity_path, error.source, error.error);
        })
        .await?;
    println!("processing {queue}; Ctrl-C stops");
    tokio::signal::ctrl_c().await?;
    processor.stop().await;
    client.close().await;
    Ok(())
}

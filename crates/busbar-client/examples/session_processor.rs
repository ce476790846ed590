//! Consumes a session-enabled queue with a session processor: each session (here: a
//! customer's cart) is handled in order, several sessions at once, and its running total
//! is kept in the session state so another consumer can take over the session.
//!
//! ```text
//! cargo run -p busbar-client --example session_processor -- "<connection string>" [queue]
//! ```
//! Without arguments it uses Busbar's development connection string and `carts`.

use bytes::Bytes;

use busbar_client::servicebus::{
    ProcessErrorContext, ProcessSessionMessageContext, ServiceBusClient, ServiceBusClientOptions,
    ServiceBusSessionProcessorOptions,
};

const DEV_CONNECTION_STRING: &str = "Endpoint=sb://localhost;SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey=SAS_KEY_VALUE;UseDevelopmentEmulator=true";

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Adds the item's price (the message body, in cents) to the cart's total.
async fn add_to_cart(context: ProcessSessionMessageContext) -> Result<(), BoxError> {
    let price: u64 = std::str::from_utf8(&context.message().body)?
        .trim()
        .parse()?;
    let total: u64 = match context.get_session_state().await? {
        Some(state) => std::str::from_utf8(&state)?.parse()?,
        None => 0,
    };
    let total = total + price;
    context
        .set_session_state(Some(Bytes::from(total.to_string())))
        .await?;
    println!("cart {}: +{price} = {total}", context.session_id());
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let connection_string = args
        .next()
        .unwrap_or_else(|| DEV_CONNECTION_STRING.to_owned());
    let queue = args.next().unwrap_or_else(|| "carts".to_owned());

    let client = ServiceBusClient::from_connection_string(
        &connection_string,
        ServiceBusClientOptions::default(),
    )?;
    let options = ServiceBusSessionProcessorOptions {
        max_concurrent_sessions: 4,
        ..Default::default()
    };
    let processor = client.create_session_processor(&queue, None, options);
    processor
        .start(add_to_cart, |error: ProcessErrorContext| async move {
            let session = error.session_id.as_deref().unwrap_or("-");
            eprintln!(
                "{} session {session}: {:?}: {}",
                error.entity_path, error.source, error.error
            );
        })
        .await?;
    println!("processing the sessions of {queue}; Ctrl-C stops");
    tokio::signal::ctrl_c().await?;
    processor.stop().await;
    client.close().await;
    Ok(())
}

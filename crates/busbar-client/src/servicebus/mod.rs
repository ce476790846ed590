//! The Service Bus SDK: a [`ServiceBusClient`] from a connection string, senders, receivers
//! and session receivers in the concepts and names of the official SDKs, over the AMQP
//! layer of this crate. Works against Azure Service Bus (TLS, SAS keys or tokens) and
//! Busbar or the emulator (`UseDevelopmentEmulator=true`). The [`admin`] client and the
//! [`ServiceBusRuleManager`] manage entities and rules.

pub mod admin;
mod backoff;
mod call_workers;
mod client;
mod completions;
mod connection_string;
mod error;
mod fast_read;
mod lock_renewal;
mod management;
mod message;
mod message_pump;
mod processor;
mod receiver;
mod rule_manager;
mod rule_wire;
mod sender;
mod session;
mod session_processor;

pub use admin::{AdministrationClientOptions, ServiceBusAdministrationClient};
pub use client::{ServiceBusClient, ServiceBusClientOptions, ServiceBusTransport};
pub use connection_string::{AMQP_PORT, AMQPS_PORT, ConnectionString};
pub use error::{ErrorKind, RetryMode, RetryOptions, ServiceBusError, ServiceBusResult};
pub use message::{ServiceBusMessage, ServiceBusMessageState, ServiceBusReceivedMessage};
pub use processor::{
    ErrorSource, ProcessErrorContext, ProcessMessageContext, ServiceBusProcessor,
    ServiceBusProcessorOptions,
};
pub use receiver::{
    DeadLetterOptions, ServiceBusReceiveMode, ServiceBusReceiver, ServiceBusReceiverOptions,
    SubQueue,
};
pub use rule_manager::ServiceBusRuleManager;
pub use sender::{CreateMessageBatchOptions, ServiceBusMessageBatch, ServiceBusSender};
pub use session::{ServiceBusSessionReceiver, ServiceBusSessionReceiverOptions};
pub use session_processor::{
    ProcessSessionMessageContext, ServiceBusSessionProcessor, ServiceBusSessionProcessorOptions,
};

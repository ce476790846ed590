//! The Service Bus SDK: a [`ServiceBusClient`] from a connection string, senders, receivers
//! and session receivers in the concepts and names of the official SDKs, over the AMQP
//! layer of this crate. Works against Azure Service Bus (TLS, SAS keys or tokens) and
//! Busbar or the emulator (`UseDevelopmentEmulator=true`). The [`admin`] client and the
//! [`ServiceBusRuleManager`] manage entities and rules.

pub mod admin;
mod client;
mod connection_string;
mod error;
mod management;
mod message;
mod receiver;
mod rule_manager;
mod rule_wire;
mod sender;
mod session;

pub use admin::{AdministrationClientOptions, ServiceBusAdministrationClient};
pub use client::{ServiceBusClient, ServiceBusClientOptions, ServiceBusTransport};
pub use connection_string::{AMQP_PORT, AMQPS_PORT, ConnectionString};
pub use error::{ErrorKind, RetryMode, RetryOptions, ServiceBusError, ServiceBusResult};
pub use message::{ServiceBusMessage, ServiceBusMessageState, ServiceBusReceivedMessage};
pub use receiver::{
    DeadLetterOptions, ServiceBusReceiveMode, ServiceBusReceiver, ServiceBusReceiverOptions,
    SubQueue,
};
pub use rule_manager::ServiceBusRuleManager;
pub use sender::{CreateMessageBatchOptions, ServiceBusMessageBatch, ServiceBusSender};
pub use session::{ServiceBusSessionReceiver, ServiceBusSessionReceiverOptions};

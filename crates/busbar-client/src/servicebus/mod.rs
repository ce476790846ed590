#![warn(missing_docs)]

//! The Service Bus SDK: the concepts and names of the official SDKs in async Rust, over
//! this crate's AMQP layer (and, for administration, HTTP).

pub mod admin;
mod rule_manager;
mod rule_wire;

pub use rule_manager::ServiceBusRuleManager;

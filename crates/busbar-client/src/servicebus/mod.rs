//! The Service Bus SDK: the concepts and names of the official SDKs in async Rust, over
//! this crate's AMQP layer (and, for administration, HTTP).

pub mod admin;

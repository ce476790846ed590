//! The Service Bus dialect over the AMQP engine: claims-based security (SAS tokens), link
//! address forms, the error conditions the SDKs react to, and the `$cbs`/`$management`
//! request handling built on them.
//!
//! This crate speaks in Service Bus terms and leaves queue semantics to `busbar-core` and
//! framing to `busbar-amqp`; it must not do I/O or own broker state itself.

pub mod address;
pub mod authorization;
pub mod conditions;
pub mod filtering;
pub mod message;
pub mod request;
pub mod rest_message;
pub mod rules;
pub mod sas;
pub mod settlement;

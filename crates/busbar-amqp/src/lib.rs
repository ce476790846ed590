//! AMQP 1.0 wire layer: the type system codec (bytes ↔ values), typed performatives,
//! frames, SASL frames and message sections, plus the sans-I/O connection engine.
//!
//! This crate must not do I/O, spawn tasks, read a clock or know about Service Bus:
//! it turns bytes into frames and frames into bytes, and the engine turns frames into
//! events. Everything above it (dialect, broker) lives in other crates.

pub mod codec;
pub mod engine;
pub mod error;
pub mod frame;
pub mod message;
pub mod performative;
pub mod value;

pub use error::CodecError;
pub use value::{Descriptor, Symbol, Timestamp, Value};

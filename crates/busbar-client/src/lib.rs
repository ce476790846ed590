//! Rust SDK for Busbar and Service Bus.

//! Broker runtime wiring protocol, domain and storage on tokio.

pub mod config;
pub mod emulator_config;

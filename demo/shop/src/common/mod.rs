//! What every service shares: its command-line configuration, its database, its Service Bus
//! client and the check that the entities it uses exist, the guard that admits only
//! requests carrying the internal secret, the JSON error type, and the message contracts.

pub mod bus;
pub mod config;
pub mod contracts;
pub mod database;
pub mod error;
pub mod guard;
pub mod http;
pub mod relay;
pub mod time;

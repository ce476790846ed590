//! The article's system — gateway, authorization, email, orders and analytics, each its own
//! process with its own database, keeping their data in step through Busbar. The binary
//! (`src/main.rs`) is the command line; this library holds the services, so the tests can
//! share the message contracts with them.

pub mod analytics;
pub mod auth;
pub mod broker;
pub mod common;
pub mod email;
pub mod gateway;
pub mod orders;
pub mod supervisor;

//! The Service Bus administration API's XML documents, both ways; no HTTP, no I/O.
//!
//! The administration API (`ServiceBusAdministrationClient` in every SDK) carries Atom 1.0
//! entries and feeds wrapping DataContract-style descriptions. Both ends of it live in this
//! workspace: the broker (busbar-http's `atom` routes) and the Rust SDK's administration
//! client (busbar-client) and the CLI. They share this crate: [`model`] says what the
//! documents carry, [`read`] reads them whatever element order and prefixes the writer used
//! (over [`xml_tree`]), [`write`] writes them in the service's element order, with
//! [`duration`] and [`timestamp`] for the API's value formats, and [`parameters`] writes a
//! rule's parameters into its expression. The wire facts it follows are
//! in the reference's servicebus-admin-api.md.

#![warn(missing_docs)]

pub mod duration;
pub mod model;
pub mod parameters;
pub mod read;
pub mod timestamp;
pub mod write;
mod xml_tree;

pub use model::*;

//! Broker runtime wiring protocol, domain and storage on tokio.

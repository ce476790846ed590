//! Holds no code: this crate exists for its test, `tests/azservicebus.rs`, which drives a real
//! busbar with the community's `azservicebus` crate.

//! The busbar binary: broker server and CLI.

fn main() {}

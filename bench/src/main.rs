//! Load generator for AMQP 1.0 brokers.

fn main() {}

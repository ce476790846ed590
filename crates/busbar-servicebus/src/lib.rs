//! Service Bus dialect over the AMQP engine.

//! Service Bus domain model: entities, messages, locks, settlement.

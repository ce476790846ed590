//! What a client's disposition on a received message means in Service Bus terms, and the
//! outcome the broker echoes back when the client settled it unsettled (the SDKs check
//! the echo's type: accepted, modified or rejected without an error).

use busbar_amqp::performative::{DeliveryState, ErrorCondition};
use busbar_amqp::value::{Symbol, Value};

use crate::conditions;
use crate::message::{DEAD_LETTER_DESCRIPTION, DEAD_LETTER_REASON, properties_to_modify};

/// A settlement request on a peek-locked message.
#[derive(Debug, Clone, PartialEq)]
pub enum Settlement {
    Complete,
    /// Unlock without counting a delivery (AMQP `released`).
    Release,
    /// Unlock and count a failed delivery; `properties` are merged into the message.
    Abandon {
        properties: Vec<(String, Value)>,
    },
    /// Move out of normal delivery (retrievable by sequence number).
    Defer {
        properties: Vec<(String, Value)>,
    },
    DeadLetter {
        reason: Option<String>,
        description: Option<String>,
        properties: Vec<(String, Value)>,
    },
}

impl Settlement {
    /// Reads a client's delivery state; `None` for states that settle nothing (`received`
    /// or no state at all).
    pub fn from_state(state: Option<&DeliveryState>) -> Option<Settlement> {
        match state? {
            DeliveryState::Accepted => Some(Settlement::Complete),
            DeliveryState::Released => Some(Settlement::Release),
            DeliveryState::Modified {
                undeliverable_here,
                message_annotations,
                ..
            } => {
                let properties = properties_to_modify(message_annotations.as_ref());
                if *undeliverable_here == Some(true) {
                    Some(Settlement::Defer { properties })
                } else {
                    Some(Settlement::Abandon { properties })
                }
            }
            // Any rejected means dead-letter, as with the real service; the condition is
            // normally com.microsoft:dead-letter with the reason in `info`.
            DeliveryState::Rejected { error } => {
                let info = error.as_ref().and_then(|e| e.info.as_ref());
                let text = |key: &str| {
                    info.and_then(|i| i.map_get(key))
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                };
                let reason = text(DEAD_LETTER_REASON);
                let description = text(DEAD_LETTER_DESCRIPTION).or_else(|| {
                    error
                        .as_ref()
                        .and_then(|e| e.description.clone())
                        .filter(|d| !d.is_empty())
                });
                let properties = properties_to_modify(info)
                    .into_iter()
                    .filter(|(k, _)| k != DEAD_LETTER_REASON && k != DEAD_LETTER_DESCRIPTION)
                    .collect();
                Some(Settlement::DeadLetter {
                    reason,
                    description,
                    properties,
                })
            }
            DeliveryState::Received { .. } | DeliveryState::Other(_) => None,
        }
    }

    /// The outcome to echo once the settlement is applied.
    pub fn echo(&self) -> DeliveryState {
        match self {
            Settlement::Complete => DeliveryState::Accepted,
            Settlement::Release => DeliveryState::Released,
            Settlement::Abandon { .. } | Settlement::Defer { .. } => DeliveryState::Modified {
                delivery_failed: None,
                undeliverable_here: None,
                message_annotations: None,
            },
            Settlement::DeadLetter { .. } => DeliveryState::Rejected { error: None },
        }
    }
}

/// The echo for a settlement that failed because the lock is gone.
pub fn lock_lost() -> DeliveryState {
    DeliveryState::Rejected {
        error: Some(ErrorCondition {
            condition: Symbol::from_static(conditions::MESSAGE_LOCK_LOST),
            description: Some(
                "The lock supplied is invalid. Either the lock expired, or the message has \
                 already been removed from the queue."
                    .to_owned(),
            ),
            info: None,
        }),
    }
}

/// A rejection carrying `condition` and `description` (e.g. for a send that failed).
pub fn rejected(condition: &str, description: impl Into<String>) -> DeliveryState {
    DeliveryState::Rejected {
        error: Some(ErrorCondition::new(condition, description)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_the_sdk_dispositions() {
        assert_eq!(
            Settlement::from_state(Some(&DeliveryState::Accepted)),
            Some(Settlement::Complete)
        );
        let abandon = DeliveryState::Modified {
            delivery_failed: None,
            undeliverable_here: Some(false),
            message_annotations: Some(Value::Map(vec![(Value::sym("k"), Value::Int(1))])),
        };
        assert_eq!(
            Settlement::from_state(Some(&abandon)),
            Some(Settlement::Abandon {
                properties: vec![("k".to_owned(), Value::Int(1))]
            })
        );
        let defer = DeliveryState::Modified {
            delivery_failed: Some(true),
            undeliverable_here: Some(true),
            message_annotations: None,
        };
        assert!(matches!(
            Settlement::from_state(Some(&defer)),
            Some(Settlement::Defer { .. })
        ));
        let dead_letter = DeliveryState::Rejected {
            error: Some(ErrorCondition {
                condition: Symbol::from_static(conditions::DEAD_LETTER),
                description: None,
                info: Some(Value::Map(vec![
                    (Value::sym(DEAD_LETTER_REASON), Value::String("r".into())),
                    (
                        Value::sym(DEAD_LETTER_DESCRIPTION),
                        Value::String("d".into()),
                    ),
                    (Value::sym("extra"), Value::Int(2)),
                ])),
            }),
        };
        assert_eq!(
            Settlement::from_state(Some(&dead_letter)),
            Some(Settlement::DeadLetter {
                reason: Some("r".into()),
                description: Some("d".into()),
                properties: vec![("extra".to_owned(), Value::Int(2))],
            })
        );
        assert_eq!(Settlement::from_state(None), None);
    }

    #[test]
    fn dead_letter_echo_has_no_error() {
        let settlement = Settlement::DeadLetter {
            reason: None,
            description: None,
            properties: Vec::new(),
        };
        assert_eq!(settlement.echo(), DeliveryState::Rejected { error: None });
    }
}

//! Link addresses: what a client's `source`/`target` address names.
//!
//! Python sends full URIs (`amqps://localhost:5672/q1`), JS bare paths (`q1`); both normalise to
//! the same [`Address`]. System keywords (`$cbs`, `$management`, `$DeadLetterQueue`,
//! `$Transfer`, `Subscriptions`) match case-insensitively; entity names keep their case, since
//! lookups in the catalog are case-insensitive anyway.

use std::fmt;

/// Which queue of an entity a link addresses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum SubQueue {
    #[default]
    Main,
    /// `<entity>/$DeadLetterQueue`
    DeadLetter,
    /// `<entity>/$Transfer/$DeadLetterQueue`
    TransferDeadLetter,
}

impl SubQueue {
    /// The path suffix that selects this sub-queue, with its leading slash (`""` for main).
    pub const fn suffix(self) -> &'static str {
        match self {
            SubQueue::Main => "",
            SubQueue::DeadLetter => "/$DeadLetterQueue",
            SubQueue::TransferDeadLetter => "/$Transfer/$DeadLetterQueue",
        }
    }
}

/// A parsed link address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Address {
    /// The claims-based-security node, `$cbs`.
    Cbs,
    /// A queue, topic or subscription (`t1/Subscriptions/s1`), or one of its sub-queues.
    /// `path` never carries the sub-queue suffix.
    Entity { path: String, sub: SubQueue },
    /// The `$management` node of an entity or of one of its sub-queues.
    Management { path: String, sub: SubQueue },
}

impl Address {
    /// The entity path, if this address names an entity or its management node.
    pub fn entity_path(&self) -> Option<&str> {
        match self {
            Address::Cbs => None,
            Address::Entity { path, .. } | Address::Management { path, .. } => Some(path),
        }
    }

    pub fn sub_queue(&self) -> Option<SubQueue> {
        match self {
            Address::Cbs => None,
            Address::Entity { sub, .. } | Address::Management { sub, .. } => Some(*sub),
        }
    }
}

impl fmt::Display for Address {
    /// The canonical path form (what a token's audience is compared against).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Cbs => f.write_str(CBS),
            Address::Entity { path, sub } => write!(f, "{path}{}", sub.suffix()),
            Address::Management { path, sub } => {
                write!(f, "{path}{}/{MANAGEMENT}", sub.suffix())
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    #[error("the address is empty")]
    Empty,
    #[error("address '{0}' has an empty path segment")]
    EmptySegment(String),
    #[error("address '{address}': '{segment}' is not a recognised system segment here")]
    UnexpectedSystemSegment { address: String, segment: String },
    #[error("address '{0}' has no entity name before its system segments")]
    MissingEntity(String),
    #[error("address '{0}' names a subscription without a topic or subscription name")]
    IncompleteSubscription(String),
}

const CBS: &str = "$cbs";
const MANAGEMENT: &str = "$management";
const DEAD_LETTER: &str = "$DeadLetterQueue";
const TRANSFER: &str = "$Transfer";
const SUBSCRIPTIONS: &str = "Subscriptions";

/// Strips `scheme://authority` and surrounding slashes: `amqps://host:5672/q1/` → `q1`.
pub fn normalize(address: &str) -> &str {
    let path = match address.split_once("://") {
        Some((_scheme, rest)) => rest.find('/').map_or("", |slash| &rest[slash..]),
        None => address,
    };
    path.trim_matches('/')
}

/// Parses a link address. See the module docs for the accepted forms.
pub fn parse(address: &str) -> Result<Address, AddressError> {
    let path = normalize(address.trim());
    if path.is_empty() {
        return Err(AddressError::Empty);
    }
    if path.eq_ignore_ascii_case(CBS) {
        return Ok(Address::Cbs);
    }
    let segments: Vec<&str> = path.split('/').collect();
    if segments.iter().any(|segment| segment.is_empty()) {
        return Err(AddressError::EmptySegment(address.to_owned()));
    }

    // Peel system segments off the end: [$management], then the sub-queue.
    let mut rest = segments.as_slice();
    let management = match rest.split_last() {
        Some((last, init)) if last.eq_ignore_ascii_case(MANAGEMENT) => {
            rest = init;
            true
        }
        _ => false,
    };
    let sub = match rest {
        [init @ .., transfer, dead_letter]
            if transfer.eq_ignore_ascii_case(TRANSFER)
                && dead_letter.eq_ignore_ascii_case(DEAD_LETTER) =>
        {
            rest = init;
            SubQueue::TransferDeadLetter
        }
        [init @ .., dead_letter] if dead_letter.eq_ignore_ascii_case(DEAD_LETTER) => {
            rest = init;
            SubQueue::DeadLetter
        }
        _ => SubQueue::Main,
    };
    if rest.is_empty() {
        return Err(AddressError::MissingEntity(address.to_owned()));
    }
    // Whatever is left must be plain entity names: a '$' segment here is misplaced.
    if let Some(segment) = rest.iter().find(|segment| segment.starts_with('$')) {
        return Err(AddressError::UnexpectedSystemSegment {
            address: address.to_owned(),
            segment: (*segment).to_owned(),
        });
    }

    let path = entity_path(rest, address)?;
    Ok(if management {
        Address::Management { path, sub }
    } else {
        Address::Entity { path, sub }
    })
}

/// Joins the entity segments, spelling the `Subscriptions` keyword canonically so that
/// `t1/subscriptions/s1` and `t1/Subscriptions/s1` name the same thing.
fn entity_path(segments: &[&str], address: &str) -> Result<String, AddressError> {
    let keyword = segments
        .iter()
        .position(|segment| segment.eq_ignore_ascii_case(SUBSCRIPTIONS));
    match keyword {
        None => Ok(segments.join("/")),
        Some(index) => {
            let topic = &segments[..index];
            let subscription = &segments[index + 1..];
            if topic.is_empty() || subscription.len() != 1 {
                return Err(AddressError::IncompleteSubscription(address.to_owned()));
            }
            Ok(format!(
                "{}/{SUBSCRIPTIONS}/{}",
                topic.join("/"),
                subscription.join("/")
            ))
        }
    }
}

/// Splits a subscription path `topic/Subscriptions/sub` into `(topic, sub)`; `None` for a queue
/// or topic path.
pub fn split_subscription(path: &str) -> Option<(&str, &str)> {
    let (head, subscription) = path.rsplit_once('/')?;
    let (topic, keyword) = head.rsplit_once('/')?;
    keyword
        .eq_ignore_ascii_case(SUBSCRIPTIONS)
        .then_some((topic, subscription))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn entity(path: &str, sub: SubQueue) -> Address {
        Address::Entity {
            path: path.to_owned(),
            sub,
        }
    }

    fn management(path: &str, sub: SubQueue) -> Address {
        Address::Management {
            path: path.to_owned(),
            sub,
        }
    }

    #[test]
    fn python_and_js_forms_agree() {
        for address in ["amqps://localhost:5672/q1", "q1", "/q1", "sb://host/q1/"] {
            assert_eq!(
                parse(address),
                Ok(entity("q1", SubQueue::Main)),
                "{address}"
            );
        }
    }

    #[test]
    fn cbs_in_either_form() {
        assert_eq!(parse("$cbs"), Ok(Address::Cbs));
        assert_eq!(parse("amqps://localhost:5672/$cbs"), Ok(Address::Cbs));
        assert_eq!(parse("$CBS"), Ok(Address::Cbs));
    }

    #[test]
    fn sub_queues() {
        assert_eq!(
            parse("amqps://localhost:5672/q1/$DeadLetterQueue"),
            Ok(entity("q1", SubQueue::DeadLetter))
        );
        assert_eq!(
            parse("q1/$deadletterqueue"),
            Ok(entity("q1", SubQueue::DeadLetter))
        );
        assert_eq!(
            parse("q1/$Transfer/$DeadLetterQueue"),
            Ok(entity("q1", SubQueue::TransferDeadLetter))
        );
    }

    #[test]
    fn management_nodes() {
        assert_eq!(
            parse("q1/$management"),
            Ok(management("q1", SubQueue::Main))
        );
        assert_eq!(
            parse("amqps://localhost:5672/q1/$DeadLetterQueue/$management"),
            Ok(management("q1", SubQueue::DeadLetter))
        );
        assert_eq!(
            parse("q1/$Transfer/$DeadLetterQueue/$Management"),
            Ok(management("q1", SubQueue::TransferDeadLetter))
        );
        assert_eq!(
            parse("t1/Subscriptions/s1/$management"),
            Ok(management("t1/Subscriptions/s1", SubQueue::Main))
        );
    }

    #[test]
    fn subscriptions_keyword_is_case_insensitive_and_canonicalised() {
        assert_eq!(
            parse("amqps://localhost:5672/t1/Subscriptions/s1"),
            Ok(entity("t1/Subscriptions/s1", SubQueue::Main))
        );
        assert_eq!(
            parse("mytopic/subscriptions/Sub/$deadletterqueue"),
            Ok(entity("mytopic/Subscriptions/Sub", SubQueue::DeadLetter))
        );
    }

    #[test]
    fn nested_entity_paths_are_kept() {
        assert_eq!(
            parse("amqps://h/site1/myQueue"),
            Ok(entity("site1/myQueue", SubQueue::Main))
        );
        assert_eq!(
            parse("site1/myTopic/Subscriptions/s1/$DeadLetterQueue/$management"),
            Ok(management(
                "site1/myTopic/Subscriptions/s1",
                SubQueue::DeadLetter
            ))
        );
    }

    #[test]
    fn display_round_trips() {
        for address in [
            "$cbs",
            "q1",
            "site1/q1/$DeadLetterQueue",
            "q1/$Transfer/$DeadLetterQueue/$management",
            "t1/Subscriptions/s1/$DeadLetterQueue",
        ] {
            let parsed = parse(address).unwrap();
            assert_eq!(parsed.to_string(), address);
            assert_eq!(parse(&parsed.to_string()), Ok(parsed));
        }
    }

    #[test]
    fn rejects_malformed_addresses() {
        assert_eq!(parse(""), Err(AddressError::Empty));
        assert_eq!(parse("amqps://localhost:5672"), Err(AddressError::Empty));
        assert_eq!(parse("amqps://localhost:5672/"), Err(AddressError::Empty));
        assert!(matches!(parse("a//b"), Err(AddressError::EmptySegment(_))));
        assert!(matches!(
            parse("$DeadLetterQueue"),
            Err(AddressError::MissingEntity(_))
        ));
        assert!(matches!(
            parse("$management"),
            Err(AddressError::MissingEntity(_))
        ));
        assert!(matches!(
            parse("q1/$Transfer"),
            Err(AddressError::UnexpectedSystemSegment { segment, .. }) if segment == "$Transfer"
        ));
        assert!(matches!(
            parse("q1/$DeadLetterQueue/extra"),
            Err(AddressError::UnexpectedSystemSegment { .. })
        ));
        assert!(matches!(
            parse("q1/$management/$DeadLetterQueue"),
            Err(AddressError::UnexpectedSystemSegment { .. })
        ));
        assert!(matches!(
            parse("t1/Subscriptions"),
            Err(AddressError::IncompleteSubscription(_))
        ));
        assert!(matches!(
            parse("Subscriptions/s1"),
            Err(AddressError::IncompleteSubscription(_))
        ));
        assert!(matches!(
            parse("t1/Subscriptions/s1/extra"),
            Err(AddressError::IncompleteSubscription(_))
        ));
    }

    #[test]
    fn split_subscription_paths() {
        assert_eq!(
            split_subscription("t1/Subscriptions/s1"),
            Some(("t1", "s1"))
        );
        assert_eq!(
            split_subscription("site/t1/subscriptions/s1"),
            Some(("site/t1", "s1"))
        );
        assert_eq!(split_subscription("site1/q1"), None);
        assert_eq!(split_subscription("q1"), None);
    }
}

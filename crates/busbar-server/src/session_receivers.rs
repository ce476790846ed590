//! Session receivers as the SDKs open them: the session filter on the attach's source
//! (a session id, or null for the next available session), how long to wait for one, and
//! the attach reply that hands the session over (the source echoed with the chosen id, and
//! the session lock's expiry in .NET ticks).

use busbar_amqp::engine::AttachReply;
use busbar_amqp::performative::{Attach, Source};
use busbar_amqp::value::Value;
use busbar_core::MessageSessionGrant;

pub const SESSION_FILTER: &str = "com.microsoft:session-filter";
const LOCKED_UNTIL_UTC: &str = "com.microsoft:locked-until-utc";
const TIMEOUT: &str = "com.microsoft:timeout";

/// How long a receiver waits for the next available session when it names no timeout
/// (the service's limit is about a minute).
pub const DEFAULT_WAIT_MS: i64 = 60_000;

/// .NET ticks (100 ns since 0001-01-01) at the Unix epoch.
const TICKS_AT_UNIX_EPOCH: i64 = 621_355_968_000_000_000;

/// What a receiver's attach asks for: `None` without a session filter (a plain receiver),
/// `Some(None)` for the next available session, `Some(Some(id))` for session `id`.
pub fn requested_session(attach: &Attach) -> Option<Option<String>> {
    let filter = attach.source.as_ref()?.filter.as_ref()?;
    let value = filter.map_get(SESSION_FILTER)?;
    // The SDKs send the id as a plain string; a described value is tolerated.
    let value = match value {
        Value::Described(_, inner) => inner,
        other => other,
    };
    Some(value.as_str().map(str::to_owned))
}

/// The receiver's `com.microsoft:timeout` attach property, in ms.
pub fn wait_ms(attach: &Attach) -> Option<i64> {
    attach
        .properties
        .as_ref()?
        .map_get(TIMEOUT)?
        .as_i64()
        .filter(|ms| *ms > 0)
}

pub fn dotnet_ticks(unix_ms: i64) -> i64 {
    unix_ms
        .saturating_mul(10_000)
        .saturating_add(TICKS_AT_UNIX_EPOCH)
}

/// The attach reply for a granted session: the client's source with the filter naming the
/// session (the SDKs read the id back from it), and the lock expiry as an AMQP long of
/// .NET ticks (a timestamp or a missing property breaks the JS SDK).
pub fn attach_reply(source: Option<&Source>, grant: &MessageSessionGrant) -> AttachReply {
    let mut source = source.cloned().unwrap_or_default();
    let mut filter = match source.filter.take() {
        Some(Value::Map(entries)) => entries,
        _ => Vec::new(),
    };
    filter.retain(|(key, _)| key.as_str() != Some(SESSION_FILTER));
    filter.push((
        Value::sym(SESSION_FILTER),
        Value::String(grant.session_id.to_string()),
    ));
    source.filter = Some(Value::Map(filter));
    AttachReply {
        source: Some(source),
        initial_delivery_count: Some(0),
        properties: Some(Value::Map(vec![(
            Value::sym(LOCKED_UNTIL_UTC),
            Value::Long(dotnet_ticks(grant.locked_until_ms)),
        )])),
        ..AttachReply::default()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn attach_with(filter: Option<Value>, properties: Option<Value>) -> Attach {
        Attach {
            name: "r".into(),
            handle: 0,
            role: busbar_amqp::performative::Role::Receiver,
            snd_settle_mode: Default::default(),
            rcv_settle_mode: Default::default(),
            source: Some(Source {
                address: Some("q".into()),
                filter,
                ..Source::default()
            }),
            target: None,
            unsettled: None,
            incomplete_unsettled: false,
            initial_delivery_count: None,
            max_message_size: None,
            offered_capabilities: None,
            desired_capabilities: None,
            properties,
        }
    }

    #[test]
    fn reads_the_session_filter_and_timeout() {
        let specific = attach_with(
            Some(Value::Map(vec![(
                Value::sym(SESSION_FILTER),
                Value::String("A".into()),
            )])),
            Some(Value::Map(vec![(Value::sym(TIMEOUT), Value::Uint(5000))])),
        );
        assert_eq!(requested_session(&specific), Some(Some("A".to_owned())));
        assert_eq!(wait_ms(&specific), Some(5000));
        let next = attach_with(
            Some(Value::Map(vec![(Value::sym(SESSION_FILTER), Value::Null)])),
            None,
        );
        assert_eq!(requested_session(&next), Some(None));
        assert_eq!(wait_ms(&next), None);
        assert_eq!(requested_session(&attach_with(None, None)), None);
    }

    #[test]
    fn the_reply_names_the_session_and_its_lock_in_ticks() {
        let attach = attach_with(
            Some(Value::Map(vec![(Value::sym(SESSION_FILTER), Value::Null)])),
            None,
        );
        let grant = MessageSessionGrant {
            session_id: "B".into(),
            locked_until_ms: 1_000,
        };
        let reply = attach_reply(attach.source.as_ref(), &grant);
        let source = reply.source.unwrap();
        assert_eq!(source.address.as_deref(), Some("q"));
        assert_eq!(
            source.filter.unwrap().map_get(SESSION_FILTER),
            Some(&Value::String("B".into()))
        );
        assert_eq!(
            reply.properties.unwrap().map_get(LOCKED_UNTIL_UTC),
            Some(&Value::Long(621_355_968_010_000_000))
        );
    }
}

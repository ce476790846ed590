//! AMQP error conditions the broker sends, and how they map onto `$management` status codes.
//!
//! The SDKs decide retry behaviour and the exception type from the condition alone (and, for
//! `amqp:not-found` in JS, from the description's wording), so these strings must be exact.

/// Unknown entity or node: link-attach refusal, `$management` 404.
pub const NOT_FOUND: &str = "amqp:not-found";
/// Missing, expired or insufficient token.
pub const UNAUTHORIZED_ACCESS: &str = "amqp:unauthorized-access";
/// Quota or entity size reached.
pub const RESOURCE_LIMIT_EXCEEDED: &str = "amqp:resource-limit-exceeded";
/// A message or batch is larger than the link's max-message-size.
pub const MESSAGE_SIZE_EXCEEDED: &str = "amqp:link:message-size-exceeded";
/// The operation is not valid in the current state.
pub const NOT_ALLOWED: &str = "amqp:not-allowed";
/// The operation is not supported.
pub const NOT_IMPLEMENTED: &str = "amqp:not-implemented";
/// A broker bug; the SDKs retry it.
pub const INTERNAL_ERROR: &str = "amqp:internal-error";
/// The peer sent something that could not be decoded.
pub const DECODE_ERROR: &str = "amqp:decode-error";
/// A field had a value the broker can't accept.
pub const INVALID_FIELD: &str = "amqp:invalid-field";
/// The broker forcibly detaches a link (e.g. on shutdown); the SDKs reopen it.
pub const LINK_DETACH_FORCED: &str = "amqp:link:detach-forced";
/// The link was stolen by another attach with the same name.
pub const LINK_STOLEN: &str = "amqp:link:stolen";
/// The broker forcibly closes a connection; the SDKs reconnect.
pub const CONNECTION_FORCED: &str = "amqp:connection:forced";
/// The peer violated the frame format.
pub const CONNECTION_FRAMING_ERROR: &str = "amqp:connection:framing-error";
/// A session-level window was violated.
pub const SESSION_WINDOW_VIOLATION: &str = "amqp:session:window-violation";
/// A link-level credit rule was violated.
pub const LINK_TRANSFER_LIMIT_EXCEEDED: &str = "amqp:link:transfer-limit-exceeded";

/// Settle or renew with an expired or unknown lock token.
pub const MESSAGE_LOCK_LOST: &str = "com.microsoft:message-lock-lost";
/// The session lock expired or was never held.
pub const SESSION_LOCK_LOST: &str = "com.microsoft:session-lock-lost";
/// The requested session is locked by another receiver.
pub const SESSION_CANNOT_BE_LOCKED: &str = "com.microsoft:session-cannot-be-locked";
/// Accept-next-session or another operation timed out.
pub const TIMEOUT: &str = "com.microsoft:timeout";
/// A deferred or scheduled sequence number doesn't exist.
pub const MESSAGE_NOT_FOUND: &str = "com.microsoft:message-not-found";
/// E.g. adding a rule whose name is taken.
pub const ENTITY_ALREADY_EXISTS: &str = "com.microsoft:entity-already-exists";
/// A request value outside its allowed range.
pub const ARGUMENT_OUT_OF_RANGE: &str = "com.microsoft:argument-out-of-range";
/// A malformed request value.
pub const ARGUMENT_ERROR: &str = "com.microsoft:argument-error";
/// The entity is disabled.
pub const ENTITY_DISABLED: &str = "com.microsoft:entity-disabled";
/// Throttling; the SDKs back off and retry.
pub const SERVER_BUSY: &str = "com.microsoft:server-busy";
/// A precondition on the request failed.
pub const PRECONDITION_FAILED: &str = "com.microsoft:precondition-failed";
/// Authentication failed (sent by some services instead of unauthorized-access).
pub const AUTH_FAILED: &str = "com.microsoft:auth-failed";
/// Not an error: the condition a client puts inside `rejected` to ask for dead-lettering.
pub const DEAD_LETTER: &str = "com.microsoft:dead-letter";

/// The `$management` `statusCode` that goes with an error condition, following the
/// condition-to-status mapping the JS SDK uses. Unknown conditions map to 500.
pub fn management_status(condition: &str) -> i32 {
    match condition {
        ARGUMENT_ERROR
        | ARGUMENT_OUT_OF_RANGE
        | NOT_ALLOWED
        | DECODE_ERROR
        | INVALID_FIELD
        | ENTITY_DISABLED => 400,
        UNAUTHORIZED_ACCESS | AUTH_FAILED => 401,
        RESOURCE_LIMIT_EXCEEDED | MESSAGE_SIZE_EXCEEDED => 403,
        NOT_FOUND | MESSAGE_NOT_FOUND => 404,
        TIMEOUT => 408,
        ENTITY_ALREADY_EXISTS => 409,
        MESSAGE_LOCK_LOST | SESSION_LOCK_LOST | SESSION_CANNOT_BE_LOCKED | LINK_STOLEN => 410,
        PRECONDITION_FAILED => 412,
        NOT_IMPLEMENTED => 501,
        SERVER_BUSY => 503,
        _ => 500,
    }
}

/// The description for an unknown entity. JS reports `MessagingEntityNotFound` only when the
/// description matches `The messaging entity .* could not be found`; anything else becomes a
/// generic communication error. `host` is the namespace host as the client knows it (e.g.
/// `localhost:5672`), `path` the entity path.
pub fn entity_not_found_description(host: &str, path: &str) -> String {
    format!(
        "The messaging entity 'sb://{host}/{}' could not be found.",
        path.trim_start_matches('/')
    )
}

/// The description of [`ENTITY_DISABLED`] for an entity whose status (`Disabled`,
/// `SendDisabled` or `ReceiveDisabled`) refuses the operation, as Service Bus words it.
/// `entity` names it as the client knows it (`sb://host/path` on a link).
pub fn entity_disabled_description(entity: &str, status: &str) -> String {
    match status {
        "SendDisabled" => {
            format!("Messaging entity '{entity}' is currently disabled for send operations.")
        }
        "ReceiveDisabled" => {
            format!("Messaging entity '{entity}' is currently disabled for receive operations.")
        }
        _ => format!("Messaging entity '{entity}' is currently disabled."),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn management_status_follows_the_sdk_mapping() {
        let expected = [
            (ARGUMENT_OUT_OF_RANGE, 400),
            (ARGUMENT_ERROR, 400),
            (NOT_ALLOWED, 400),
            (UNAUTHORIZED_ACCESS, 401),
            (RESOURCE_LIMIT_EXCEEDED, 403),
            (MESSAGE_SIZE_EXCEEDED, 403),
            (NOT_FOUND, 404),
            (MESSAGE_NOT_FOUND, 404),
            (TIMEOUT, 408),
            (ENTITY_ALREADY_EXISTS, 409),
            (MESSAGE_LOCK_LOST, 410),
            (SESSION_LOCK_LOST, 410),
            (SESSION_CANNOT_BE_LOCKED, 410),
            (INTERNAL_ERROR, 500),
            (NOT_IMPLEMENTED, 501),
            (SERVER_BUSY, 503),
            ("vendor:something-new", 500),
        ];
        for (condition, status) in expected {
            assert_eq!(management_status(condition), status, "{condition}");
        }
    }

    #[test]
    fn conditions_are_spelled_as_the_sdks_expect() {
        assert_eq!(MESSAGE_LOCK_LOST, "com.microsoft:message-lock-lost");
        assert_eq!(MESSAGE_SIZE_EXCEEDED, "amqp:link:message-size-exceeded");
        assert_eq!(LINK_DETACH_FORCED, "amqp:link:detach-forced");
        assert_eq!(CONNECTION_FRAMING_ERROR, "amqp:connection:framing-error");
    }

    #[test]
    fn not_found_description_matches_the_js_pattern() {
        let text = entity_not_found_description("localhost:5672", "q1/$DeadLetterQueue");
        assert_eq!(
            text,
            "The messaging entity 'sb://localhost:5672/q1/$DeadLetterQueue' could not be found."
        );
        assert!(text.starts_with("The messaging entity "));
        assert!(text.ends_with(" could not be found."));
        assert_eq!(
            entity_not_found_description("h", "/q2"),
            "The messaging entity 'sb://h/q2' could not be found."
        );
    }
}

//! Every authorization decision of the dialect, in one table: which right each kind of link
//! and each `$management` operation needs, and whether a connection's tokens grant it.
//!
//! The server asks [`authorize`] before it attaches a link and before it runs any
//! `$management` request; nothing else decides rights. An operation missing from
//! [`MANAGEMENT_RIGHTS`] needs `Manage`, so a new operation is closed until it is listed.

use crate::sas::Claims;

/// A right a shared access policy can grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Right {
    /// Send messages, schedule and cancel scheduled messages.
    Send,
    /// Receive, peek, settle, renew locks, and everything about message sessions.
    Listen,
    /// Change the entity: its rules. `Manage` also implies `Send` and `Listen`.
    Manage,
    /// Any valid token for the path, whatever its rights: the `$management` link itself,
    /// whose requests are checked one by one.
    AnyToken,
}

/// What a connection asks to do on an entity path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action<'a> {
    /// Attach a link that sends to a queue or topic.
    SendLink,
    /// Attach a link that receives from a queue, a subscription or a dead-letter queue.
    ReceiveLink,
    /// Attach a request or response link on an entity's `$management` node.
    ManagementLink,
    /// Run one `$management` operation (its `operation` property).
    Management(&'a str),
    /// Send messages through the REST runtime API.
    HttpSend,
    /// Receive, settle and renew locks through the REST runtime API.
    HttpReceive,
    /// Read the HTTP API: entity listings, counts, metrics.
    AdminRead,
    /// Change entities through the HTTP API.
    AdminWrite,
}

/// The right each `$management` operation needs, as Service Bus documents them.
pub const MANAGEMENT_RIGHTS: &[(&str, Right)] = &[
    ("com.microsoft:schedule-message", Right::Send),
    ("com.microsoft:cancel-scheduled-message", Right::Send),
    ("com.microsoft:renew-lock", Right::Listen),
    ("com.microsoft:peek-message", Right::Listen),
    ("com.microsoft:receive-by-sequence-number", Right::Listen),
    ("com.microsoft:update-disposition", Right::Listen),
    ("com.microsoft:renew-session-lock", Right::Listen),
    ("com.microsoft:get-session-state", Right::Listen),
    ("com.microsoft:set-session-state", Right::Listen),
    ("com.microsoft:get-message-sessions", Right::Listen),
    ("com.microsoft:add-rule", Right::Manage),
    ("com.microsoft:remove-rule", Right::Manage),
    ("com.microsoft:enumerate-rules", Right::Manage),
];

/// The right `action` needs.
pub fn required_right(action: Action<'_>) -> Right {
    match action {
        Action::SendLink => Right::Send,
        Action::ReceiveLink => Right::Listen,
        Action::ManagementLink => Right::AnyToken,
        Action::HttpSend => Right::Send,
        Action::HttpReceive => Right::Listen,
        Action::AdminRead => Right::Listen,
        Action::AdminWrite => Right::Manage,
        Action::Management(operation) => MANAGEMENT_RIGHTS
            .iter()
            .find(|(name, _)| *name == operation)
            .map_or(Right::Manage, |(_, right)| *right),
    }
}

/// Whether a token's claims include `right` (whatever the path).
pub fn claims_grant(claims: &Claims, right: Right) -> bool {
    match right {
        Right::Send => claims.rights.can_send(),
        Right::Listen => claims.rights.can_listen(),
        Right::Manage => claims.rights.can_manage(),
        Right::AnyToken => true,
    }
}

/// Why a request was refused: the path and the right that no token granted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Unauthorized access to '{path}': a token granting '{right:?}' for it is required.")]
pub struct Denied {
    pub path: String,
    pub right: Right,
}

/// Allows `action` on `path` if one of `claims` covers the path, is not expired (allowing
/// `grace_secs` of clock skew) and grants the right the action needs.
pub fn authorize(
    claims: &[Claims],
    path: &str,
    action: Action<'_>,
    now_unix_secs: u64,
    grace_secs: u64,
) -> Result<(), Denied> {
    let right = required_right(action);
    let granted = claims.iter().any(|c| {
        c.covers(path) && !c.is_expired(now_unix_secs, grace_secs) && claims_grant(c, right)
    });
    if granted {
        Ok(())
    } else {
        Err(Denied {
            path: path.to_owned(),
            right,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::sas::Rights;

    fn claims(audience: &str, rights: Rights) -> Claims {
        Claims {
            audience: audience.to_owned(),
            key_name: "k".to_owned(),
            rights,
            expires_at: 1_000,
        }
    }

    const SEND: Rights = Rights {
        manage: false,
        send: true,
        listen: false,
    };
    const LISTEN: Rights = Rights {
        manage: false,
        send: false,
        listen: true,
    };
    const MANAGE: Rights = Rights {
        manage: true,
        send: false,
        listen: false,
    };

    fn allowed(rights: Rights, action: Action<'_>) -> bool {
        authorize(&[claims("q1", rights)], "q1", action, 500, 0).is_ok()
    }

    #[test]
    fn send_only_tokens_send_and_schedule_but_never_read_or_change_rules() {
        assert!(allowed(SEND, Action::SendLink));
        assert!(allowed(
            SEND,
            Action::Management("com.microsoft:schedule-message")
        ));
        assert!(allowed(
            SEND,
            Action::Management("com.microsoft:cancel-scheduled-message")
        ));
        assert!(!allowed(SEND, Action::ReceiveLink));
        for (operation, right) in MANAGEMENT_RIGHTS {
            if *right != Right::Send {
                assert!(!allowed(SEND, Action::Management(operation)), "{operation}");
            }
        }
    }

    #[test]
    fn listen_only_tokens_read_and_settle_but_never_send_or_schedule() {
        assert!(allowed(LISTEN, Action::ReceiveLink));
        assert!(!allowed(LISTEN, Action::SendLink));
        for (operation, right) in MANAGEMENT_RIGHTS {
            assert_eq!(
                allowed(LISTEN, Action::Management(operation)),
                *right == Right::Listen,
                "{operation}"
            );
        }
    }

    #[test]
    fn manage_implies_everything() {
        assert!(allowed(MANAGE, Action::SendLink));
        assert!(allowed(MANAGE, Action::ReceiveLink));
        for (operation, _) in MANAGEMENT_RIGHTS {
            assert!(
                allowed(MANAGE, Action::Management(operation)),
                "{operation}"
            );
        }
    }

    #[test]
    fn the_http_api_reads_with_listen_and_writes_with_manage() {
        assert!(allowed(LISTEN, Action::AdminRead));
        assert!(!allowed(SEND, Action::AdminRead));
        assert!(!allowed(LISTEN, Action::AdminWrite));
        assert!(allowed(MANAGE, Action::AdminWrite));
        assert!(allowed(MANAGE, Action::AdminRead));
    }

    #[test]
    fn the_rest_runtime_api_sends_with_send_and_receives_with_listen() {
        assert!(allowed(SEND, Action::HttpSend));
        assert!(!allowed(SEND, Action::HttpReceive));
        assert!(allowed(LISTEN, Action::HttpReceive));
        assert!(!allowed(LISTEN, Action::HttpSend));
        assert!(allowed(MANAGE, Action::HttpSend) && allowed(MANAGE, Action::HttpReceive));
    }

    #[test]
    fn unlisted_operations_need_manage() {
        assert_eq!(
            required_right(Action::Management("com.microsoft:something-new")),
            Right::Manage
        );
        assert!(!allowed(
            Rights {
                manage: false,
                send: true,
                listen: true
            },
            Action::Management("com.microsoft:something-new")
        ));
    }

    #[test]
    fn the_management_link_needs_a_token_for_the_path_only() {
        assert!(allowed(Rights::default(), Action::ManagementLink));
        assert!(authorize(&[], "q1", Action::ManagementLink, 500, 0).is_err());
    }

    #[test]
    fn tokens_for_other_paths_or_expired_tokens_grant_nothing() {
        let other = [claims("q2", Rights::ALL)];
        assert!(authorize(&other, "q1", Action::SendLink, 500, 0).is_err());
        let expired = [claims("q1", Rights::ALL)];
        assert!(authorize(&expired, "q1", Action::SendLink, 1_000, 0).is_err());
        assert!(authorize(&expired, "q1", Action::SendLink, 1_000, 10).is_ok());
    }

    #[test]
    fn a_refusal_names_the_path_and_the_right() {
        let denied = authorize(&[], "q1/$management", Action::SendLink, 0, 0).unwrap_err();
        let text = denied.to_string();
        assert!(
            text.contains("'q1/$management'") && text.contains("Send"),
            "{text}"
        );
    }
}

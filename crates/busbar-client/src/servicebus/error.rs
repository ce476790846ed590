//! Service Bus errors: one kind per condition the service reports, whether retrying may help,
//! and the retry policy applied to the operations that are safe to repeat.

use std::fmt;
use std::future::Future;
use std::time::Duration;

use crate::error::{Error, RemoteError};

/// What went wrong, in Service Bus's terms (the official SDKs' error names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The message's lock expired or is unknown (`com.microsoft:message-lock-lost`).
    MessageLockLost,
    /// The session's lock expired or is not held (`com.microsoft:session-lock-lost`).
    SessionLockLost,
    /// Another receiver holds the session (`com.microsoft:session-cannot-be-locked`).
    SessionCannotBeLocked,
    /// No deferred or scheduled message has that sequence number
    /// (`com.microsoft:message-not-found`).
    MessageNotFound,
    /// The queue, topic, subscription or rule does not exist (`amqp:not-found`).
    MessagingEntityNotFound,
    /// The entity is disabled (`com.microsoft:entity-disabled`).
    MessagingEntityDisabled,
    /// The entity is full or a namespace limit was reached (`amqp:resource-limit-exceeded`).
    QuotaExceeded,
    /// The message or batch is larger than the entity accepts
    /// (`amqp:link:message-size-exceeded`).
    MessageSizeExceeded,
    /// The credentials are wrong, expired or lack the right (`amqp:unauthorized-access`,
    /// a refused token).
    Unauthorized,
    /// The service is throttling (`com.microsoft:server-busy`).
    ServiceBusy,
    /// The operation did not complete in time (`com.microsoft:timeout`, or no answer within
    /// the try timeout).
    ServiceTimeout,
    /// The connection or link failed or was closed by the service.
    ServiceCommunication,
    /// The rule (or entity) already exists (`com.microsoft:entity-already-exists`).
    MessagingEntityAlreadyExists,
    /// The request was refused as invalid, or the client was used wrongly.
    InvalidArgument,
    /// Anything else.
    Other,
}

impl ErrorKind {
    /// The kind an AMQP error condition stands for.
    pub fn from_condition(condition: &str) -> ErrorKind {
        match condition {
            "com.microsoft:message-lock-lost" => ErrorKind::MessageLockLost,
            "com.microsoft:session-lock-lost" => ErrorKind::SessionLockLost,
            "com.microsoft:session-cannot-be-locked" => ErrorKind::SessionCannotBeLocked,
            "com.microsoft:message-not-found" => ErrorKind::MessageNotFound,
            "amqp:not-found" => ErrorKind::MessagingEntityNotFound,
            "com.microsoft:entity-disabled" => ErrorKind::MessagingEntityDisabled,
            "amqp:resource-limit-exceeded" => ErrorKind::QuotaExceeded,
            "amqp:link:message-size-exceeded" => ErrorKind::MessageSizeExceeded,
            "amqp:unauthorized-access" | "com.microsoft:auth-failed" => ErrorKind::Unauthorized,
            "com.microsoft:server-busy" => ErrorKind::ServiceBusy,
            "com.microsoft:timeout" => ErrorKind::ServiceTimeout,
            "com.microsoft:entity-already-exists" => ErrorKind::MessagingEntityAlreadyExists,
            "com.microsoft:argument-out-of-range"
            | "com.microsoft:argument-error"
            | "amqp:invalid-field"
            | "amqp:not-allowed"
            | "amqp:decode-error" => ErrorKind::InvalidArgument,
            "amqp:link:detach-forced"
            | "amqp:connection:forced"
            | "amqp:link:stolen"
            | "amqp:internal-error" => ErrorKind::ServiceCommunication,
            _ => ErrorKind::Other,
        }
    }

    /// Whether trying again later may succeed: throttling, timeouts and failed
    /// connections, as the official SDKs retry them.
    pub fn is_transient(self) -> bool {
        matches!(
            self,
            ErrorKind::ServiceBusy | ErrorKind::ServiceTimeout | ErrorKind::ServiceCommunication
        )
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// An error from a Service Bus operation.
///
/// ```
/// use busbar_client::{ErrorKind, ServiceBusError};
///
/// let error = ServiceBusError::from_condition("com.microsoft:server-busy", "slow down");
/// assert_eq!(error.kind, ErrorKind::ServiceBusy);
/// assert!(error.is_transient());
/// ```
#[derive(Debug, Clone, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct ServiceBusError {
    /// What went wrong.
    pub kind: ErrorKind,
    /// The details.
    pub message: String,
    /// The AMQP error condition the service sent, when it sent one.
    pub condition: Option<String>,
    /// The transport-level error behind it, if any.
    #[source]
    pub source: Option<Error>,
}

impl ServiceBusError {
    /// An error of `kind` without an underlying cause.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        ServiceBusError {
            kind,
            message: message.into(),
            condition: None,
            source: None,
        }
    }

    /// The error an AMQP condition (with its description) stands for.
    pub fn from_condition(condition: &str, description: impl Into<String>) -> Self {
        ServiceBusError {
            kind: ErrorKind::from_condition(condition),
            message: description.into(),
            condition: Some(condition.to_owned()),
            source: None,
        }
    }

    pub(crate) fn from_remote(remote: &RemoteError) -> Self {
        Self::from_condition(
            &remote.condition,
            remote
                .description
                .clone()
                .unwrap_or_else(|| remote.condition.clone()),
        )
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidArgument, message)
    }

    /// Whether retrying the operation may help (see [`ErrorKind::is_transient`]).
    pub fn is_transient(&self) -> bool {
        self.kind.is_transient()
    }
}

impl From<Error> for ServiceBusError {
    fn from(error: Error) -> Self {
        let (kind, remote) = match &error {
            Error::ConnectionClosed(remote)
            | Error::SessionEnded(remote)
            | Error::LinkRefused(remote)
            | Error::LinkDetached(remote) => match remote {
                Some(remote) => (ErrorKind::from_condition(&remote.condition), Some(remote)),
                None => (ErrorKind::ServiceCommunication, None),
            },
            Error::Io(_)
            | Error::WebSocket(_)
            | Error::Closed
            | Error::IdleTimeout
            | Error::Codec(_)
            | Error::Protocol(_) => (ErrorKind::ServiceCommunication, None),
            Error::Timeout => (ErrorKind::ServiceTimeout, None),
            Error::Sasl(_) | Error::SaslMechanism(_) => (ErrorKind::Unauthorized, None),
            Error::PutToken { status, .. } => (
                match status {
                    401 | 403 => ErrorKind::Unauthorized,
                    404 => ErrorKind::MessagingEntityNotFound,
                    _ => ErrorKind::Other,
                },
                None,
            ),
            Error::Tls(_) => (ErrorKind::Other, None),
            Error::AlreadySettled | Error::InvalidArgument(_) => (ErrorKind::InvalidArgument, None),
        };
        ServiceBusError {
            kind,
            message: error.to_string(),
            condition: remote.map(|r| r.condition.clone()),
            source: Some(error),
        }
    }
}

/// The result of a Service Bus operation.
pub type ServiceBusResult<T> = std::result::Result<T, ServiceBusError>;

/// How the delay grows between attempts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RetryMode {
    /// `delay`, then twice as long each attempt, up to `max_delay`, with jitter.
    #[default]
    Exponential,
    /// `delay` every time.
    Fixed,
}

/// The retry policy for operations that are safe to repeat (sends, receives' link
/// attaches, management requests), applied to transient errors only.
///
/// ```
/// use std::time::Duration;
/// use busbar_client::{RetryMode, RetryOptions};
///
/// let retry = RetryOptions { max_retries: 5, mode: RetryMode::Fixed, ..RetryOptions::default() };
/// assert_eq!(retry.delay_for(3), Duration::from_millis(800));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryOptions {
    /// Exponential or fixed delays.
    pub mode: RetryMode,
    /// Attempts after the first; 0 disables retries.
    pub max_retries: u32,
    /// The first delay (the only one in fixed mode).
    pub delay: Duration,
    /// The longest delay between attempts.
    pub max_delay: Duration,
    /// How long one attempt may take before it counts as a [`ErrorKind::ServiceTimeout`].
    pub try_timeout: Duration,
}

impl Default for RetryOptions {
    fn default() -> Self {
        RetryOptions {
            mode: RetryMode::Exponential,
            max_retries: 3,
            delay: Duration::from_millis(800),
            max_delay: Duration::from_secs(60),
            try_timeout: Duration::from_secs(60),
        }
    }
}

impl RetryOptions {
    /// The pause before retry number `retry` (1 for the first retry), without jitter.
    pub fn delay_for(&self, retry: u32) -> Duration {
        let delay = match self.mode {
            RetryMode::Fixed => self.delay,
            RetryMode::Exponential => self
                .delay
                .saturating_mul(2u32.saturating_pow(retry.saturating_sub(1))),
        };
        delay.min(self.max_delay)
    }

    /// Runs `attempt` until it succeeds, fails with an error that is not transient, or the
    /// retries are used up; each attempt is limited to `try_timeout`.
    pub(crate) async fn run<T, F, Fut>(&self, operation: &str, attempt: F) -> ServiceBusResult<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = ServiceBusResult<T>>,
    {
        self.run_with(operation, Some(self.try_timeout), None, attempt)
            .await
    }

    /// [`RetryOptions::run`] with another limit per attempt (`None`: none, for operations
    /// whose wait the service bounds itself), and no retry that would start after
    /// `deadline`.
    pub(crate) async fn run_with<T, F, Fut>(
        &self,
        operation: &str,
        try_timeout: Option<Duration>,
        deadline: Option<tokio::time::Instant>,
        mut attempt: F,
    ) -> ServiceBusResult<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = ServiceBusResult<T>>,
    {
        let mut retry = 0;
        loop {
            let result = match try_timeout {
                None => attempt().await,
                Some(limit) => match tokio::time::timeout(limit, attempt()).await {
                    Ok(result) => result,
                    Err(_) => Err(ServiceBusError::new(
                        ErrorKind::ServiceTimeout,
                        format!("{operation} did not complete within {limit:?}"),
                    )),
                },
            };
            match result {
                Err(error) if error.is_transient() && retry < self.max_retries => {
                    let delay = jittered(self.delay_for(retry + 1), self.mode);
                    if deadline.is_some_and(|d| tokio::time::Instant::now() + delay >= d) {
                        return Err(error);
                    }
                    retry += 1;
                    tracing::debug!(%error, retry, ?delay, operation, "retrying");
                    tokio::time::sleep(delay).await;
                }
                other => return other,
            }
        }
    }
}

/// Up to a fifth added at random, so clients that failed together do not retry together.
pub(crate) fn jittered(delay: Duration, mode: RetryMode) -> Duration {
    if mode == RetryMode::Fixed {
        return delay;
    }
    let random = (uuid::Uuid::new_v4().as_u128() % 1000) as u32;
    delay + delay / 5 * random / 1000
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn conditions_map_to_kinds_and_retryability() {
        let cases = [
            (
                "com.microsoft:message-lock-lost",
                ErrorKind::MessageLockLost,
                false,
            ),
            (
                "com.microsoft:session-lock-lost",
                ErrorKind::SessionLockLost,
                false,
            ),
            (
                "com.microsoft:session-cannot-be-locked",
                ErrorKind::SessionCannotBeLocked,
                false,
            ),
            (
                "com.microsoft:message-not-found",
                ErrorKind::MessageNotFound,
                false,
            ),
            ("amqp:not-found", ErrorKind::MessagingEntityNotFound, false),
            (
                "com.microsoft:entity-disabled",
                ErrorKind::MessagingEntityDisabled,
                false,
            ),
            (
                "amqp:resource-limit-exceeded",
                ErrorKind::QuotaExceeded,
                false,
            ),
            (
                "amqp:link:message-size-exceeded",
                ErrorKind::MessageSizeExceeded,
                false,
            ),
            ("amqp:unauthorized-access", ErrorKind::Unauthorized, false),
            ("com.microsoft:server-busy", ErrorKind::ServiceBusy, true),
            ("com.microsoft:timeout", ErrorKind::ServiceTimeout, true),
            (
                "amqp:link:detach-forced",
                ErrorKind::ServiceCommunication,
                true,
            ),
            (
                "com.microsoft:entity-already-exists",
                ErrorKind::MessagingEntityAlreadyExists,
                false,
            ),
            ("amqp:not-allowed", ErrorKind::InvalidArgument, false),
            ("x:unknown", ErrorKind::Other, false),
        ];
        for (condition, kind, transient) in cases {
            let error = ServiceBusError::from_condition(condition, "d");
            assert_eq!(error.kind, kind, "{condition}");
            assert_eq!(error.is_transient(), transient, "{condition}");
        }
    }

    #[test]
    fn transport_errors_map_to_kinds() {
        let refused = Error::LinkRefused(Some(RemoteError {
            condition: "com.microsoft:session-cannot-be-locked".into(),
            description: None,
        }));
        assert_eq!(
            ServiceBusError::from(refused).kind,
            ErrorKind::SessionCannotBeLocked
        );
        assert_eq!(
            ServiceBusError::from(Error::Closed).kind,
            ErrorKind::ServiceCommunication
        );
        assert_eq!(
            ServiceBusError::from(Error::PutToken {
                status: 401,
                description: String::new()
            })
            .kind,
            ErrorKind::Unauthorized
        );
    }

    #[test]
    fn exponential_delays_double_up_to_the_cap() {
        let retry = RetryOptions {
            delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(5),
            ..RetryOptions::default()
        };
        let delays: Vec<_> = (1..=5).map(|n| retry.delay_for(n).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 5, 5]);
    }

    #[tokio::test]
    async fn transient_errors_are_retried_and_others_are_not() {
        let retry = RetryOptions {
            delay: Duration::from_millis(1),
            ..RetryOptions::default()
        };
        let mut calls = 0;
        let result: ServiceBusResult<()> = retry
            .run("op", || {
                calls += 1;
                async { Err(ServiceBusError::new(ErrorKind::ServiceBusy, "busy")) }
            })
            .await;
        assert_eq!(result.unwrap_err().kind, ErrorKind::ServiceBusy);
        assert_eq!(calls, 4);
        let mut calls = 0;
        let _ = retry
            .run("op", || {
                calls += 1;
                async { Err::<(), _>(ServiceBusError::new(ErrorKind::MessageLockLost, "lost")) }
            })
            .await;
        assert_eq!(calls, 1);
    }
}

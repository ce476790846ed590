//! Client errors.

use std::fmt;
use std::sync::Arc;

use busbar_amqp::CodecError;
use busbar_amqp::performative::{ErrorCondition, SaslCode};

/// An error condition sent by the peer (in `close`, `end`, `detach` or a rejected outcome).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteError {
    /// The AMQP error condition, e.g. `amqp:not-found`.
    pub condition: String,
    /// The peer's explanation, if it gave one.
    pub description: Option<String>,
}

impl RemoteError {
    pub(crate) fn from_condition(e: &ErrorCondition) -> Self {
        RemoteError {
            condition: e.condition.as_str().to_owned(),
            description: e.description.clone(),
        }
    }

    pub(crate) fn from_opt(e: Option<&ErrorCondition>) -> Option<Self> {
        e.map(Self::from_condition)
    }
}

impl fmt::Display for RemoteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.description {
            Some(d) => write!(f, "{}: {d}", self.condition),
            None => f.write_str(&self.condition),
        }
    }
}

/// Shows an optional remote error as text (`-` when the peer gave none).
struct Opt<'a>(&'a Option<RemoteError>);

impl fmt::Display for Opt<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(e) => e.fmt(f),
            None => f.write_str("no error given"),
        }
    }
}

/// Everything that can go wrong talking to a broker. Cloneable so that one terminal
/// connection error can be handed to every waiter.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    #[error("i/o error: {0}")]
    /// Reading or writing the socket failed.
    Io(Arc<std::io::Error>),
    #[error("WebSocket: {0}")]
    /// The WebSocket upgrade or framing failed.
    WebSocket(String),
    #[error("malformed input from peer: {0}")]
    /// The peer sent bytes that do not decode as AMQP.
    Codec(#[from] CodecError),
    #[error("protocol violation by peer: {0}")]
    /// The peer broke the protocol's rules (a frame out of place, an unknown handle).
    Protocol(String),
    #[error("SASL authentication failed: {0:?}")]
    /// The peer refused the SASL exchange with this code.
    Sasl(SaslCode),
    #[error("TLS: {0}")]
    /// The TLS handshake or configuration failed.
    Tls(String),
    #[error("peer offers none of the SASL mechanisms we can use (wanted {0})")]
    /// The peer does not offer the SASL mechanism the options ask for.
    SaslMechanism(&'static str),
    #[error("connection closed by peer ({})", Opt(.0))]
    /// The peer closed the connection, with its reason.
    ConnectionClosed(Option<RemoteError>),
    #[error("connection is closed")]
    /// The connection was closed (by this side, or after an earlier error).
    Closed,
    #[error("session ended by peer ({})", Opt(.0))]
    /// The peer ended the session, with its reason.
    SessionEnded(Option<RemoteError>),
    #[error("link refused by peer ({})", Opt(.0))]
    /// The peer refused to attach the link, with its reason.
    LinkRefused(Option<RemoteError>),
    #[error("link detached by peer ({})", Opt(.0))]
    /// The peer detached the link, with its reason.
    LinkDetached(Option<RemoteError>),
    #[error("peer sent nothing within the idle timeout")]
    /// The peer was silent for longer than the idle timeout allows.
    IdleTimeout,
    #[error("timed out waiting for the peer")]
    /// The peer did not answer in time.
    Timeout,
    /// The `$cbs` node refused the token.
    #[error("put-token refused: status {status} ({description})")]
    PutToken {
        /// The status code of the answer (0 when the request itself was rejected).
        status: i64,
        /// The answer's status description.
        description: String,
    },
    #[error("delivery is already settled")]
    /// The delivery was settled before (or arrived settled).
    AlreadySettled,
    #[error("invalid argument: {0}")]
    /// The call's arguments cannot be used.
    InvalidArgument(&'static str),
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Io(Arc::new(e))
    }
}

/// The result of the AMQP layer's operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

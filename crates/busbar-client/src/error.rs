//! Client errors.

use std::fmt;
use std::sync::Arc;

use busbar_amqp::CodecError;
use busbar_amqp::performative::{ErrorCondition, SaslCode};

/// An error condition sent by the peer (in `close`, `end`, `detach` or a rejected outcome).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteError {
    pub condition: String,
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
    Io(Arc<std::io::Error>),
    #[error("WebSocket: {0}")]
    WebSocket(String),
    #[error("malformed input from peer: {0}")]
    Codec(#[from] CodecError),
    #[error("protocol violation by peer: {0}")]
    Protocol(String),
    #[error("SASL authentication failed: {0:?}")]
    Sasl(SaslCode),
    #[error("peer offers none of the SASL mechanisms we can use (wanted {0})")]
    SaslMechanism(&'static str),
    #[error("connection closed by peer ({})", Opt(.0))]
    ConnectionClosed(Option<RemoteError>),
    #[error("connection is closed")]
    Closed,
    #[error("session ended by peer ({})", Opt(.0))]
    SessionEnded(Option<RemoteError>),
    #[error("link refused by peer ({})", Opt(.0))]
    LinkRefused(Option<RemoteError>),
    #[error("link detached by peer ({})", Opt(.0))]
    LinkDetached(Option<RemoteError>),
    #[error("peer sent nothing within the idle timeout")]
    IdleTimeout,
    #[error("timed out waiting for the peer")]
    Timeout,
    #[error("put-token refused: status {status} ({description})")]
    PutToken { status: i64, description: String },
    #[error("delivery is already settled")]
    AlreadySettled,
    #[error("invalid argument: {0}")]
    InvalidArgument(&'static str),
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Io(Arc::new(e))
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

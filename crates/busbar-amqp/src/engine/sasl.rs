//! The server side of the SASL exchange: announce mechanisms, read `sasl-init`, answer
//! with an outcome. Authentication itself happens later over CBS, so ANONYMOUS is always
//! offered; PLAIN is optional and its credentials are handed to the caller to judge.

use bytes::Bytes;

use crate::performative::{SaslCode, SaslFrame};
use crate::value::Symbol;

pub const ANONYMOUS: &str = "ANONYMOUS";
pub const PLAIN: &str = "PLAIN";

/// Who the client said it is in `sasl-init`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SaslIdentity {
    /// ANONYMOUS; the optional trace is whatever the client sent (JS: `\0<key name>`).
    Anonymous { trace: Option<Bytes> },
    Plain {
        authzid: String,
        username: String,
        password: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SaslError {
    #[error("expected sasl-init")]
    UnexpectedFrame,
    #[error("mechanism {0} was not offered")]
    UnsupportedMechanism(String),
    #[error("malformed PLAIN response")]
    MalformedPlain,
}

/// The `sasl-mechanisms` frame: ANONYMOUS, plus PLAIN when `allow_plain`.
pub fn mechanisms(allow_plain: bool) -> SaslFrame {
    let mut mechanisms = vec![Symbol::from_static(ANONYMOUS)];
    if allow_plain {
        mechanisms.push(Symbol::from_static(PLAIN));
    }
    SaslFrame::Mechanisms { mechanisms }
}

/// Reads the client's `sasl-init`. On success answer with [`outcome`]`(SaslCode::Ok)`;
/// on error with `outcome(SaslCode::Auth)` and close.
pub fn accept_init(frame: &SaslFrame, allow_plain: bool) -> Result<SaslIdentity, SaslError> {
    let SaslFrame::Init {
        mechanism,
        initial_response,
        ..
    } = frame
    else {
        return Err(SaslError::UnexpectedFrame);
    };
    match mechanism.as_str() {
        ANONYMOUS => Ok(SaslIdentity::Anonymous {
            trace: initial_response.clone().filter(|b| !b.is_empty()),
        }),
        PLAIN if allow_plain => parse_plain(initial_response.as_deref().unwrap_or_default()),
        other => Err(SaslError::UnsupportedMechanism(other.to_owned())),
    }
}

/// `authzid NUL authcid NUL passwd` (RFC 4616).
fn parse_plain(response: &[u8]) -> Result<SaslIdentity, SaslError> {
    let mut parts = response.split(|&b| b == 0);
    let mut next = || {
        parts
            .next()
            .and_then(|p| std::str::from_utf8(p).ok())
            .map(str::to_owned)
            .ok_or(SaslError::MalformedPlain)
    };
    let identity = SaslIdentity::Plain {
        authzid: next()?,
        username: next()?,
        password: next()?,
    };
    if parts.next().is_some() {
        return Err(SaslError::MalformedPlain);
    }
    Ok(identity)
}

/// The `sasl-outcome` frame.
pub fn outcome(code: SaslCode) -> SaslFrame {
    SaslFrame::Outcome {
        code,
        additional_data: None,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn init(mechanism: &str, response: &'static [u8]) -> SaslFrame {
        SaslFrame::Init {
            mechanism: Symbol::from(mechanism),
            initial_response: Some(Bytes::from_static(response)),
            hostname: Some("localhost".into()),
        }
    }

    #[test]
    fn offers_anonymous_and_optionally_plain() {
        let SaslFrame::Mechanisms { mechanisms: m } = mechanisms(false) else {
            panic!()
        };
        assert_eq!(m, vec![Symbol::from(ANONYMOUS)]);
        let SaslFrame::Mechanisms { mechanisms: m } = mechanisms(true) else {
            panic!()
        };
        assert_eq!(m.len(), 2);
        assert_eq!(m[1].as_str(), PLAIN);
    }

    #[test]
    fn anonymous_accepts_python_and_js_responses() {
        assert_eq!(
            accept_init(&init(ANONYMOUS, b""), false).unwrap(),
            SaslIdentity::Anonymous { trace: None }
        );
        assert_eq!(
            accept_init(&init(ANONYMOUS, b"\0RootManageSharedAccessKey"), false).unwrap(),
            SaslIdentity::Anonymous {
                trace: Some(Bytes::from_static(b"\0RootManageSharedAccessKey"))
            }
        );
    }

    #[test]
    fn plain_only_when_offered_and_well_formed() {
        assert_eq!(
            accept_init(&init(PLAIN, b"\0user\0secret"), false),
            Err(SaslError::UnsupportedMechanism(PLAIN.into()))
        );
        assert_eq!(
            accept_init(&init(PLAIN, b"\0user\0secret"), true).unwrap(),
            SaslIdentity::Plain {
                authzid: String::new(),
                username: "user".into(),
                password: "secret".into()
            }
        );
        assert_eq!(
            accept_init(&init(PLAIN, b"user-only"), true),
            Err(SaslError::MalformedPlain)
        );
        assert_eq!(
            accept_init(&outcome(SaslCode::Ok), true),
            Err(SaslError::UnexpectedFrame)
        );
    }
}

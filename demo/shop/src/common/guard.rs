//! The internal-request guard: the gateway adds the shared secret in `x-shop-internal` to
//! every request it forwards, and every other service refuses a request without it, so only
//! the gateway can reach them (the article: "other microservices accept requests only from
//! the gateway").

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;

/// The header carrying the internal secret.
pub const INTERNAL_HEADER: &str = "x-shop-internal";
/// The header in which the gateway names the signed-in user (their email).
pub const USER_HEADER: &str = "x-shop-user";

/// The secret every internal request must carry.
#[derive(Clone)]
pub struct InternalSecret(Arc<str>);

impl InternalSecret {
    pub fn new(secret: &str) -> Self {
        Self(Arc::from(secret))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Compares in time independent of where the first difference is.
    pub fn matches(&self, candidate: &[u8]) -> bool {
        let expected = self.0.as_bytes();
        expected.len() == candidate.len()
            && expected
                .iter()
                .zip(candidate)
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    }
}

/// Axum middleware (`axum::middleware::from_fn_with_state(secret, require_internal)`):
/// 401 for a request without the right secret.
pub async fn require_internal(
    State(secret): State<InternalSecret>,
    request: Request,
    next: Next,
) -> Response {
    let presented = request
        .headers()
        .get(INTERNAL_HEADER)
        .map(|value| value.as_bytes());
    match presented {
        Some(value) if secret.matches(value) => next.run(request).await,
        _ => {
            ApiError::unauthorized("internal endpoint: requests are accepted only from the gateway")
                .into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exact_secret_matches() {
        let secret = InternalSecret::new("s3cret");
        assert!(secret.matches(b"s3cret"));
        assert!(!secret.matches(b"s3cre"));
        assert!(!secret.matches(b"s3creT"));
        assert!(!secret.matches(b""));
    }
}

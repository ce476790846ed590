//! The administration client's errors, in the SDK's terms. A stand-in with the shape of the
//! SDK's `ServiceBusError` until that lands: same names, same kinds.

use std::fmt;

/// What went wrong, in Service Bus's terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The queue, topic, subscription or rule does not exist.
    MessagingEntityNotFound,
    /// An entity of that name already exists.
    MessagingEntityAlreadyExists,
    /// The request was refused as invalid (a bad value, a name, an immutable property).
    InvalidArgument,
    /// The credentials were refused or lack the right.
    Unauthorized,
    /// A quota (entity count, size) is exhausted.
    QuotaExceeded,
    /// The service can't serve the request right now.
    ServiceBusy,
    /// No answer in time.
    ServiceTimeout,
    /// The connection failed or the answer was unreadable.
    ServiceCommunication,
    /// Anything else.
    Other,
}

/// An error of a Service Bus operation: its [`ErrorKind`], the service's message, and the
/// underlying error when there is one.
///
/// ```no_run
/// # use busbar_client::servicebus::admin::*;
/// # async fn example(admin: &ServiceBusAdministrationClient) -> Result<()> {
/// match admin.create_queue("orders", &QueueSettings::default()).await {
///     Ok(_) => {}
///     Err(e) if e.kind() == ErrorKind::MessagingEntityAlreadyExists => {}
///     Err(e) if e.is_transient() => eprintln!("try again later: {e}"),
///     Err(e) => return Err(e),
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct ServiceBusError {
    kind: ErrorKind,
    message: String,
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl ServiceBusError {
    /// An error of `kind` with `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        ServiceBusError {
            kind,
            message: message.into(),
            source: None,
        }
    }

    /// The same error, caused by `source`.
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    /// What went wrong.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The service's (or the client's) description of it.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Whether trying again later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(
            self.kind,
            ErrorKind::ServiceBusy | ErrorKind::ServiceTimeout | ErrorKind::ServiceCommunication
        )
    }
}

impl fmt::Display for ServiceBusError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}: {}", self.kind, self.message)
    }
}

impl std::error::Error for ServiceBusError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// A `Result` of a Service Bus operation.
pub type Result<T, E = ServiceBusError> = std::result::Result<T, E>;

//! The `$management` node of an entity: a request/response link pair carrying operations
//! (`com.microsoft:renew-lock`, `peek-message`, `schedule-message`, ...) as amqp-value maps,
//! answered with `statusCode`, `statusDescription`, `errorCondition` and a map body.

use std::sync::Arc;
use std::time::Duration;

use busbar_amqp::Value;

use crate::request_response::{Answer, RequestResponseLink, Unanswered};
use crate::{Connection, Error, Outcome};

use super::error::{ErrorKind, ServiceBusError, ServiceBusResult};

/// An open request/response pair on one `$management` node.
pub(crate) struct ManagementLink {
    link: RequestResponseLink,
    /// The connection generation it was opened on.
    pub generation: u64,
}

/// A successful (2xx) answer.
pub(crate) struct Response {
    pub status: i64,
    /// The amqp-value body, when the answer has one.
    pub body: Option<Value>,
}

impl Response {
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.body.as_ref().and_then(|b| b.map_get(key))
    }
}

impl ManagementLink {
    /// Attaches the pair to `<entity>/$management`.
    pub async fn open(
        connection: &Connection,
        entity: &str,
        generation: u64,
    ) -> ServiceBusResult<Self> {
        let node = format!("{entity}/$management");
        let link = RequestResponseLink::open(connection, &node, None, "mgmt").await?;
        Ok(ManagementLink { link, generation })
    }

    /// Sends `operation` with `body` (a map) and waits up to `timeout` for the answer; a
    /// non-2xx answer is an error of the kind its `errorCondition` names.
    pub async fn request(
        &self,
        operation: &str,
        body: Value,
        extra_properties: &[(&str, Value)],
        timeout: Duration,
    ) -> ServiceBusResult<Response> {
        let mut app = vec![
            (Value::from("operation"), Value::from(operation)),
            (
                Value::from("com.microsoft:server-timeout"),
                Value::Uint(u32::try_from(timeout.as_millis()).unwrap_or(u32::MAX)),
            ),
        ];
        app.extend(
            extra_properties
                .iter()
                .map(|(k, v)| (Value::from(*k), v.clone())),
        );
        match self.link.request(app, &body, timeout).await {
            Ok(answer) => response(answer),
            Err(Unanswered::Refused(Outcome::Rejected(Some(remote)))) => {
                Err(ServiceBusError::from_remote(&remote))
            }
            Err(Unanswered::Refused(other)) => Err(ServiceBusError::new(
                ErrorKind::ServiceCommunication,
                format!("the {operation} request was answered with {other:?}"),
            )),
            Err(Unanswered::Failed(Error::Timeout)) => Err(ServiceBusError::new(
                ErrorKind::ServiceTimeout,
                format!("no answer to {operation} within {timeout:?}"),
            )),
            Err(Unanswered::Failed(error)) => Err(error.into()),
        }
    }

    pub fn is_closed(&self) -> bool {
        self.link.is_closed()
    }
}

/// An answer in the SDK's terms: its body when the status is 2xx, else the error its
/// `errorCondition` (or status) names.
fn response(answer: Answer) -> ServiceBusResult<Response> {
    match answer.status {
        Some(status @ 200..=299) => Ok(Response {
            status,
            body: answer.body,
        }),
        Some(status) => Err(match answer.error_condition.as_deref() {
            Some(condition) => ServiceBusError::from_condition(condition, answer.description),
            None => ServiceBusError::new(
                status_kind(status),
                format!("status {status}: {}", answer.description),
            ),
        }),
        None => Err(ServiceBusError::new(
            ErrorKind::ServiceCommunication,
            "a $management answer without statusCode",
        )),
    }
}

/// The kind a status code without a condition stands for.
fn status_kind(status: i64) -> ErrorKind {
    match status {
        400 => ErrorKind::InvalidArgument,
        401 | 403 => ErrorKind::Unauthorized,
        404 => ErrorKind::MessagingEntityNotFound,
        408 => ErrorKind::ServiceTimeout,
        409 => ErrorKind::MessagingEntityAlreadyExists,
        503 => ErrorKind::ServiceBusy,
        _ => ErrorKind::Other,
    }
}

/// A request body map with string keys.
pub(crate) fn body(entries: Vec<(&str, Value)>) -> Value {
    Value::Map(
        entries
            .into_iter()
            .map(|(k, v)| (Value::from(k), v))
            .collect(),
    )
}

/// An AMQP array of longs (sequence numbers).
pub(crate) fn longs(values: &[i64]) -> Value {
    Value::Array(values.iter().map(|&v| Value::Long(v)).collect())
}

/// The `$management` node of one entity as a sender or receiver uses it: opened on first
/// use, reopened on a new connection, requests retried by the client's policy.
pub(crate) struct ManagementClient {
    client: super::client::ServiceBusClient,
    entity: String,
    link: tokio::sync::Mutex<Option<Arc<ManagementLink>>>,
}

impl ManagementClient {
    pub fn new(client: super::client::ServiceBusClient, entity: String) -> Self {
        ManagementClient {
            client,
            entity,
            link: tokio::sync::Mutex::new(None),
        }
    }

    /// `operation` with `body`, retried while the failure is transient.
    pub async fn request(
        &self,
        operation: &str,
        body: Value,
        extra_properties: &[(&str, Value)],
    ) -> ServiceBusResult<Response> {
        let retry = self.client.retry().clone();
        retry
            .run(operation, || {
                self.try_request(operation, body.clone(), extra_properties)
            })
            .await
    }

    async fn try_request(
        &self,
        operation: &str,
        body: Value,
        extra_properties: &[(&str, Value)],
    ) -> ServiceBusResult<Response> {
        let link = self.link().await?;
        let timeout = self.client.retry().try_timeout;
        let result = link
            .request(operation, body, extra_properties, timeout)
            .await;
        if matches!(&result, Err(e) if e.is_transient()) {
            // The pair may be broken: the next request starts afresh (unless another
            // request already did).
            let mut guard = self.link.lock().await;
            if guard.as_ref().is_some_and(|l| Arc::ptr_eq(l, &link)) {
                *guard = None;
            }
        }
        result
    }

    /// The open pair for the current connection, opened when there is none.
    async fn link(&self) -> ServiceBusResult<Arc<ManagementLink>> {
        let (connection, generation) = self.client.connection_for(&self.entity).await?;
        let mut guard = self.link.lock().await;
        match guard.as_ref() {
            Some(link) if link.generation == generation && !link.is_closed() => Ok(link.clone()),
            _ => {
                let link =
                    Arc::new(ManagementLink::open(&connection, &self.entity, generation).await?);
                *guard = Some(link.clone());
                Ok(link)
            }
        }
    }

    pub async fn close(&self) {
        self.link.lock().await.take();
    }
}

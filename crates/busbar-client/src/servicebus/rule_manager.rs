//! [`ServiceBusRuleManager`]: a subscription's rules added, removed and listed over AMQP,
//! through the subscription's `$management` node (`com.microsoft:add-rule`, `remove-rule`,
//! `enumerate-rules`), as the official SDKs' rule managers do.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::sync::Mutex;

use busbar_amqp::codec::{decode_value, encode_descriptor, encode_value};
use busbar_amqp::message::{Properties, scan_sections, section};
use busbar_amqp::performative::{ReceiverSettleMode, Role, SenderSettleMode};
use busbar_amqp::{Descriptor, Value};

use super::admin::{ErrorKind, Result, RuleAction, RuleFilter, RuleProperties, ServiceBusError};
use super::rule_wire;
use crate::driver::LinkSpec;
use crate::{Connection, Outcome, Receiver, Sender, Session};

/// How long one `$management` request may take.
const TRY_TIMEOUT: Duration = Duration::from_secs(60);
/// Rules asked for per `enumerate-rules` request.
const PAGE_SIZE: i32 = 100;

/// The rules of one subscription, managed over the connection it was made with.
///
/// ```no_run
/// use busbar_client::servicebus::admin::{RuleAction, RuleFilter};
/// use busbar_client::servicebus::ServiceBusRuleManager;
///
/// # async fn example(connection: busbar_client::Connection) -> busbar_client::servicebus::admin::Result<()> {
/// // `connection` is authorized for the subscription (a `$cbs` token).
/// let rules = ServiceBusRuleManager::new(connection, "orders", "audit");
/// rules.delete_rule("$Default").await?;
/// rules
///     .create_rule(
///         "big-orders",
///         RuleFilter::Sql { expression: "amount > 1000".into(), parameters: vec![] },
///         RuleAction::Empty,
///     )
///     .await?;
/// for rule in rules.get_rules().await? {
///     println!("{}: {:?}", rule.name, rule.filter);
/// }
/// # Ok(())
/// # }
/// ```
pub struct ServiceBusRuleManager {
    connection: Connection,
    topic: String,
    subscription: String,
    /// `<topic>/Subscriptions/<subscription>/$management`.
    node: String,
    link: Mutex<Option<ManagementLink>>,
}

impl std::fmt::Debug for ServiceBusRuleManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceBusRuleManager")
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

/// The request and response links to the node, attached on first use.
struct ManagementLink {
    _session: Session,
    sender: Sender,
    receiver: Receiver,
    reply_to: String,
}

/// An AMQP failure in the SDK's terms: the condition of a refused or detached link (a
/// missing subscription's node is `amqp:not-found`), a timeout, or a broken connection.
fn communication(error: crate::Error) -> ServiceBusError {
    let kind = match &error {
        crate::Error::Timeout => ErrorKind::ServiceTimeout,
        crate::Error::LinkRefused(Some(remote))
        | crate::Error::LinkDetached(Some(remote))
        | crate::Error::SessionEnded(Some(remote))
        | crate::Error::ConnectionClosed(Some(remote)) => {
            match error_kind(Some(remote.condition.as_str()), 0) {
                ErrorKind::Other => ErrorKind::ServiceCommunication,
                kind => kind,
            }
        }
        _ => ErrorKind::ServiceCommunication,
    };
    ServiceBusError::new(kind, error.to_string()).with_source(error)
}

/// The kind a `$management` failure's `errorCondition` (or, without one, its status) names.
fn error_kind(condition: Option<&str>, status: i64) -> ErrorKind {
    match condition {
        Some("com.microsoft:entity-already-exists") => ErrorKind::MessagingEntityAlreadyExists,
        Some("amqp:not-found" | "com.microsoft:message-not-found") => {
            ErrorKind::MessagingEntityNotFound
        }
        Some("amqp:unauthorized-access") => ErrorKind::Unauthorized,
        Some("com.microsoft:server-busy") => ErrorKind::ServiceBusy,
        Some("com.microsoft:timeout") => ErrorKind::ServiceTimeout,
        Some("com.microsoft:quota-exceeded") => ErrorKind::QuotaExceeded,
        Some(
            "amqp:invalid-field"
            | "amqp:not-allowed"
            | "com.microsoft:argument-error"
            | "com.microsoft:argument-out-of-range",
        ) => ErrorKind::InvalidArgument,
        Some(_) => ErrorKind::Other,
        None => match status {
            404 => ErrorKind::MessagingEntityNotFound,
            409 => ErrorKind::MessagingEntityAlreadyExists,
            400 => ErrorKind::InvalidArgument,
            401 | 403 => ErrorKind::Unauthorized,
            503 => ErrorKind::ServiceBusy,
            _ => ErrorKind::Other,
        },
    }
}

/// A `$management` answer: its status and body.
struct Answer {
    status: i64,
    body: Value,
}

impl ServiceBusRuleManager {
    /// The rule manager of `topic`'s `subscription` on `connection`, which must hold a
    /// token for the subscription (or the namespace). Links are attached on first use.
    pub fn new(connection: Connection, topic: &str, subscription: &str) -> Self {
        ServiceBusRuleManager {
            connection,
            topic: topic.to_owned(),
            subscription: subscription.to_owned(),
            node: format!("{topic}/Subscriptions/{subscription}/$management"),
            link: Mutex::new(None),
        }
    }

    /// The topic whose subscription's rules this manages.
    pub fn topic_name(&self) -> &str {
        &self.topic
    }

    /// The subscription whose rules this manages.
    pub fn subscription_name(&self) -> &str {
        &self.subscription
    }

    /// Adds a rule: messages `filter` selects reach the subscription, changed by `action`.
    /// `MessagingEntityAlreadyExists` if the subscription has a rule of that name;
    /// `InvalidArgument` for a filter the broker can't read. SQL parameters are not carried
    /// over AMQP: write the values into the expression (or use the administration client).
    ///
    /// ```no_run
    /// # use busbar_client::servicebus::admin::*;
    /// # use busbar_client::servicebus::ServiceBusRuleManager;
    /// # async fn example(rules: &ServiceBusRuleManager) -> Result<()> {
    /// rules
    ///     .create_rule(
    ///         "escalate",
    ///         RuleFilter::Sql { expression: "priority > 5".into(), parameters: vec![] },
    ///         RuleAction::Sql { expression: "SET sys.Label = 'urgent'".into(), parameters: vec![] },
    ///     )
    ///     .await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn create_rule(
        &self,
        name: &str,
        filter: RuleFilter,
        action: RuleAction,
    ) -> Result<()> {
        let body = rule_wire::add_rule_request(name, &filter, &action)?;
        self.request("com.microsoft:add-rule", body)
            .await
            .map(|_| ())
    }

    /// Removes a rule; `MessagingEntityNotFound` if there is none of that name.
    ///
    /// ```no_run
    /// # use busbar_client::servicebus::admin::*;
    /// # use busbar_client::servicebus::ServiceBusRuleManager;
    /// # async fn example(rules: &ServiceBusRuleManager) -> Result<()> {
    /// rules.delete_rule("$Default").await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn delete_rule(&self, name: &str) -> Result<()> {
        let body = Value::Map(vec![(
            Value::String("rule-name".to_owned()),
            Value::String(name.to_owned()),
        )]);
        self.request("com.microsoft:remove-rule", body)
            .await
            .map(|_| ())
    }

    /// Every rule of the subscription, in its order, read page by page.
    ///
    /// ```no_run
    /// # use busbar_client::servicebus::admin::*;
    /// # use busbar_client::servicebus::ServiceBusRuleManager;
    /// # async fn example(rules: &ServiceBusRuleManager) -> Result<()> {
    /// let names: Vec<String> = rules.get_rules().await?.into_iter().map(|r| r.name).collect();
    /// # Ok(())
    /// # }
    /// ```
    pub async fn get_rules(&self) -> Result<Vec<RuleProperties>> {
        let mut rules = Vec::new();
        loop {
            let skip = i32::try_from(rules.len()).unwrap_or(i32::MAX);
            let body = Value::Map(vec![
                (Value::String("top".to_owned()), Value::Int(PAGE_SIZE)),
                (Value::String("skip".to_owned()), Value::Int(skip)),
            ]);
            let answer = self.request("com.microsoft:enumerate-rules", body).await?;
            if answer.status == 204 {
                break;
            }
            let page = rule_wire::rules_from_answer(&answer.body)?;
            let last = page.len() < PAGE_SIZE as usize;
            rules.extend(page);
            if last {
                break;
            }
        }
        Ok(rules)
    }

    /// Sends one request to the node and waits for its answer.
    async fn request(&self, operation: &str, body: Value) -> Result<Answer> {
        let mut guard = self.link.lock().await;
        if guard.is_none() {
            *guard = Some(self.attach().await.map_err(communication)?);
        }
        let Some(link) = guard.as_mut() else {
            return Err(communication(crate::Error::Closed));
        };
        let message_id = uuid::Uuid::new_v4().to_string();
        let request = request_message(&message_id, &link.reply_to, operation, &body);
        let exchange = async {
            match link.sender.send(request).await? {
                Outcome::Accepted => {}
                other => {
                    return Err(crate::Error::Protocol(format!(
                        "the {operation} request was not accepted: {other:?}"
                    )));
                }
            }
            loop {
                let delivery = link.receiver.recv().await?;
                if !delivery.settled {
                    link.receiver.accept(&delivery)?;
                }
                if let Some(answer) = answer_to(&delivery.payload, &message_id)? {
                    return Ok(answer);
                }
                tracing::debug!("ignoring a $management answer to another request");
            }
        };
        let answer = match tokio::time::timeout(TRY_TIMEOUT, exchange).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(error)) => {
                // The links may be gone with the connection: attach anew next time.
                *guard = None;
                return Err(communication(error));
            }
            Err(_) => {
                *guard = None;
                return Err(communication(crate::Error::Timeout));
            }
        };
        match answer {
            Ok(answer) => Ok(answer),
            Err((status, condition, description)) => Err(ServiceBusError::new(
                error_kind(condition.as_deref(), status),
                format!("{operation} on {}: {status} {description}", self.node),
            )),
        }
    }

    async fn attach(&self) -> crate::Result<ManagementLink> {
        let session = self.connection.session().await?;
        let sender = session.sender(&self.node).await?;
        let reply_to = format!("rules-{}", uuid::Uuid::new_v4());
        let receiver = session
            .attach_receiver(LinkSpec {
                name: reply_to.clone(),
                role: Role::Receiver,
                source: Some(self.node.clone()),
                target: Some(reply_to.clone()),
                snd_settle_mode: SenderSettleMode::Mixed,
                rcv_settle_mode: ReceiverSettleMode::First,
                initial_credit: 10,
            })
            .await?;
        Ok(ManagementLink {
            _session: session,
            sender,
            receiver,
            reply_to,
        })
    }
}

/// A request: string message-id, reply-to naming the response link, the operation as an
/// application property, an amqp-value map body.
fn request_message(message_id: &str, reply_to: &str, operation: &str, body: &Value) -> Bytes {
    let mut out = BytesMut::with_capacity(256);
    Properties {
        message_id: Some(Value::String(message_id.to_owned())),
        reply_to: Some(reply_to.to_owned()),
        ..Properties::default()
    }
    .encode(&mut out);
    encode_descriptor(&Descriptor::Code(section::APPLICATION_PROPERTIES), &mut out);
    encode_value(
        &Value::Map(vec![(
            Value::String("operation".to_owned()),
            Value::String(operation.to_owned()),
        )]),
        &mut out,
    );
    encode_descriptor(&Descriptor::Code(section::AMQP_VALUE), &mut out);
    encode_value(body, &mut out);
    out.freeze()
}

/// A failed answer's status, `errorCondition` and `statusDescription`.
type Failure = (i64, Option<String>, String);

/// The answer in `payload` if it answers `message_id`: `Ok(Some(Ok))` on a 2xx status,
/// `Ok(Some(Err))` with the failure otherwise, `Ok(None)` for another request's answer.
fn answer_to(payload: &Bytes, message_id: &str) -> crate::Result<Option<Result<Answer, Failure>>> {
    let scanned = scan_sections(payload)?;
    let correlation = scanned.properties()?.and_then(|p| p.correlation_id);
    if correlation.as_ref().and_then(Value::as_str) != Some(message_id) {
        return Ok(None);
    }
    let properties = scanned.application_properties()?.unwrap_or(Value::Null);
    let status = properties
        .map_get("statusCode")
        .and_then(Value::as_i64)
        .ok_or_else(|| crate::Error::Protocol("a $management answer without statusCode".into()))?;
    if !(200..300).contains(&status) {
        let text = |key: &str| match properties.map_get(key) {
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Symbol(s)) => Some(s.as_str().to_owned()),
            _ => None,
        };
        return Ok(Some(Err((
            status,
            text("errorCondition"),
            text("statusDescription").unwrap_or_default(),
        ))));
    }
    let mut raw = scanned.body_bytes();
    let body = if raw.is_empty() {
        Value::Null
    } else {
        match decode_value(&mut raw)? {
            Value::Described(_, inner) => *inner,
            other => other,
        }
    };
    Ok(Some(Ok(Answer { status, body })))
}

//! [`ServiceBusAdministrationClient`]: queues, topics, subscriptions and rules created,
//! read, changed, listed and deleted over Service Bus's administration (Atom/XML) API, and
//! their runtime counts.
//!
//! The API is HTTP. Against Azure Service Bus it is HTTPS on port 443, trusting the public
//! CAs. Busbar serves it on its AMQP port, HTTPS and plain HTTP alike: with
//! `UseDevelopmentEmulator=true` in the connection string the client speaks plain HTTP to
//! the endpoint's port (5672 when it names none), unless [`AdministrationClientOptions`]
//! give a CA to trust or ask for HTTPS. Requests carry a SAS token for the namespace
//! (`https://<host>[:port]`), as the other SDKs sign them.

#![warn(missing_docs)]

mod properties;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::http::{self, Method, StatusCode};
use busbar_atom::read::{self, AnsweredEntity};
use busbar_atom::write::{self, Context};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

pub use busbar_atom::{
    CorrelationFilter, EntityStatus, MessageCounts, QueueSettings, Rule, RuleAction, RuleFilter,
    SubscriptionSettings, TopicSettings, TypedValue,
};
pub use properties::{
    NamespaceProperties, Page, QueueProperties, QueueRuntimeProperties, RuleProperties,
    SubscriptionProperties, SubscriptionRuntimeProperties, TopicProperties, TopicRuntimeProperties,
};

use super::{
    ConnectionString, ErrorKind, RetryOptions, ServiceBusError, ServiceBusResult as Result,
};
use properties::FromAnswer;
pub(crate) use properties::time;

/// The API version the client asks for (the one with `MaxMessageSizeInKilobytes`).
const API_VERSION: &str = "2021-05";
/// How long a signed token lives unless the options say otherwise.
const TOKEN_LIFETIME: Duration = Duration::from_secs(3600);
/// What a list asks for in one page unless told otherwise (the SDKs' default).
const DEFAULT_PAGE_SIZE: u32 = 100;
/// The AMQP port, where Busbar also serves HTTP, when the endpoint names no port.
const DEVELOPMENT_PORT: u16 = 5672;

/// Path segments are percent-encoded whole: a `/` in a name is `%2F`.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// HTTPS or plain HTTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpScheme {
    /// HTTP over TLS.
    Https,
    /// Plain HTTP (a local broker).
    Http,
}

/// How the administration client reaches the service. `Default`: HTTPS trusting the public
/// CAs, plain HTTP with `UseDevelopmentEmulator=true`, the SDK's default retries (60 s for
/// each attempt), tokens signed for an hour.
#[derive(Debug, Clone)]
pub struct AdministrationClientOptions {
    /// `None`: HTTPS, or plain HTTP in development-emulator mode without a CA.
    pub scheme: Option<HttpScheme>,
    /// Trust the CA certificates of this PEM file (a self-hosted broker's CA, for example
    /// Busbar's development CA) instead of the public CAs; implies HTTPS unless
    /// `scheme` says otherwise.
    pub tls_ca: Option<PathBuf>,
    /// A whole TLS configuration, taking the place of `tls_ca`.
    pub tls_config: Option<Arc<rustls::ClientConfig>>,
    /// How often and after what pauses a request that failed for a transient reason (no
    /// connection, no answer in time, a busy service) is sent again, and how long one
    /// attempt may take.
    pub retry: RetryOptions,
    /// Lifetime of the tokens signed with a key; a new one is signed once 90% of it has
    /// passed.
    pub token_lifetime: Duration,
}

impl Default for AdministrationClientOptions {
    fn default() -> Self {
        AdministrationClientOptions {
            scheme: None,
            tls_ca: None,
            tls_config: None,
            retry: RetryOptions::default(),
            token_lifetime: TOKEN_LIFETIME,
        }
    }
}

/// Where a list starts and how many entities a page holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListOptions {
    /// Entities to skip (in name order).
    pub skip: u32,
    /// Entities per request; the whole list is read page by page.
    pub max_page_size: u32,
}

impl Default for ListOptions {
    fn default() -> Self {
        ListOptions {
            skip: 0,
            max_page_size: DEFAULT_PAGE_SIZE,
        }
    }
}

/// How requests are signed.
enum Credential {
    /// A key: the client signs a token for each hour.
    Key { name: String, key: String },
    /// A ready token (`SharedAccessSignature sr=…`), sent as it is.
    Token(String),
}

/// A client of the administration API of one namespace.
///
/// ```no_run
/// use busbar_client::servicebus::admin::{
///     AdministrationClientOptions, QueueSettings, ServiceBusAdministrationClient,
/// };
///
/// # async fn example() -> Result<(), busbar_client::ServiceBusError> {
/// let admin = ServiceBusAdministrationClient::from_connection_string(
///     "Endpoint=sb://localhost:5672;SharedAccessKeyName=RootManageSharedAccessKey;\
///      SharedAccessKey=SAS_KEY_VALUE;UseDevelopmentEmulator=true",
///     AdministrationClientOptions::default(),
/// )?;
/// let queue = admin
///     .create_queue("orders", &QueueSettings { max_delivery_count: 5, ..Default::default() })
///     .await?;
/// let counts = admin.get_queue_runtime_properties(&queue.name).await?;
/// println!("{} active", counts.counts.active);
/// # Ok(())
/// # }
/// ```
pub struct ServiceBusAdministrationClient {
    http: http::HttpClient,
    credential: Credential,
    /// The SAS audience: `https://host[:port]`.
    audience: String,
    /// Forwarding targets are written as `sb://` URLs on this host.
    context: Context,
    /// The token signed last and when to sign the next.
    token: Mutex<Option<(String, SystemTime)>>,
    token_lifetime: Duration,
    retry: RetryOptions,
}

impl std::fmt::Debug for ServiceBusAdministrationClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceBusAdministrationClient")
            .field("audience", &self.audience)
            .finish_non_exhaustive()
    }
}

fn not_found(what: String) -> ServiceBusError {
    ServiceBusError::new(
        ErrorKind::MessagingEntityNotFound,
        format!("{what} does not exist"),
    )
}

fn unreadable(error: String) -> ServiceBusError {
    ServiceBusError::new(
        ErrorKind::ServiceCommunication,
        format!("the answer is not an administration document: {error}"),
    )
}

/// The error an answer's status and `<Error>` body stand for.
fn status_error(status: StatusCode, body: &str, update: bool) -> ServiceBusError {
    let detail = read::error_detail(body).unwrap_or_else(|| body.trim().to_owned());
    let kind = match status {
        StatusCode::NOT_FOUND => ErrorKind::MessagingEntityNotFound,
        StatusCode::PRECONDITION_FAILED if update => ErrorKind::MessagingEntityNotFound,
        StatusCode::CONFLICT if !update && !detail.contains("SubCode=40901") => {
            ErrorKind::MessagingEntityAlreadyExists
        }
        StatusCode::BAD_REQUEST => ErrorKind::InvalidArgument,
        StatusCode::UNAUTHORIZED => ErrorKind::Unauthorized,
        StatusCode::FORBIDDEN if detail.contains("SubCode=40301") => ErrorKind::InvalidArgument,
        StatusCode::FORBIDDEN => ErrorKind::QuotaExceeded,
        StatusCode::SERVICE_UNAVAILABLE | StatusCode::TOO_MANY_REQUESTS => ErrorKind::ServiceBusy,
        StatusCode::REQUEST_TIMEOUT | StatusCode::GATEWAY_TIMEOUT => ErrorKind::ServiceTimeout,
        _ => ErrorKind::Other,
    };
    ServiceBusError::new(kind, format!("{status}: {detail}"))
}

fn segment(name: &str) -> String {
    utf8_percent_encode(name, SEGMENT).to_string()
}

fn subscription_path(topic: &str, subscription: &str) -> String {
    format!(
        "/{}/Subscriptions/{}",
        segment(topic),
        segment(subscription)
    )
}

fn rule_path(topic: &str, subscription: &str, rule: &str) -> String {
    format!(
        "{}/Rules/{}",
        subscription_path(topic, subscription),
        segment(rule)
    )
}

/// The `$skip` of a next-page link.
fn next_skip(href: &str) -> Option<u32> {
    let query = href.split_once('?')?.1;
    query.split('&').find_map(|pair| {
        let (name, value) = pair.split_once('=')?;
        matches!(name, "$skip" | "%24skip").then(|| value.parse().ok())?
    })
}

impl ServiceBusAdministrationClient {
    /// A client for the namespace of `connection_string`
    /// (`Endpoint=sb://…;SharedAccessKeyName=…;SharedAccessKey=…`, or
    /// `SharedAccessSignature=…`; `UseDevelopmentEmulator=true` for a local broker). Nothing
    /// is sent until the first operation.
    ///
    /// ```no_run
    /// # use busbar_client::servicebus::admin::*;
    /// # use busbar_client::servicebus::ServiceBusResult as Result;
    /// # fn example() -> Result<()> {
    /// // Busbar over HTTPS, trusting its development CA (`busbar dev-cert`).
    /// let admin = ServiceBusAdministrationClient::from_connection_string(
    ///     "Endpoint=sb://localhost:5672;SharedAccessKeyName=RootManageSharedAccessKey;\
    ///      SharedAccessKey=SAS_KEY_VALUE;UseDevelopmentEmulator=true",
    ///     AdministrationClientOptions {
    ///         tls_ca: Some("busbar-dev-ca.pem".into()),
    ///         ..Default::default()
    ///     },
    /// )?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn from_connection_string(
        connection_string: &str,
        options: AdministrationClientOptions,
    ) -> Result<Self> {
        let endpoint = ConnectionString::parse(connection_string)?;
        let credential = match (
            &endpoint.shared_access_signature,
            &endpoint.shared_access_key_name,
            &endpoint.shared_access_key,
        ) {
            (Some(token), _, _) => Credential::Token(token.clone()),
            (None, Some(name), Some(key)) => Credential::Key {
                name: name.clone(),
                key: key.clone(),
            },
            _ => {
                return Err(ServiceBusError::new(
                    ErrorKind::InvalidArgument,
                    "the connection string holds no key or signature",
                ));
            }
        };
        let trusted = match (&options.tls_config, &options.tls_ca) {
            (Some(config), _) => Some(Arc::clone(config)),
            (None, Some(ca)) => {
                Some(crate::tls_config_trusting(ca).map_err(|e| ServiceBusError {
                    source: Some(e.clone()),
                    ..ServiceBusError::new(ErrorKind::InvalidArgument, e.to_string())
                })?)
            }
            (None, None) => None,
        };
        let scheme =
            options
                .scheme
                .unwrap_or(if endpoint.use_development_emulator && trusted.is_none() {
                    HttpScheme::Http
                } else {
                    HttpScheme::Https
                });
        let tls = match scheme {
            HttpScheme::Http => None,
            HttpScheme::Https => Some(match trusted {
                Some(config) => config,
                None => crate::tls::tls_config_public_roots()?,
            }),
        };
        let port = endpoint.endpoint_port.unwrap_or(match scheme {
            _ if endpoint.use_development_emulator => DEVELOPMENT_PORT,
            HttpScheme::Https => 443,
            HttpScheme::Http => 80,
        });
        let authority = endpoint.fully_qualified_namespace();
        Ok(ServiceBusAdministrationClient {
            http: http::HttpClient::new(
                endpoint.host.clone(),
                port,
                authority.clone(),
                tls,
                options.retry.try_timeout,
            ),
            audience: format!("https://{authority}"),
            context: Context {
                host: authority,
                namespace: String::new(),
                now_ms: 0,
            },
            credential,
            token: Mutex::new(None),
            token_lifetime: options.token_lifetime,
            retry: options.retry,
        })
    }

    /// The `Authorization` header: a token signed for the namespace, kept until shortly
    /// before it ends.
    fn authorization(&self) -> String {
        match &self.credential {
            Credential::Token(token) => token.clone(),
            Credential::Key { name, key } => {
                let now = SystemTime::now();
                let mut cached = self.token.lock().unwrap_or_else(|p| p.into_inner());
                if let Some((token, renew_at)) = cached.as_ref() {
                    if now < *renew_at {
                        return token.clone();
                    }
                }
                let lifetime = self.token_lifetime.max(Duration::from_secs(1));
                // Rounded up to the second: the token lives at least its lifetime.
                let expiry = (now + lifetime)
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs() + u64::from(d.subsec_nanos() > 0));
                let token = crate::sas_token(&self.audience, name, key, expiry);
                *cached = Some((token.clone(), now + lifetime.mul_f64(0.9)));
                token
            }
        }
    }

    /// Sends a request, again while it fails for a transient reason (by the retry
    /// options), and returns the body of its successful answer.
    async fn request(
        &self,
        method: Method,
        path: &str,
        query: &str,
        body: Option<String>,
        update: bool,
    ) -> Result<String> {
        let path_and_query = format!("{path}?{query}api-version={API_VERSION}");
        let operation = format!("{method} {path}");
        self.retry
            .run(&operation, || {
                self.attempt(method.clone(), &path_and_query, body.clone(), update)
            })
            .await
    }

    async fn attempt(
        &self,
        method: Method,
        path_and_query: &str,
        body: Option<String>,
        update: bool,
    ) -> Result<String> {
        // Signed for each attempt: a retry may come after the token's renewal time.
        let authorization = self.authorization();
        let mut headers = vec![("authorization", authorization.as_str())];
        if body.is_some() {
            headers.push((
                "content-type",
                "application/atom+xml;type=entry;charset=utf-8",
            ));
        }
        if update {
            headers.push(("if-match", "*"));
        }
        tracing::debug!(%method, path = %path_and_query, "administration request");
        let answer = self
            .http
            .send(method, path_and_query, &headers, body)
            .await?;
        if answer.status.is_success() {
            Ok(answer.body)
        } else {
            Err(status_error(answer.status, &answer.body, update))
        }
    }

    /// GETs one entity; the empty feed the service answers for a missing one is
    /// `MessagingEntityNotFound`.
    async fn get_entity<T: FromAnswer>(&self, path: &str, what: String, topic: &str) -> Result<T> {
        let body = self
            .request(Method::GET, path, "enrich=false&", None, false)
            .await?;
        let entity = read::answer(&body)
            .map_err(unreadable)?
            .entities
            .into_iter()
            .next()
            .ok_or_else(|| not_found(what))?;
        T::from_answer(entity, topic)
    }

    /// PUTs a description: creating when `update` is false, replacing otherwise.
    async fn put_entity<T: FromAnswer>(
        &self,
        path: &str,
        body: String,
        update: bool,
        topic: &str,
    ) -> Result<T> {
        let answer = self
            .request(Method::PUT, path, "", Some(body), update)
            .await?;
        let entity = read::answer(&answer)
            .map_err(unreadable)?
            .entities
            .into_iter()
            .next()
            .ok_or_else(|| unreadable("the answer holds no entity".to_owned()))?;
        T::from_answer(entity, topic)
    }

    async fn delete_entity(&self, path: &str) -> Result<()> {
        self.request(Method::DELETE, path, "", None, false)
            .await
            .map(|_| ())
    }

    /// One page of a collection.
    async fn page<T: FromAnswer>(
        &self,
        collection: &str,
        skip: u32,
        top: u32,
        topic: &str,
    ) -> Result<Page<T>> {
        let query = format!("$skip={skip}&$top={top}&");
        let body = self
            .request(Method::GET, collection, &query, None, false)
            .await?;
        let answer = read::answer(&body).map_err(unreadable)?;
        Ok(Page {
            next_skip: answer.next.as_deref().and_then(next_skip),
            items: answer
                .entities
                .into_iter()
                .map(|entity: AnsweredEntity| T::from_answer(entity, topic))
                .collect::<Result<_>>()?,
        })
    }

    /// Every entity of a collection from `options.skip` on, page after page.
    async fn list<T: FromAnswer>(
        &self,
        collection: &str,
        options: ListOptions,
        topic: &str,
    ) -> Result<Vec<T>> {
        let top = options.max_page_size.max(1);
        let mut items = Vec::new();
        let mut skip = Some(options.skip);
        while let Some(from) = skip {
            let page = self.page(collection, from, top, topic).await?;
            items.extend(page.items);
            skip = page.next_skip.filter(|next| *next > from);
        }
        Ok(items)
    }

    // ----- queues -----

    /// Creates a queue with `settings` (`QueueSettings::default()` for the service's
    /// defaults). `MessagingEntityAlreadyExists` if the name is taken by a queue or topic.
    ///
    /// ```no_run
    /// # use busbar_client::servicebus::admin::*;
    /// # use busbar_client::servicebus::ServiceBusResult as Result;
    /// # async fn example(admin: &ServiceBusAdministrationClient) -> Result<()> {
    /// let queue = admin.create_queue("orders", &QueueSettings::default()).await?;
    /// assert_eq!(queue.settings.max_delivery_count, 10);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn create_queue(
        &self,
        name: &str,
        settings: &QueueSettings,
    ) -> Result<QueueProperties> {
        let body = write::queue_request(&self.context, settings);
        self.put_entity(&format!("/{}", segment(name)), body, false, "")
            .await
    }

    /// A queue's settings; `MessagingEntityNotFound` if there is none of that name.
    ///
    /// ```no_run
    /// # use busbar_client::servicebus::admin::*;
    /// # use busbar_client::servicebus::ServiceBusResult as Result;
    /// # async fn example(admin: &ServiceBusAdministrationClient) -> Result<()> {
    /// let queue = admin.get_queue("orders").await?;
    /// println!("lock: {:?}", queue.settings.lock_duration);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn get_queue(&self, name: &str) -> Result<QueueProperties> {
        self.get_entity(
            &format!("/{}", segment(name)),
            format!("the queue '{name}'"),
            "",
        )
        .await
    }

    /// A queue's counts, size and times.
    ///
    /// ```no_run
    /// # use busbar_client::servicebus::admin::*;
    /// # use busbar_client::servicebus::ServiceBusResult as Result;
    /// # async fn example(admin: &ServiceBusAdministrationClient) -> Result<()> {
    /// let runtime = admin.get_queue_runtime_properties("orders").await?;
    /// println!("{} active, {} dead-lettered", runtime.counts.active, runtime.counts.dead_letter);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn get_queue_runtime_properties(&self, name: &str) -> Result<QueueRuntimeProperties> {
        self.get_entity(
            &format!("/{}", segment(name)),
            format!("the queue '{name}'"),
            "",
        )
        .await
    }

    /// Replaces a queue's settings with `queue.settings` (what it leaves at a default goes
    /// back to the default). Some settings can't change (`requires_session`, ...):
    /// `InvalidArgument`.
    ///
    /// ```no_run
    /// # use busbar_client::servicebus::admin::*;
    /// # use busbar_client::servicebus::ServiceBusResult as Result;
    /// # async fn example(admin: &ServiceBusAdministrationClient) -> Result<()> {
    /// let mut queue = admin.get_queue("orders").await?;
    /// queue.settings.max_delivery_count = 3;
    /// admin.update_queue(&queue).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn update_queue(&self, queue: &QueueProperties) -> Result<QueueProperties> {
        let body = write::queue_request(&self.context, &queue.settings);
        self.put_entity(&format!("/{}", segment(&queue.name)), body, true, "")
            .await
    }

    /// Deletes a queue and its messages.
    ///
    /// ```no_run
    /// # use busbar_client::servicebus::admin::*;
    /// # use busbar_client::servicebus::ServiceBusResult as Result;
    /// # async fn example(admin: &ServiceBusAdministrationClient) -> Result<()> {
    /// admin.delete_queue("orders").await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn delete_queue(&self, name: &str) -> Result<()> {
        self.delete_entity(&format!("/{}", segment(name))).await
    }

    /// Whether a queue of that name exists.
    ///
    /// ```no_run
    /// # use busbar_client::servicebus::admin::*;
    /// # use busbar_client::servicebus::ServiceBusResult as Result;
    /// # async fn example(admin: &ServiceBusAdministrationClient) -> Result<()> {
    /// if !admin.queue_exists("orders").await? {
    ///     admin.create_queue("orders", &QueueSettings::default()).await?;
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn queue_exists(&self, name: &str) -> Result<bool> {
        exists(self.get_queue(name).await)
    }

    /// Every queue, in name order, read page by page.
    ///
    /// ```no_run
    /// # use busbar_client::servicebus::admin::*;
    /// # use busbar_client::servicebus::ServiceBusResult as Result;
    /// # async fn example(admin: &ServiceBusAdministrationClient) -> Result<()> {
    /// for queue in admin.list_queues(ListOptions::default()).await? {
    ///     println!("{}", queue.name);
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn list_queues(&self, options: ListOptions) -> Result<Vec<QueueProperties>> {
        self.list("/$Resources/queues", options, "").await
    }

    /// One page of queues: `skip` of them skipped, at most `top`.
    ///
    /// ```no_run
    /// # use busbar_client::servicebus::admin::*;
    /// # use busbar_client::servicebus::ServiceBusResult as Result;
    /// # async fn example(admin: &ServiceBusAdministrationClient) -> Result<()> {
    /// let mut skip = Some(0);
    /// while let Some(from) = skip {
    ///     let page = admin.list_queues_page(from, 10).await?;
    ///     println!("{} queues", page.items.len());
    ///     skip = page.next_skip;
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn list_queues_page(&self, skip: u32, top: u32) -> Result<Page<QueueProperties>> {
        self.page("/$Resources/queues", skip, top, "").await
    }

    /// Every queue's counts, size and times.
    ///
    /// ```no_run
    /// # use busbar_client::servicebus::admin::*;
    /// # use busbar_client::servicebus::ServiceBusResult as Result;
    /// # async fn example(admin: &ServiceBusAdministrationClient) -> Result<()> {
    /// let total: u64 = admin
    ///     .list_queues_runtime_properties(ListOptions::default())
    ///     .await?
    ///     .iter()
    ///     .map(|q| q.total_message_count)
    ///     .sum();
    /// # Ok(())
    /// # }
    /// ```
    pub async fn list_queues_runtime_properties(
        &self,
        options: ListOptions,
    ) -> Result<Vec<QueueRuntimeProperties>> {
        self.list("/$Resources/queues", options, "").await
    }

    // ----- topics -----

    /// Creates a topic.
    ///
    /// ```no_run
    /// # use busbar_client::servicebus::admin::*;
    /// # use busbar_client::servicebus::ServiceBusResult as Result;
    /// # async fn example(admin: &ServiceBusAdministrationClient) -> Result<()> {
    /// admin.create_topic("events", &TopicSettings::default()).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn create_topic(
        &self,
        name: &str,
        settings: &TopicSettings,
    ) -> Result<TopicProperties> {
        let body = write::topic_request(settings);
        self.put_entity(&format!("/{}", segment(name)), body, false, "")
            .await
    }

    /// A topic's settings.
    ///
    /// ```no_run
    /// # use busbar_client::servicebus::admin::*;
    /// # use busbar_client::servicebus::ServiceBusResult as Result;
    /// # async fn example(admin: &ServiceBusAdministrationClient) -> Result<()> {
    /// let topic = admin.get_topic("events").await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn get_topic(&self, name: &str) -> Result<TopicProperties> {
        self.get_entity(
            &format!("/{}", segment(name)),
            format!("the topic '{name}'"),
            "",
        )
        .await
    }

    /// A topic's counts, size and times.
    ///
    /// ```no_run
    /// # use busbar_client::servicebus::admin::*;
    /// # use busbar_client::servicebus::ServiceBusResult as Result;
    /// # async fn example(admin: &ServiceBusAdministrationClient) -> Result<()> {
    /// let runtime = admin.get_topic_runtime_properties("events").await?;
    /// println!("{} subscriptions", runtime.subscription_count);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn get_topic_runtime_properties(&self, name: &str) -> Result<TopicRuntimeProperties> {
        self.get_entity(
            &format!("/{}", segment(name)),
            format!("the topic '{name}'"),
            "",
        )
        .await
    }

    /// Replaces a topic's settings.
    ///
    /// ```no_run
    /// # use busbar_client::servicebus::admin::*;
    /// # use busbar_client::servicebus::ServiceBusResult as Result;
    /// # async fn example(admin: &ServiceBusAdministrationClient) -> Result<()> {
    /// let mut topic = admin.get_topic("events").await?;
    /// topic.settings.user_metadata = Some("owned by billing".into());
    /// admin.update_topic(&topic).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn update_topic(&self, topic: &TopicProperties) -> Result<TopicProperties> {
        let body = write::topic_request(&topic.settings);
        self.put_entity(&format!("/{}", segment(&topic.name)), body, true, "")
            .await
    }

    /// Deletes a topic with its subscriptions and their rules.
    ///
    /// ```no_run
    /// # use busbar_client::servicebus::admin::*;
    /// # use busbar_client::servicebus::ServiceBusResult as Result;
    /// # async fn example(admin: &ServiceBusAdministrationClient) -> Result<()> {
    /// admin.delete_topic("events").await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn delete_topic(&self, name: &str) -> Result<()> {
        self.delete_entity(&format!("/{}", segment(name))).await
    }

    /// Whether a topic of that name exists.
    ///
    /// ```no_run
    /// # use busbar_client::servicebus::admin::*;
    /// # use busbar_client::servicebus::ServiceBusResult as Result;
    /// # async fn example(admin: &ServiceBusAdministrationClient) -> Result<()> {
    /// let exists = admin.topic_exists("events").await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn topic_exists(&self, name: &str) -> Result<bool> {
        exists(self.get_topic(name).await)
    }

    /// Every topic, in name order.
    ///
    /// ```no_run
    /// # use busbar_client::servicebus::admin::*;
    /// # use busbar_client::servicebus::ServiceBusResult as Result;
    /// # async fn example(admin: &ServiceBusAdministrationClient) -> Result<()> {
    /// let topics = admin.list_topics(ListOptions::default()).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn list_topics(&self, options: ListOptions) -> Result<Vec<TopicProperties>> {
        self.list("/$Resources/topics", options, "").await
    }

    /// Every topic's counts, size and times.
    ///
    /// ```no_run
    /// # use busbar_client::servicebus::admin::*;
    /// # use busbar_client::servicebus::ServiceBusResult as Result;
    /// # async fn example(admin: &ServiceBusAdministrationClient) -> Result<()> {
    /// let topics = admin.list_topics_runtime_properties(ListOptions::default()).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn list_topics_runtime_properties(
        &self,
        options: ListOptions,
    ) -> Result<Vec<TopicRuntimeProperties>> {
        self.list("/$Resources/topics", options, "").await
    }

    // ----- subscriptions -----

    /// Creates a subscription of `topic`; it starts with the rule `$Default` (every
    /// message). `MessagingEntityNotFound` if the topic is missing.
    ///
    /// ```no_run
    /// # use busbar_client::servicebus::admin::*;
    /// # use busbar_client::servicebus::ServiceBusResult as Result;
    /// # async fn example(admin: &ServiceBusAdministrationClient) -> Result<()> {
    /// admin
    ///     .create_subscription("events", "audit", &SubscriptionSettings::default())
    ///     .await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn create_subscription(
        &self,
        topic: &str,
        name: &str,
        settings: &SubscriptionSettings,
    ) -> Result<SubscriptionProperties> {
        let body = write::subscription_request(&self.context, settings);
        self.put_entity(&subscription_path(topic, name), body, false, topic)
            .await
    }

    /// A subscription's settings.
    ///
    /// ```no_run
    /// # use busbar_client::servicebus::admin::*;
    /// # use busbar_client::servicebus::ServiceBusResult as Result;
    /// # async fn example(admin: &ServiceBusAdministrationClient) -> Result<()> {
    /// let subscription = admin.get_subscription("events", "audit").await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn get_subscription(
        &self,
        topic: &str,
        name: &str,
    ) -> Result<SubscriptionProperties> {
        self.get_entity(
            &subscription_path(topic, name),
            format!("the subscription '{topic}/{name}'"),
            topic,
        )
        .await
    }

    /// A subscription's counts and times.
    ///
    /// ```no_run
    /// # use busbar_client::servicebus::admin::*;
    /// # use busbar_client::servicebus::ServiceBusResult as Result;
    /// # async fn example(admin: &ServiceBusAdministrationClient) -> Result<()> {
    /// let runtime = admin.get_subscription_runtime_properties("events", "audit").await?;
    /// println!("{} active", runtime.counts.active);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn get_subscription_runtime_properties(
        &self,
        topic: &str,
        name: &str,
    ) -> Result<SubscriptionRuntimeProperties> {
        self.get_entity(
            &subscription_path(topic, name),
            format!("the subscription '{topic}/{name}'"),
            topic,
        )
        .await
    }

    /// Replaces a subscription's settings.
    ///
    /// ```no_run
    /// # use busbar_client::servicebus::admin::*;
    /// # use busbar_client::servicebus::ServiceBusResult as Result;
    /// # async fn example(admin: &ServiceBusAdministrationClient) -> Result<()> {
    /// let mut subscription = admin.get_subscription("events", "audit").await?;
    /// subscription.settings.max_delivery_count = 5;
    /// admin.update_subscription(&subscription).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn update_subscription(
        &self,
        subscription: &SubscriptionProperties,
    ) -> Result<SubscriptionProperties> {
        let body = write::subscription_request(&self.context, &subscription.settings);
        self.put_entity(
            &subscription_path(&subscription.topic_name, &subscription.name),
            body,
            true,
            &subscription.topic_name,
        )
        .await
    }

    /// Deletes a subscription with its rules and messages.
    ///
    /// ```no_run
    /// # use busbar_client::servicebus::admin::*;
    /// # use busbar_client::servicebus::ServiceBusResult as Result;
    /// # async fn example(admin: &ServiceBusAdministrationClient) -> Result<()> {
    /// admin.delete_subscription("events", "audit").await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn delete_subscription(&self, topic: &str, name: &str) -> Result<()> {
        self.delete_entity(&subscription_path(topic, name)).await
    }

    /// Whether the subscription exists.
    ///
    /// ```no_run
    /// # use busbar_client::servicebus::admin::*;
    /// # use busbar_client::servicebus::ServiceBusResult as Result;
    /// # async fn example(admin: &ServiceBusAdministrationClient) -> Result<()> {
    /// let exists = admin.subscription_exists("events", "audit").await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn subscription_exists(&self, topic: &str, name: &str) -> Result<bool> {
        exists(self.get_subscription(topic, name).await)
    }

    /// Every subscription of `topic`, in name order.
    ///
    /// ```no_run
    /// # use busbar_client::servicebus::admin::*;
    /// # use busbar_client::servicebus::ServiceBusResult as Result;
    /// # async fn example(admin: &ServiceBusAdministrationClient) -> Result<()> {
    /// let subscriptions = admin.list_subscriptions("events", ListOptions::default()).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn list_subscriptions(
        &self,
        topic: &str,
        options: ListOptions,
    ) -> Result<Vec<SubscriptionProperties>> {
        self.list(
            &format!("/{}/Subscriptions", segment(topic)),
            options,
            topic,
        )
        .await
    }

    /// Every subscription's counts and times.
    ///
    /// ```no_run
    /// # use busbar_client::servicebus::admin::*;
    /// # use busbar_client::servicebus::ServiceBusResult as Result;
    /// # async fn example(admin: &ServiceBusAdministrationClient) -> Result<()> {
    /// let subscriptions = admin
    ///     .list_subscriptions_runtime_properties("events", ListOptions::default())
    ///     .await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn list_subscriptions_runtime_properties(
        &self,
        topic: &str,
        options: ListOptions,
    ) -> Result<Vec<SubscriptionRuntimeProperties>> {
        self.list(
            &format!("/{}/Subscriptions", segment(topic)),
            options,
            topic,
        )
        .await
    }

    // ----- rules -----

    /// Adds a rule to a subscription: messages its filter selects reach the subscription,
    /// changed by its action.
    ///
    /// ```no_run
    /// # use busbar_client::servicebus::admin::*;
    /// # use busbar_client::servicebus::ServiceBusResult as Result;
    /// # async fn example(admin: &ServiceBusAdministrationClient) -> Result<()> {
    /// admin
    ///     .create_rule(
    ///         "events",
    ///         "audit",
    ///         "eu",
    ///         RuleFilter::Correlation(CorrelationFilter {
    ///             properties: vec![("region".into(), TypedValue::String("eu".into()))],
    ///             ..Default::default()
    ///         }),
    ///         RuleAction::Empty,
    ///     )
    ///     .await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn create_rule(
        &self,
        topic: &str,
        subscription: &str,
        name: &str,
        filter: RuleFilter,
        action: RuleAction,
    ) -> Result<RuleProperties> {
        let body = write::rule_request(name, &Rule { filter, action });
        self.put_entity(&rule_path(topic, subscription, name), body, false, topic)
            .await
    }

    /// A rule of a subscription.
    ///
    /// ```no_run
    /// # use busbar_client::servicebus::admin::*;
    /// # use busbar_client::servicebus::ServiceBusResult as Result;
    /// # async fn example(admin: &ServiceBusAdministrationClient) -> Result<()> {
    /// let rule = admin.get_rule("events", "audit", "$Default").await?;
    /// assert_eq!(rule.filter, RuleFilter::True);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn get_rule(
        &self,
        topic: &str,
        subscription: &str,
        name: &str,
    ) -> Result<RuleProperties> {
        self.get_entity(
            &rule_path(topic, subscription, name),
            format!("the rule '{name}' of '{topic}/{subscription}'"),
            topic,
        )
        .await
    }

    /// Replaces a rule's filter and action.
    ///
    /// ```no_run
    /// # use busbar_client::servicebus::admin::*;
    /// # use busbar_client::servicebus::ServiceBusResult as Result;
    /// # async fn example(admin: &ServiceBusAdministrationClient) -> Result<()> {
    /// let mut rule = admin.get_rule("events", "audit", "eu").await?;
    /// rule.action = RuleAction::Sql { expression: "SET region_seen = 1".into(), parameters: vec![] };
    /// admin.update_rule("events", "audit", &rule).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn update_rule(
        &self,
        topic: &str,
        subscription: &str,
        rule: &RuleProperties,
    ) -> Result<RuleProperties> {
        let body = write::rule_request(
            &rule.name,
            &Rule {
                filter: rule.filter.clone(),
                action: rule.action.clone(),
            },
        );
        self.put_entity(
            &rule_path(topic, subscription, &rule.name),
            body,
            true,
            topic,
        )
        .await
    }

    /// Removes a rule.
    ///
    /// ```no_run
    /// # use busbar_client::servicebus::admin::*;
    /// # use busbar_client::servicebus::ServiceBusResult as Result;
    /// # async fn example(admin: &ServiceBusAdministrationClient) -> Result<()> {
    /// admin.delete_rule("events", "audit", "$Default").await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn delete_rule(&self, topic: &str, subscription: &str, name: &str) -> Result<()> {
        self.delete_entity(&rule_path(topic, subscription, name))
            .await
    }

    /// Every rule of a subscription, in its order.
    ///
    /// ```no_run
    /// # use busbar_client::servicebus::admin::*;
    /// # use busbar_client::servicebus::ServiceBusResult as Result;
    /// # async fn example(admin: &ServiceBusAdministrationClient) -> Result<()> {
    /// for rule in admin.list_rules("events", "audit", ListOptions::default()).await? {
    ///     println!("{}: {:?}", rule.name, rule.filter);
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn list_rules(
        &self,
        topic: &str,
        subscription: &str,
        options: ListOptions,
    ) -> Result<Vec<RuleProperties>> {
        self.list(
            &format!("{}/Rules", subscription_path(topic, subscription)),
            options,
            topic,
        )
        .await
    }

    // ----- namespace -----

    /// The namespace's name and times.
    ///
    /// ```no_run
    /// # use busbar_client::servicebus::admin::*;
    /// # use busbar_client::servicebus::ServiceBusResult as Result;
    /// # async fn example(admin: &ServiceBusAdministrationClient) -> Result<()> {
    /// let namespace = admin.get_namespace_properties().await?;
    /// println!("{} since {:?}", namespace.name, namespace.created_at);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn get_namespace_properties(&self) -> Result<NamespaceProperties> {
        let body = self
            .request(Method::GET, "/$namespaceinfo", "", None, false)
            .await?;
        read::namespace(&body)
            .map(NamespaceProperties::from_view)
            .map_err(unreadable)
    }
}

fn exists<T>(got: Result<T>) -> Result<bool> {
    match got {
        Ok(_) => Ok(true),
        Err(e) if e.kind == ErrorKind::MessagingEntityNotFound => Ok(false),
        Err(e) => Err(e),
    }
}

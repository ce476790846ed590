//! [`ServiceBusRuleManager`]: a subscription's rules added, removed and listed over AMQP,
//! through the subscription's `$management` node (`com.microsoft:add-rule`, `remove-rule`,
//! `enumerate-rules`) on the client's shared connection, as the official SDKs' rule
//! managers do.

#![warn(missing_docs)]

use busbar_amqp::Value;

use super::ServiceBusResult;
use super::admin::{RuleAction, RuleFilter, RuleProperties};
use super::client::{ServiceBusClient, subscription_path};
use super::management::ManagementClient;
use super::rule_wire;

/// Rules asked for per `enumerate-rules` request.
const PAGE_SIZE: i32 = 100;

/// The rules of one subscription, made by [`ServiceBusClient::create_rule_manager`].
///
/// ```no_run
/// use busbar_client::servicebus::admin::{RuleAction, RuleFilter};
/// use busbar_client::{ServiceBusClient, ServiceBusClientOptions};
///
/// # async fn example() -> busbar_client::servicebus::ServiceBusResult<()> {
/// let client = ServiceBusClient::from_connection_string(
///     "Endpoint=sb://localhost:5672;SharedAccessKeyName=RootManageSharedAccessKey;\
///      SharedAccessKey=SAS_KEY_VALUE;UseDevelopmentEmulator=true",
///     ServiceBusClientOptions::default(),
/// )?;
/// let rules = client.create_rule_manager("orders", "audit");
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
    topic: String,
    subscription: String,
    management: ManagementClient,
}

impl std::fmt::Debug for ServiceBusRuleManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceBusRuleManager")
            .field("topic", &self.topic)
            .field("subscription", &self.subscription)
            .finish_non_exhaustive()
    }
}

impl ServiceBusClient {
    /// The rule manager of `topic`'s `subscription`, on this client's connection. Its
    /// links are attached on first use.
    pub fn create_rule_manager(&self, topic: &str, subscription: &str) -> ServiceBusRuleManager {
        ServiceBusRuleManager {
            topic: topic.to_owned(),
            subscription: subscription.to_owned(),
            management: ManagementClient::new(self.clone(), subscription_path(topic, subscription)),
        }
    }
}

impl ServiceBusRuleManager {
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
    /// `InvalidArgument` for a filter the broker can't read. SQL parameters (`@name`) are
    /// written into their expressions as literals before the rule is sent: `add-rule` has no
    /// place for them, on Azure Service Bus as on Busbar, and the rule then lists with the
    /// values in place.
    ///
    /// ```no_run
    /// # use busbar_client::servicebus::admin::*;
    /// # use busbar_client::servicebus::ServiceBusRuleManager;
    /// # async fn example(rules: &ServiceBusRuleManager) -> busbar_client::servicebus::ServiceBusResult<()> {
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
    ) -> ServiceBusResult<()> {
        let body = rule_wire::add_rule_request(name, &filter, &action)?;
        self.management
            .request("com.microsoft:add-rule", body, &[])
            .await
            .map(|_| ())
    }

    /// Removes a rule; `MessagingEntityNotFound` if there is none of that name.
    ///
    /// ```no_run
    /// # use busbar_client::servicebus::ServiceBusRuleManager;
    /// # async fn example(rules: &ServiceBusRuleManager) -> busbar_client::servicebus::ServiceBusResult<()> {
    /// rules.delete_rule("$Default").await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn delete_rule(&self, name: &str) -> ServiceBusResult<()> {
        let body = Value::Map(vec![(Value::from("rule-name"), Value::from(name))]);
        self.management
            .request("com.microsoft:remove-rule", body, &[])
            .await
            .map(|_| ())
    }

    /// Every rule of the subscription, in its order, read page by page.
    ///
    /// ```no_run
    /// # use busbar_client::servicebus::ServiceBusRuleManager;
    /// # async fn example(rules: &ServiceBusRuleManager) -> busbar_client::servicebus::ServiceBusResult<()> {
    /// let names: Vec<String> = rules.get_rules().await?.into_iter().map(|r| r.name).collect();
    /// # Ok(())
    /// # }
    /// ```
    pub async fn get_rules(&self) -> ServiceBusResult<Vec<RuleProperties>> {
        let mut rules = Vec::new();
        loop {
            let skip = i32::try_from(rules.len()).unwrap_or(i32::MAX);
            let body = Value::Map(vec![
                (Value::from("top"), Value::Int(PAGE_SIZE)),
                (Value::from("skip"), Value::Int(skip)),
            ]);
            let answer = self
                .management
                .request("com.microsoft:enumerate-rules", body, &[])
                .await?;
            let page = match (answer.status, &answer.body) {
                (204, _) | (_, None) => Vec::new(),
                (_, Some(body)) => rule_wire::rules_from_answer(body)?,
            };
            let last = page.len() < PAGE_SIZE as usize;
            rules.extend(page);
            if last {
                break;
            }
        }
        Ok(rules)
    }
}

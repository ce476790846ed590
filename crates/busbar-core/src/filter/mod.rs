//! Subscription rules: the filters that decide whether a topic message is copied into a
//! subscription, and the SQL rule actions that edit the copy.
//!
//! Job: parse and evaluate the rule language Service Bus documents for subscriptions —
//! SQL filters (a SQL-92 subset with three-valued logic), correlation filters, the true
//! and false filters, and `SET`/`REMOVE` rule actions — with the service's limits and
//! type rules.
//!
//! It must not do I/O and knows nothing about AMQP, the management plane or how a message
//! is stored: messages are seen only through [`PropertySource`], and an action's effect is
//! returned as a list of [`PropertyChange`]s for the caller to apply to its own copy.
//!
//! Semantics follow Microsoft's "SQL filter syntax", "SQL rule action syntax" and "Topic
//! filters and actions" pages. Where the pages say no more than "C# semantics", the engine
//! follows what C# operator binding does; the points where that matters are noted where
//! they are implemented (incompatible operand types are an evaluation error, not a
//! mismatch, because the service treats them as a filter exception and can dead-letter
//! the message).

mod correlation;
mod eval;
mod lexer;
mod parser;
mod sql;
mod syntax;

#[cfg(test)]
mod tests;

pub use correlation::CorrelationFilter;
pub use sql::{SqlFilter, SqlRuleAction};

/// The longest SQL filter or rule action expression the service accepts, in UTF-16 code
/// units as .NET counts string length ("Size of SQL filters or actions" quota).
pub const MAX_EXPRESSION_LENGTH: usize = 1024;

/// The most `SET`/`REMOVE` statements one rule action may hold (same quota).
pub const MAX_ACTION_STATEMENTS: usize = 32;

/// How deeply parentheses, `NOT` and unary signs may nest. Far beyond any real rule; it
/// exists so that a hostile expression is refused instead of exhausting the stack.
pub const MAX_NESTING: usize = 64;

/// A property value as filters see it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum FilterValue {
    Null,
    Bool(bool),
    Long(i64),
    Double(f64),
    String(String),
}

impl From<bool> for FilterValue {
    fn from(value: bool) -> Self {
        FilterValue::Bool(value)
    }
}

impl From<i64> for FilterValue {
    fn from(value: i64) -> Self {
        FilterValue::Long(value)
    }
}

impl From<f64> for FilterValue {
    fn from(value: f64) -> Self {
        FilterValue::Double(value)
    }
}

impl From<&str> for FilterValue {
    fn from(value: &str) -> Self {
        FilterValue::String(value.to_owned())
    }
}

impl From<String> for FilterValue {
    fn from(value: String) -> Self {
        FilterValue::String(value)
    }
}

/// Where a filter reads message properties from.
///
/// System properties are asked for by their canonical SQL name without the `sys.`
/// prefix: `MessageId`, `CorrelationId`, `To`, `ReplyTo`, `Label` (an expression's
/// `sys.Subject` is asked for as `Label` too), `SessionId`, `ReplyToSessionId`,
/// `ContentType`, and the other names in [`SYSTEM_PROPERTIES`]. The caller answers what
/// it knows and `None` otherwise; an unanswered system property reads as NULL.
///
/// User properties are the application properties, asked for by the name exactly as the
/// expression spells it. Service Bus documents property names as case-insensitive, so an
/// implementation should fall back to a case-insensitive match when there is no exact one.
/// `None` means the property does not exist, which SQL filters evaluate as unknown.
pub trait PropertySource {
    fn system(&self, name: &str) -> Option<FilterValue>;
    fn user(&self, name: &str) -> Option<FilterValue>;
}

/// The system property names an expression may use after `sys.`, matched without regard
/// to case. Any other `sys.` name is refused when the expression is parsed, as the service
/// refuses it when the rule is created.
pub const SYSTEM_PROPERTIES: &[&str] = &[
    "MessageId",
    "CorrelationId",
    "To",
    "ReplyTo",
    "Label",
    "SessionId",
    "ReplyToSessionId",
    "ContentType",
    "PartitionKey",
    "ViaPartitionKey",
    "TimeToLive",
    "ScheduledEnqueueTimeUtc",
    "ForcePersistence",
    "EnqueuedTimeUtc",
    "EnqueuedSequenceNumber",
    "SequenceNumber",
    "DeliveryCount",
    "ExpiresAtUtc",
    "LockedUntilUtc",
    "LockToken",
    "Size",
    "State",
    "DeadLetterSource",
];

/// Which property bag a [`PropertyChange`] touches.
#[derive(Debug, Clone, PartialEq)]
pub enum PropertyScope {
    User,
    System,
}

/// One effect of a rule action, in the order the action's statements run.
#[derive(Debug, Clone, PartialEq)]
pub struct PropertyChange {
    pub scope: PropertyScope,
    /// User properties: the name as written. System properties: the canonical name from
    /// [`SYSTEM_PROPERTIES`].
    pub name: String,
    /// `None` = REMOVE. `Some(FilterValue::Null)` sets the property to null, which is what
    /// `SET` does when its expression is unknown.
    pub value: Option<FilterValue>,
}

/// Why an expression was refused or could not be evaluated. Positions count characters
/// from 0 into the expression text.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FilterError {
    #[error("the expression is {length} characters long; the maximum is {max}")]
    TooLong { length: usize, max: usize },
    #[error("syntax error at position {position}: {message}")]
    Syntax { position: usize, message: String },
    #[error("the expression nests more than {max} levels deep at position {position}")]
    TooDeep { position: usize, max: usize },
    #[error("'sys.{name}' at position {position} is not a system property")]
    UnknownSystemProperty { position: usize, name: String },
    #[error("system property '{name}' at position {position} can't be set by a rule action")]
    ReadOnlySystemProperty { position: usize, name: String },
    #[error("system property '{name}' at position {position} can't be removed")]
    CannotRemoveSystemProperty { position: usize, name: String },
    #[error("the rule action has {count} statements; the maximum is {max}")]
    TooManyStatements { count: usize, max: usize },
    #[error("a correlation filter must set at least one system or user property")]
    EmptyCorrelationFilter,
    /// The expression is valid but failed on this message (incompatible types, overflow,
    /// division by zero, a bad LIKE escape, an impossible conversion). The service reports
    /// these as filter exceptions; a subscription may dead-letter such messages.
    #[error("filter evaluation failed: {0}")]
    Evaluation(String),
}

/// A subscription rule's filter.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    /// Selects every message (what a subscription's `$Default` rule holds).
    True,
    /// Selects no message.
    False,
    Sql(SqlFilter),
    Correlation(CorrelationFilter),
}

impl Filter {
    /// Whether the message is selected. An `Err` is a filter evaluation exception, which
    /// the caller handles per the subscription's dead-lettering setting.
    pub fn matches(&self, message: &dyn PropertySource) -> Result<bool, FilterError> {
        match self {
            Filter::True => Ok(true),
            Filter::False => Ok(false),
            Filter::Sql(filter) => filter.matches(message),
            Filter::Correlation(filter) => Ok(filter.matches(message)),
        }
    }

    /// The checks the service makes when a rule is created, beyond parsing: a correlation
    /// filter must set something.
    pub fn validate(&self) -> Result<(), FilterError> {
        match self {
            Filter::Correlation(filter) => filter.validate(),
            Filter::True | Filter::False | Filter::Sql(_) => Ok(()),
        }
    }
}

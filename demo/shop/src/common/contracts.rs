//! The messages the services exchange through Busbar (JSON bodies). Changing a field here
//! changes the contract between services: add optional fields, never rename.
//!
//! * [`OrderChanged`] → queue `order-changes` (message id = `change_id`, subject = kind), for
//!   analytics; and the same body → topic `order-events` with subject
//!   `created|updated|deleted|closed` ([`OrderChanged::event_subject`]).
//! * [`EmailRequest`] → queue `emails`.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The queue of order changes (orders → analytics).
pub const ORDER_CHANGES_QUEUE: &str = "order-changes";
/// The topic of order events (orders → anyone subscribed).
pub const ORDER_EVENTS_TOPIC: &str = "order-events";
/// The subscription of `order-events` that only sees `created` events (email service).
pub const EMAIL_CREATED_SUBSCRIPTION: &str = "email-created";
/// The subscription of `order-events` that only sees `closed` and `deleted` events (email
/// service: cancels reminders).
pub const EMAIL_CLOSED_SUBSCRIPTION: &str = "email-closed";
/// The subscription of `order-events` that sees every event.
pub const ALL_EVENTS_SUBSCRIPTION: &str = "all";
/// The queue of mails to deliver (anyone → email).
pub const EMAILS_QUEUE: &str = "emails";

/// What happened to an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    Created,
    Updated,
    Deleted,
}

impl ChangeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Created => "created",
            ChangeKind::Updated => "updated",
            ChangeKind::Deleted => "deleted",
        }
    }
}

/// An order's lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OrderStatus {
    Open,
    Paid,
    Shipped,
    Closed,
}

impl OrderStatus {
    pub const ALL: [OrderStatus; 4] = [
        OrderStatus::Open,
        OrderStatus::Paid,
        OrderStatus::Shipped,
        OrderStatus::Closed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Open => "open",
            OrderStatus::Paid => "paid",
            OrderStatus::Shipped => "shipped",
            OrderStatus::Closed => "closed",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.as_str() == text)
    }
}

/// One line of an order; prices in cents.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderItem {
    pub sku: String,
    pub quantity: i64,
    /// Cents.
    pub unit_price: i64,
}

/// The order as it is after the change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderSnapshot {
    /// The signed-in user who placed the order (their email): whom the email service mails.
    #[serde(default)]
    pub owner: String,
    pub customer: String,
    pub status: OrderStatus,
    pub items: Vec<OrderItem>,
    pub total_cents: i64,
    /// Milliseconds since the Unix epoch.
    pub created_at: i64,
    /// Milliseconds since the Unix epoch.
    pub updated_at: i64,
}

/// One committed change of one order: step 1 of the article's flow ("the Order microservice
/// sends a message containing the updated order to the orders queue").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderChanged {
    /// Unique per commit; the message id, so duplicate detection drops a re-send.
    pub change_id: Uuid,
    pub order_id: Uuid,
    /// 1 at creation, one more at each change (deletion included): consumers keep the
    /// highest they saw, so an older change arriving late changes nothing.
    pub version: i64,
    pub kind: ChangeKind,
    /// The order after the change; `None` when deleted.
    pub order: Option<OrderSnapshot>,
    /// Milliseconds since the Unix epoch.
    pub at: i64,
}

impl OrderChanged {
    /// The subject on `order-events`: the kind, or `closed` for an update that closed it.
    pub fn event_subject(&self) -> &'static str {
        match (&self.kind, &self.order) {
            (ChangeKind::Updated, Some(order)) if order.status == OrderStatus::Closed => "closed",
            (kind, _) => kind.as_str(),
        }
    }
}

/// Which mail an [`EmailRequest`] asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EmailKind {
    Welcome,
    PasswordReset,
    OrderCreated,
    OrderReminder,
    DeadLetterAlert,
}

/// A mail to deliver → queue `emails`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmailRequest {
    pub to: String,
    pub subject: String,
    pub body: String,
    pub kind: EmailKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_id: Option<Uuid>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_closing_update_is_a_closed_event() {
        let mut change = OrderChanged {
            change_id: Uuid::nil(),
            order_id: Uuid::nil(),
            version: 2,
            kind: ChangeKind::Updated,
            order: Some(OrderSnapshot {
                owner: "someone@example.com".into(),
                customer: "c".into(),
                status: OrderStatus::Closed,
                items: vec![],
                total_cents: 0,
                created_at: 0,
                updated_at: 0,
            }),
            at: 0,
        };
        assert_eq!(change.event_subject(), "closed");
        change.kind = ChangeKind::Deleted;
        change.order = None;
        assert_eq!(change.event_subject(), "deleted");
        let json = serde_json::to_value(&change).unwrap_or_default();
        assert_eq!(json["kind"], "deleted");
    }
}

//! The parsed form of filter and action expressions.

use super::{FilterValue, SYSTEM_PROPERTIES};

/// A property reference with its scope resolved at parse time.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum PropRef {
    /// Name as written; the source decides how to match it.
    User(String),
    /// Canonical name from [`SYSTEM_PROPERTIES`].
    System(&'static str),
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum ArithOp {
    Add,
    Sub,
    Mul,
    Div,
    Rem,
}

impl ArithOp {
    pub(crate) fn symbol(self) -> &'static str {
        match self {
            ArithOp::Add => "+",
            ArithOp::Sub => "-",
            ArithOp::Mul => "*",
            ArithOp::Div => "/",
            ArithOp::Rem => "%",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl CmpOp {
    pub(crate) fn symbol(self) -> &'static str {
        match self {
            CmpOp::Eq => "=",
            CmpOp::Ne => "<>",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
        }
    }
}

/// One expression tree for both values and conditions: parentheses may hold either, so
/// the parser builds first and checks which kind each operand is afterwards.
///
/// Chains of the same precedence (`a OR b OR c`, `a + b - c`) are kept flat so that a long
/// but shallow expression does not become a deep tree; depth comes only from nesting,
/// which the parser bounds.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Node {
    Literal(FilterValue),
    Property(PropRef),
    /// `newid()`.
    NewId,
    /// `property(name)` / `p(name)`: a user property whose name is computed.
    PropertyFn(Box<Node>),
    Negate(Box<Node>),
    /// `first op1 x1 op2 x2 ...`, evaluated left to right.
    Arith {
        first: Box<Node>,
        rest: Vec<(ArithOp, Node)>,
    },
    Compare {
        op: CmpOp,
        left: Box<Node>,
        right: Box<Node>,
    },
    IsNull {
        operand: Box<Node>,
        negated: bool,
    },
    In {
        operand: Box<Node>,
        items: Vec<Node>,
        negated: bool,
    },
    Like {
        operand: Box<Node>,
        pattern: Box<Node>,
        escape: Option<Box<Node>>,
        negated: bool,
    },
    Exists(PropRef),
    Not(Box<Node>),
    And(Vec<Node>),
    Or(Vec<Node>),
}

impl Node {
    /// Whether the node yields a truth value (a condition) rather than a value.
    pub(crate) fn is_condition(&self) -> bool {
        match self {
            Node::Compare { .. }
            | Node::IsNull { .. }
            | Node::In { .. }
            | Node::Like { .. }
            | Node::Exists(_)
            | Node::Not(_)
            | Node::And(_)
            | Node::Or(_) => true,
            Node::Literal(_)
            | Node::Property(_)
            | Node::NewId
            | Node::PropertyFn(_)
            | Node::Negate(_)
            | Node::Arith { .. } => false,
        }
    }
}

/// The canonical spelling of a system property name, if it is one. `Subject` is the
/// current SDKs' name for the property the service calls `Label`.
pub(crate) fn canonical_system_property(name: &str) -> Option<&'static str> {
    if name.eq_ignore_ascii_case("Subject") {
        return Some("Label");
    }
    SYSTEM_PROPERTIES
        .iter()
        .copied()
        .find(|known| known.eq_ignore_ascii_case(name))
}

/// System properties a rule action may `SET`: those the service's message type lets a
/// sender write. The rest (sequence numbers, lock data, enqueue time...) belong to the
/// broker.
pub(crate) fn is_settable_system_property(canonical: &str) -> bool {
    is_string_system_property(canonical)
        || matches!(
            canonical,
            "TimeToLive" | "ScheduledEnqueueTimeUtc" | "ForcePersistence"
        )
}

/// System properties whose type is a string, so a `SET` converts its value to text.
pub(crate) fn is_string_system_property(canonical: &str) -> bool {
    matches!(
        canonical,
        "MessageId"
            | "CorrelationId"
            | "To"
            | "ReplyTo"
            | "Label"
            | "SessionId"
            | "ReplyToSessionId"
            | "ContentType"
            | "PartitionKey"
            | "ViaPartitionKey"
    )
}

/// One statement of a rule action.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Statement {
    Set { target: PropRef, value: Node },
    Remove { target: PropRef },
}

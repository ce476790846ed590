//! Evaluation of parsed expressions against a message.
//!
//! Truth values are three-valued: `Some(true)`, `Some(false)` and `None` for unknown. A
//! property the message does not have, a NULL constant and a null-valued property all read
//! as [`FilterValue::Null`], and every operator except `IS [NOT] NULL` and `EXISTS` turns
//! a NULL operand into unknown (arithmetic into NULL), as the SQL filter page prescribes
//! for missing properties.
//!
//! Operand types follow C# operator binding, which the service documents as its rule:
//! integers and doubles mix (the integer is widened), `+` with a string operand
//! concatenates, strings and booleans support only `=` and `<>`, integer arithmetic is
//! checked. Anything else — a string compared with a number, `'a' < 'b'`, `TRUE + 1` — has
//! no C# operator, and the service raises a filter exception rather than returning false:
//! [`FilterError::Evaluation`], which lets the caller dead-letter the message as a
//! subscription with dead-lettering on filter evaluation exceptions does.

use super::syntax::{ArithOp, CmpOp, Node, PropRef};
use super::{FilterError, FilterValue, PropertySource};

/// The longest string an expression may build; the service refuses longer concatenation
/// results (counted in UTF-16 code units, as .NET counts).
const MAX_STRING_LENGTH: usize = 32_767;

fn failure(message: impl Into<String>) -> FilterError {
    FilterError::Evaluation(message.into())
}

fn type_name(value: &FilterValue) -> &'static str {
    match value {
        FilterValue::Null => "NULL",
        FilterValue::Bool(_) => "boolean",
        FilterValue::Long(_) => "integer",
        FilterValue::Double(_) => "double",
        FilterValue::String(_) => "string",
    }
}

pub(crate) fn read_property(source: &dyn PropertySource, property: &PropRef) -> FilterValue {
    let value = match property {
        PropRef::User(name) => source.user(name),
        PropRef::System(name) => source.system(name),
    };
    value.unwrap_or(FilterValue::Null)
}

/// Evaluates a value node.
pub(crate) fn value(node: &Node, source: &dyn PropertySource) -> Result<FilterValue, FilterError> {
    match node {
        Node::Literal(value) => Ok(value.clone()),
        Node::Property(property) => Ok(read_property(source, property)),
        Node::NewId => Ok(FilterValue::String(uuid::Uuid::new_v4().to_string())),
        Node::PropertyFn(name) => match value(name, source)? {
            FilterValue::Null => Ok(FilterValue::Null),
            FilterValue::String(name) => Ok(source.user(&name).unwrap_or(FilterValue::Null)),
            other => Err(failure(format!(
                "property() needs a string name, not a {}",
                type_name(&other)
            ))),
        },
        Node::Negate(operand) => negate(value(operand, source)?),
        Node::Arith { first, rest } => {
            let mut accumulated = value(first, source)?;
            for (op, operand) in rest {
                let right = value(operand, source)?;
                accumulated = arithmetic(*op, accumulated, right)?;
            }
            Ok(accumulated)
        }
        // Every other node is a condition (see `Node::is_condition`).
        _ => Err(failure("a condition was used where a value is expected")),
    }
}

/// Evaluates a condition node to true, false or unknown (`None`).
pub(crate) fn truth(node: &Node, source: &dyn PropertySource) -> Result<Option<bool>, FilterError> {
    match node {
        Node::Compare { op, left, right } => {
            let left = value(left, source)?;
            let right = value(right, source)?;
            compare(*op, &left, &right)
        }
        Node::IsNull { operand, negated } => {
            let is_null = value(operand, source)? == FilterValue::Null;
            Ok(Some(is_null != *negated))
        }
        Node::In {
            operand,
            items,
            negated,
        } => in_list(operand, items, *negated, source),
        Node::Like {
            operand,
            pattern,
            escape,
            negated,
        } => like(operand, pattern, escape.as_deref(), *negated, source),
        Node::Exists(property) => Ok(Some(match property {
            PropRef::User(name) => source.user(name).is_some(),
            PropRef::System(name) => source.system(name).is_some(),
        })),
        Node::Not(inner) => Ok(truth(inner, source)?.map(|b| !b)),
        Node::And(items) => {
            // A false operand decides without looking further (so later operands can't
            // fail); an unknown one does not, since a later false still makes it false.
            let mut unknown = false;
            for item in items {
                match truth(item, source)? {
                    Some(false) => return Ok(Some(false)),
                    Some(true) => {}
                    None => unknown = true,
                }
            }
            Ok(if unknown { None } else { Some(true) })
        }
        Node::Or(items) => {
            let mut unknown = false;
            for item in items {
                match truth(item, source)? {
                    Some(true) => return Ok(Some(true)),
                    Some(false) => {}
                    None => unknown = true,
                }
            }
            Ok(if unknown { None } else { Some(false) })
        }
        Node::Literal(_)
        | Node::Property(_)
        | Node::NewId
        | Node::PropertyFn(_)
        | Node::Negate(_)
        | Node::Arith { .. } => Err(failure("a value was used where a condition is expected")),
    }
}

fn mismatch(op: &str, left: &FilterValue, right: &FilterValue) -> FilterError {
    failure(format!(
        "operator '{op}' can't be applied to a {} and a {}",
        type_name(left),
        type_name(right)
    ))
}

/// `=` between two non-NULL values of compatible types.
fn equals(left: &FilterValue, right: &FilterValue) -> Result<bool, FilterError> {
    match (left, right) {
        (FilterValue::Bool(a), FilterValue::Bool(b)) => Ok(a == b),
        // Ordinal: the service compares strings with C# `==`, case-sensitively.
        (FilterValue::String(a), FilterValue::String(b)) => Ok(a == b),
        (FilterValue::Long(a), FilterValue::Long(b)) => Ok(a == b),
        (FilterValue::Long(a), FilterValue::Double(b)) => Ok((*a as f64) == *b),
        (FilterValue::Double(a), FilterValue::Long(b)) => Ok(*a == (*b as f64)),
        (FilterValue::Double(a), FilterValue::Double(b)) => Ok(a == b),
        _ => Err(mismatch("=", left, right)),
    }
}

fn compare(
    op: CmpOp,
    left: &FilterValue,
    right: &FilterValue,
) -> Result<Option<bool>, FilterError> {
    if *left == FilterValue::Null || *right == FilterValue::Null {
        return Ok(None);
    }
    let result = match op {
        CmpOp::Eq => equals(left, right)?,
        CmpOp::Ne => !equals(left, right).map_err(|_| mismatch("<>", left, right))?,
        CmpOp::Lt | CmpOp::Le | CmpOp::Gt | CmpOp::Ge => match (left, right) {
            (FilterValue::Long(a), FilterValue::Long(b)) => ordered(op, a, b),
            (FilterValue::Long(a), FilterValue::Double(b)) => ordered(op, &(*a as f64), b),
            (FilterValue::Double(a), FilterValue::Long(b)) => ordered(op, a, &(*b as f64)),
            (FilterValue::Double(a), FilterValue::Double(b)) => ordered(op, a, b),
            _ => return Err(mismatch(op.symbol(), left, right)),
        },
    };
    Ok(Some(result))
}

/// IEEE comparison for doubles (NaN orders with nothing), as C# does.
fn ordered<T: PartialOrd>(op: CmpOp, a: &T, b: &T) -> bool {
    match op {
        CmpOp::Lt => a < b,
        CmpOp::Le => a <= b,
        CmpOp::Gt => a > b,
        CmpOp::Ge => a >= b,
        CmpOp::Eq => a == b,
        CmpOp::Ne => a != b,
    }
}

fn utf16_len(text: &str) -> usize {
    text.chars().map(char::len_utf16).sum()
}

fn overflow(op: ArithOp) -> FilterError {
    failure(format!("arithmetic overflow in '{}'", op.symbol()))
}

fn arithmetic(
    op: ArithOp,
    left: FilterValue,
    right: FilterValue,
) -> Result<FilterValue, FilterError> {
    if left == FilterValue::Null || right == FilterValue::Null {
        return Ok(FilterValue::Null);
    }
    match (&left, &right) {
        (FilterValue::String(_), _) | (_, FilterValue::String(_)) if op == ArithOp::Add => {
            let joined = format!("{}{}", text(&left), text(&right));
            if utf16_len(&joined) > MAX_STRING_LENGTH {
                return Err(failure(format!(
                    "a string built by the expression exceeds {MAX_STRING_LENGTH} characters"
                )));
            }
            Ok(FilterValue::String(joined))
        }
        (FilterValue::Long(a), FilterValue::Long(b)) => {
            let (a, b) = (*a, *b);
            let result = match op {
                ArithOp::Add => a.checked_add(b),
                ArithOp::Sub => a.checked_sub(b),
                ArithOp::Mul => a.checked_mul(b),
                ArithOp::Div | ArithOp::Rem if b == 0 => {
                    return Err(failure("division by zero"));
                }
                ArithOp::Div => a.checked_div(b),
                ArithOp::Rem => a.checked_rem(b),
            };
            result.map(FilterValue::Long).ok_or_else(|| overflow(op))
        }
        (
            FilterValue::Long(_) | FilterValue::Double(_),
            FilterValue::Long(_) | FilterValue::Double(_),
        ) => {
            let (a, b) = (as_double(&left), as_double(&right));
            Ok(FilterValue::Double(match op {
                ArithOp::Add => a + b,
                ArithOp::Sub => a - b,
                ArithOp::Mul => a * b,
                ArithOp::Div => a / b,
                ArithOp::Rem => a % b,
            }))
        }
        _ => Err(mismatch(op.symbol(), &left, &right)),
    }
}

fn as_double(value: &FilterValue) -> f64 {
    match value {
        FilterValue::Long(v) => *v as f64,
        FilterValue::Double(v) => *v,
        FilterValue::Null | FilterValue::Bool(_) | FilterValue::String(_) => f64::NAN,
    }
}

fn negate(operand: FilterValue) -> Result<FilterValue, FilterError> {
    match operand {
        FilterValue::Null => Ok(FilterValue::Null),
        FilterValue::Long(v) => v
            .checked_neg()
            .map(FilterValue::Long)
            .ok_or_else(|| failure("arithmetic overflow in unary '-'")),
        FilterValue::Double(v) => Ok(FilterValue::Double(-v)),
        other => Err(failure(format!(
            "unary '-' can't be applied to a {}",
            type_name(&other)
        ))),
    }
}

/// A value as text, the way the service turns operands into strings (invariant culture):
/// booleans as `True`/`False`, doubles in .NET's shortest round-trip form.
pub(crate) fn text(value: &FilterValue) -> String {
    match value {
        FilterValue::Null => String::new(),
        FilterValue::Bool(true) => "True".to_owned(),
        FilterValue::Bool(false) => "False".to_owned(),
        FilterValue::Long(v) => v.to_string(),
        FilterValue::Double(v) => double_text(*v),
        FilterValue::String(s) => s.clone(),
    }
}

/// .NET switches to `E` notation below 1E-05 and from 1E+15 on; Rust never does, so the
/// exponent is taken from Rust's scientific form and the switch made here.
fn double_text(v: f64) -> String {
    if v.is_nan() {
        return "NaN".to_owned();
    }
    if v.is_infinite() {
        return if v > 0.0 { "Infinity" } else { "-Infinity" }.to_owned();
    }
    if v == 0.0 {
        return if v.is_sign_negative() { "-0" } else { "0" }.to_owned();
    }
    let scientific = format!("{v:e}");
    let Some((mantissa, exponent)) = scientific.split_once('e') else {
        return v.to_string();
    };
    let Ok(exponent) = exponent.parse::<i32>() else {
        return v.to_string();
    };
    if (-4..15).contains(&exponent) {
        v.to_string()
    } else {
        let sign = if exponent < 0 { '-' } else { '+' };
        format!("{mantissa}E{sign}{:02}", exponent.unsigned_abs())
    }
}

fn in_list(
    operand: &Node,
    items: &[Node],
    negated: bool,
    source: &dyn PropertySource,
) -> Result<Option<bool>, FilterError> {
    let subject = value(operand, source)?;
    if subject == FilterValue::Null {
        return Ok(None);
    }
    for item in items {
        let candidate = value(item, source)?;
        if candidate == FilterValue::Null {
            continue;
        }
        if equals(&subject, &candidate).map_err(|_| mismatch("IN", &subject, &candidate))? {
            return Ok(Some(!negated));
        }
    }
    Ok(Some(negated))
}

fn like(
    operand: &Node,
    pattern: &Node,
    escape: Option<&Node>,
    negated: bool,
    source: &dyn PropertySource,
) -> Result<Option<bool>, FilterError> {
    let subject = value(operand, source)?;
    let pattern = value(pattern, source)?;
    let escape = match escape {
        Some(node) => Some(value(node, source)?),
        None => None,
    };
    if subject == FilterValue::Null
        || pattern == FilterValue::Null
        || escape == Some(FilterValue::Null)
    {
        return Ok(None);
    }
    let escape = match escape {
        None => None,
        Some(escape) => {
            let escape = text(&escape);
            let mut chars = escape.chars();
            match (chars.next(), chars.next()) {
                (Some(c), None) => Some(c),
                _ => {
                    return Err(failure(format!(
                        "the LIKE escape must be exactly one character, not '{escape}'"
                    )));
                }
            }
        }
    };
    let matched = like_matches(&text(&subject), &text(&pattern), escape);
    Ok(Some(matched != negated))
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum PatternItem {
    Literal(char),
    AnyOne,
    AnyRun,
}

fn compile_pattern(pattern: &str, escape: Option<char>) -> Vec<PatternItem> {
    let mut items = Vec::new();
    let mut escaped = false;
    for c in pattern.chars() {
        if escaped {
            items.push(PatternItem::Literal(c));
            escaped = false;
        } else if Some(c) == escape {
            escaped = true;
        } else if c == '%' {
            items.push(PatternItem::AnyRun);
        } else if c == '_' {
            items.push(PatternItem::AnyOne);
        } else {
            items.push(PatternItem::Literal(c));
        }
    }
    // A trailing escape character escapes nothing; the service ignores it too.
    items
}

/// Case-sensitive LIKE: `%` any run of characters, `_` exactly one. Greedy matching that
/// backtracks only to the last `%`, so it runs in time proportional to the product of the
/// lengths at worst and never recurses.
pub(crate) fn like_matches(subject: &str, pattern: &str, escape: Option<char>) -> bool {
    let subject: Vec<char> = subject.chars().collect();
    let pattern = compile_pattern(pattern, escape);
    let (mut s, mut p) = (0, 0);
    let mut last_run: Option<(usize, usize)> = None;
    while s < subject.len() {
        match pattern.get(p) {
            Some(PatternItem::AnyOne) => {
                s += 1;
                p += 1;
            }
            Some(PatternItem::Literal(c)) if *c == subject[s] => {
                s += 1;
                p += 1;
            }
            Some(PatternItem::AnyRun) => {
                last_run = Some((p, s));
                p += 1;
            }
            _ => match last_run {
                Some((run_p, run_s)) => {
                    last_run = Some((run_p, run_s + 1));
                    p = run_p + 1;
                    s = run_s + 1;
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|item| *item == PatternItem::AnyRun)
}

/// Converts the value a `SET` assigns to the type of the property it replaces, as the
/// service does ("SET performs implicit conversion if possible"); a conversion that can't
/// be made fails the action.
pub(crate) fn convert_to_type_of(
    value: FilterValue,
    existing: &FilterValue,
) -> Result<FilterValue, FilterError> {
    let impossible = |value: &FilterValue| {
        failure(format!(
            "can't convert {} '{}' to the {} type of the existing property",
            type_name(value),
            text(value),
            type_name(existing)
        ))
    };
    match existing {
        FilterValue::Null => Ok(value),
        FilterValue::String(_) => Ok(match value {
            FilterValue::Null => FilterValue::Null,
            other => FilterValue::String(text(&other)),
        }),
        FilterValue::Long(_) => match &value {
            FilterValue::Long(_) => Ok(value),
            // Convert.ToInt64 rounds half to even and refuses what does not fit.
            FilterValue::Double(d) => {
                let rounded = d.round_ties_even();
                if (-9_223_372_036_854_775_808.0..9_223_372_036_854_775_808.0).contains(&rounded) {
                    Ok(FilterValue::Long(rounded as i64))
                } else {
                    Err(impossible(&value))
                }
            }
            FilterValue::String(s) => s
                .trim()
                .parse::<i64>()
                .map(FilterValue::Long)
                .map_err(|_| impossible(&value)),
            FilterValue::Bool(b) => Ok(FilterValue::Long(i64::from(*b))),
            FilterValue::Null => Err(impossible(&value)),
        },
        FilterValue::Double(_) => match &value {
            FilterValue::Double(_) => Ok(value),
            FilterValue::Long(l) => Ok(FilterValue::Double(*l as f64)),
            FilterValue::String(s) => s
                .trim()
                .parse::<f64>()
                .map(FilterValue::Double)
                .map_err(|_| impossible(&value)),
            FilterValue::Bool(b) => Ok(FilterValue::Double(if *b { 1.0 } else { 0.0 })),
            FilterValue::Null => Err(impossible(&value)),
        },
        FilterValue::Bool(_) => match &value {
            FilterValue::Bool(_) => Ok(value),
            FilterValue::Long(l) => Ok(FilterValue::Bool(*l != 0)),
            FilterValue::Double(d) => Ok(FilterValue::Bool(*d != 0.0)),
            FilterValue::String(s) => {
                let s = s.trim();
                if s.eq_ignore_ascii_case("true") {
                    Ok(FilterValue::Bool(true))
                } else if s.eq_ignore_ascii_case("false") {
                    Ok(FilterValue::Bool(false))
                } else {
                    Err(impossible(&value))
                }
            }
            FilterValue::Null => Err(impossible(&value)),
        },
    }
}

//! SQL filters and SQL rule actions: the parsed form plus the original text.

use super::eval::{convert_to_type_of, text, truth, value};
use super::parser::{parse_action, parse_condition};
use super::syntax::{Node, PropRef, Statement, is_string_system_property};
use super::{
    FilterError, FilterValue, MAX_EXPRESSION_LENGTH, PropertyChange, PropertyScope, PropertySource,
};

/// Refuses what the service refuses before parsing: empty text and text over the limit.
fn check_length(expression: &str) -> Result<(), FilterError> {
    // .NET measures string length in UTF-16 code units.
    let length: usize = expression.chars().map(char::len_utf16).sum();
    if length > MAX_EXPRESSION_LENGTH {
        return Err(FilterError::TooLong {
            length,
            max: MAX_EXPRESSION_LENGTH,
        });
    }
    if expression.trim().is_empty() {
        return Err(FilterError::Syntax {
            position: 0,
            message: "the expression is empty".to_owned(),
        });
    }
    Ok(())
}

/// A parsed SQL filter condition.
#[derive(Debug, Clone)]
pub struct SqlFilter {
    expression: String,
    condition: Node,
}

impl PartialEq for SqlFilter {
    /// Two filters are the same rule when their text is; the tree follows from the text.
    fn eq(&self, other: &Self) -> bool {
        self.expression == other.expression
    }
}

impl SqlFilter {
    pub fn parse(expression: &str) -> Result<SqlFilter, FilterError> {
        check_length(expression)?;
        let condition = parse_condition(expression)?;
        Ok(SqlFilter {
            expression: expression.to_owned(),
            condition,
        })
    }

    /// Ok(true) only when the expression is TRUE (unknown/NULL is not a match).
    pub fn matches(&self, message: &dyn PropertySource) -> Result<bool, FilterError> {
        Ok(truth(&self.condition, message)? == Some(true))
    }

    pub fn expression(&self) -> &str {
        &self.expression
    }
}

/// `SET a = expr; REMOVE b` style action applied to a matching message copy.
#[derive(Debug, Clone)]
pub struct SqlRuleAction {
    expression: String,
    statements: Vec<Statement>,
}

impl PartialEq for SqlRuleAction {
    fn eq(&self, other: &Self) -> bool {
        self.expression == other.expression
    }
}

impl SqlRuleAction {
    /// Statements are `SET <property> = <expression>` and `REMOVE <property>`, each
    /// optionally followed by `;`, at most [`super::MAX_ACTION_STATEMENTS`] of them.
    /// `REMOVE sys.X` and `SET` of a broker-owned system property are refused here, as the
    /// service refuses them when the rule is created.
    pub fn parse(expression: &str) -> Result<SqlRuleAction, FilterError> {
        check_length(expression)?;
        let statements = parse_action(expression)?;
        Ok(SqlRuleAction {
            expression: expression.to_owned(),
            statements,
        })
    }

    /// The property changes to apply, in order, evaluated against `message`.
    ///
    /// Statements run in sequence, so a later one sees what an earlier one set or removed.
    /// A `SET` whose expression is unknown sets the property to null. A `SET` of an
    /// existing user property converts the value to that property's type; a `SET` of a
    /// string-typed system property converts it to text.
    pub fn changes(
        &self,
        message: &dyn PropertySource,
    ) -> Result<Vec<PropertyChange>, FilterError> {
        let mut changes: Vec<PropertyChange> = Vec::with_capacity(self.statements.len());
        for statement in &self.statements {
            let overlay = Overlay {
                base: message,
                changes: &changes,
            };
            let change = match statement {
                Statement::Set {
                    target,
                    value: node,
                } => {
                    let assigned = value(node, &overlay)?;
                    match target {
                        PropRef::User(name) => {
                            let converted = match overlay.user(name) {
                                Some(existing) => convert_to_type_of(assigned, &existing)?,
                                None => assigned,
                            };
                            PropertyChange {
                                scope: PropertyScope::User,
                                name: name.clone(),
                                value: Some(converted),
                            }
                        }
                        PropRef::System(name) => {
                            let converted = if is_string_system_property(name) {
                                match assigned {
                                    FilterValue::Null => FilterValue::Null,
                                    other => FilterValue::String(text(&other)),
                                }
                            } else if *name == "ForcePersistence" {
                                convert_to_type_of(assigned, &FilterValue::Bool(false))?
                            } else {
                                // Time-valued properties: the caller knows their encoding.
                                assigned
                            };
                            PropertyChange {
                                scope: PropertyScope::System,
                                name: (*name).to_owned(),
                                value: Some(converted),
                            }
                        }
                    }
                }
                Statement::Remove { target } => match target {
                    PropRef::User(name) => PropertyChange {
                        scope: PropertyScope::User,
                        name: name.clone(),
                        value: None,
                    },
                    // Refused by the parser; kept total rather than panicking.
                    PropRef::System(name) => {
                        return Err(FilterError::Evaluation(format!(
                            "system property '{name}' can't be removed"
                        )));
                    }
                },
            };
            changes.push(change);
        }
        Ok(changes)
    }

    pub fn expression(&self) -> &str {
        &self.expression
    }
}

/// The message as the statements so far have left it.
struct Overlay<'a> {
    base: &'a dyn PropertySource,
    changes: &'a [PropertyChange],
}

impl Overlay<'_> {
    fn latest(&self, scope: &PropertyScope, name: &str) -> Option<&PropertyChange> {
        self.changes
            .iter()
            .rev()
            .find(|change| change.scope == *scope && change.name == name)
    }
}

impl PropertySource for Overlay<'_> {
    fn system(&self, name: &str) -> Option<FilterValue> {
        match self.latest(&PropertyScope::System, name) {
            Some(change) => change.value.clone(),
            None => self.base.system(name),
        }
    }

    fn user(&self, name: &str) -> Option<FilterValue> {
        match self.latest(&PropertyScope::User, name) {
            Some(change) => change.value.clone(),
            None => self.base.user(name),
        }
    }
}

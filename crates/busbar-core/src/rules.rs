//! Which copies of a message a subscription takes, by its rules: the rules without an
//! action together give at most one copy (any of them matching is enough); each matching
//! rule with an action gives a copy of its own, annotated by the action.

use crate::filter::{Filter, FilterError, PropertySource, SqlFilter, SqlRuleAction};
use crate::namespace::{FilterDescription, RuleDescription};

/// A rule ready to evaluate.
#[derive(Debug, Clone)]
pub struct Rule {
    pub name: String,
    pub filter: Filter,
    pub action: Option<SqlRuleAction>,
}

impl Rule {
    /// Parses the rule's SQL (filter and action), if any.
    pub fn compile(description: &RuleDescription) -> Result<Rule, FilterError> {
        let filter = match &description.filter {
            FilterDescription::True => Filter::True,
            FilterDescription::False => Filter::False,
            FilterDescription::Sql(expression) => Filter::Sql(SqlFilter::parse(expression)?),
            FilterDescription::Correlation(correlation) => Filter::Correlation(correlation.clone()),
        };
        let action = description
            .action
            .as_deref()
            .filter(|a| !a.trim().is_empty())
            .map(SqlRuleAction::parse)
            .transpose()?;
        Ok(Rule {
            name: description.name.clone(),
            filter,
            action,
        })
    }
}

/// What a subscription takes of one message.
#[derive(Debug, Default)]
pub struct Selection<'r> {
    /// A rule without an action matched: the message goes in unchanged (once).
    pub unchanged: bool,
    /// Matching rules with an action, in rule order: one annotated copy each.
    pub annotated: Vec<&'r Rule>,
    /// The first filter that failed to evaluate, if any (the message is not taken by
    /// that rule; a subscription may dead-letter it instead).
    pub error: Option<(&'r str, FilterError)>,
}

impl Selection<'_> {
    pub fn is_empty(&self) -> bool {
        !self.unchanged && self.annotated.is_empty()
    }
}

/// Evaluates `rules` against `message`.
pub fn select<'r>(rules: &'r [Rule], message: &dyn PropertySource) -> Selection<'r> {
    let mut selection = Selection::default();
    for rule in rules {
        // Rules without action only decide whether one copy goes in: once one matched,
        // the others need not run.
        if rule.action.is_none() && selection.unchanged {
            continue;
        }
        match rule.filter.matches(message) {
            Ok(true) if rule.action.is_some() => selection.annotated.push(rule),
            Ok(true) => selection.unchanged = true,
            Ok(false) => {}
            Err(error) => {
                if selection.error.is_none() {
                    selection.error = Some((rule.name.as_str(), error));
                }
            }
        }
    }
    selection
}

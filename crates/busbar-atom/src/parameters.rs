//! Filter and action parameters (`@name` in an expression, its value given beside it, as
//! the administration API carries them): written into the expression as literals, so an
//! engine evaluates the expression the client meant. The broker does it to rules it is
//! given with parameters; the SDK's rule manager does it before `add-rule`, whose map has
//! no place for them.

use crate::model::TypedValue;

/// `expression` with every `@name` outside string literals and delimited names replaced by
/// the literal of its value in `parameters` (keys with or without the `@`, any case). A
/// parameter given no value is NULL: the service accepts such a rule (the Python SDK sends
/// one when a rule is updated with a new filter as a keyword), and NULL matches nothing.
pub fn inline_parameters(
    expression: &str,
    parameters: &[(String, TypedValue)],
) -> Result<String, String> {
    let mut out = String::with_capacity(expression.len());
    let mut chars = expression.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' | '"' | '[' => {
                let close = if c == '[' { ']' } else { c };
                out.push(c);
                for inner in chars.by_ref() {
                    out.push(inner);
                    if inner == close {
                        break;
                    }
                }
            }
            '@' => {
                let mut name = String::new();
                while let Some(&next) = chars.peek() {
                    if next.is_alphanumeric() || next == '_' {
                        name.push(next);
                        chars.next();
                    } else {
                        break;
                    }
                }
                if name.is_empty() {
                    return Err("'@' must be followed by a parameter name".to_owned());
                }
                let value = parameters
                    .iter()
                    .find(|(key, _)| key.trim_start_matches('@').eq_ignore_ascii_case(&name))
                    .map(|(_, value)| value);
                out.push_str(&literal(value));
            }
            other => out.push(other),
        }
    }
    Ok(out)
}

/// The SQL literal of a parameter's value; NULL for none. Dates and durations are compared
/// as the text they were given in.
fn literal(value: Option<&TypedValue>) -> String {
    match value {
        None => "NULL".to_owned(),
        Some(TypedValue::Boolean(true)) => "TRUE".to_owned(),
        Some(TypedValue::Boolean(false)) => "FALSE".to_owned(),
        Some(TypedValue::Int(n)) => n.to_string(),
        Some(TypedValue::Long(n)) => n.to_string(),
        // A whole double keeps its decimal point, so it stays a double.
        Some(TypedValue::Double(x)) if x.is_finite() && x.fract() == 0.0 => format!("{x:.1}"),
        Some(TypedValue::Double(x)) => x.to_string(),
        Some(TypedValue::String(s) | TypedValue::DateTime(s) | TypedValue::Duration(s)) => {
            format!("'{}'", s.replace('\'', "''"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_become_literals_outside_quotes() {
        let parameters = vec![
            ("@c".to_owned(), TypedValue::String("it's red".to_owned())),
            ("n".to_owned(), TypedValue::Int(2)),
            ("@x".to_owned(), TypedValue::Double(3.0)),
            ("@B".to_owned(), TypedValue::Boolean(true)),
        ];
        assert_eq!(
            inline_parameters(
                "color = @c AND n > @n AND [@c] = '@c' AND x = @x AND b = @b",
                &parameters
            ),
            Ok("color = 'it''s red' AND n > 2 AND [@c] = '@c' AND x = 3.0 AND b = TRUE".to_owned())
        );
        assert_eq!(
            inline_parameters("a = @missing", &parameters),
            Ok("a = NULL".to_owned())
        );
        assert_eq!(inline_parameters("a = @p", &[]), Ok("a = NULL".to_owned()));
        assert!(inline_parameters("a = @ ", &[]).is_err());
    }
}

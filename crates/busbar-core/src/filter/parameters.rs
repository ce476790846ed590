//! Filter and action parameters (`@name` in an expression, its value given beside it, as
//! the administration API sends them): written into the expression as literals, so the
//! engine evaluates the expression the client meant.

use super::FilterValue;

/// `expression` with every `@name` outside string literals and delimited names replaced by
/// the literal of its value in `parameters` (keys with or without the `@`, any case). A
/// parameter given no value is NULL: the service accepts such a rule (the Python SDK sends
/// one when a rule is updated with a new filter as a keyword), and NULL matches nothing.
pub fn inline_parameters(
    expression: &str,
    parameters: &[(String, FilterValue)],
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
                    .map_or(&FilterValue::Null, |(_, value)| value);
                out.push_str(&literal(value));
            }
            other => out.push(other),
        }
    }
    Ok(out)
}

fn literal(value: &FilterValue) -> String {
    match value {
        FilterValue::Null => "NULL".to_owned(),
        FilterValue::Bool(true) => "TRUE".to_owned(),
        FilterValue::Bool(false) => "FALSE".to_owned(),
        FilterValue::Long(n) => n.to_string(),
        // A whole double keeps its decimal point, so it stays a double.
        FilterValue::Double(x) if x.is_finite() && x.fract() == 0.0 => format!("{x:.1}"),
        FilterValue::Double(x) => x.to_string(),
        FilterValue::String(s) => format!("'{}'", s.replace('\'', "''")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_become_literals_outside_quotes() {
        let parameters = vec![
            ("@c".to_owned(), FilterValue::String("it's red".to_owned())),
            ("n".to_owned(), FilterValue::Long(2)),
            ("@x".to_owned(), FilterValue::Double(3.0)),
            ("@B".to_owned(), FilterValue::Bool(true)),
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

//! JSON as configuration files are written: `//` and `/* */` comments and trailing commas
//! (Microsoft's emulator accepts them, and its sample `Config.json` has comments).
//!
//! A pre-pass blanks comments and trailing commas with spaces, byte for byte, so that
//! serde_json parses the result and its errors' line and column still point into the text
//! the operator wrote; newlines inside block comments are kept for the same reason. A
//! crate was considered: `json5` accepts far more than asked (unquoted keys, single-quoted
//! strings, hex numbers) and reports its own error positions; `json_comments` blanks the
//! newlines of block comments (shifting every later line number) and has no trailing-comma
//! pass. Forty lines of a string-aware scanner are smaller than either.

/// Where a block comment that never ends begins, 1-based as serde_json counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a /* comment opened at line {line} column {column} is never closed")]
pub struct UnclosedComment {
    pub line: usize,
    pub column: usize,
}

/// `text` with every comment and every comma that precedes a `}` or `]` (comments and
/// whitespace between them aside) replaced by spaces, newlines kept. Strings are left alone,
/// escapes included. A lone `/` is left for the JSON parser to refuse.
pub fn blank_comments_and_trailing_commas(text: &str) -> Result<String, UnclosedComment> {
    let mut bytes = text.as_bytes().to_vec();
    // The last comma seen outside strings that follows a value, while only whitespace and
    // comments follow it.
    let mut pending_comma: Option<usize> = None;
    // The last byte outside whitespace and comments: a comma after `[`, `{`, `:` or another
    // comma is not trailing, it is an error the parser must still see.
    let mut previous = b' ';
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                pending_comma = None;
                previous = b'"';
                i = end_of_string(&bytes, i);
            }
            b'/' if bytes.get(i + 1) == Some(&b'/') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    blank(&mut bytes, i);
                    i += 1;
                }
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                let start = i;
                let Some(close) = find_block_end(&bytes, i + 2) else {
                    return Err(position_of(text, start));
                };
                for at in start..close + 2 {
                    blank(&mut bytes, at);
                }
                i = close + 2;
            }
            b',' => {
                pending_comma = (!matches!(previous, b'[' | b'{' | b':' | b',')).then_some(i);
                previous = b',';
                i += 1;
            }
            b'}' | b']' => {
                if let Some(comma) = pending_comma.take() {
                    bytes[comma] = b' ';
                }
                previous = bytes[i];
                i += 1;
            }
            b' ' | b'\t' | b'\n' | b'\r' => i += 1,
            other => {
                pending_comma = None;
                previous = other;
                i += 1;
            }
        }
    }
    // Only ASCII bytes outside strings were replaced, each whole character of a comment by
    // spaces, so the text is still UTF-8; the fallback can't be taken.
    Ok(String::from_utf8(bytes)
        .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()))
}

/// Blanks one byte of a comment; newlines stay so that line numbers do.
fn blank(bytes: &mut [u8], at: usize) {
    if !matches!(bytes[at], b'\n' | b'\r') {
        bytes[at] = b' ';
    }
}

/// The index just past the string opened by the quote at `open` (the end of the text if it
/// is never closed, which the parser then reports).
fn end_of_string(bytes: &[u8], open: usize) -> usize {
    let mut i = open + 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'"' => return i + 1,
            _ => i += 1,
        }
    }
    bytes.len()
}

/// The index of the `*` of the `*/` closing a block comment whose body starts at `from`.
fn find_block_end(bytes: &[u8], from: usize) -> Option<usize> {
    let body = bytes.get(from..)?;
    body.windows(2)
        .position(|pair| pair == b"*/")
        .map(|offset| from + offset)
}

/// 1-based line and column of byte `offset`, columns counted in bytes as serde_json does.
fn position_of(text: &str, offset: usize) -> UnclosedComment {
    let before = &text.as_bytes()[..offset];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let line_start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |newline| newline + 1);
    UnclosedComment {
        line,
        column: offset - line_start + 1,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::Value;

    fn parse(text: &str) -> Value {
        let blanked = blank_comments_and_trailing_commas(text).expect("no unclosed comment");
        serde_json::from_str(&blanked).unwrap_or_else(|e| panic!("{e} in {blanked:?}"))
    }

    #[test]
    fn comments_and_trailing_commas_go() {
        let text = "{\n  // a comment \"with quotes\"\n  \"a\": [1, 2, /* two */ ],\n  \"b\": {\"c\": \"//not a comment, /* nor this */\",},\n}\n";
        assert_eq!(
            parse(text),
            serde_json::json!({"a": [1, 2], "b": {"c": "//not a comment, /* nor this */"}})
        );
    }

    #[test]
    fn escaped_quotes_do_not_end_strings() {
        assert_eq!(
            parse(r#"{"a": "x\"// still text", "b\\": 1,}"#),
            serde_json::json!({"a": "x\"// still text", "b\\": 1})
        );
    }

    #[test]
    fn errors_point_into_the_original_text() {
        let text = "{\n  /* one\n     two */\n  \"a\": 1 // ok\n  \"b\": 2\n}";
        let blanked = blank_comments_and_trailing_commas(text).unwrap();
        let error = serde_json::from_str::<Value>(&blanked).unwrap_err();
        assert_eq!((error.line(), error.column()), (5, 3));
    }

    #[test]
    fn an_unclosed_comment_is_reported_where_it_opens() {
        assert_eq!(
            blank_comments_and_trailing_commas("{\n  \"a\": 1 /* never\n closed }"),
            Err(UnclosedComment {
                line: 2,
                column: 10
            })
        );
    }

    #[test]
    fn a_comma_with_nothing_before_it_is_left_for_the_parser() {
        let blanked = blank_comments_and_trailing_commas("[,]").unwrap();
        assert!(serde_json::from_str::<Value>(&blanked).is_err());
        for text in ["[1,,]", "{\"a\":,}", "[,/* c */]"] {
            let blanked = blank_comments_and_trailing_commas(text).unwrap();
            assert!(serde_json::from_str::<Value>(&blanked).is_err(), "{text}");
        }
    }

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            // Strings full of what the scanner must not take for syntax.
            proptest::string::string_regex(r#"[a-z/*,"\\\]}\n é]{0,12}"#)
                .expect("valid regex")
                .prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::btree_map("[a-z/*\"]{0,6}", inner, 0..6)
                    .prop_map(|map| Value::Object(map.into_iter().collect())),
            ]
        })
    }

    /// Filler that may stand between tokens: whitespace and comments (whose text may hold
    /// quotes, commas and brackets).
    fn filler() -> impl Strategy<Value = String> {
        prop_oneof![
            Just(String::new()),
            Just(" ".to_owned()),
            "[ \t\r\n]{1,3}",
            "[a-z \",}\\]é]{0,10}".prop_map(|text| format!("//{text}\n")),
            "[a-z \",}\\]/\né]{0,10}".prop_map(|text| format!("/*{}*/", text.replace("*/", ""))),
        ]
    }

    /// `value` written as JSON with `fill` between tokens and, where `trailing` says, a comma
    /// after the last element of arrays and objects.
    fn write(
        value: &Value,
        fill: &mut impl Iterator<Item = String>,
        trailing: &mut impl Iterator<Item = bool>,
        out: &mut String,
    ) {
        fn gap(fill: &mut impl Iterator<Item = String>, out: &mut String) {
            out.push_str(&fill.next().unwrap_or_default());
        }
        match value {
            Value::Array(items) => {
                out.push('[');
                for (index, item) in items.iter().enumerate() {
                    gap(fill, out);
                    write(item, fill, trailing, out);
                    gap(fill, out);
                    if index + 1 < items.len() || trailing.next().unwrap_or(false) {
                        out.push(',');
                    }
                }
                gap(fill, out);
                out.push(']');
            }
            Value::Object(entries) => {
                out.push('{');
                for (index, (key, item)) in entries.iter().enumerate() {
                    gap(fill, out);
                    out.push_str(&Value::String(key.clone()).to_string());
                    gap(fill, out);
                    out.push(':');
                    gap(fill, out);
                    write(item, fill, trailing, out);
                    gap(fill, out);
                    if index + 1 < entries.len() || trailing.next().unwrap_or(false) {
                        out.push(',');
                    }
                }
                gap(fill, out);
                out.push('}');
            }
            leaf => out.push_str(&leaf.to_string()),
        }
    }

    proptest! {
        #[test]
        fn relaxed_text_parses_to_the_value_it_was_written_from(
            value in json_value(),
            fills in prop::collection::vec(filler(), 0..200),
            trailing in prop::collection::vec(any::<bool>(), 0..64),
        ) {
            let mut text = fills.first().cloned().unwrap_or_default();
            write(&value, &mut fills.iter().skip(1).cloned(), &mut trailing.into_iter(), &mut text);
            let blanked = blank_comments_and_trailing_commas(&text).expect("no unclosed comment");
            prop_assert_eq!(blanked.len(), text.len());
            let newlines = |s: &str| s.match_indices('\n').map(|(at, _)| at).collect::<Vec<_>>();
            prop_assert_eq!(newlines(&blanked), newlines(&text));
            let parsed: Value = serde_json::from_str(&blanked)
                .map_err(|e| TestCaseError::fail(format!("{e} in {blanked:?} from {text:?}")))?;
            prop_assert_eq!(parsed, value);
        }

        #[test]
        fn strict_json_is_left_as_it_is(value in json_value()) {
            let text = serde_json::to_string_pretty(&value).expect("serializes");
            prop_assert_eq!(blank_comments_and_trailing_commas(&text).expect("no comment"), text);
        }
    }
}

//! Splits an expression into tokens, each with the character position it starts at.

use super::FilterError;

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok {
    /// A regular identifier; keywords are identifiers compared without regard to case.
    Ident(String),
    /// `[delimited]` or `"quoted"`: always a name, never a keyword.
    QuotedIdent(String),
    Str(String),
    /// Digits only, kept as text so that `-9223372036854775808` can be folded by the
    /// parser before the range check.
    Int(String),
    /// A decimal (`1.5`) or approximate (`1.5E3`) number; the service stores both as
    /// doubles.
    Number(f64),
    LParen,
    RParen,
    Comma,
    Dot,
    Semicolon,
    Plus,
    Minus,
    Star,
    Slash,
    Percent,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Eof,
}

impl Tok {
    pub(crate) fn is_keyword(&self, keyword: &str) -> bool {
        matches!(self, Tok::Ident(word) if word.eq_ignore_ascii_case(keyword))
    }

    pub(crate) fn describe(&self) -> String {
        match self {
            Tok::Ident(word) => format!("'{word}'"),
            Tok::QuotedIdent(name) => format!("name '{name}'"),
            Tok::Str(_) => "a string".to_owned(),
            Tok::Int(digits) => format!("'{digits}'"),
            Tok::Number(_) => "a number".to_owned(),
            Tok::LParen => "'('".to_owned(),
            Tok::RParen => "')'".to_owned(),
            Tok::Comma => "','".to_owned(),
            Tok::Dot => "'.'".to_owned(),
            Tok::Semicolon => "';'".to_owned(),
            Tok::Plus => "'+'".to_owned(),
            Tok::Minus => "'-'".to_owned(),
            Tok::Star => "'*'".to_owned(),
            Tok::Slash => "'/'".to_owned(),
            Tok::Percent => "'%'".to_owned(),
            Tok::Eq => "'='".to_owned(),
            Tok::Ne => "'<>'".to_owned(),
            Tok::Lt => "'<'".to_owned(),
            Tok::Le => "'<='".to_owned(),
            Tok::Gt => "'>'".to_owned(),
            Tok::Ge => "'>='".to_owned(),
            Tok::Eof => "the end of the expression".to_owned(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Token {
    pub(crate) tok: Tok,
    pub(crate) pos: usize,
}

/// Words that can't be used as bare property names (bracket them to use them anyway).
const RESERVED: &[&str] = &[
    "AND", "OR", "NOT", "IS", "NULL", "IN", "LIKE", "ESCAPE", "EXISTS", "TRUE", "FALSE",
];

pub(crate) fn is_reserved(word: &str) -> bool {
    RESERVED.iter().any(|kw| kw.eq_ignore_ascii_case(word))
}

fn syntax(position: usize, message: impl Into<String>) -> FilterError {
    FilterError::Syntax {
        position,
        message: message.into(),
    }
}

fn is_identifier_start(c: char) -> bool {
    c.is_alphabetic()
}

fn is_identifier_part(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

pub(crate) fn tokenize(text: &str) -> Result<Vec<Token>, FilterError> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let start = i;
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let tok = match c {
            '(' => {
                i += 1;
                Tok::LParen
            }
            ')' => {
                i += 1;
                Tok::RParen
            }
            ',' => {
                i += 1;
                Tok::Comma
            }
            '.' => {
                i += 1;
                Tok::Dot
            }
            ';' => {
                i += 1;
                Tok::Semicolon
            }
            '+' => {
                i += 1;
                Tok::Plus
            }
            '-' => {
                i += 1;
                Tok::Minus
            }
            '*' => {
                i += 1;
                Tok::Star
            }
            '/' => {
                i += 1;
                Tok::Slash
            }
            '%' => {
                i += 1;
                Tok::Percent
            }
            '=' => {
                i += 1;
                Tok::Eq
            }
            '!' => {
                if chars.get(i + 1) == Some(&'=') {
                    i += 2;
                    Tok::Ne
                } else {
                    return Err(syntax(start, "'!' must be followed by '='"));
                }
            }
            '<' => match chars.get(i + 1) {
                Some('=') => {
                    i += 2;
                    Tok::Le
                }
                Some('>') => {
                    i += 2;
                    Tok::Ne
                }
                _ => {
                    i += 1;
                    Tok::Lt
                }
            },
            '>' => {
                if chars.get(i + 1) == Some(&'=') {
                    i += 2;
                    Tok::Ge
                } else {
                    i += 1;
                    Tok::Gt
                }
            }
            '\'' => {
                let (value, next) = delimited(&chars, i, '\'', "string constant")?;
                i = next;
                Tok::Str(value)
            }
            '[' => {
                let (value, next) = delimited(&chars, i, ']', "delimited name")?;
                i = next;
                Tok::QuotedIdent(value)
            }
            '"' => {
                let (value, next) = delimited(&chars, i, '"', "quoted name")?;
                i = next;
                Tok::QuotedIdent(value)
            }
            '@' => {
                return Err(syntax(
                    start,
                    "filter parameters ('@name') are not supported",
                ));
            }
            c if c.is_ascii_digit() => {
                let (tok, next) = number(&chars, i)?;
                i = next;
                tok
            }
            c if is_identifier_start(c) => {
                while i < chars.len() && is_identifier_part(chars[i]) {
                    i += 1;
                }
                Tok::Ident(chars[start..i].iter().collect())
            }
            other => {
                return Err(syntax(start, format!("unexpected character '{other}'")));
            }
        };
        tokens.push(Token { tok, pos: start });
    }
    tokens.push(Token {
        tok: Tok::Eof,
        pos: chars.len(),
    });
    Ok(tokens)
}

/// Reads a token enclosed by `chars[open]` and `close`, where a doubled `close` stands for
/// one. Returns the content and the index after the closing character.
fn delimited(
    chars: &[char],
    open: usize,
    close: char,
    what: &str,
) -> Result<(String, usize), FilterError> {
    let mut value = String::new();
    let mut i = open + 1;
    loop {
        match chars.get(i) {
            None => return Err(syntax(open, format!("unterminated {what}"))),
            Some(&c) if c == close => {
                if chars.get(i + 1) == Some(&close) {
                    value.push(close);
                    i += 2;
                } else {
                    return Ok((value, i + 1));
                }
            }
            Some(&c) => {
                value.push(c);
                i += 1;
            }
        }
    }
}

fn digits_end(chars: &[char], mut i: usize) -> usize {
    while i < chars.len() && chars[i].is_ascii_digit() {
        i += 1;
    }
    i
}

fn number(chars: &[char], start: usize) -> Result<(Tok, usize), FilterError> {
    let mut i = digits_end(chars, start);
    let mut integral = true;
    if chars.get(i) == Some(&'.') {
        let after = digits_end(chars, i + 1);
        if after == i + 1 {
            return Err(syntax(i, "expected digits after the decimal point"));
        }
        i = after;
        integral = false;
    }
    if matches!(chars.get(i), Some('e') | Some('E')) {
        let mut j = i + 1;
        if matches!(chars.get(j), Some('+') | Some('-')) {
            j += 1;
        }
        let after = digits_end(chars, j);
        if after == j {
            return Err(syntax(i, "expected digits in the exponent"));
        }
        i = after;
        integral = false;
    }
    if let Some(&c) = chars.get(i) {
        if is_identifier_part(c) {
            return Err(syntax(start, "a number must not run into a name"));
        }
    }
    let text: String = chars[start..i].iter().collect();
    if integral {
        return Ok((Tok::Int(text), i));
    }
    match text.parse::<f64>() {
        Ok(value) if value.is_finite() => Ok((Tok::Number(value), i)),
        _ => Err(syntax(
            start,
            format!("numeric constant {text} is out of range for a double"),
        )),
    }
}

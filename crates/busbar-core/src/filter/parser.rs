//! Recursive-descent parser for filter conditions and rule actions.
//!
//! Precedence, loosest first: `OR`, `AND`, `NOT`, the comparison-like operators (`=`,
//! `<>`, `!=`, `<`, `<=`, `>`, `>=`, `IS [NOT] NULL`, `[NOT] IN`, `[NOT] LIKE`), `+ -`,
//! `* / %`, unary `- +`. Comparisons do not chain. Every recursion into a nested level
//! goes through [`Parser::enter`], which bounds the depth.

use super::lexer::{Tok, Token, is_reserved, tokenize};
use super::syntax::{
    ArithOp, CmpOp, Node, PropRef, Statement, canonical_system_property,
    is_settable_system_property,
};
use super::{FilterError, FilterValue, MAX_ACTION_STATEMENTS, MAX_NESTING};

/// A node and the position of its first token, for error messages about it.
struct Parsed {
    node: Node,
    pos: usize,
}

struct Parser {
    tokens: Vec<Token>,
    index: usize,
    nesting: usize,
}

fn syntax(position: usize, message: impl Into<String>) -> FilterError {
    FilterError::Syntax {
        position,
        message: message.into(),
    }
}

/// Parses a whole filter condition.
pub(crate) fn parse_condition(text: &str) -> Result<Node, FilterError> {
    let mut parser = Parser::new(text)?;
    let parsed = parser.or()?;
    parser.expect_end()?;
    require_condition(parsed)
}

/// Parses a whole rule action: `SET`/`REMOVE` statements, each optionally ended by `;`.
pub(crate) fn parse_action(text: &str) -> Result<Vec<Statement>, FilterError> {
    let mut parser = Parser::new(text)?;
    let mut statements = Vec::new();
    while parser.peek().tok != Tok::Eof {
        statements.push(parser.statement()?);
        if parser.peek().tok == Tok::Semicolon {
            parser.advance();
        }
    }
    if statements.is_empty() {
        return Err(syntax(0, "expected SET or REMOVE"));
    }
    if statements.len() > MAX_ACTION_STATEMENTS {
        return Err(FilterError::TooManyStatements {
            count: statements.len(),
            max: MAX_ACTION_STATEMENTS,
        });
    }
    Ok(statements)
}

fn require_condition(parsed: Parsed) -> Result<Node, FilterError> {
    if parsed.node.is_condition() {
        Ok(parsed.node)
    } else {
        Err(syntax(
            parsed.pos,
            "expected a condition (a comparison, IS NULL, IN, LIKE or EXISTS), found a value",
        ))
    }
}

fn require_value(parsed: Parsed) -> Result<Node, FilterError> {
    if parsed.node.is_condition() {
        Err(syntax(parsed.pos, "expected a value, found a condition"))
    } else {
        Ok(parsed.node)
    }
}

impl Parser {
    fn new(text: &str) -> Result<Parser, FilterError> {
        Ok(Parser {
            tokens: tokenize(text)?,
            index: 0,
            nesting: 0,
        })
    }

    fn peek(&self) -> &Token {
        // The token list always ends with Eof and `advance` never moves past it.
        &self.tokens[self.index.min(self.tokens.len().saturating_sub(1))]
    }

    fn peek_second(&self) -> &Tok {
        self.tokens
            .get(self.index + 1)
            .map_or(&Tok::Eof, |token| &token.tok)
    }

    fn advance(&mut self) -> Token {
        let token = self.peek().clone();
        if self.index + 1 < self.tokens.len() {
            self.index += 1;
        }
        token
    }

    fn at_keyword(&self, keyword: &str) -> bool {
        self.peek().tok.is_keyword(keyword)
    }

    fn enter(&mut self, position: usize) -> Result<(), FilterError> {
        self.nesting += 1;
        if self.nesting > MAX_NESTING {
            return Err(FilterError::TooDeep {
                position,
                max: MAX_NESTING,
            });
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.nesting = self.nesting.saturating_sub(1);
    }

    fn expect(&mut self, tok: Tok) -> Result<Token, FilterError> {
        let token = self.peek().clone();
        if token.tok == tok {
            Ok(self.advance())
        } else {
            Err(syntax(
                token.pos,
                format!(
                    "expected {} but found {}",
                    tok.describe(),
                    token.tok.describe()
                ),
            ))
        }
    }

    fn expect_end(&self) -> Result<(), FilterError> {
        let token = self.peek();
        if token.tok == Tok::Eof {
            Ok(())
        } else {
            Err(syntax(
                token.pos,
                format!("unexpected {}", token.tok.describe()),
            ))
        }
    }

    fn or(&mut self) -> Result<Parsed, FilterError> {
        let first = self.and()?;
        if !self.at_keyword("OR") {
            return Ok(first);
        }
        let pos = first.pos;
        let mut items = vec![require_condition(first)?];
        while self.at_keyword("OR") {
            self.advance();
            let next = self.and()?;
            items.push(require_condition(next)?);
        }
        Ok(Parsed {
            node: Node::Or(items),
            pos,
        })
    }

    fn and(&mut self) -> Result<Parsed, FilterError> {
        let first = self.not()?;
        if !self.at_keyword("AND") {
            return Ok(first);
        }
        let pos = first.pos;
        let mut items = vec![require_condition(first)?];
        while self.at_keyword("AND") {
            self.advance();
            let next = self.not()?;
            items.push(require_condition(next)?);
        }
        Ok(Parsed {
            node: Node::And(items),
            pos,
        })
    }

    fn not(&mut self) -> Result<Parsed, FilterError> {
        if !self.at_keyword("NOT") {
            return self.comparison();
        }
        let pos = self.advance().pos;
        self.enter(pos)?;
        let inner = self.not()?;
        self.leave();
        Ok(Parsed {
            node: Node::Not(Box::new(require_condition(inner)?)),
            pos,
        })
    }

    fn comparison(&mut self) -> Result<Parsed, FilterError> {
        let left = self.additive()?;
        let pos = left.pos;
        let op = match self.peek().tok {
            Tok::Eq => Some(CmpOp::Eq),
            Tok::Ne => Some(CmpOp::Ne),
            Tok::Lt => Some(CmpOp::Lt),
            Tok::Le => Some(CmpOp::Le),
            Tok::Gt => Some(CmpOp::Gt),
            Tok::Ge => Some(CmpOp::Ge),
            _ => None,
        };
        if let Some(op) = op {
            self.advance();
            let right = self.additive()?;
            let node = Node::Compare {
                op,
                left: Box::new(require_value(left)?),
                right: Box::new(require_value(right)?),
            };
            return Ok(Parsed { node, pos });
        }
        if self.at_keyword("IS") {
            self.advance();
            let negated = if self.at_keyword("NOT") {
                self.advance();
                true
            } else {
                false
            };
            if !self.at_keyword("NULL") {
                let token = self.peek();
                return Err(syntax(
                    token.pos,
                    format!("expected NULL but found {}", token.tok.describe()),
                ));
            }
            self.advance();
            let node = Node::IsNull {
                operand: Box::new(require_value(left)?),
                negated,
            };
            return Ok(Parsed { node, pos });
        }
        let negated = if self.at_keyword("NOT") {
            let not_pos = self.peek().pos;
            if !(self.peek_second().is_keyword("IN") || self.peek_second().is_keyword("LIKE")) {
                return Err(syntax(not_pos, "expected IN or LIKE after NOT"));
            }
            self.advance();
            true
        } else {
            false
        };
        if self.at_keyword("IN") {
            self.advance();
            let items = self.in_list()?;
            let node = Node::In {
                operand: Box::new(require_value(left)?),
                items,
                negated,
            };
            return Ok(Parsed { node, pos });
        }
        if self.at_keyword("LIKE") {
            self.advance();
            let pattern = require_value(self.additive()?)?;
            let escape = if self.at_keyword("ESCAPE") {
                self.advance();
                Some(Box::new(require_value(self.additive()?)?))
            } else {
                None
            };
            let node = Node::Like {
                operand: Box::new(require_value(left)?),
                pattern: Box::new(pattern),
                escape,
                negated,
            };
            return Ok(Parsed { node, pos });
        }
        Ok(left)
    }

    fn in_list(&mut self) -> Result<Vec<Node>, FilterError> {
        let open = self.expect(Tok::LParen)?;
        self.enter(open.pos)?;
        let mut items = vec![require_value(self.additive()?)?];
        while self.peek().tok == Tok::Comma {
            self.advance();
            items.push(require_value(self.additive()?)?);
        }
        self.expect(Tok::RParen)?;
        self.leave();
        Ok(items)
    }

    fn additive(&mut self) -> Result<Parsed, FilterError> {
        let first = self.multiplicative()?;
        self.arith_chain(first, Self::multiplicative, |tok| match tok {
            Tok::Plus => Some(ArithOp::Add),
            Tok::Minus => Some(ArithOp::Sub),
            _ => None,
        })
    }

    fn multiplicative(&mut self) -> Result<Parsed, FilterError> {
        let first = self.unary()?;
        self.arith_chain(first, Self::unary, |tok| match tok {
            Tok::Star => Some(ArithOp::Mul),
            Tok::Slash => Some(ArithOp::Div),
            Tok::Percent => Some(ArithOp::Rem),
            _ => None,
        })
    }

    fn arith_chain(
        &mut self,
        first: Parsed,
        mut operand: impl FnMut(&mut Self) -> Result<Parsed, FilterError>,
        operator: impl Fn(&Tok) -> Option<ArithOp>,
    ) -> Result<Parsed, FilterError> {
        let Some(mut op) = operator(&self.peek().tok) else {
            return Ok(first);
        };
        let pos = first.pos;
        let first = require_value(first)?;
        let mut rest = Vec::new();
        loop {
            self.advance();
            let next = operand(self)?;
            rest.push((op, require_value(next)?));
            match operator(&self.peek().tok) {
                Some(next_op) => op = next_op,
                None => break,
            }
        }
        Ok(Parsed {
            node: Node::Arith {
                first: Box::new(first),
                rest,
            },
            pos,
        })
    }

    fn unary(&mut self) -> Result<Parsed, FilterError> {
        let token = self.peek().clone();
        match token.tok {
            Tok::Minus => {
                self.advance();
                // A negative literal is one constant, so that the most negative 64-bit
                // integer can be written even though its magnitude is out of range.
                let next = self.peek().clone();
                match next.tok {
                    Tok::Int(digits) => {
                        self.advance();
                        let value = format!("-{digits}").parse::<i64>().map_err(|_| {
                            syntax(
                                next.pos,
                                "integer constant is out of range for a 64-bit integer",
                            )
                        })?;
                        Ok(Parsed {
                            node: Node::Literal(FilterValue::Long(value)),
                            pos: token.pos,
                        })
                    }
                    Tok::Number(value) => {
                        self.advance();
                        Ok(Parsed {
                            node: Node::Literal(FilterValue::Double(-value)),
                            pos: token.pos,
                        })
                    }
                    _ => {
                        self.enter(token.pos)?;
                        let inner = self.unary()?;
                        self.leave();
                        Ok(Parsed {
                            node: Node::Negate(Box::new(require_value(inner)?)),
                            pos: token.pos,
                        })
                    }
                }
            }
            Tok::Plus => {
                // Unary plus changes nothing; the service's engine passes the operand
                // through untouched.
                self.advance();
                self.enter(token.pos)?;
                let inner = self.unary()?;
                self.leave();
                Ok(Parsed {
                    node: require_value(inner)?,
                    pos: token.pos,
                })
            }
            _ => self.primary(),
        }
    }

    fn primary(&mut self) -> Result<Parsed, FilterError> {
        let token = self.peek().clone();
        let pos = token.pos;
        let node = match &token.tok {
            Tok::Int(digits) => {
                self.advance();
                let value = digits.parse::<i64>().map_err(|_| {
                    syntax(pos, "integer constant is out of range for a 64-bit integer")
                })?;
                Node::Literal(FilterValue::Long(value))
            }
            Tok::Number(value) => {
                self.advance();
                Node::Literal(FilterValue::Double(*value))
            }
            Tok::Str(text) => {
                self.advance();
                Node::Literal(FilterValue::String(text.clone()))
            }
            Tok::LParen => {
                self.advance();
                self.enter(pos)?;
                let inner = self.or()?;
                self.expect(Tok::RParen)?;
                self.leave();
                inner.node
            }
            tok if tok.is_keyword("TRUE") => {
                self.advance();
                Node::Literal(FilterValue::Bool(true))
            }
            tok if tok.is_keyword("FALSE") => {
                self.advance();
                Node::Literal(FilterValue::Bool(false))
            }
            tok if tok.is_keyword("NULL") => {
                self.advance();
                Node::Literal(FilterValue::Null)
            }
            tok if tok.is_keyword("EXISTS") => {
                self.advance();
                let open = self.expect(Tok::LParen)?;
                self.enter(open.pos)?;
                let property = self.property()?;
                self.expect(Tok::RParen)?;
                self.leave();
                Node::Exists(property)
            }
            Tok::Ident(name) if *self.peek_second() == Tok::LParen && !is_reserved(name) => {
                self.function(name.clone(), pos)?
            }
            Tok::Ident(_) | Tok::QuotedIdent(_) => Node::Property(self.property()?),
            other => {
                return Err(syntax(
                    pos,
                    format!(
                        "expected a value or condition but found {}",
                        other.describe()
                    ),
                ));
            }
        };
        Ok(Parsed { node, pos })
    }

    fn function(&mut self, name: String, pos: usize) -> Result<Node, FilterError> {
        self.advance();
        let open = self.expect(Tok::LParen)?;
        self.enter(open.pos)?;
        let mut arguments = Vec::new();
        if self.peek().tok != Tok::RParen {
            arguments.push(require_value(self.additive()?)?);
            while self.peek().tok == Tok::Comma {
                self.advance();
                arguments.push(require_value(self.additive()?)?);
            }
        }
        self.expect(Tok::RParen)?;
        self.leave();
        let expected = if name.eq_ignore_ascii_case("newid") {
            0
        } else if name.eq_ignore_ascii_case("property") || name.eq_ignore_ascii_case("p") {
            1
        } else {
            return Err(syntax(pos, format!("unknown function '{name}'")));
        };
        if arguments.len() != expected {
            return Err(syntax(
                pos,
                format!(
                    "function '{name}' takes {expected} argument(s), not {}",
                    arguments.len()
                ),
            ));
        }
        Ok(match arguments.pop() {
            None => Node::NewId,
            Some(argument) => Node::PropertyFn(Box::new(argument)),
        })
    }

    /// One part of a property reference: a regular (non-reserved) identifier or a
    /// delimited/quoted name.
    fn name_part(&mut self) -> Result<(String, usize, bool), FilterError> {
        let token = self.peek().clone();
        match token.tok {
            Tok::Ident(name) => {
                if is_reserved(&name) {
                    return Err(syntax(
                        token.pos,
                        format!("'{name}' is a reserved word; write [{name}] to use it as a name"),
                    ));
                }
                self.advance();
                Ok((name, token.pos, false))
            }
            Tok::QuotedIdent(name) => {
                self.advance();
                Ok((name, token.pos, true))
            }
            other => Err(syntax(
                token.pos,
                format!("expected a property name but found {}", other.describe()),
            )),
        }
    }

    /// `name`, `user.name` or `sys.Name`.
    fn property(&mut self) -> Result<PropRef, FilterError> {
        let (first, first_pos, _) = self.name_part()?;
        if self.peek().tok != Tok::Dot {
            return Ok(PropRef::User(first));
        }
        self.advance();
        let (name, name_pos, _) = self.name_part()?;
        if first.eq_ignore_ascii_case("sys") {
            match canonical_system_property(&name) {
                Some(canonical) => Ok(PropRef::System(canonical)),
                None => Err(FilterError::UnknownSystemProperty {
                    position: name_pos,
                    name,
                }),
            }
        } else if first.eq_ignore_ascii_case("user") {
            Ok(PropRef::User(name))
        } else {
            Err(syntax(
                first_pos,
                format!("unknown scope '{first}'; a property's scope is sys or user"),
            ))
        }
    }

    fn statement(&mut self) -> Result<Statement, FilterError> {
        let token = self.peek().clone();
        if token.tok.is_keyword("SET") {
            self.advance();
            let target_pos = self.peek().pos;
            let target = self.property()?;
            if let PropRef::System(name) = target {
                if !is_settable_system_property(name) {
                    return Err(FilterError::ReadOnlySystemProperty {
                        position: target_pos,
                        name: name.to_owned(),
                    });
                }
            }
            self.expect(Tok::Eq)?;
            let value = require_value(self.or()?)?;
            Ok(Statement::Set { target, value })
        } else if token.tok.is_keyword("REMOVE") {
            self.advance();
            let target_pos = self.peek().pos;
            let target = self.property()?;
            if let PropRef::System(name) = target {
                return Err(FilterError::CannotRemoveSystemProperty {
                    position: target_pos,
                    name: name.to_owned(),
                });
            }
            Ok(Statement::Remove { target })
        } else {
            Err(syntax(
                token.pos,
                format!("expected SET or REMOVE but found {}", token.tok.describe()),
            ))
        }
    }
}

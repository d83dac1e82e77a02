//! Expression parser: tokens to an [`Expr`](super::Expr), with chains of one
//! operator kept flat and nesting bounded by [`MAX_NESTING`](super::MAX_NESTING).

use serde_json::Value;

use super::lexer::Token;
use super::{BinOp, Expr, Func, MAX_NESTING, ParseError, Root, Segment};

struct ExprParser {
    tokens: Vec<Token>,
    pos: usize,
    depth: usize,
}

impl ExprParser {
    fn peek(&self) -> &Token {
        self.tokens.get(self.pos).unwrap_or(&Token::End)
    }

    fn next(&mut self) -> Token {
        let token = self.peek().clone();
        self.pos += 1;
        token
    }

    fn expect(&mut self, want: &Token, what: &str) -> Result<(), ParseError> {
        if self.peek() == want {
            self.pos += 1;
            Ok(())
        } else {
            Err(ParseError(format!("expected {what}")))
        }
    }

    fn descend(&mut self) -> Result<(), ParseError> {
        self.depth += 1;
        if self.depth > MAX_NESTING {
            Err(ParseError("the expression is nested too deeply".into()))
        } else {
            Ok(())
        }
    }

    fn expression(&mut self) -> Result<Expr, ParseError> {
        self.descend()?;
        let expr = self.binary(0);
        self.depth -= 1;
        expr
    }

    /// The binary operator next, if it binds at `level`.
    fn operator_at(&self, level: u8) -> Option<BinOp> {
        let op = match self.peek() {
            Token::Op(op) => *op,
            Token::Plus => BinOp::Add,
            _ => return None,
        };
        (op.level() == level).then_some(op)
    }

    /// Precedence climbing over the binary operators; the terms of a chain are
    /// read in a loop, so only nesting recurses.
    fn binary(&mut self, level: u8) -> Result<Expr, ParseError> {
        if level > 3 {
            return self.unary();
        }
        let first = self.binary(level + 1)?;
        if level == 2 {
            let Some(op) = self.operator_at(level) else {
                return Ok(first);
            };
            self.pos += 1;
            let rhs = self.binary(level + 1)?;
            // Comparisons do not chain: `a < b < c` is a mistake, not a meaning.
            if self.operator_at(level).is_some() {
                return Err(ParseError(
                    "comparisons cannot be chained; use 'and'".into(),
                ));
            }
            return Ok(Expr::Compare(op, Box::new(first), Box::new(rhs)));
        }
        let mut terms = vec![first];
        while self.operator_at(level).is_some() {
            self.pos += 1;
            terms.push(self.binary(level + 1)?);
        }
        if terms.len() == 1 {
            return Ok(terms.swap_remove(0));
        }
        Ok(match level {
            0 => Expr::Any(terms),
            1 => Expr::All(terms),
            _ => Expr::Sum(terms),
        })
    }

    fn unary(&mut self) -> Result<Expr, ParseError> {
        if self.peek() == &Token::Not {
            self.pos += 1;
            self.descend()?;
            let inner = self.unary();
            self.depth -= 1;
            return Ok(Expr::Not(Box::new(inner?)));
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Expr, ParseError> {
        match self.next() {
            Token::Number(n) => Ok(Expr::Literal(Value::Number(n))),
            Token::Str(s) => Ok(Expr::Literal(Value::String(s))),
            Token::LParen => {
                let inner = self.expression()?;
                self.expect(&Token::RParen, "')'")?;
                self.postfix(inner)
            }
            Token::At => {
                let Token::Ident(namespace) = self.next() else {
                    return Err(ParseError(
                        "expected a utility name after '@', e.g. @convert.fromBase64".into(),
                    ));
                };
                self.expect(&Token::Dot, "'.' after the utility name")?;
                let Token::Ident(name) = self.next() else {
                    return Err(ParseError("expected a function name".into()));
                };
                let func = Func::lookup(&namespace, &name)
                    .ok_or_else(|| ParseError(format!("unknown utility @{namespace}.{name}")))?;
                self.expect(&Token::LParen, "'(' after the function name")?;
                let arg = self.expression()?;
                if self.peek() == &Token::Comma {
                    return Err(ParseError(format!(
                        "@{namespace}.{name} takes one argument"
                    )));
                }
                self.expect(&Token::RParen, "')' closing the call")?;
                self.postfix(Expr::Call(func, Box::new(arg)))
            }
            Token::Ident(word) => match word.as_str() {
                "true" => Ok(Expr::Literal(Value::Bool(true))),
                "false" => Ok(Expr::Literal(Value::Bool(false))),
                "null" => Ok(Expr::Literal(Value::Null)),
                "body" => self.path(Root::Body),
                "vars" | "var" => self.path(Root::Vars),
                other => Err(ParseError(format!(
                    "unknown name '{other}': paths start with body or vars"
                ))),
            },
            Token::End => Err(ParseError("the expression is incomplete".into())),
            other => Err(ParseError(format!("unexpected {}", describe(&other)))),
        }
    }

    /// `.name` and `[index]` after a call or a parenthesis.
    fn postfix(&mut self, base: Expr) -> Result<Expr, ParseError> {
        if matches!(self.peek(), Token::Dot | Token::LBracket) {
            self.path(Root::Value(Box::new(base)))
        } else {
            Ok(base)
        }
    }

    fn path(&mut self, root: Root) -> Result<Expr, ParseError> {
        let mut segments = Vec::new();
        loop {
            match self.peek() {
                Token::Dot => {
                    self.pos += 1;
                    match self.next() {
                        Token::Ident(name) => segments.push(Segment::Field(name)),
                        _ => return Err(ParseError("expected a property name after '.'".into())),
                    }
                }
                Token::LBracket => {
                    self.pos += 1;
                    let index = self.expression()?;
                    self.expect(&Token::RBracket, "']'")?;
                    segments.push(Segment::Index(Box::new(index)));
                }
                _ => return Ok(Expr::Path(root, segments)),
            }
        }
    }
}

fn describe(token: &Token) -> String {
    match token {
        Token::Ident(w) => format!("'{w}'"),
        Token::Number(n) => format!("number {n}"),
        Token::Str(_) => "text".into(),
        Token::Dot => "'.'".into(),
        Token::Comma => "','".into(),
        Token::At => "'@'".into(),
        Token::LParen => "'('".into(),
        Token::RParen => "')'".into(),
        Token::LBracket => "'['".into(),
        Token::RBracket => "']'".into(),
        Token::Plus => "'+'".into(),
        Token::Op(_) => "an operator".into(),
        Token::Not => "'!'".into(),
        Token::End => "the end".into(),
    }
}

pub(super) fn parse_tokens(tokens: Vec<Token>) -> Result<Expr, ParseError> {
    let mut parser = ExprParser {
        tokens,
        pos: 0,
        depth: 0,
    };
    let expr = parser.expression()?;
    match parser.peek() {
        Token::End => Ok(expr),
        other => Err(ParseError(format!(
            "unexpected {} after the expression",
            describe(other)
        ))),
    }
}

//! Expressions: the safe subset of PIPEFORCE's PEL inside `${…}` and `#{…}`.
//!
//! Grammar (loosest binding first):
//! `or` (`||`, `or`) → `and` (`&&`, `and`) → comparison (`== != < <= > >=`) →
//! `+` → `!`/`not` → primary: a literal (`'text'`, `"text"`, numbers, `true`,
//! `false`, `null`), a path (`body.payload.origin`, `vars.x`, `body.items[0]`,
//! `body.headers['x-id']`), a utility call (`@convert.fromBase64(…)`), or `( … )`.
//!
//! Expressions read only the pipeline's body and vars: nothing reaches the file
//! system, the network or the process environment. Parsing and evaluating never
//! panic and never recurse deeper than the nesting of parentheses, calls and
//! indexes (chains of one operator are kept flat); every value they produce is
//! paid for from the run's [`Budget`] as it is built.

use std::borrow::Cow;
use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use serde_json::{Map, Number, Value};

use super::budget::{Budget, Exhausted, ITEM_BYTES, JsonValueError, check_text_len};

/// Deepest nesting of parentheses, calls, indexes and `!`.
pub const MAX_NESTING: usize = 48;

/// Why an expression does not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError(pub String);

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why an expression could not be evaluated.
#[derive(Debug, Clone, PartialEq, Eq)]
enum EvalError {
    /// The expression does not fit the data: bad base64, adding an object to a number, …
    Failed(String),
    /// The run's budget is spent.
    Exhausted(Exhausted),
}

impl From<Exhausted> for EvalError {
    fn from(exhausted: Exhausted) -> Self {
        EvalError::Exhausted(exhausted)
    }
}

fn failed(reason: impl Into<String>) -> EvalError {
    EvalError::Failed(reason.into())
}

/// What expressions can read, and the budget they spend.
pub struct Scope<'a> {
    pub body: &'a Value,
    pub vars: &'a Map<String, Value>,
    pub budget: &'a Budget,
}

#[derive(Debug, Clone, PartialEq)]
enum Root {
    Body,
    Vars,
    /// Properties of a computed value: `@convert.fromJson(x).field`.
    Value(Box<Expr>),
}

#[derive(Debug, Clone, PartialEq)]
enum Segment {
    Field(String),
    Index(Box<Expr>),
}

/// The utility functions expressions may call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Func {
    FromBase64,
    ToBase64,
    ToJson,
    FromJson,
    UpperCase,
    LowerCase,
}

impl Func {
    fn lookup(namespace: &str, name: &str) -> Option<Func> {
        Some(match (namespace, name) {
            ("convert", "fromBase64") => Func::FromBase64,
            ("convert", "toBase64") => Func::ToBase64,
            ("convert", "toJson") => Func::ToJson,
            ("convert", "fromJson") => Func::FromJson,
            ("text", "upperCase") => Func::UpperCase,
            ("text", "lowerCase") => Func::LowerCase,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BinOp {
    Or,
    And,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Add,
}

impl BinOp {
    /// Binding strength, loosest first: `or`, `and`, comparisons, `+`.
    fn level(self) -> u8 {
        match self {
            BinOp::Or => 0,
            BinOp::And => 1,
            BinOp::Eq | BinOp::Ne | BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge => 2,
            BinOp::Add => 3,
        }
    }
}

/// A parsed expression. A chain of one operator is one node holding its terms
/// (`a + b + c` is a `Sum` of three), not a tree as deep as the chain is long:
/// a chain of thousands of terms is parsed, evaluated and dropped without
/// recursing once per term.
#[derive(Debug, Clone, PartialEq)]
enum Expr {
    Literal(Value),
    Path(Root, Vec<Segment>),
    Call(Func, Box<Expr>),
    Not(Box<Expr>),
    /// `a or b or …`: true at the first true term, left to right.
    Any(Vec<Expr>),
    /// `a and b and …`: false at the first false term, left to right.
    All(Vec<Expr>),
    /// `a == b` and the other comparisons, which do not chain.
    Compare(BinOp, Box<Expr>, Box<Expr>),
    /// `a + b + …`, added left to right.
    Sum(Vec<Expr>),
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Ident(String),
    Number(Number),
    Str(String),
    Dot,
    Comma,
    At,
    LParen,
    RParen,
    LBracket,
    RBracket,
    Plus,
    Op(BinOp),
    Not,
    End,
}

/// Reads tokens from `text` up to the `}` closing an expression (or the end of
/// `text` when `closed` is false). Returns them and the byte offset after the `}`.
fn tokenize(text: &str, closed: bool) -> Result<(Vec<Token>, usize), ParseError> {
    let bytes = text.as_bytes();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        match c {
            b' ' | b'\t' | b'\n' | b'\r' => i += 1,
            b'}' if closed => {
                tokens.push(Token::End);
                return Ok((tokens, i + 1));
            }
            b'.' => (tokens.push(Token::Dot), i += 1).1,
            b',' => (tokens.push(Token::Comma), i += 1).1,
            b'@' => (tokens.push(Token::At), i += 1).1,
            b'(' => (tokens.push(Token::LParen), i += 1).1,
            b')' => (tokens.push(Token::RParen), i += 1).1,
            b'[' => (tokens.push(Token::LBracket), i += 1).1,
            b']' => (tokens.push(Token::RBracket), i += 1).1,
            b'+' => (tokens.push(Token::Plus), i += 1).1,
            b'=' | b'!' | b'<' | b'>' | b'&' | b'|' => {
                let next = bytes.get(i + 1).copied();
                let (token, len) = match (c, next) {
                    (b'=', Some(b'=')) => (Token::Op(BinOp::Eq), 2),
                    (b'!', Some(b'=')) => (Token::Op(BinOp::Ne), 2),
                    (b'<', Some(b'=')) => (Token::Op(BinOp::Le), 2),
                    (b'>', Some(b'=')) => (Token::Op(BinOp::Ge), 2),
                    (b'&', Some(b'&')) => (Token::Op(BinOp::And), 2),
                    (b'|', Some(b'|')) => (Token::Op(BinOp::Or), 2),
                    (b'<', _) => (Token::Op(BinOp::Lt), 1),
                    (b'>', _) => (Token::Op(BinOp::Gt), 1),
                    (b'!', _) => (Token::Not, 1),
                    _ => return Err(ParseError(format!("unexpected '{}'", c as char))),
                };
                tokens.push(token);
                i += len;
            }
            b'\'' | b'"' => {
                let quote = c;
                let mut value = String::new();
                let mut j = i + 1;
                loop {
                    let Some(&b) = bytes.get(j) else {
                        return Err(ParseError("unterminated text literal".into()));
                    };
                    if b == quote {
                        // A doubled quote stands for itself, as in SpEL.
                        if bytes.get(j + 1) == Some(&quote) {
                            value.push(quote as char);
                            j += 2;
                            continue;
                        }
                        break;
                    }
                    let ch = text[j..].chars().next().unwrap_or('\u{fffd}');
                    value.push(ch);
                    j += ch.len_utf8();
                }
                tokens.push(Token::Str(value));
                i = j + 1;
            }
            b'0'..=b'9' => {
                let start = i;
                while i < bytes.len() && (bytes[i].is_ascii_digit() || bytes[i] == b'.') {
                    // A dot not followed by a digit ends the number (`items.0` is not valid anyway).
                    if bytes[i] == b'.' && !bytes.get(i + 1).is_some_and(u8::is_ascii_digit) {
                        break;
                    }
                    i += 1;
                }
                let literal = &text[start..i];
                let number = match literal.parse::<i64>() {
                    Ok(n) => Number::from(n),
                    Err(_) => literal
                        .parse::<f64>()
                        .ok()
                        .and_then(Number::from_f64)
                        .ok_or_else(|| ParseError(format!("invalid number '{literal}'")))?,
                };
                tokens.push(Token::Number(number));
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                let start = i;
                while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                    i += 1;
                }
                let word = &text[start..i];
                tokens.push(match word {
                    "and" => Token::Op(BinOp::And),
                    "or" => Token::Op(BinOp::Or),
                    "not" => Token::Not,
                    _ => Token::Ident(word.to_owned()),
                });
            }
            _ => {
                let ch = text[i..].chars().next().unwrap_or('?');
                return Err(ParseError(format!("unexpected '{ch}'")));
            }
        }
    }
    if closed {
        Err(ParseError(
            "missing '}' at the end of the expression".into(),
        ))
    } else {
        tokens.push(Token::End);
        Ok((tokens, bytes.len()))
    }
}

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

fn parse_tokens(tokens: Vec<Token>) -> Result<Expr, ParseError> {
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

/// A text with embedded expressions: `"Hello ${body.name}!"`.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Text(String),
    Expr { expr: Expr, source: String },
}

/// An expression that failed, with its source text, for error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateError {
    pub expression: String,
    pub reason: String,
    /// Set when the run's budget stopped it, rather than the expression itself.
    pub exhausted: Option<Exhausted>,
}

impl TemplateError {
    fn new(expression: impl Into<String>, error: EvalError) -> Self {
        let expression = expression.into();
        match error {
            EvalError::Failed(reason) => TemplateError {
                expression,
                reason,
                exhausted: None,
            },
            EvalError::Exhausted(exhausted) => TemplateError {
                expression,
                reason: exhausted.to_string(),
                exhausted: Some(exhausted),
            },
        }
    }

    /// The run's budget stopped something that is not one expression (a list or
    /// map parameter being built).
    pub fn exhausted(exhausted: Exhausted) -> Self {
        TemplateError::new(String::new(), EvalError::Exhausted(exhausted))
    }
}

impl Template {
    /// Parses `${…}` and `#{…}` in `text`; everything else is literal text.
    pub fn parse(text: &str) -> Result<Template, TemplateError> {
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut rest = text;
        while let Some(start) = rest.find(['$', '#']) {
            let after = &rest[start + 1..];
            if !after.starts_with('{') {
                literal.push_str(&rest[..=start]);
                rest = after;
                continue;
            }
            literal.push_str(&rest[..start]);
            let body = &after[1..];
            let fail = |reason: String, end: usize| {
                TemplateError::new(
                    &rest[start..(start + 2 + end).min(rest.len())],
                    EvalError::Failed(reason),
                )
            };
            let (tokens, consumed) = tokenize(body, true).map_err(|e| fail(e.0, body.len()))?;
            let source = rest[start..start + 2 + consumed].to_owned();
            let expr = parse_tokens(tokens).map_err(|e| fail(e.0, consumed))?;
            if !literal.is_empty() {
                parts.push(Part::Text(std::mem::take(&mut literal)));
            }
            parts.push(Part::Expr { expr, source });
            rest = &body[consumed..];
        }
        literal.push_str(rest);
        if !literal.is_empty() || parts.is_empty() {
            parts.push(Part::Text(literal));
        }
        Ok(Template { parts })
    }

    /// Whether the text holds no expression.
    pub fn is_literal(&self) -> bool {
        self.parts.iter().all(|p| matches!(p, Part::Text(_)))
    }

    /// A whole-text expression yields its typed value; otherwise the parts are
    /// joined as text (strings as they are, null as nothing, others as JSON).
    pub fn evaluate(&self, scope: &Scope<'_>) -> Result<Value, TemplateError> {
        let run = |expr: &Expr, source: &str| {
            evaluate(expr, scope).map_err(|e| TemplateError::new(source, e))
        };
        if let [Part::Expr { expr, source }] = self.parts.as_slice() {
            return run(expr, source);
        }
        let mut out = String::new();
        for part in &self.parts {
            let (text, source) = match part {
                Part::Text(text) => (Cow::Borrowed(text.as_str()), ""),
                Part::Expr { expr, source } => {
                    let text = into_text(run(expr, source)?, scope.budget)
                        .map_err(|e| TemplateError::new(source.as_str(), e))?;
                    (Cow::Owned(text), source.as_str())
                }
            };
            append(&mut out, &text, scope.budget)
                .map_err(|e| TemplateError::new(source, e.into()))?;
        }
        Ok(Value::String(out))
    }
}

/// Appends `tail` to `text`, within the text cap and paid for.
fn append(text: &mut String, tail: &str, budget: &Budget) -> Result<(), Exhausted> {
    check_text_len(text.len() + tail.len())?;
    budget.charge(tail.len())?;
    text.push_str(tail);
    Ok(())
}

/// A value as text: strings as they are, null as empty, anything else as JSON.
pub fn to_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// [`to_text`] for expressions: takes the value, and writes JSON within the
/// text cap and the budget.
fn into_text(value: Value, budget: &Budget) -> Result<String, EvalError> {
    match value {
        Value::String(s) => Ok(s),
        Value::Null => Ok(String::new()),
        other => Ok(budget.json_text(&other)?),
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "text",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// Evaluates `expr` against `scope`. Recurses only as deep as the expression
/// nests (at most [`MAX_NESTING`] parentheses, calls, indexes or `!`).
fn evaluate(expr: &Expr, scope: &Scope<'_>) -> Result<Value, EvalError> {
    match expr {
        Expr::Literal(v) => copy(Some(v), scope.budget),
        Expr::Path(Root::Body, segments) => copy(walk(scope.body, segments, scope)?, scope.budget),
        Expr::Path(Root::Value(base), segments) => {
            let base = evaluate(base, scope)?;
            copy(walk(&base, segments, scope)?, scope.budget)
        }
        Expr::Path(Root::Vars, segments) => {
            let Some((first, rest)) = segments.split_first() else {
                return all_vars(scope);
            };
            let name = match first {
                Segment::Field(name) => Some(name.clone()),
                Segment::Index(index) => match evaluate(index, scope)? {
                    Value::String(name) => Some(name),
                    _ => None,
                },
            };
            match name.and_then(|n| scope.vars.get(&n)) {
                Some(value) => copy(walk(value, rest, scope)?, scope.budget),
                None => Ok(Value::Null),
            }
        }
        Expr::Call(func, arg) => call(*func, evaluate(arg, scope)?, scope.budget),
        Expr::Not(inner) => match evaluate(inner, scope)? {
            Value::Bool(b) => Ok(Value::Bool(!b)),
            other => Err(failed(format!(
                "'!' needs a boolean, got {}",
                type_name(&other)
            ))),
        },
        // Short-circuit, as in SpEL.
        Expr::Any(terms) => first_bool(terms, true, scope),
        Expr::All(terms) => first_bool(terms, false, scope),
        Expr::Compare(op, lhs, rhs) => {
            let left = evaluate(lhs, scope)?;
            compare(*op, &left, &evaluate(rhs, scope)?)
        }
        Expr::Sum(terms) => {
            let mut terms = terms.iter();
            let mut total = match terms.next() {
                Some(first) => evaluate(first, scope)?,
                None => Value::Null,
            };
            for term in terms {
                total = add(total, evaluate(term, scope)?, scope.budget)?;
            }
            Ok(total)
        }
    }
}

/// A copy of what a path found, paid for before it is made; nothing found reads as null.
fn copy(found: Option<&Value>, budget: &Budget) -> Result<Value, EvalError> {
    let value = found.unwrap_or(&Value::Null);
    budget.charge_value(value)?;
    Ok(value.clone())
}

/// `${vars}`: all variables as one object.
fn all_vars(scope: &Scope<'_>) -> Result<Value, EvalError> {
    scope.budget.charge(ITEM_BYTES)?;
    for (name, value) in scope.vars {
        scope.budget.charge(ITEM_BYTES + name.len())?;
        scope.budget.charge_value(value)?;
    }
    Ok(Value::Object(scope.vars.clone()))
}

/// `or` (`stop_at` true) and `and` (false): the first term equal to `stop_at`
/// decides; every term evaluated must be a boolean.
fn first_bool(terms: &[Expr], stop_at: bool, scope: &Scope<'_>) -> Result<Value, EvalError> {
    for term in terms {
        match evaluate(term, scope)? {
            Value::Bool(b) if b == stop_at => return Ok(Value::Bool(b)),
            Value::Bool(_) => {}
            other => {
                return Err(failed(format!(
                    "'and'/'or' need booleans, got {}",
                    type_name(&other)
                )));
            }
        }
    }
    Ok(Value::Bool(!stop_at))
}

/// What `root` holds at `segments`, without copying it; `None` when missing.
fn walk<'a>(
    root: &'a Value,
    segments: &[Segment],
    scope: &Scope<'_>,
) -> Result<Option<&'a Value>, EvalError> {
    let mut current = root;
    for segment in segments {
        let next = match segment {
            Segment::Field(name) => current.get(name.as_str()),
            Segment::Index(index) => match (current, evaluate(index, scope)?) {
                (Value::Array(items), Value::Number(n)) => {
                    n.as_u64().and_then(|i| items.get(i as usize))
                }
                (Value::Object(map), Value::String(key)) => map.get(&key),
                _ => None,
            },
        };
        // A missing property reads as null, like a safe navigation.
        match next {
            Some(v) => current = v,
            None => return Ok(None),
        }
    }
    Ok(Some(current))
}

fn call(func: Func, arg: Value, budget: &Budget) -> Result<Value, EvalError> {
    match func {
        Func::FromBase64 => {
            let text = match &arg {
                Value::String(s) => s.trim(),
                Value::Null => return Ok(Value::Null),
                other => {
                    return Err(failed(format!(
                        "fromBase64 needs text, got {}",
                        type_name(other)
                    )));
                }
            };
            // Decoded bytes are at most three quarters of the text.
            budget.charge(ITEM_BYTES + text.len() / 4 * 3 + 3)?;
            let bytes = [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
                .iter()
                .find_map(|engine| engine.decode(text).ok())
                .ok_or_else(|| failed("fromBase64: the text is not valid base64"))?;
            String::from_utf8(bytes)
                .map(Value::String)
                .map_err(|_| failed("fromBase64: the decoded bytes are not UTF-8 text"))
        }
        Func::ToBase64 => {
            let text = into_text(arg, budget)?;
            let encoded = text.len().div_ceil(3) * 4;
            check_text_len(encoded)?;
            budget.charge(ITEM_BYTES + encoded)?;
            Ok(Value::String(STANDARD.encode(text)))
        }
        Func::ToJson => Ok(Value::String(budget.json_text(&arg)?)),
        Func::FromJson => match &arg {
            Value::String(s) => budget.json_value(s).map_err(|e| match e {
                JsonValueError::Invalid(e) => {
                    failed(format!("fromJson: the text is not valid JSON ({e})"))
                }
                JsonValueError::Exhausted(exhausted) => exhausted.into(),
            }),
            Value::Null => Ok(Value::Null),
            other => Err(failed(format!(
                "fromJson needs text, got {}",
                type_name(other)
            ))),
        },
        Func::UpperCase => change_case(arg, budget, str::to_uppercase),
        Func::LowerCase => change_case(arg, budget, str::to_lowercase),
    }
}

/// Upper- or lower-cases the value's text. Paid for at its length before;
/// letters that change length (`ß` → `SS`) are paid for after.
fn change_case(
    arg: Value,
    budget: &Budget,
    change: fn(&str) -> String,
) -> Result<Value, EvalError> {
    let text = into_text(arg, budget)?;
    budget.charge(ITEM_BYTES + text.len())?;
    let changed = change(&text);
    if changed.len() > text.len() {
        check_text_len(changed.len())?;
        budget.charge(changed.len() - text.len())?;
    }
    Ok(Value::String(changed))
}

/// `left + right`: numbers add; with text on either side, both are joined as text.
fn add(left: Value, right: Value, budget: &Budget) -> Result<Value, EvalError> {
    match (left, right) {
        (Value::Number(a), Value::Number(b)) => {
            if let (Some(x), Some(y)) = (a.as_i64(), b.as_i64())
                && let Some(sum) = x.checked_add(y)
            {
                return Ok(Value::Number(sum.into()));
            }
            let sum = a.as_f64().unwrap_or(0.0) + b.as_f64().unwrap_or(0.0);
            Number::from_f64(sum)
                .map(Value::Number)
                .ok_or_else(|| failed("the sum is not a finite number"))
        }
        // A chain of texts grows one string, so `'a' + 'b' + …` copies each term once.
        (Value::String(mut text), right) => {
            append(&mut text, &into_text(right, budget)?, budget)?;
            Ok(Value::String(text))
        }
        (left, Value::String(tail)) => {
            let mut text = into_text(left, budget)?;
            append(&mut text, &tail, budget)?;
            Ok(Value::String(text))
        }
        (left, right) => Err(failed(format!(
            "cannot add {} and {}",
            type_name(&left),
            type_name(&right)
        ))),
    }
}

fn compare(op: BinOp, left: &Value, right: &Value) -> Result<Value, EvalError> {
    let ordering = match op {
        BinOp::Eq => return Ok(Value::Bool(equal(left, right))),
        BinOp::Ne => return Ok(Value::Bool(!equal(left, right))),
        _ => match (left, right) {
            (Value::String(a), Value::String(b)) => a.partial_cmp(b),
            _ => match (left.as_f64(), right.as_f64()) {
                (Some(a), Some(b)) => a.partial_cmp(&b),
                _ => None,
            },
        },
    }
    .ok_or_else(|| {
        failed(format!(
            "cannot compare {} with {}",
            type_name(left),
            type_name(right)
        ))
    })?;
    Ok(Value::Bool(match op {
        BinOp::Lt => ordering.is_lt(),
        BinOp::Le => ordering.is_le(),
        BinOp::Gt => ordering.is_gt(),
        _ => ordering.is_ge(),
    }))
}

/// Equality where 1 and 1.0 are the same number.
fn equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::budget::{MAX_TEXT_BYTES, RunLimits};
    use proptest::prelude::*;
    use serde_json::json;

    fn eval(text: &str, body: Value) -> Result<Value, TemplateError> {
        let vars = json!({"greeting": "hi", "n": 2})
            .as_object()
            .unwrap()
            .clone();
        Template::parse(text)?.evaluate(&Scope {
            body: &body,
            vars: &vars,
            budget: &Budget::start(RunLimits::default()),
        })
    }

    #[test]
    fn whole_expressions_keep_their_type() {
        let body = json!({"payload": {"n": 3, "obj": {"a": [1, 2]}}, "origin": "aGVsbG8gd29ybGQ="});
        assert_eq!(
            eval("${body.payload.obj}", body.clone()).unwrap(),
            json!({"a": [1, 2]})
        );
        assert_eq!(eval("#{body.payload.n}", body.clone()).unwrap(), json!(3));
        assert_eq!(
            eval("${body.payload.obj.a[1]}", body.clone()).unwrap(),
            json!(2)
        );
        assert_eq!(
            eval("${@convert.fromBase64(body.origin)}", body.clone()).unwrap(),
            json!("hello world")
        );
        assert_eq!(
            eval(
                "${@text.upperCase(@convert.fromBase64(body.origin))}",
                body.clone()
            )
            .unwrap(),
            json!("HELLO WORLD")
        );
        assert_eq!(
            eval("${body.missing.deeper}", body.clone()).unwrap(),
            Value::Null
        );
    }

    #[test]
    fn text_interpolation() {
        let body = json!({"name": "Ada", "n": 2, "o": {"k": true}});
        assert_eq!(
            eval("Hello ${body.name}!", body.clone()).unwrap(),
            json!("Hello Ada!")
        );
        assert_eq!(
            eval("n=#{body.n} o=${body.o} x=${body.none}.", body.clone()).unwrap(),
            json!("n=2 o={\"k\":true} x=.")
        );
        assert_eq!(
            eval("costs $5 #1 {x}", body.clone()).unwrap(),
            json!("costs $5 #1 {x}")
        );
        assert_eq!(eval("${'}'}", body).unwrap(), json!("}"));
    }

    #[test]
    fn operators() {
        let body = json!({"a": 5, "s": "x", "f": 1.5});
        for (text, want) in [
            ("${body.a + 1}", json!(6)),
            ("${body.f + 1}", json!(2.5)),
            ("${body.s + body.a}", json!("x5")),
            ("${'a' + null}", json!("a")),
            ("${body.a > 4 and body.s == 'x'}", json!(true)),
            ("${body.a < 4 || !(body.s != 'x')}", json!(true)),
            ("${body.a == 5.0}", json!(true)),
            ("${'b' >= 'a'}", json!(true)),
            ("${vars.greeting + var.n}", json!("hi2")),
            (
                "${@convert.toJson(body)}",
                json!("{\"a\":5,\"s\":\"x\",\"f\":1.5}"),
            ),
            ("${@convert.fromJson('{\"k\": [1]}').k[0]}", json!(1)),
            ("${vars['greeting']}", json!("hi")),
            ("${vars}", json!({"greeting": "hi", "n": 2})),
            (
                "${@convert.toBase64('hello world')}",
                json!("aGVsbG8gd29ybGQ="),
            ),
            ("${@text.lowerCase('ABC')}", json!("abc")),
            ("${'it''s'}", json!("it's")),
        ] {
            assert_eq!(eval(text, body.clone()).unwrap(), want, "{text}");
        }
    }

    #[test]
    fn errors_name_the_expression() {
        let body = json!({"o": {}, "t": "%%%"});
        for (text, fragment) in [
            ("${body.o + 1}", "cannot add"),
            ("${body.o < 1}", "cannot compare"),
            ("${@convert.fromBase64(body.t)}", "not valid base64"),
            ("${@convert.fromJson(body.t)}", "not valid JSON"),
            ("${!body.t}", "needs a boolean"),
        ] {
            let err = eval(&format!("x {text}"), body.clone()).unwrap_err();
            assert_eq!(err.expression, text);
            assert!(err.reason.contains(fragment), "{text}: {}", err.reason);
        }
        for (text, fragment) in [
            ("${body.}", "property name"),
            ("${env.HOME}", "unknown name 'env'"),
            ("${@os.exec('ls')}", "unknown utility"),
            ("${1 < 2 < 3}", "chained"),
            ("${body.a", "missing '}'"),
            ("${'open}", "unterminated"),
            ("${}", "incomplete"),
            ("${@convert.toJson(body, body)}", "one argument"),
        ] {
            let err = Template::parse(text).unwrap_err();
            assert!(err.reason.contains(fragment), "{text}: {}", err.reason);
        }
        let deep = format!("${{{}1{}}}", "(".repeat(200), ")".repeat(200));
        assert!(
            Template::parse(&deep)
                .unwrap_err()
                .reason
                .contains("deeply")
        );
    }

    #[test]
    fn produced_text_is_bounded() {
        let big = "x".repeat(MAX_TEXT_BYTES / 2 + 1);
        let body = json!({ "big": big });
        assert!(
            eval("${body.big + body.big}", body)
                .unwrap_err()
                .reason
                .contains("exceed")
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn arbitrary_text_never_panics(text in ".{0,200}") {
            if let Ok(template) = Template::parse(&text) {
                let body = json!({"a": [1, {"b": "c"}], "origin": "aGk="});
                let vars = Map::new();
                let budget = Budget::start(RunLimits::default());
                let _ = template.evaluate(&Scope { body: &body, vars: &vars, budget: &budget });
            }
        }

        #[test]
        fn expression_shaped_text_never_panics(
            parts in proptest::collection::vec(
                prop_oneof![
                    Just("${"), Just("#{"), Just("}"), Just("body"), Just("vars"), Just("."), Just("a"),
                    Just("["), Just("]"), Just("("), Just(")"), Just("'x'"), Just("\""), Just("1"), Just("2.5"),
                    Just("+"), Just("=="), Just("<"), Just("!"), Just("and"), Just("or"), Just("@convert"),
                    Just(".fromBase64"), Just(".fromJson"), Just("@text.upperCase"), Just(","), Just(" "),
                    Just("null"), Just("true"),
                ],
                0..40,
            )
        ) {
            let text: String = parts.concat();
            if let Ok(template) = Template::parse(&text) {
                let body = json!({"a": [1, {"b": "c"}], "origin": "aGk="});
                let vars = Map::new();
                let budget = Budget::start(RunLimits::default());
                let _ = template.evaluate(&Scope { body: &body, vars: &vars, budget: &budget });
            }
        }
    }
}

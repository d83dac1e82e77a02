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

mod eval;
mod lexer;
mod parser;
#[cfg(test)]
mod tests;

use std::borrow::Cow;
use std::fmt;

use serde_json::{Map, Value};

use super::budget::{Budget, Exhausted};
use eval::{append, evaluate, into_text};
use lexer::tokenize;
use parser::parse_tokens;

pub use eval::to_text;

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

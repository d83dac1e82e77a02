//! Expression evaluator: an [`Expr`](super::Expr) against a [`Scope`](super::Scope),
//! every value paid for from the run's budget as it is built.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use serde_json::{Number, Value};

use super::{BinOp, EvalError, Expr, Func, Root, Scope, Segment, failed};
use crate::pipeline::budget::{Budget, Exhausted, ITEM_BYTES, JsonValueError, check_text_len};

/// Appends `tail` to `text`, within the text cap and paid for.
pub(super) fn append(text: &mut String, tail: &str, budget: &Budget) -> Result<(), Exhausted> {
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
pub(super) fn into_text(value: Value, budget: &Budget) -> Result<String, EvalError> {
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
/// nests (at most [`MAX_NESTING`](super::MAX_NESTING) parentheses, calls, indexes or `!`).
pub(super) fn evaluate(expr: &Expr, scope: &Scope<'_>) -> Result<Value, EvalError> {
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

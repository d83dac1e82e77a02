//! A small YAML tree that remembers the line of every node, so a bad pipeline
//! is answered with the line at fault. Built from saphyr's event parser;
//! anchors, aliases and several documents are refused (nothing a pipeline
//! needs, and aliases are how "billion laughs" documents blow up).

use saphyr_parser::{Event, Parser, ScalarStyle};
use serde_json::{Number, Value};

/// Deepest nesting accepted.
const MAX_DEPTH: usize = 64;

/// A node and the 1-based line it starts on.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub line: usize,
    pub kind: Kind,
}

/// What a node holds.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    /// A scalar; `plain` when unquoted, so `true`, `12` and `null` keep their types.
    Scalar {
        text: String,
        plain: bool,
    },
    Seq(Vec<Node>),
    Map(Vec<(String, Node)>),
}

/// A YAML syntax error and where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YamlError {
    pub line: usize,
    pub reason: String,
}

enum Open {
    Seq(usize, Vec<Node>),
    Map(usize, Vec<(String, Node)>, Option<(String, usize)>),
}

/// Parses one YAML document.
pub fn parse(source: &str) -> Result<Node, YamlError> {
    let mut stack: Vec<Open> = Vec::new();
    let mut root: Option<Node> = None;
    let mut documents = 0;
    for item in Parser::new_from_str(source) {
        let (event, span) = item.map_err(|e| YamlError {
            line: e.marker().line(),
            reason: e.info().to_owned(),
        })?;
        let line = span.start.line();
        let error = |reason: &str| YamlError {
            line,
            reason: reason.to_owned(),
        };
        let complete = match event {
            Event::DocumentStart(_) => {
                documents += 1;
                if documents > 1 {
                    return Err(error("only one YAML document is allowed"));
                }
                None
            }
            Event::Alias(_) => return Err(error("anchors and aliases are not supported")),
            Event::Scalar(text, style, anchor, _) => {
                if anchor != 0 {
                    return Err(error("anchors and aliases are not supported"));
                }
                Some(Node {
                    line,
                    kind: Kind::Scalar {
                        text: text.into_owned(),
                        plain: style == ScalarStyle::Plain,
                    },
                })
            }
            Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => {
                if anchor != 0 {
                    return Err(error("anchors and aliases are not supported"));
                }
                if stack.len() >= MAX_DEPTH {
                    return Err(error("the document is nested too deeply"));
                }
                stack.push(if matches!(event, Event::SequenceStart(..)) {
                    Open::Seq(line, Vec::new())
                } else {
                    Open::Map(line, Vec::new(), None)
                });
                None
            }
            Event::SequenceEnd => match stack.pop() {
                Some(Open::Seq(l, items)) => Some(Node {
                    line: l,
                    kind: Kind::Seq(items),
                }),
                _ => return Err(error("unbalanced sequence")),
            },
            Event::MappingEnd => match stack.pop() {
                Some(Open::Map(l, entries, None)) => Some(Node {
                    line: l,
                    kind: Kind::Map(entries),
                }),
                _ => return Err(error("unbalanced mapping")),
            },
            _ => None,
        };
        let Some(node) = complete else { continue };
        match stack.last_mut() {
            None => root = Some(node),
            Some(Open::Seq(_, items)) => items.push(node),
            Some(Open::Map(_, entries, pending)) => match pending.take() {
                Some((key, _)) => {
                    if entries.iter().any(|(k, _)| *k == key) {
                        return Err(YamlError {
                            line: node.line,
                            reason: format!("duplicate key '{key}'"),
                        });
                    }
                    entries.push((key, node));
                }
                None => match node.kind {
                    Kind::Scalar { text, .. } => *pending = Some((text, node.line)),
                    _ => {
                        return Err(YamlError {
                            line: node.line,
                            reason: "keys must be plain text".into(),
                        });
                    }
                },
            },
        }
    }
    root.ok_or(YamlError {
        line: 1,
        reason: "the document is empty".into(),
    })
}

impl Node {
    /// The node as JSON: plain scalars typed by the YAML core schema, quoted ones text.
    pub fn to_json(&self) -> Value {
        match &self.kind {
            Kind::Scalar { text, plain } => {
                if *plain {
                    plain_scalar(text)
                } else {
                    Value::String(text.clone())
                }
            }
            Kind::Seq(items) => Value::Array(items.iter().map(Node::to_json).collect()),
            Kind::Map(entries) => Value::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.clone(), v.to_json()))
                    .collect(),
            ),
        }
    }

    /// The entries, if this is a mapping.
    pub fn as_map(&self) -> Option<&[(String, Node)]> {
        match &self.kind {
            Kind::Map(entries) => Some(entries),
            _ => None,
        }
    }
}

fn plain_scalar(text: &str) -> Value {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        _ => {}
    }
    if let Ok(n) = text.parse::<i64>() {
        return Value::Number(n.into());
    }
    let numeric = text
        .bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'+' | b'e' | b'E'));
    if numeric
        && text.bytes().any(|b| b.is_ascii_digit())
        && let Some(n) = text.parse::<f64>().ok().and_then(Number::from_f64)
    {
        return Value::Number(n);
    }
    Value::String(text.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn lines_and_types() {
        let doc = "pipeline:\n  - event.listen:\n      eventKey: a.b\n  - body.set:\n      value: 'true'\n  - n: 12\n    f: 1.5\n    b: true\n    z: ~\n";
        let root = parse(doc).unwrap();
        let steps = &root.as_map().unwrap()[0].1;
        let Kind::Seq(items) = &steps.kind else {
            panic!()
        };
        assert_eq!(items.iter().map(|n| n.line).collect::<Vec<_>>(), [2, 4, 6]);
        assert_eq!(items[1].to_json(), json!({"body.set": {"value": "true"}}));
        assert_eq!(
            items[2].to_json(),
            json!({"n": 12, "f": 1.5, "b": true, "z": null})
        );
    }

    #[test]
    fn refusals_name_the_line() {
        assert_eq!(parse("a: &x 1\nb: *x\n").unwrap_err().line, 1);
        assert_eq!(
            parse("a: 1\na: 2\n").unwrap_err(),
            YamlError {
                line: 2,
                reason: "duplicate key 'a'".into()
            }
        );
        assert_eq!(parse("a: 1\n---\nb: 2\n").unwrap_err().line, 2);
        assert!(parse("a: [1, 2\n").is_err());
        assert!(parse("").is_err());
        let deep = "[".repeat(100) + &"]".repeat(100);
        assert!(parse(&deep).unwrap_err().reason.contains("deeply"));
    }
}

//! Expression tokens: reads the text inside `${…}` up to its closing `}`.

use serde_json::Number;

use super::{BinOp, ParseError};

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Token {
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
pub(super) fn tokenize(text: &str, closed: bool) -> Result<(Vec<Token>, usize), ParseError> {
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

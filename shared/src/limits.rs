//! Bounds shared by every part of hookflow, so that what one part accepts the
//! others can always store, read back and hand on.

use serde_json::Value;

/// Deepest nesting of arrays and objects in any JSON value hookflow keeps: a
/// received JSON body, every value a pipeline produces, an endpoint's answer.
///
/// Stored documents wrap such a value a few levels deeper (an event, an
/// outcome, an invocation record), and serde_json refuses to read past 128
/// levels, so one bound well below that keeps every stored document readable.
pub const MAX_JSON_DEPTH: usize = 64;

/// Largest outcome of one pipeline (its final body, as JSON) a result keeps; a
/// larger one is recorded as a `result_too_large` error. In the AWS shape a
/// result travels back as a Lambda response, which holds at most 6 MB.
pub const MAX_OUTCOME_BYTES: usize = 5 * 1024 * 1024;

/// How deeply `value` nests arrays and objects: 0 for a scalar, 1 for `[1]`.
/// Walks without recursion, so any value can be measured.
pub fn json_depth(value: &Value) -> usize {
    let mut deepest = 0;
    let mut stack: Vec<(&Value, usize)> = vec![(value, 0)];
    while let Some((value, depth)) = stack.pop() {
        let children: Box<dyn Iterator<Item = &Value>> = match value {
            Value::Array(items) => Box::new(items.iter()),
            Value::Object(map) => Box::new(map.values()),
            _ => continue,
        };
        let depth = depth + 1;
        deepest = deepest.max(depth);
        stack.extend(children.map(|child| (child, depth)));
    }
    deepest
}

/// Whether `value` nests no deeper than [`MAX_JSON_DEPTH`].
pub fn within_json_depth(value: &Value) -> bool {
    json_depth(value) <= MAX_JSON_DEPTH
}

/// Parses `bytes` as JSON when they are JSON nested no deeper than
/// [`MAX_JSON_DEPTH`]; `None` otherwise (the caller keeps them as text or bytes).
pub fn parse_json_within_depth(bytes: &[u8]) -> Option<Value> {
    serde_json::from_slice::<Value>(bytes)
        .ok()
        .filter(within_json_depth)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn nested(levels: usize) -> String {
        format!("{}1{}", "[".repeat(levels), "]".repeat(levels))
    }

    #[test]
    fn depth_counts_containers() {
        assert_eq!(json_depth(&json!(1)), 0);
        assert_eq!(json_depth(&json!([])), 1);
        assert_eq!(json_depth(&json!({"a": [1, {"b": {}}]})), 4);
        let deep: Value = serde_json::from_str(&nested(100)).unwrap();
        assert_eq!(json_depth(&deep), 100);
    }

    #[test]
    fn parsing_stops_at_the_bound() {
        assert!(parse_json_within_depth(nested(MAX_JSON_DEPTH).as_bytes()).is_some());
        assert!(parse_json_within_depth(nested(MAX_JSON_DEPTH + 1).as_bytes()).is_none());
        assert!(parse_json_within_depth(nested(500).as_bytes()).is_none());
        assert!(parse_json_within_depth(b"{not json").is_none());
    }
}

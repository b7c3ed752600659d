//! Bounds on one message, checked before it may touch the running schema: nesting depth,
//! number of fields, field names. A message past a bound is rejected with a reason that starts
//! with a fixed word (the `reason` label of `sluice_dlq_total`), the rest of its batch goes on.

use serde_json::{Map, Value};
use sluice_config::DecodeConfig;
use std::collections::HashSet;
use std::time::Duration;

/// The decoder's bounds (from `[router.decode]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeLimits {
    pub max_depth: usize,
    pub max_fields_per_message: usize,
    pub max_schema_fields: usize,
    /// `None`: fields are never retired.
    pub field_ttl: Option<Duration>,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        Self::from(&DecodeConfig::default())
    }
}

impl From<&DecodeConfig> for DecodeLimits {
    fn from(c: &DecodeConfig) -> Self {
        Self {
            max_depth: c.max_depth,
            max_fields_per_message: c.max_fields_per_message,
            max_schema_fields: c.max_schema_fields,
            field_ttl: (c.field_ttl_secs > 0).then(|| Duration::from_secs(c.field_ttl_secs)),
        }
    }
}

/// What walking one payload found.
#[derive(Debug, Default)]
struct Shape {
    depth: usize,
    leaves: usize,
    empty_name: bool,
    dotted_name: bool,
}

/// `depth` is the nesting depth of `map` itself (1 for the payload).
fn walk_object(map: &Map<String, Value>, depth: usize, shape: &mut Shape) {
    shape.depth = shape.depth.max(depth);
    for (k, v) in map {
        shape.empty_name |= k.is_empty();
        shape.dotted_name |= k.contains('.');
        if !v.is_object() {
            shape.leaves += 1;
        }
        walk(v, depth, shape);
    }
}

/// `depth` is the nesting depth of the container holding `value`.
fn walk(value: &Value, depth: usize, shape: &mut Shape) {
    match value {
        Value::Object(map) => walk_object(map, depth + 1, shape),
        Value::Array(items) => {
            shape.depth = shape.depth.max(depth + 1);
            for v in items {
                walk(v, depth + 1, shape);
            }
        }
        _ => {}
    }
}

/// Why this payload may not be decoded, or `None`.
pub fn check(map: &Map<String, Value>, limits: &DecodeLimits) -> Option<String> {
    let mut shape = Shape::default();
    // serde_json refuses nesting past 128, so this recursion is bounded.
    walk_object(map, 1, &mut shape);
    if shape.depth > limits.max_depth {
        return Some(format!(
            "too deep: nesting depth {} > router.decode.max_depth {}",
            shape.depth, limits.max_depth
        ));
    }
    if shape.leaves > limits.max_fields_per_message {
        return Some(format!(
            "too many fields: {} > router.decode.max_fields_per_message {}",
            shape.leaves, limits.max_fields_per_message
        ));
    }
    if shape.empty_name {
        return Some("empty field name: every key must have at least one character".into());
    }
    // Only a name holding a '.' can make two leaves share a flat name.
    if shape.dotted_name {
        if let Some(name) = self_collision(map) {
            return Some(format!(
                "field name collision: '{name}' names two fields once nested objects are flattened"
            ));
        }
    }
    None
}

/// Calls `f` with the path (keys from the top) of every leaf (a value that is not an object).
pub fn for_each_leaf<'a>(
    map: &'a Map<String, Value>,
    path: &mut Vec<&'a str>,
    f: &mut impl FnMut(&[&'a str]),
) {
    for (k, v) in map {
        path.push(k);
        match v {
            Value::Object(child) => for_each_leaf(child, path, f),
            _ => f(path),
        }
        path.pop();
    }
}

/// A flat name two different leaves of one payload share (`{"a.b":1,"a":{"b":2}}`).
fn self_collision(map: &Map<String, Value>) -> Option<String> {
    let mut seen = HashSet::new();
    let mut clash = None;
    for_each_leaf(map, &mut Vec::new(), &mut |path| {
        let name = path.join(".");
        if clash.is_none() && !seen.insert(name.clone()) {
            clash = Some(name);
        }
    });
    clash
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn reason(v: Value, limits: &DecodeLimits) -> Option<String> {
        let Value::Object(m) = v else { panic!() };
        check(&m, limits)
    }

    #[test]
    fn each_bound_has_its_reason() {
        let l = DecodeLimits {
            max_depth: 3,
            max_fields_per_message: 2,
            ..Default::default()
        };
        assert_eq!(reason(json!({"a": {"b": 1}}), &l), None);
        assert!(reason(json!({"a": {"b": {"c": [1]}}}), &l)
            .unwrap()
            .starts_with("too deep: nesting depth 4"));
        assert!(reason(json!({"a": 1, "b": 2, "c": 3}), &l)
            .unwrap()
            .starts_with("too many fields: 3"));
        assert!(reason(json!({"": 1}), &l)
            .unwrap()
            .starts_with("empty field name"));
        assert!(reason(json!({"a.b": 1, "a": {"b": 2}}), &l)
            .unwrap()
            .starts_with("field name collision: 'a.b'"));
        assert_eq!(reason(json!({"a.b": 1, "a": {"c": 2}}), &l), None);
    }
}

//! The running schema of telemetry payloads: how a new field joins it and how a value of the
//! wrong type is handled.
//!
//! Policy (documented in the README): the first type seen for a field wins, except that an
//! integer field widens to float when a fractional number arrives. A value whose type does not
//! fit its field (a string where a number was established) becomes NULL for that row and is
//! counted; it never fails the batch. A new field is added to the schema and the rules are
//! re-planned once for the new schema (not per batch).

use arrow::datatypes::{DataType, Field, Fields, Schema};
use serde_json::Value;
use std::sync::Arc;

/// What checking one batch's values against the running schema found.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ConformOutcome {
    /// Some value needs a field or type the schema does not have yet.
    pub needs_merge: bool,
    /// Values replaced by NULL because their type did not fit their field.
    pub nulled: usize,
}

/// Checks each object's fields against `fields`, nulling values of the wrong type.
/// Names starting with `_` are reserved for metadata columns and are removed.
pub fn conform_rows(rows: &mut [Value], fields: &Fields) -> ConformOutcome {
    let mut out = ConformOutcome::default();
    for row in rows {
        if let Value::Object(map) = row {
            map.retain(|k, _| !k.starts_with('_'));
            conform_object(map, fields, &mut out);
        }
    }
    out
}

fn conform_object(
    map: &mut serde_json::Map<String, Value>,
    fields: &Fields,
    out: &mut ConformOutcome,
) {
    for (key, value) in map.iter_mut() {
        match fields.find(key) {
            Some((_, field)) => conform_value(value, field.data_type(), out),
            None => out.needs_merge = true,
        }
    }
}

fn conform_value(value: &mut Value, dt: &DataType, out: &mut ConformOutcome) {
    let fits = match (&*value, dt) {
        (Value::Null, _) => true,
        (_, DataType::Null) => {
            out.needs_merge = true;
            true
        }
        (Value::Number(n), DataType::Int64) => {
            if n.is_f64() {
                out.needs_merge = true; // widen to Float64
                true
            } else {
                n.as_i64().is_some()
            }
        }
        (Value::Number(_), DataType::Float64) => true,
        (Value::Bool(_), DataType::Boolean) => true,
        (Value::String(_) | Value::Number(_) | Value::Bool(_), DataType::Utf8) => true,
        (Value::Object(_), DataType::Struct(children)) => {
            if let Value::Object(m) = value {
                conform_object(m, children, out);
            }
            true
        }
        (Value::Array(_), DataType::List(item)) => {
            if let Value::Array(items) = value {
                for v in items {
                    conform_value(v, item.data_type(), out);
                }
            }
            true
        }
        _ => false,
    };
    if !fits {
        *value = Value::Null;
        out.nulled += 1;
    }
}

/// Merges a batch's inferred schema into the running one (see the module policy).
pub fn merge_schema(running: &Schema, inferred: &Schema) -> Schema {
    let fields = merge_fields(running.fields(), inferred.fields());
    Schema::new(fields)
}

fn merge_fields(running: &Fields, inferred: &Fields) -> Vec<Field> {
    let mut out: Vec<Field> = running.iter().map(|f| f.as_ref().clone()).collect();
    for f in inferred {
        if f.name().starts_with('_') {
            continue;
        }
        match out.iter_mut().find(|o| o.name() == f.name()) {
            Some(existing) => {
                let dt = merge_type(existing.data_type(), f.data_type());
                *existing = Field::new(existing.name(), dt, true);
            }
            None => out.push(Field::new(f.name(), f.data_type().clone(), true)),
        }
    }
    out
}

fn merge_type(running: &DataType, inferred: &DataType) -> DataType {
    use DataType::*;
    match (running, inferred) {
        (a, b) if a == b => a.clone(),
        (Null, b) => b.clone(),
        (a, Null) => a.clone(),
        (Int64, Float64) | (Float64, Int64) => Float64,
        (Struct(a), Struct(b)) => Struct(merge_fields(a, b).into()),
        (List(a), List(b)) => {
            let item = merge_type(a.data_type(), b.data_type());
            List(Arc::new(Field::new(a.name(), item, true)))
        }
        (a, _) => a.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema(fields: Vec<Field>) -> Schema {
        Schema::new(fields)
    }

    #[test]
    fn wrong_type_becomes_null_and_is_counted() {
        let s = schema(vec![Field::new("t", DataType::Float64, true)]);
        let mut rows = vec![json!({"t": 1.5}), json!({"t": "hot"}), json!({"t": null})];
        let out = conform_rows(&mut rows, s.fields());
        assert_eq!(
            out,
            ConformOutcome {
                needs_merge: false,
                nulled: 1
            }
        );
        assert_eq!(rows[1], json!({"t": null}));
    }

    #[test]
    fn new_field_and_fraction_ask_for_a_merge() {
        let s = schema(vec![Field::new("n", DataType::Int64, true)]);
        assert!(conform_rows(&mut [json!({"n": 1, "x": 2})], s.fields()).needs_merge);
        assert!(conform_rows(&mut [json!({"n": 1.5})], s.fields()).needs_merge);
        assert!(!conform_rows(&mut [json!({"n": 2})], s.fields()).needs_merge);
    }

    #[test]
    fn reserved_names_are_dropped() {
        let s = schema(vec![]);
        let mut rows = [json!({"_topic": "spoof", "a": 1})];
        conform_rows(&mut rows, s.fields());
        assert_eq!(rows[0], json!({"a": 1}));
    }

    #[test]
    fn merge_keeps_first_type_and_widens_ints() {
        let running = schema(vec![
            Field::new("n", DataType::Int64, true),
            Field::new("s", DataType::Float64, true),
        ]);
        let inferred = schema(vec![
            Field::new("n", DataType::Float64, true),
            Field::new("s", DataType::Utf8, true),
            Field::new("new", DataType::Boolean, true),
        ]);
        let merged = merge_schema(&running, &inferred);
        let types: Vec<_> = merged
            .fields()
            .iter()
            .map(|f| f.data_type().clone())
            .collect();
        assert_eq!(
            types,
            [DataType::Float64, DataType::Float64, DataType::Boolean]
        );
    }
}

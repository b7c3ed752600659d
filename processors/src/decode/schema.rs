//! The running schema of telemetry payloads: how a value is checked against its field and how
//! a batch's new fields join the schema.
//!
//! The typing rule (README, "Rules"): a field has one type. It is set by the first batch that
//! carries the field, where the strongest type wins (numbers over strings over booleans,
//! [`super::infer`]), and afterwards it only widens from integer to float. A value checked
//! against an established field:
//! - a number in an integer field fits when it is an integer, or a float with no fraction
//!   within ±2^53; any other number widens the field to float;
//! - a string in a numeric field is read as the number it spells (`"21.5"`), with the same
//!   parser the fast path uses; a string that spells no finite number is a conflict;
//! - any other mismatch (a number in a string field, a string in a boolean field, a scalar
//!   where an object was established …) is a conflict: the value becomes NULL for that message
//!   only, and is counted. It never fails the batch and never changes another message's row.

use arrow::compute::kernels::cast_utils::Parser;
use arrow::datatypes::{DataType, Field, Fields, Float64Type, Schema};
use serde_json::{Number, Value};
use std::sync::Arc;

/// 2^53: integers up to this size are exact in a float.
pub const EXACT_IN_FLOAT: f64 = 9_007_199_254_740_992.0;

/// What checking one batch's values against the running schema found.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ConformOutcome {
    /// Some value needs a field or type the schema does not have yet.
    pub needs_merge: bool,
    /// Values replaced by NULL because their type did not fit their field.
    pub nulled: usize,
}

/// Removes the names starting with `_` (reserved for metadata columns) from a payload.
pub fn drop_reserved(map: &mut serde_json::Map<String, Value>) {
    map.retain(|k, _| !k.starts_with('_'));
}

/// Checks an object's fields against `fields`, nulling values of the wrong type.
pub fn conform_object(
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

/// The number a string spells, as the fast path's decoder reads it; `None` if not finite.
fn spelled_number(s: &str) -> Option<Value> {
    let v = Float64Type::parse(s)?;
    Number::from_f64(v).map(Value::Number)
}

fn conform_value(value: &mut Value, dt: &DataType, out: &mut ConformOutcome) {
    if let (Value::String(s), DataType::Int64 | DataType::Float64) = (&*value, dt) {
        match spelled_number(s) {
            Some(n) => *value = n,
            None => {
                *value = Value::Null;
                out.nulled += 1;
                return;
            }
        }
    }
    let fits = match (&mut *value, dt) {
        (Value::Null, _) => true,
        (_, DataType::Null) => {
            out.needs_merge = true;
            true
        }
        (Value::Number(n), DataType::Int64) => {
            let integral = n.is_i64()
                || n.as_f64()
                    .is_some_and(|f| f.fract() == 0.0 && f.abs() <= EXACT_IN_FLOAT);
            if !integral {
                out.needs_merge = true; // widen to Float64
            }
            true
        }
        (Value::Number(_), DataType::Float64) => true,
        (Value::Bool(_), DataType::Boolean) => true,
        (Value::String(_), DataType::Utf8) => true,
        (Value::Object(m), DataType::Struct(children)) => {
            conform_object(m, children, out);
            true
        }
        (Value::Array(items), DataType::List(item)) => {
            for v in items {
                conform_value(v, item.data_type(), out);
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

/// The running schema with a batch's fields added (see the module policy): established fields
/// keep their type (NULL-typed ones take the new type; integers widen to float), new ones
/// join with the type the batch gave them.
pub fn merge_established(running: &Schema, batch: &Fields) -> Schema {
    Schema::new(merge_fields(running.fields(), batch))
}

fn merge_fields(running: &Fields, batch: &Fields) -> Vec<Field> {
    let mut out: Vec<Field> = running.iter().map(|f| f.as_ref().clone()).collect();
    for f in batch {
        match out.iter_mut().find(|o| o.name() == f.name()) {
            Some(existing) => {
                let dt = settle(existing.data_type(), f.data_type());
                *existing = Field::new(existing.name(), dt, true);
            }
            None => out.push(Field::new(f.name(), f.data_type().clone(), true)),
        }
    }
    out
}

fn settle(running: &DataType, batch: &DataType) -> DataType {
    use DataType::*;
    match (running, batch) {
        (a, b) if a == b => a.clone(),
        (Null, b) => b.clone(),
        (Int64, Float64) => Float64,
        (Struct(a), Struct(b)) => Struct(merge_fields(a, b).into()),
        (List(a), List(b)) => {
            let item = settle(a.data_type(), b.data_type());
            List(Arc::new(Field::new(a.name(), item, true)))
        }
        (a, _) => a.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn conform(rows: &mut [Value], fields: &Fields) -> ConformOutcome {
        let mut out = ConformOutcome::default();
        for row in rows {
            if let Value::Object(m) = row {
                conform_object(m, fields, &mut out);
            }
        }
        out
    }

    fn fields(list: Vec<Field>) -> Fields {
        list.into()
    }

    #[test]
    fn wrong_type_becomes_null_and_is_counted() {
        let f = fields(vec![Field::new("t", DataType::Float64, true)]);
        let mut rows = vec![json!({"t": 1.5}), json!({"t": "hot"}), json!({"t": null})];
        let out = conform(&mut rows, &f);
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
    fn numeric_strings_read_as_numbers_and_numbers_in_string_fields_conflict() {
        let f = fields(vec![
            Field::new("t", DataType::Float64, true),
            Field::new("s", DataType::Utf8, true),
        ]);
        let mut rows = vec![json!({"t": "21.5", "s": 3}), json!({"t": "NaN"})];
        let out = conform(&mut rows, &f);
        assert_eq!(rows[0], json!({"t": 21.5, "s": null}));
        assert_eq!(rows[1], json!({"t": null}));
        assert_eq!(out.nulled, 2);
    }

    #[test]
    fn new_field_and_fraction_ask_for_a_merge_but_whole_floats_fit_integers() {
        let f = fields(vec![Field::new("n", DataType::Int64, true)]);
        assert!(conform(&mut [json!({"n": 1, "x": 2})], &f).needs_merge);
        assert!(conform(&mut [json!({"n": 1.5})], &f).needs_merge);
        assert!(conform(&mut [json!({"n": 1e300})], &f).needs_merge);
        assert!(!conform(&mut [json!({"n": 2})], &f).needs_merge);
        assert!(!conform(&mut [json!({"n": 2.0})], &f).needs_merge);
    }

    #[test]
    fn reserved_names_are_dropped() {
        let mut row = json!({"_topic": "spoof", "a": 1});
        if let Value::Object(m) = &mut row {
            drop_reserved(m);
        }
        assert_eq!(row, json!({"a": 1}));
    }

    #[test]
    fn established_types_stay_and_ints_widen() {
        let running = Schema::new(vec![
            Field::new("n", DataType::Int64, true),
            Field::new("s", DataType::Float64, true),
            Field::new("z", DataType::Null, true),
        ]);
        let batch = fields(vec![
            Field::new("n", DataType::Float64, true),
            Field::new("s", DataType::Utf8, true),
            Field::new("z", DataType::Utf8, true),
            Field::new("new", DataType::Boolean, true),
        ]);
        let merged = merge_established(&running, &batch);
        let types: Vec<_> = merged
            .fields()
            .iter()
            .map(|f| f.data_type().clone())
            .collect();
        assert_eq!(
            types,
            [
                DataType::Float64,
                DataType::Float64,
                DataType::Utf8,
                DataType::Boolean
            ]
        );
    }
}

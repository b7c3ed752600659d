//! The Arrow type of a JSON value, and how the types of one batch's new fields combine.
//!
//! Inference is ours rather than arrow-json's so that the typing rule is one written rule: a
//! field that first appears in a batch takes the *strongest* type any message of that batch
//! gives it — numbers over strings over booleans, floats over integers, objects and arrays
//! over scalars. One device sending `"temperature": "21.5"` beside a fleet sending numbers
//! cannot make the fleet's column a string column. Once a field is in the running schema its
//! type is settled ([`super::schema::merge_established`]).

use arrow::datatypes::{DataType, Field, Fields};
use serde_json::{Map, Value};
use std::sync::Arc;

/// The Arrow type of one JSON value. Integers outside i64 are floats.
pub fn infer(value: &Value) -> DataType {
    match value {
        Value::Null => DataType::Null,
        Value::Bool(_) => DataType::Boolean,
        Value::Number(n) if n.is_i64() => DataType::Int64,
        Value::Number(_) => DataType::Float64,
        Value::String(_) => DataType::Utf8,
        Value::Array(items) => {
            let item = items
                .iter()
                .map(infer)
                .fold(DataType::Null, |acc, t| strongest(&acc, &t));
            DataType::List(Arc::new(Field::new("item", item, true)))
        }
        Value::Object(map) => DataType::Struct(infer_fields(map)),
    }
}

/// The struct fields of one JSON object, in key order.
pub fn infer_fields(map: &Map<String, Value>) -> Fields {
    map.iter()
        .map(|(k, v)| Field::new(k, infer(v), true))
        .collect()
}

/// How strongly a type claims a field among the messages of one batch.
fn rank(dt: &DataType) -> u8 {
    match dt {
        DataType::Null => 0,
        DataType::Boolean => 1,
        DataType::Utf8 => 2,
        DataType::Int64 => 3,
        DataType::Float64 => 4,
        _ => 5, // struct, list
    }
}

/// The type a new field takes when two messages of one batch disagree.
pub fn strongest(a: &DataType, b: &DataType) -> DataType {
    match (a, b) {
        (DataType::Struct(x), DataType::Struct(y)) => DataType::Struct(merge_fields(x, y)),
        (DataType::List(x), DataType::List(y)) => {
            let item = strongest(x.data_type(), y.data_type());
            DataType::List(Arc::new(Field::new(x.name(), item, true)))
        }
        // Two different structured types: the first seen stays.
        (x, y) if rank(x) == 5 && rank(y) == 5 => x.clone(),
        (x, y) if rank(y) > rank(x) => y.clone(),
        (x, _) => x.clone(),
    }
}

/// Fields of two objects of one batch, combined with [`strongest`]; first-seen order.
pub fn merge_fields(a: &Fields, b: &Fields) -> Fields {
    let mut out: Vec<Field> = a.iter().map(|f| f.as_ref().clone()).collect();
    for f in b {
        match out.iter_mut().find(|o| o.name() == f.name()) {
            Some(o) => *o = Field::new(o.name(), strongest(o.data_type(), f.data_type()), true),
            None => out.push(Field::new(f.name(), f.data_type().clone(), true)),
        }
    }
    out.into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn field_type(v: Value, name: &str) -> DataType {
        match infer(&v) {
            DataType::Struct(f) => f.find(name).unwrap().1.data_type().clone(),
            other => panic!("not a struct: {other}"),
        }
    }

    #[test]
    fn numbers_win_over_strings_and_floats_over_ints_in_either_order() {
        let s = field_type(json!({"t": "21.5"}), "t");
        let i = field_type(json!({"t": 20}), "t");
        let f = field_type(json!({"t": 20.5}), "t");
        assert_eq!(strongest(&s, &i), DataType::Int64);
        assert_eq!(strongest(&i, &s), DataType::Int64);
        assert_eq!(strongest(&i, &f), DataType::Float64);
        assert_eq!(strongest(&f, &i), DataType::Float64);
        assert_eq!(strongest(&DataType::Boolean, &s), DataType::Utf8);
    }

    #[test]
    fn big_integers_are_floats_and_arrays_take_their_strongest_item() {
        assert_eq!(infer(&json!(u64::MAX)), DataType::Float64);
        let list = infer(&json!([1, "x", 2.5]));
        let DataType::List(item) = list else {
            panic!("not a list")
        };
        assert_eq!(item.data_type(), &DataType::Float64);
    }
}

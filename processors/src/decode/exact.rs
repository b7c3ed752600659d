//! Integers read exactly on the fast path.
//!
//! arrow-json, asked for an `Int64` field, accepts `20.5` and truncates it to `20`: silent
//! data loss the first time a device sends a fraction for a field that was integral so far.
//! So the fast path reads every `Int64` field as `Float64` ([`as_float_schema`]) and then
//! narrows back ([`narrow`]) only when every value is integral and below 2^53 in size (exact
//! in a float, and no other integer reads as the same float); otherwise the batch takes the checked path, which widens the field to float (or
//! keeps big integers exact through serde_json). A float that is not finite (arrow-json reads
//! `1e999` as infinity, serde_json refuses it) also sends the batch to the checked path.

use arrow::array::{Array, ArrayRef, AsArray, ListArray, StructArray};
use arrow::datatypes::{DataType, Field, Fields, Float64Type, Schema, SchemaRef};
use std::sync::Arc;

use super::schema::EXACT_IN_FLOAT as EXACT;

/// `schema` with every `Int64` (at any depth) read as `Float64`.
pub fn as_float_schema(schema: &Schema) -> SchemaRef {
    Arc::new(Schema::new(float_fields(schema.fields())))
}

fn float_fields(fields: &Fields) -> Vec<Field> {
    fields
        .iter()
        .map(|f| f.as_ref().clone().with_data_type(as_float(f.data_type())))
        .collect()
}

pub(super) fn as_float(dt: &DataType) -> DataType {
    match dt {
        DataType::Int64 => DataType::Float64,
        DataType::Struct(children) => DataType::Struct(float_fields(children).into()),
        DataType::List(item) => DataType::List(Arc::new(
            item.as_ref()
                .clone()
                .with_data_type(as_float(item.data_type())),
        )),
        other => other.clone(),
    }
}

/// `array` (decoded with [`as_float_schema`]) converted to `target`; `None` when a value
/// is not an exact integer where `target` wants one.
pub fn narrow(array: &ArrayRef, target: &DataType) -> Option<ArrayRef> {
    match target {
        DataType::Int64 => {
            let floats = array.as_primitive_opt::<Float64Type>()?;
            let exact = floats
                .iter()
                .flatten()
                // Strictly below 2^53: 2^53 + 1 sent as text reads as the float 2^53.
                .all(|v| v.fract() == 0.0 && v.abs() < EXACT);
            exact
                .then(|| arrow::compute::cast(array, &DataType::Int64).ok())
                .flatten()
        }
        DataType::Float64 => {
            let floats = array.as_primitive_opt::<Float64Type>()?;
            floats
                .iter()
                .flatten()
                .all(f64::is_finite)
                .then(|| array.clone())
        }
        DataType::Struct(fields) => {
            let s = array.as_struct_opt()?;
            let children = s
                .columns()
                .iter()
                .zip(fields.iter())
                .map(|(c, f)| narrow(c, f.data_type()))
                .collect::<Option<Vec<_>>>()?;
            let rebuilt = StructArray::try_new(fields.clone(), children, s.nulls().cloned());
            Some(Arc::new(rebuilt.ok()?) as ArrayRef)
        }
        DataType::List(item) => {
            let l = array.as_list_opt::<i32>()?;
            let values = narrow(l.values(), item.data_type())?;
            let rebuilt = ListArray::try_new(
                item.clone(),
                l.offsets().clone(),
                values,
                l.nulls().cloned(),
            );
            Some(Arc::new(rebuilt.ok()?) as ArrayRef)
        }
        _ => Some(array.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::Float64Array;

    #[test]
    fn integral_floats_narrow_and_fractions_refuse() {
        let ok: ArrayRef = Arc::new(Float64Array::from(vec![Some(20.0), None, Some(-3.0)]));
        let narrowed = narrow(&ok, &DataType::Int64).unwrap();
        assert_eq!(narrowed.data_type(), &DataType::Int64);
        assert_eq!(narrowed.null_count(), 1);
        let fraction: ArrayRef = Arc::new(Float64Array::from(vec![20.0, 20.5]));
        assert!(narrow(&fraction, &DataType::Int64).is_none());
        let huge: ArrayRef = Arc::new(Float64Array::from(vec![1e17]));
        assert!(narrow(&huge, &DataType::Int64).is_none());
    }
}

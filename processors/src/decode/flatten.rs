//! Nested JSON objects become dotted columns: `{"loc": {"lat": 1}}` → column `loc.lat`.
//!
//! Why flatten instead of keeping Arrow structs: a rule names `loc.lat`, and a field that one
//! device sends and another lacks must read as NULL, never fail the plan. With flat columns a
//! missing nested field is just a missing column (added as NULL like any other), and a new
//! nested field only adds a column. Arrays stay Arrow lists and are indexed in SQL (`a[1]`).

use arrow::array::{make_array, Array, ArrayRef, AsArray};
use arrow::buffer::NullBuffer;
use arrow::datatypes::{DataType, Field, Fields};

/// The flat fields of `fields`, in order; struct children are named `parent.child`.
pub fn flat_fields(fields: &Fields) -> Vec<Field> {
    let mut out = Vec::new();
    push_fields(fields, "", &mut out);
    out
}

fn push_fields(fields: &Fields, prefix: &str, out: &mut Vec<Field>) {
    for f in fields {
        let name = format!("{prefix}{}", f.name());
        match f.data_type() {
            DataType::Struct(children) => push_fields(children, &format!("{name}."), out),
            dt => out.push(Field::new(name, dt.clone(), true)),
        }
    }
}

/// The flat columns of `columns` (whose fields are `fields`), in the order of [`flat_fields`].
/// A NULL parent object makes its children NULL.
pub fn flat_columns(columns: &[ArrayRef]) -> Vec<ArrayRef> {
    let mut out = Vec::new();
    for c in columns {
        push_column(c, None, &mut out);
    }
    out
}

fn push_column(column: &ArrayRef, parent: Option<&NullBuffer>, out: &mut Vec<ArrayRef>) {
    let nulls = NullBuffer::union(parent, column.logical_nulls().as_ref());
    match column.data_type() {
        DataType::Struct(_) => {
            for child in column.as_struct().columns() {
                push_column(child, nulls.as_ref(), out);
            }
        }
        _ if parent.is_none() => out.push(column.clone()),
        _ => out.push(with_nulls(column, nulls)),
    }
}

fn with_nulls(column: &ArrayRef, nulls: Option<NullBuffer>) -> ArrayRef {
    if nulls.as_ref().map(NullBuffer::null_count) == column.logical_nulls().map(|n| n.null_count())
    {
        return column.clone();
    }
    // Same length and type, only the validity changes: building cannot fail.
    match column.to_data().into_builder().nulls(nulls).build() {
        Ok(data) => make_array(data),
        Err(_) => column.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, StructArray};
    use arrow::buffer::NullBuffer;
    use std::sync::Arc;

    #[test]
    fn struct_children_become_dotted_columns_and_inherit_parent_nulls() {
        let lat: ArrayRef = Arc::new(Int64Array::from(vec![Some(1), Some(2)]));
        let field = Field::new("lat", DataType::Int64, true);
        let loc = StructArray::new(
            Fields::from(vec![field]),
            vec![lat],
            Some(NullBuffer::from(vec![true, false])),
        );
        let fields = Fields::from(vec![Field::new("loc", loc.data_type().clone(), true)]);
        let names: Vec<_> = flat_fields(&fields)
            .iter()
            .map(|f| f.name().clone())
            .collect();
        assert_eq!(names, ["loc.lat"]);
        let cols = flat_columns(&[Arc::new(loc) as ArrayRef]);
        assert_eq!(cols.len(), 1);
        assert!(cols[0].is_valid(0));
        assert!(
            cols[0].is_null(1),
            "a NULL parent object makes the child NULL"
        );
    }
}

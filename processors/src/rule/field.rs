//! `path_field(x, 'name')`: the field `name` of the object `x`, NULL when `x` is NULL or has no
//! such field. The path rewrite ([`super::paths`]) turns every `.name` that follows an array
//! index (`a[1].b`, `a[1].b[2].c`) into this call.
//!
//! Why not DataFusion's own field access: it refuses to plan when the field is missing from
//! the batch's schema, and an object inside an array has only the fields the batch's messages
//! happened to carry. A rule must read NULL there, as it does for a missing top-level field.

use arrow::array::{make_array, new_null_array, Array, ArrayRef, AsArray};
use arrow::buffer::NullBuffer;
use arrow::datatypes::{DataType, Field, FieldRef};
use datafusion_common::{exec_err, Result, ScalarValue};
use datafusion_expr::{
    ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    Volatility,
};
use std::sync::Arc;

pub const NAME: &str = "path_field";

#[derive(Debug, PartialEq, Eq, Hash)]
struct PathField {
    signature: Signature,
}

pub fn udf() -> ScalarUDF {
    ScalarUDF::new_from_impl(PathField {
        signature: Signature::any(2, Volatility::Immutable),
    })
}

/// The field `name` of `object_type`, if it is an object that has one.
fn child(object_type: &DataType, name: &str) -> Option<FieldRef> {
    match object_type {
        DataType::Struct(fields) => fields.find(name).map(|(_, f)| f.clone()),
        _ => None,
    }
}

fn name_of(arg: Option<&ScalarValue>) -> Option<&str> {
    match arg {
        Some(ScalarValue::Utf8(Some(s)) | ScalarValue::LargeUtf8(Some(s))) => Some(s),
        _ => None,
    }
}

impl ScalarUDFImpl for PathField {
    fn name(&self) -> &str {
        NAME
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        // Unused: the type depends on the name argument (see return_field_from_args).
        Ok(DataType::Null)
    }
    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        let name = name_of(args.scalar_arguments.get(1).copied().flatten());
        let found = name.and_then(|n| child(args.arg_fields[0].data_type(), n));
        let data_type = found.map_or(DataType::Null, |f| f.data_type().clone());
        Ok(Arc::new(Field::new(name.unwrap_or(NAME), data_type, true)))
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let name = match &args.args[1] {
            ColumnarValue::Scalar(s) => name_of(Some(s)).map(str::to_string),
            ColumnarValue::Array(_) => None,
        };
        let Some(name) = name else {
            return exec_err!("{NAME}: the field name must be a constant");
        };
        let object = args.args[0].to_array(args.number_rows)?;
        Ok(ColumnarValue::Array(field_of(
            &object,
            &name,
            args.number_rows,
        )))
    }
}

/// The child column `name` of a struct column, NULL where the parent is NULL; all NULL when
/// the column is not a struct or has no such child.
fn field_of(object: &ArrayRef, name: &str, rows: usize) -> ArrayRef {
    let Some(structs) = object.as_struct_opt() else {
        return new_null_array(&DataType::Null, rows);
    };
    let Some(values) = structs.column_by_name(name) else {
        return new_null_array(&DataType::Null, rows);
    };
    let nulls = NullBuffer::union(structs.nulls(), values.nulls());
    let data = values.to_data().into_builder().nulls(nulls);
    // The child had its own null buffer or none; a union of valid buffers of the same length
    // is always a valid array.
    make_array(data.build().unwrap_or_else(|_| values.to_data()))
}

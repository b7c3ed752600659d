//! Rule output → rows a Delta table stores: Delta's types, the table's columns, its order.
//!
//! The table's schema only ever widens. A rule output with a column the table lacks adds
//! it (nullable: older rows read it as NULL); a column the output lacks is NULL in its rows;
//! a value whose type differs from the column's is cast, and is NULL (and counted) where the
//! cast fails, as a type conflict is in Parquet files. Arrow types Delta has no name for are
//! widened (unsigned integers), unified (string views, large lists, dictionaries) or written
//! as their text.

use arrow::array::{new_null_array, Array, ArrayRef, RecordBatch};
use arrow::compute::{cast_with_options, CastOptions};
use arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef, TimeUnit};
use std::sync::Arc;

/// The table's partition columns, in order, as in the Parquet sink's directories.
pub const PARTITION_COLUMNS: [&str; 2] = ["date", "hour"];

/// Characters a Delta column name cannot have (without column mapping): Parquet's and Hive's.
const INVALID_NAME_CHARS: &[char] = &[' ', ',', ';', '{', '}', '(', ')', '\n', '\t', '='];

/// `name` as a Delta column name: each invalid character becomes `_`.
fn delta_name(name: &str) -> String {
    name.replace(INVALID_NAME_CHARS, "_")
}

/// Whether Delta can name these fields: valid characters, and unique ignoring case (Delta
/// resolves column names case-insensitively).
fn names_ok(fields: &Fields) -> bool {
    let mut seen = std::collections::HashSet::new();
    fields
        .iter()
        .all(|f| !f.name().contains(INVALID_NAME_CHARS) && seen.insert(f.name().to_lowercase()))
}

/// The output with column names Delta accepts (device fields such as `"temp (C)"` become
/// `temp__C_`) and, of columns whose names then equal ignoring case, the first: how many
/// columns were left out is returned (counted, never an error: the rest of the row is kept).
pub fn delta_names(rows: &RecordBatch) -> Result<(RecordBatch, usize), arrow::error::ArrowError> {
    if names_ok(rows.schema().fields()) {
        return Ok((rows.clone(), 0));
    }
    let mut seen = std::collections::HashSet::new();
    let (mut fields, mut columns, mut dropped) = (vec![], vec![], 0);
    for (field, column) in rows.schema().fields().iter().zip(rows.columns()) {
        let name = delta_name(field.name());
        if !seen.insert(name.to_lowercase()) {
            dropped += 1;
            continue;
        }
        fields.push(field.as_ref().clone().with_name(name));
        columns.push(column.clone());
    }
    let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)?;
    Ok((batch, dropped))
}

/// The Delta-storable type for an Arrow type.
pub fn storable(dt: &DataType) -> DataType {
    use DataType::*;
    match dt {
        Boolean | Int8 | Int16 | Int32 | Int64 | Float32 | Float64 | Utf8 | Binary | Date32 => {
            dt.clone()
        }
        Decimal128(p, _) if *p <= 38 => dt.clone(),
        UInt8 => Int16,
        UInt16 => Int32,
        UInt32 | UInt64 => Int64,
        Float16 => Float32,
        Utf8View | LargeUtf8 => Utf8,
        BinaryView | LargeBinary | FixedSizeBinary(_) => Binary,
        Timestamp(_, _) => Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        Dictionary(_, value) => storable(value),
        List(item)
        | LargeList(item)
        | ListView(item)
        | LargeListView(item)
        | FixedSizeList(item, _) => List(Arc::new(nullable(item.name(), item.data_type()))),
        // A nested field Delta cannot name (a device's `{"a b": 1}`): the object as text.
        Struct(fields) if !names_ok(fields) => Utf8,
        Struct(fields) => Struct(
            fields
                .iter()
                .map(|f| nullable(f.name(), f.data_type()))
                .collect::<Fields>(),
        ),
        _ => Utf8,
    }
}

fn nullable(name: &str, dt: &DataType) -> Field {
    Field::new(name, storable(dt), true)
}

/// `column` as `to`; values that do not convert are NULL. Returns the array and how many
/// values were lost to NULL.
fn cast_column(column: &ArrayRef, to: &DataType) -> (ArrayRef, usize) {
    if column.data_type() == to {
        return (column.clone(), 0);
    }
    let safe = CastOptions {
        safe: true,
        ..Default::default()
    };
    let cast = cast_with_options(column, to, &safe)
        .or_else(|_| {
            // No cast between the two (a struct where the table has a number): as text, if
            // the column is text, else nothing.
            let text = cast_with_options(column, &DataType::Utf8, &safe)?;
            cast_with_options(&text, to, &safe)
        })
        .unwrap_or_else(|_| new_null_array(to, column.len()));
    let lost = cast
        .null_count()
        .saturating_sub(column.logical_null_count());
    (cast, lost)
}

/// The table's data schema widened by the output's new columns (`None`: nothing new).
pub fn widened(table: &SchemaRef, output: &Schema) -> Option<SchemaRef> {
    let new: Vec<Field> = output
        .fields()
        .iter()
        .filter(|f| table.field_with_name(f.name()).is_err())
        .map(|f| nullable(f.name(), f.data_type()))
        .collect();
    if new.is_empty() {
        return None;
    }
    let mut fields: Vec<Field> = table.fields().iter().map(|f| f.as_ref().clone()).collect();
    fields.extend(new);
    Some(Arc::new(Schema::new(fields)))
}

/// The data schema of a new table for a first output.
pub fn initial(output: &Schema) -> SchemaRef {
    let fields: Vec<Field> = output
        .fields()
        .iter()
        .map(|f| nullable(f.name(), f.data_type()))
        .collect();
    Arc::new(Schema::new(fields))
}

/// A rule output that names a partition column: the rule must rename it.
pub fn check_names(output: &Schema) -> Result<(), String> {
    match PARTITION_COLUMNS
        .iter()
        .find(|c| output.field_with_name(c).is_ok())
    {
        Some(c) => Err(format!(
            "the rule outputs a column named '{c}', which Delta tables use as a partition \
             column: rename it in the rule (`AS {c}_`)"
        )),
        None => Ok(()),
    }
}

/// `rows` shaped as `data` (the table's data columns); and how many values were lost to a
/// type conflict.
pub fn conform(
    rows: &RecordBatch,
    data: &SchemaRef,
) -> Result<(RecordBatch, usize), arrow::error::ArrowError> {
    let n = rows.num_rows();
    let mut lost = 0;
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(data.fields().len() + 2);
    for field in data.fields() {
        let column = match rows.column_by_name(field.name()) {
            Some(c) => {
                let (c, l) = cast_column(c, field.data_type());
                lost += l;
                c
            }
            None => new_null_array(field.data_type(), n),
        };
        columns.push(column);
    }
    let batch = RecordBatch::try_new(data.clone(), columns)?;
    Ok((batch, lost))
}

/// Partition values as the writer takes them: `date` and `hour`, in column order.
pub fn partition_values(
    values: [&str; 2],
) -> indexmap::IndexMap<String, buoyant_kernel::expressions::Scalar> {
    PARTITION_COLUMNS
        .iter()
        .zip(values)
        .map(|(c, v)| {
            (
                c.to_string(),
                buoyant_kernel::expressions::Scalar::String(v.to_string()),
            )
        })
        .collect()
}

/// The table's full schema: data columns, then the partition columns.
pub fn with_partitions(data: &SchemaRef) -> SchemaRef {
    let mut fields: Vec<Field> = data.fields().iter().map(|f| f.as_ref().clone()).collect();
    fields.extend(PARTITION_COLUMNS.map(|c| Field::new(c, DataType::Utf8, true)));
    Arc::new(Schema::new(fields))
}

/// The data columns of a table's full schema.
pub fn without_partitions(full: &Schema) -> SchemaRef {
    let fields: Vec<Field> = full
        .fields()
        .iter()
        .filter(|f| !PARTITION_COLUMNS.contains(&f.name().as_str()))
        .map(|f| f.as_ref().clone())
        .collect();
    Arc::new(Schema::new(fields))
}

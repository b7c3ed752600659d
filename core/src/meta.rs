//! The metadata columns every decoded batch carries after its payload columns, and [`Meta`],
//! the one place stages read them (sinks, the router's failure routing, the partitioner).

use arrow::array::{
    Array, AsArray, Int32Array, Int64Array, RecordBatch, StringArray, TimestampMillisecondArray,
};
use arrow::datatypes::{DataType, Field, Int32Type, Int64Type, TimeUnit, TimestampMillisecondType};

/// The device id (the Kafka key).
pub const DEVICE_ID: &str = "_device_id";
/// The MQTT topic the message was published on.
pub const TOPIC: &str = "_topic";
/// When Sluice received the message (ms since the epoch, UTC).
pub const RECEIVED_AT: &str = "_received_at";
/// The Kafka partition of the record (-1 for a row from no record, e.g. a failed alert).
pub const PARTITION: &str = "_partition";
/// The Kafka offset of the record (-1 for a row from no record).
pub const OFFSET: &str = "_offset";

/// The metadata fields, in column order.
pub fn metadata_fields() -> Vec<Field> {
    vec![
        Field::new(DEVICE_ID, DataType::Utf8, false),
        Field::new(TOPIC, DataType::Utf8, false),
        Field::new(
            RECEIVED_AT,
            DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            false,
        ),
        Field::new(PARTITION, DataType::Int32, false),
        Field::new(OFFSET, DataType::Int64, false),
    ]
}

/// The metadata columns of one batch, each `None` when the batch lacks it (or has it with
/// another type). Row accessors answer `None` / -1 for a missing column or a NULL.
#[derive(Debug, Clone, Copy)]
pub struct Meta<'a> {
    pub device_ids: Option<&'a StringArray>,
    pub topics: Option<&'a StringArray>,
    pub received_at: Option<&'a TimestampMillisecondArray>,
    pub partitions: Option<&'a Int32Array>,
    pub offsets: Option<&'a Int64Array>,
}

impl<'a> Meta<'a> {
    pub fn of(batch: &'a RecordBatch) -> Self {
        let col = |name| batch.column_by_name(name);
        Self {
            device_ids: col(DEVICE_ID).and_then(|c| c.as_string_opt::<i32>()),
            topics: col(TOPIC).and_then(|c| c.as_string_opt::<i32>()),
            received_at: col(RECEIVED_AT)
                .and_then(|c| c.as_primitive_opt::<TimestampMillisecondType>()),
            partitions: col(PARTITION).and_then(|c| c.as_primitive_opt::<Int32Type>()),
            offsets: col(OFFSET).and_then(|c| c.as_primitive_opt::<Int64Type>()),
        }
    }

    pub fn device_id(&self, row: usize) -> Option<&'a str> {
        self.device_ids
            .filter(|c| row < c.len() && c.is_valid(row))
            .map(|c| c.value(row))
    }

    pub fn received_ms(&self, row: usize) -> Option<i64> {
        self.received_at
            .filter(|c| row < c.len() && c.is_valid(row))
            .map(|c| c.value(row))
    }

    /// The Kafka partition of a row's record; -1 when it came from no record.
    pub fn partition(&self, row: usize) -> i32 {
        self.partitions
            .filter(|c| row < c.len() && c.is_valid(row))
            .map_or(-1, |c| c.value(row))
    }

    /// The Kafka offset of a row's record; -1 when it came from no record.
    pub fn offset(&self, row: usize) -> i64 {
        self.offsets
            .filter(|c| row < c.len() && c.is_valid(row))
            .map_or(-1, |c| c.value(row))
    }

    /// Both position columns, or the name of the one missing (the partitioner needs both).
    pub fn positions(&self) -> Result<(&'a Int32Array, &'a Int64Array), &'static str> {
        match (self.partitions, self.offsets) {
            (Some(p), Some(o)) => Ok((p, o)),
            (None, _) => Err(PARTITION),
            (_, None) => Err(OFFSET),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::ArrayRef;
    use arrow::datatypes::Schema;
    use std::sync::Arc;

    #[test]
    fn reads_present_columns_and_answers_minus_one_for_missing_ones() {
        let schema = Arc::new(Schema::new(vec![
            Field::new(DEVICE_ID, DataType::Utf8, true),
            Field::new(PARTITION, DataType::Int32, true),
        ]));
        let columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from(vec![Some("d1"), None])),
            Arc::new(Int32Array::from(vec![Some(3), None])),
        ];
        let batch = RecordBatch::try_new(schema, columns).unwrap();
        let meta = Meta::of(&batch);
        assert_eq!(meta.device_id(0), Some("d1"));
        assert_eq!(meta.device_id(1), None);
        assert_eq!(meta.partition(0), 3);
        assert_eq!(meta.partition(1), -1, "NULL partition");
        assert_eq!(meta.partition(9), -1, "past the end");
        assert_eq!(meta.offset(0), -1, "no offset column");
        assert_eq!(meta.positions().unwrap_err(), OFFSET);
        assert_eq!(meta.received_ms(0), None);
    }
}

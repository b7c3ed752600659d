//! Sparkplug B's Protobuf payload (Eclipse Tahu's `sparkplug_b.proto`,
//! `org.eclipse.tahu.protobuf.Payload`), as prost messages.
//!
//! Only what a row needs is declared. A metric's metadata and properties (tags 8, 9) are
//! skipped as unknown fields; DataSet, Template and extension values (17–19) are kept as
//! their bytes, so such a metric still gives a row (its value NULL, its type named).

/// One NBIRTH/NDATA/DBIRTH/DDATA/NDEATH/DDEATH payload.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Payload {
    /// Milliseconds since the epoch, when the message was made.
    #[prost(uint64, optional, tag = "1")]
    pub timestamp: Option<u64>,
    #[prost(message, repeated, tag = "2")]
    pub metrics: Vec<Metric>,
    /// 0–255, per edge node, one more with every message but NDEATH (NBIRTH starts at 0).
    #[prost(uint64, optional, tag = "3")]
    pub seq: Option<u64>,
    #[prost(string, optional, tag = "4")]
    pub uuid: Option<String>,
    #[prost(bytes = "vec", optional, tag = "5")]
    pub body: Option<Vec<u8>>,
}

/// One metric: a name (BIRTH, and DATA without aliases), an alias, or both.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Metric {
    #[prost(string, optional, tag = "1")]
    pub name: Option<String>,
    #[prost(uint64, optional, tag = "2")]
    pub alias: Option<u64>,
    #[prost(uint64, optional, tag = "3")]
    pub timestamp: Option<u64>,
    /// A [`DATA_TYPES`] index.
    #[prost(uint32, optional, tag = "4")]
    pub datatype: Option<u32>,
    #[prost(bool, optional, tag = "5")]
    pub is_historical: Option<bool>,
    #[prost(bool, optional, tag = "6")]
    pub is_transient: Option<bool>,
    #[prost(bool, optional, tag = "7")]
    pub is_null: Option<bool>,
    #[prost(oneof = "Value", tags = "10, 11, 12, 13, 14, 15, 16, 17, 18, 19")]
    pub value: Option<Value>,
}

/// A metric's value, in the field its data type travels in.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum Value {
    /// Int8/16/32 (two's complement in 32 bits), UInt8/16/32.
    #[prost(uint32, tag = "10")]
    Int(u32),
    /// Int64 (two's complement), UInt64, DateTime (ms since the epoch).
    #[prost(uint64, tag = "11")]
    Long(u64),
    #[prost(float, tag = "12")]
    Float(f32),
    #[prost(double, tag = "13")]
    Double(f64),
    #[prost(bool, tag = "14")]
    Boolean(bool),
    /// String, Text, UUID.
    #[prost(string, tag = "15")]
    String(String),
    /// Bytes, File, and the array types.
    #[prost(bytes = "vec", tag = "16")]
    Bytes(Vec<u8>),
    #[prost(bytes = "vec", tag = "17")]
    DataSet(Vec<u8>),
    #[prost(bytes = "vec", tag = "18")]
    Template(Vec<u8>),
    #[prost(bytes = "vec", tag = "19")]
    Extension(Vec<u8>),
}

/// Sparkplug's `DataType` enum, by number.
pub const DATA_TYPES: [&str; 35] = [
    "Unknown",
    "Int8",
    "Int16",
    "Int32",
    "Int64",
    "UInt8",
    "UInt16",
    "UInt32",
    "UInt64",
    "Float",
    "Double",
    "Boolean",
    "String",
    "DateTime",
    "Text",
    "UUID",
    "DataSet",
    "Bytes",
    "File",
    "Template",
    "PropertySet",
    "PropertySetList",
    "Int8Array",
    "Int16Array",
    "Int32Array",
    "Int64Array",
    "UInt8Array",
    "UInt16Array",
    "UInt32Array",
    "UInt64Array",
    "FloatArray",
    "DoubleArray",
    "BooleanArray",
    "StringArray",
    "DateTimeArray",
];

/// The name of data type `n` (`Unknown` past the enum).
pub fn data_type_name(n: u32) -> &'static str {
    DATA_TYPES.get(n as usize).copied().unwrap_or("Unknown")
}

impl Metric {
    /// A metric with a name, an alias, a type and a value (tests, the load generator).
    pub fn named(name: &str, alias: u64, datatype: u32, value: Value) -> Self {
        Metric {
            name: Some(name.into()),
            alias: Some(alias),
            datatype: Some(datatype),
            value: Some(value),
            ..Default::default()
        }
    }

    /// The same metric by alias only, as DATA messages send it.
    pub fn aliased(alias: u64, value: Value) -> Self {
        Metric {
            alias: Some(alias),
            value: Some(value),
            ..Default::default()
        }
    }
}

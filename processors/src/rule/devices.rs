//! The `devices` table: device id → tags (site, group, model, owner…), read by rules through
//! `device_tag('site')`, the way IoT Hub routing reads the device twin.
//!
//! The table lives in memory behind a lock that batches only read; an update (the devices
//! file changed, or the management API) swaps in a whole new map, so a batch sees one version.
//! It is bounded by `max_devices`. A device without metadata reads NULL tags, not an error.

use arrow::array::{Array, ArrayRef, AsArray, StringBuilder};
use arrow::datatypes::DataType;
use datafusion_common::{DataFusionError, Result, ScalarValue};
use datafusion_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, TypeSignature,
    Volatility,
};
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::Path;
use std::sync::{Arc, RwLock};

type Tags = HashMap<String, String>;

/// Shared handle to the device metadata; clones see the same table.
#[derive(Debug, Clone, Default)]
pub struct DeviceTags {
    table: Arc<RwLock<Arc<HashMap<String, Tags>>>>,
}

impl DeviceTags {
    /// Replaces the whole table.
    pub fn replace(&self, devices: HashMap<String, Tags>) {
        let mut guard = self.table.write().unwrap_or_else(|e| e.into_inner());
        *guard = Arc::new(devices);
    }

    /// Sets (or with `None` removes) one device's tags.
    pub fn set(&self, device: &str, tags: Option<Tags>) {
        let mut guard = self.table.write().unwrap_or_else(|e| e.into_inner());
        let mut next = HashMap::clone(&guard);
        match tags {
            Some(t) => next.insert(device.to_string(), t),
            None => next.remove(device),
        };
        *guard = Arc::new(next);
    }

    pub fn snapshot(&self) -> Arc<HashMap<String, Tags>> {
        self.table.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn len(&self) -> usize {
        self.snapshot().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The `device_tag` function reading this table.
    pub fn udf(&self) -> ScalarUDF {
        ScalarUDF::new_from_impl(DeviceTagFunction {
            tags: self.clone(),
            signature: Signature::one_of(
                vec![
                    TypeSignature::Exact(vec![DataType::Utf8]),
                    TypeSignature::Exact(vec![DataType::Utf8, DataType::Utf8]),
                ],
                Volatility::Volatile,
            ),
        })
    }
}

/// Reads a devices CSV: a `device_id` column, every other column is a tag. Keeps at most
/// `max` devices; returns the table and how many rows were skipped over the cap.
pub fn read_devices_csv(path: &Path, max: usize) -> Result<(HashMap<String, Tags>, usize), String> {
    let mut reader =
        csv::Reader::from_path(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let headers = reader
        .headers()
        .map_err(|e| format!("{}: {e}", path.display()))?
        .clone();
    let id_col = headers
        .iter()
        .position(|h| h == "device_id")
        .ok_or_else(|| format!("{}: no device_id column", path.display()))?;
    let mut table = HashMap::new();
    let mut skipped = 0;
    for (i, record) in reader.records().enumerate() {
        let record = record.map_err(|e| format!("{}: row {}: {e}", path.display(), i + 2))?;
        if table.len() >= max {
            skipped += 1;
            continue;
        }
        let tags: Tags = headers
            .iter()
            .zip(record.iter())
            .enumerate()
            .filter(|(j, (_, v))| *j != id_col && !v.is_empty())
            .map(|(_, (h, v))| (h.to_string(), v.to_string()))
            .collect();
        table.insert(record.get(id_col).unwrap_or_default().to_string(), tags);
    }
    Ok((table, skipped))
}

#[derive(Debug)]
struct DeviceTagFunction {
    tags: DeviceTags,
    signature: Signature,
}

impl PartialEq for DeviceTagFunction {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.tags.table, &other.tags.table)
    }
}
impl Eq for DeviceTagFunction {}
impl Hash for DeviceTagFunction {
    fn hash<H: Hasher>(&self, state: &mut H) {
        (Arc::as_ptr(&self.tags.table) as usize).hash(state);
    }
}

impl ScalarUDFImpl for DeviceTagFunction {
    fn name(&self) -> &str {
        "device_tag"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }
    /// `device_tag(tag, device)`; the one-argument form was rewritten to pass `_device_id`.
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let [tag, device] = args.args.as_slice() else {
            return Err(DataFusionError::Internal(
                "device_tag() should have been rewritten to pass the device id".into(),
            ));
        };
        let tag = tag.to_array(rows)?;
        let device = device.to_array(rows)?;
        let (tags, devices) = (tag.as_string::<i32>(), device.as_string::<i32>());
        let table = self.tags.snapshot();
        let mut out = StringBuilder::with_capacity(rows, rows * 8);
        for i in 0..rows {
            let value = (tags.is_valid(i) && devices.is_valid(i))
                .then(|| table.get(devices.value(i))?.get(tags.value(i)))
                .flatten();
            out.append_option(value);
        }
        let array: ArrayRef = Arc::new(out.finish());
        if rows == 1 && matches!(args.args[1], ColumnarValue::Scalar(_)) {
            return Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(
                &array, 0,
            )?));
        }
        Ok(ColumnarValue::Array(array))
    }
}

//! The IoT functions of the rule language, as DataFusion UDFs.
//!
//! `device_id()`, `topic()`, `topic(n)`, `received_at()`, `clientid()` and `is_defined(x)` are
//! registered so that DataFusion can parse, type-check and name them; after planning they are
//! rewritten into plain column expressions over the metadata columns (`_device_id`, `_topic`,
//! `_received_at`), so evaluating them costs nothing per row. `timestamp()` (processing time,
//! ms) is a real volatile function evaluated once per batch. `device_tag('site')` reads the
//! [`super::devices`] table for the row's device (rewritten to pass `_device_id`).

use arrow::datatypes::{DataType, TimeUnit};
use datafusion_common::tree_node::{Transformed, TreeNode};
use datafusion_common::{DataFusionError, Result, ScalarValue};
use datafusion_expr::expr::ScalarFunction;
use datafusion_expr::{
    col, lit, ColumnarValue, Expr, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    TypeSignature, Volatility,
};
use sluice_core::meta::{DEVICE_ID, RECEIVED_AT, TOPIC};

#[derive(Debug, PartialEq, Eq, Hash)]
struct IotFunction {
    name: &'static str,
    signature: Signature,
    return_type: DataType,
}

impl ScalarUDFImpl for IotFunction {
    fn name(&self) -> &str {
        self.name
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(self.return_type.clone())
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        if self.name == "timestamp" {
            let now = sluice_common::now_ms();
            return Ok(ColumnarValue::Scalar(ScalarValue::Int64(Some(now))));
        }
        let _ = args;
        Err(DataFusionError::Internal(format!(
            "{}() should have been rewritten before execution",
            self.name
        )))
    }
}

fn udf(name: &'static str, signature: Signature, return_type: DataType) -> ScalarUDF {
    ScalarUDF::new_from_impl(IotFunction {
        name,
        signature,
        return_type,
    })
}

/// Every IoT function, to register with a DataFusion session.
pub fn functions() -> Vec<ScalarUDF> {
    let nullary = || Signature::nullary(Volatility::Immutable);
    let ts = DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()));
    vec![
        udf("device_id", nullary(), DataType::Utf8),
        udf("clientid", nullary(), DataType::Utf8),
        udf("received_at", nullary(), ts),
        udf(
            "topic",
            Signature::one_of(
                vec![
                    TypeSignature::Nullary,
                    TypeSignature::Exact(vec![DataType::Int64]),
                ],
                Volatility::Immutable,
            ),
            DataType::Utf8,
        ),
        udf(
            "is_defined",
            Signature::any(1, Volatility::Immutable),
            DataType::Boolean,
        ),
        udf(
            "timestamp",
            Signature::nullary(Volatility::Volatile),
            DataType::Int64,
        ),
    ]
}

/// The output column name of an unaliased IoT call (`topic(2)` → `topic_2`), if `expr` is one.
pub fn default_name(expr: &Expr) -> Option<String> {
    let Expr::ScalarFunction(f) = expr else {
        return None;
    };
    let name = f.func.name();
    match (name, f.args.as_slice()) {
        ("topic", [Expr::Literal(v, _)]) => Some(format!("topic_{v}")),
        ("device_tag", [Expr::Literal(ScalarValue::Utf8(Some(v)), _)]) => {
            Some(format!("device_tag_{v}"))
        }
        // `a[1].month` is named `month`, as AWS IoT names a nested field it selects.
        (super::field::NAME, [_, Expr::Literal(ScalarValue::Utf8(Some(v)), _)]) => Some(v.clone()),
        ("device_id" | "clientid" | "received_at" | "timestamp" | "topic", _) => Some(name.into()),
        _ => None,
    }
}

/// Rewrites IoT calls into expressions over the metadata columns.
pub fn rewrite(expr: Expr) -> Result<Expr> {
    expr.transform_up(|e| {
        let Expr::ScalarFunction(f) = &e else {
            return Ok(Transformed::no(e));
        };
        let replaced = match (f.func.name(), f.args.as_slice()) {
            ("device_id", []) => col(DEVICE_ID),
            ("topic", []) => col(TOPIC),
            ("topic", [n]) => {
                datafusion_functions::string::expr_fn::split_part(col(TOPIC), lit("/"), n.clone())
            }
            ("received_at", []) => col(RECEIVED_AT),
            ("clientid", []) => lit(ScalarValue::Utf8(None)),
            ("is_defined", [x]) => x.clone().is_not_null(),
            ("device_tag", [tag]) => Expr::ScalarFunction(ScalarFunction::new_udf(
                f.func.clone(),
                vec![tag.clone(), col(DEVICE_ID)],
            )),
            _ => return Ok(Transformed::no(e)),
        };
        Ok(Transformed::yes(replaced))
    })
    .map(|t| t.data)
}

//! `[[payloads]]`: how the payloads on matching topics are encoded. A message whose topic no
//! entry matches is JSON, as before.
//!
//! Binary formats are turned into the same JSON objects the JSON path reads (see the
//! decoder's `formats` module), so rules, typing, isolation and Parquet behave the same.
//! A Protobuf schema is compiled here, when the config is loaded (`protox`: no `protoc` to
//! install), so `sluice config check` names a broken `.proto` before anything starts.

use crate::ConfigError;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// One `[[payloads]]` entry.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PayloadConfig {
    /// An MQTT topic filter (`fleet/+/pb`); the first entry matching a message's topic wins.
    pub topics: String,
    pub format: PayloadFormat,
    /// Protobuf: a `.proto` file (relative to the config file), compiled in-process.
    #[serde(default)]
    pub proto: Option<PathBuf>,
    /// Protobuf: folders its imports are found in (the `.proto`'s own folder always is).
    #[serde(default)]
    pub include: Vec<PathBuf>,
    /// Protobuf: a compiled descriptor set instead (`protoc --include_imports -o x.desc`).
    #[serde(default)]
    pub descriptor_set: Option<PathBuf>,
    /// Protobuf: the full name of the message every payload is (`acme.v1.Reading`).
    #[serde(default)]
    pub message: Option<String>,
    /// The compiled message, filled in when the config is loaded from a file.
    #[serde(skip)]
    pub descriptor: Option<prost_reflect::MessageDescriptor>,
}

/// A payload encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PayloadFormat {
    Json,
    Protobuf,
    Cbor,
    /// Sparkplug B (Eclipse Tahu's payload on `spBv1.0/...` topics): one row per metric.
    Sparkplug,
}

impl PayloadConfig {
    /// An entry for `topics` in `format`, with no schema yet (tests, benchmarks).
    pub fn of(topics: &str, format: PayloadFormat) -> Self {
        Self {
            topics: topics.into(),
            format,
            proto: None,
            include: vec![],
            descriptor_set: None,
            message: None,
            descriptor: None,
        }
    }

    /// Resolves paths against the config file's folder (`base`) and compiles the Protobuf
    /// schema. What is wrong comes back as errors under `payloads[i]`.
    pub fn resolve(&mut self, i: usize, base: &Path) -> Vec<ConfigError> {
        let err = |key: &str, message: String| ConfigError {
            path: format!("payloads[{i}].{key}"),
            message,
        };
        let mut errors = vec![];
        if let Err(reason) = crate::check_topic_filter(&self.topics) {
            errors.push(err("topics", format!("'{}': {reason}", self.topics)));
        }
        if self.format == PayloadFormat::Sparkplug && !self.topics.starts_with("spBv1.0/") {
            errors.push(err(
                "topics",
                format!(
                    "'{}': Sparkplug B topics start with spBv1.0/ (topics = \"spBv1.0/#\")",
                    self.topics
                ),
            ));
        }
        if self.format != PayloadFormat::Protobuf {
            if self.proto.is_some() || self.descriptor_set.is_some() || self.message.is_some() {
                errors.push(err(
                    "format",
                    "proto, descriptor_set and message are for format = \"protobuf\"".into(),
                ));
            }
            return errors;
        }
        let Some(message) = self.message.clone() else {
            errors.push(err(
                "message",
                "format = \"protobuf\" needs the full message name (message = \"pkg.Reading\")"
                    .into(),
            ));
            return errors;
        };
        let pool = match (&self.proto, &self.descriptor_set) {
            (Some(proto), None) => self.compile(base, proto).map_err(|e| err("proto", e)),
            (None, Some(set)) => {
                read_descriptor_set(&base.join(set)).map_err(|e| err("descriptor_set", e))
            }
            _ => Err(err(
                "proto",
                "format = \"protobuf\" needs exactly one of proto or descriptor_set".into(),
            )),
        };
        match pool {
            Ok(pool) => match pool.get_message_by_name(&message) {
                Some(d) => self.descriptor = Some(d),
                None => errors.push(err(
                    "message",
                    format!("no message '{message}' in the schema (give the package too)"),
                )),
            },
            Err(e) => errors.push(e),
        }
        errors
    }

    fn compile(&self, base: &Path, proto: &Path) -> Result<prost_reflect::DescriptorPool, String> {
        let file = base.join(proto);
        let folder = file.parent().unwrap_or(Path::new(".")).to_path_buf();
        let mut includes = vec![folder];
        includes.extend(self.include.iter().map(|p| base.join(p)));
        let name = file.file_name().unwrap_or_default().to_owned();
        let mut compiler = protox::Compiler::new(includes).map_err(|e| e.to_string())?;
        compiler.include_imports(true);
        compiler
            .open_file(&name)
            .map_err(|e| format!("{}: {e}", file.display()))?;
        prost_reflect::DescriptorPool::from_file_descriptor_set(compiler.file_descriptor_set())
            .map_err(|e| e.to_string())
    }
}

fn read_descriptor_set(path: &Path) -> Result<prost_reflect::DescriptorPool, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    prost_reflect::DescriptorPool::decode(bytes.as_slice())
        .map_err(|e| format!("{}: not a descriptor set: {e}", path.display()))
}

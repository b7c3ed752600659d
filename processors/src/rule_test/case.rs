//! The case file of `sluice rules test`: input messages and the rows each rule (or action)
//! must produce. TOML, so a data engineer can write it by hand:
//!
//! ```toml
//! description = "hot devices only"
//! rule_files = ["../rules/hot.sql"]      # and/or inline [[rules]] like the config
//!
//! [[messages]]
//! topic = "devices/d1/telemetry"
//! payload = { temperature = 91.5 }       # or raw = '{"temperature": 91.5'
//!
//! [[expect]]
//! rule = "hot"
//! rows = [ { device = "d1", temperature = 91.5 } ]
//! ```

use serde::Deserialize;
use sluice_config::RuleConfig;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// First receive time of a case's messages unless given: 2023-11-14T22:13:20Z, one ms apart.
pub const DEFAULT_RECEIVED_AT: i64 = 1_700_000_000_000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    #[serde(default)]
    pub description: Option<String>,
    /// Rules written in the case itself (same keys as `[[rules]]` in the config).
    #[serde(default)]
    pub rules: Vec<RuleConfig>,
    /// Rule files or directories, relative to the case file.
    #[serde(default)]
    pub rule_files: Vec<PathBuf>,
    /// Sink for messages no rule matched, as `router.fallback_action`.
    #[serde(default)]
    pub fallback_action: Option<String>,
    /// Device metadata for `device_tag()`: each table has `device_id` and the tags.
    #[serde(default)]
    pub devices: Vec<BTreeMap<String, String>>,
    /// Which topic level is the device id (as `ingest.device_id_level`).
    #[serde(default = "default_level")]
    pub device_id_level: usize,
    /// Messages per batch (default: all in one). Batches share the decoder's running schema,
    /// as in the router, so `1` shows how a field's first type decides later ones.
    #[serde(default)]
    pub batch_size: Option<usize>,
    /// Payload formats by topic filter (as `[[payloads]]` in the config; paths relative to
    /// the case file).
    #[serde(default)]
    pub payloads: Vec<sluice_config::PayloadConfig>,
    #[serde(default)]
    pub messages: Vec<Message>,
    #[serde(default)]
    pub expect: Vec<Expect>,
}

const fn default_level() -> usize {
    2
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Message {
    pub topic: String,
    /// The JSON payload as a TOML table.
    #[serde(default)]
    pub payload: Option<toml::Table>,
    /// The payload text exactly (for malformed JSON, arrays, odd types).
    #[serde(default)]
    pub raw: Option<String>,
    /// The payload bytes in hex (Protobuf, CBOR).
    #[serde(default)]
    pub hex: Option<String>,
    /// Receive time in ms since the epoch.
    #[serde(default)]
    pub received_at: Option<i64>,
    /// Overrides the device id taken from the topic.
    #[serde(default)]
    pub device_id: Option<String>,
}

impl Message {
    /// The payload's bytes: `hex` decoded (invalid hex is the case's mistake: no bytes),
    /// else the text.
    pub fn payload_bytes(&self) -> Vec<u8> {
        match &self.hex {
            Some(h) => hex::decode(h.replace([' ', '\n'], "")).unwrap_or_default(),
            None => self.payload_text().into_bytes(),
        }
    }

    pub fn payload_text(&self) -> String {
        if let Some(h) = &self.hex {
            return format!("hex {h}");
        }
        match (&self.raw, &self.payload) {
            (Some(raw), _) => raw.clone(),
            (None, Some(table)) => serde_json::to_string(table).unwrap_or_default(),
            (None, None) => "{}".into(),
        }
    }
}

/// One expectation: the rows a rule selects, what an action receives, or a compile error.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// Rows the rule's SELECT produces (all columns compared; a missing key means NULL).
    #[serde(default)]
    pub rule: Option<String>,
    /// Rows an action receives: a fallback or error action (whole messages, `_error`), or
    /// `dlq` (`_message` = message number, `_error`). Only the keys given are compared.
    #[serde(default)]
    pub action: Option<String>,
    #[serde(default)]
    pub rows: Vec<toml::Table>,
    /// The rules must fail to compile with messages containing each of these texts.
    #[serde(default)]
    pub errors: Vec<String>,
}

/// Reads and parses one case file.
pub fn read_case(path: &Path) -> Result<Case, CaseError> {
    let text = std::fs::read_to_string(path).map_err(CaseError::Read)?;
    toml::from_str(&text).map_err(|e| {
        let at = e
            .span()
            .map(|s| sluice_config::line_col(&text, s.start))
            .map(|(l, c)| format!(" (line {l}, column {c})"))
            .unwrap_or_default();
        CaseError::Invalid(format!("{}{at}", e.message()))
    })
}

/// A case file that cannot be run.
#[derive(Debug, thiserror::Error)]
pub enum CaseError {
    #[error("cannot read: {0}")]
    Read(std::io::Error),
    #[error("{0}")]
    Invalid(String),
    #[error("{}: cannot list: {source}", dir.display())]
    List {
        dir: PathBuf,
        source: std::io::Error,
    },
}

/// Every `*.toml` case under `dir` (recursively), sorted.
pub fn case_files(dir: &Path) -> Result<Vec<PathBuf>, CaseError> {
    std::fs::read_dir(dir).map_err(|source| CaseError::List {
        dir: dir.to_path_buf(),
        source,
    })?;
    Ok(sluice_common::fs::files_under(dir)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect())
}

//! TOML text → [`Config`], with *every* problem serde finds (unknown keys, wrong types,
//! unknown variants) collected and located, instead of stopping at the first.
//!
//! serde stops at the first error. So the text is parsed into a TOML tree, the tree is
//! deserialized through `serde_path_to_error` (which names the key path where it failed), the
//! problem is noted, the offending key is taken out of the tree and the rest is tried again.
//! What is left deserializes, so the semantic checks run on it too: one `config check` shows
//! unknown keys, type errors and semantic mistakes together.
//!
//! Sinks are deserialized one by one, by their `type`: serde's internally tagged enums buffer
//! their content, and the key path inside a sink (`sinks.updates.deployments[0].status`) would
//! be lost. [`locate`] then gives each problem the line of its entry, from a span-keeping parse
//! of the same text (`toml_edit`).

use crate::{
    AlertSinkConfig, ComplianceSinkConfig, Config, ConfigError, ParquetSinkConfig, SinkConfig,
};
use serde::de::DeserializeOwned;
use toml::{Table, Value};

/// At most this many problems are collected (each costs one more pass over the tree).
const MAX_PROBLEMS: usize = 50;

/// The values `type` may take in a `[sinks.<name>]` table, as error messages list them.
const SINK_TYPES: &str = "`parquet`, `alert` or `compliance`";

/// Parses `text`; returns the config built from everything that could be read (`None` only
/// when the TOML syntax itself is broken) and every problem, located.
pub fn parse(text: &str) -> (Option<Config>, Vec<ConfigError>) {
    let mut tree: Table = match toml::from_str(text) {
        Ok(t) => t,
        Err(e) => {
            let position = e
                .span()
                .map(|span| crate::line_col(text, span.start))
                .map(|(l, c)| format!(" (line {l}, column {c})"))
                .unwrap_or_default();
            let message = format!("{}{position}", e.message().trim_end());
            return (None, vec![error("<toml>".into(), message)]);
        }
    };
    let mut problems = vec![];
    let sinks = match tree.remove("sinks") {
        Some(Value::Table(sinks)) => sinks,
        Some(other) => {
            let msg = format!("must be a table of sinks, not a {}", other.type_str());
            problems.push(error("sinks".into(), msg));
            Table::new()
        }
        None => Table::new(),
    };
    let mut config = repaired::<Config>(tree, "", &mut problems);
    for (name, sink) in sinks {
        if let Some(sink) = sink_config(&name, sink, &mut problems) {
            if let Some(c) = config.as_mut() {
                c.sinks.insert(name, sink);
            }
        }
    }
    locate(text, &mut problems);
    if let Some(c) = config.as_mut() {
        for (i, rule) in c.rules.iter_mut().enumerate() {
            rule.origin = crate::RuleOrigin::Config(i);
        }
    }
    (config, problems)
}

/// One `[sinks.<name>]` table, deserialized as the type its `type` key names.
fn sink_config(name: &str, sink: Value, problems: &mut Vec<ConfigError>) -> Option<SinkConfig> {
    let at = format!("sinks.{name}");
    let Value::Table(mut table) = sink else {
        problems.push(error(at, "must be a table".into()));
        return None;
    };
    let kind = table.remove("type");
    let prefix = format!("{at}.");
    match kind.as_ref().and_then(Value::as_str) {
        Some("parquet") => {
            repaired::<ParquetSinkConfig>(table, &prefix, problems).map(SinkConfig::Parquet)
        }
        Some("alert") => {
            repaired::<AlertSinkConfig>(table, &prefix, problems).map(SinkConfig::Alert)
        }
        Some("compliance") => {
            repaired::<ComplianceSinkConfig>(table, &prefix, problems).map(SinkConfig::Compliance)
        }
        Some(other) => {
            let msg = format!("unknown sink type `{other}`, expected {SINK_TYPES}");
            problems.push(error(format!("{at}.type"), msg));
            None
        }
        None => {
            let msg = format!("missing `type`: one of {SINK_TYPES}");
            problems.push(error(at, msg));
            None
        }
    }
}

/// Deserializes `tree`; on each failure notes the problem (its path prefixed with `prefix`),
/// removes the key at fault and tries again. `None` when a problem cannot be removed (a
/// missing required key, a wrong value inside an array).
fn repaired<T: DeserializeOwned>(
    tree: Table,
    prefix: &str,
    problems: &mut Vec<ConfigError>,
) -> Option<T> {
    let mut tree = Value::Table(tree);
    while problems.len() < MAX_PROBLEMS {
        let e = match serde_path_to_error::deserialize::<_, T>(tree.clone()) {
            Ok(value) => return Some(value),
            Err(e) => e,
        };
        let path: Vec<Segment> = e.path().iter().filter_map(Segment::from_serde).collect();
        let message = e.inner().message().trim_end().to_string();
        problems.push(error(format!("{prefix}{}", display(&path)), message));
        if !remove(&mut tree, &path) {
            return None;
        }
    }
    None
}

/// One step of a key path.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Segment {
    Key(String),
    Index(usize),
}

impl Segment {
    fn from_serde(s: &serde_path_to_error::Segment) -> Option<Segment> {
        match s {
            serde_path_to_error::Segment::Map { key } => Some(Segment::Key(key.clone())),
            serde_path_to_error::Segment::Seq { index } => Some(Segment::Index(*index)),
            _ => None,
        }
    }
}

/// `sinks.updates.deployments[0].status`.
fn display(path: &[Segment]) -> String {
    let mut out = String::new();
    for s in path {
        match s {
            Segment::Key(k) if out.is_empty() => out.push_str(k),
            Segment::Key(k) => {
                out.push('.');
                out.push_str(k);
            }
            Segment::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

/// The reverse of [`display`] (keys with dots or brackets do not round-trip; they are not
/// located then).
pub(crate) fn segments(path: &str) -> Vec<Segment> {
    let mut out = vec![];
    for part in path.split('.') {
        let (key, rest) = part.split_once('[').unwrap_or((part, ""));
        if !key.is_empty() {
            out.push(Segment::Key(key.to_string()));
        }
        for index in rest.split('[') {
            if let Ok(i) = index.trim_end_matches(']').parse() {
                out.push(Segment::Index(i));
            }
        }
    }
    out
}

/// Takes the key at `path` out of the tree. Only table keys are removed: removing an array
/// element would shift the indices of the problems still to be found.
fn remove(tree: &mut Value, path: &[Segment]) -> bool {
    match path {
        [Segment::Key(last)] => tree
            .as_table_mut()
            .is_some_and(|t| t.remove(last).is_some()),
        [Segment::Key(k), rest @ ..] => tree
            .as_table_mut()
            .and_then(|t| t.get_mut(k))
            .is_some_and(|v| remove(v, rest)),
        [Segment::Index(i), rest @ ..] if !rest.is_empty() => tree
            .as_array_mut()
            .and_then(|a| a.get_mut(*i))
            .is_some_and(|v| remove(v, rest)),
        _ => false,
    }
}

fn error(path: String, message: String) -> ConfigError {
    ConfigError { path, message }
}

/// Appends `(line N)` to each problem whose key path names an entry of `text`, and puts the
/// problems in file order (those without a line last, in the order found).
pub fn locate(text: &str, problems: &mut Vec<ConfigError>) {
    let Ok(doc) = text.parse::<toml_edit::ImDocument<String>>() else {
        return;
    };
    let mut located: Vec<(usize, ConfigError)> = problems
        .drain(..)
        .map(|mut p| {
            let offset = offset_of(doc.as_table(), &segments(&p.path));
            let line = offset.map(|o| crate::line_col(text, o).0);
            match line {
                Some(line) if !p.message.contains("(line ") => {
                    p.message.push_str(&format!(" (line {line})"));
                }
                _ => {}
            }
            (line.unwrap_or(usize::MAX), p)
        })
        .collect();
    located.sort_by_key(|(line, _)| *line);
    problems.extend(located.into_iter().map(|(_, p)| p));
}

/// A place in the span-keeping document.
#[derive(Clone, Copy)]
enum Node<'a> {
    Item(&'a toml_edit::Item),
    Value(&'a toml_edit::Value),
    Table(&'a toml_edit::Table),
}

/// Where the entry at `path` starts (its key, else its value or `[[table]]` header); the
/// nearest enclosing entry when the path goes deeper than the text.
fn offset_of(root: &toml_edit::Table, path: &[Segment]) -> Option<usize> {
    let mut node = Node::Table(root);
    let mut start = None;
    for s in path {
        let Some((at, next)) = child(node, s) else {
            break;
        };
        start = at.or(start);
        node = next;
    }
    start
}

fn child<'a>(node: Node<'a>, s: &Segment) -> Option<(Option<usize>, Node<'a>)> {
    use toml_edit::TableLike;
    match s {
        Segment::Key(k) => {
            let table: &dyn TableLike = match node {
                Node::Item(it) => it.as_table_like()?,
                Node::Value(v) => v.as_inline_table()?,
                Node::Table(t) => t,
            };
            let (key, item) = table.get_key_value(k)?;
            Some((key.span().map(|r| r.start), Node::Item(item)))
        }
        Segment::Index(i) => {
            if let Node::Item(it) = node {
                if let Some(t) = it.as_array_of_tables().and_then(|a| a.get(*i)) {
                    return Some((t.span().map(|r| r.start), Node::Table(t)));
                }
            }
            let array = match node {
                Node::Item(it) => it.as_array()?,
                Node::Value(v) => v.as_array()?,
                Node::Table(_) => return None,
            };
            let v = array.get(*i)?;
            Some((v.span().map(|r| r.start), Node::Value(v)))
        }
    }
}

//! Rules in `.sql` files, the form data engineers edit and review:
//!
//! ```sql
//! -- name: overheating
//! -- actions: lake, alerts
//! -- error_action: errors
//! -- description: devices running hot
//! SELECT device_id() AS device, temperature FROM 'devices/+/telemetry' WHERE temperature > 80
//! ```
//!
//! The header is the leading `--` comment lines; `name` defaults to the file stem. The SQL
//! keeps the header's line count (as blank lines), so a position DataFusion reports in the
//! SQL is the position in the file.

use crate::{ConfigError, RuleConfig, RuleOrigin};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Reads every rule of `paths` (files, or directories whose `*.sql` files are read in name
/// order), resolved against `base`. Returns the rules read and every problem found.
pub fn load_rule_paths(base: &Path, paths: &[PathBuf]) -> (Vec<RuleConfig>, Vec<ConfigError>) {
    let mut rules = Vec::new();
    let mut errors = Vec::new();
    for path in paths {
        let path = base.join(path);
        match rule_files(&path) {
            Err(message) => errors.push(ConfigError {
                path: path.display().to_string(),
                message,
            }),
            Ok(files) => {
                for file in files {
                    match std::fs::read_to_string(&file) {
                        Ok(text) => rules.extend(parse_rule_file(&file, &text)),
                        Err(e) => errors.push(ConfigError {
                            path: file.display().to_string(),
                            message: format!("cannot read: {e}"),
                        }),
                    }
                }
            }
        }
    }
    (rules, errors)
}

fn rule_files(path: &Path) -> Result<Vec<PathBuf>, String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot read: {e}"))?;
    if !meta.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(|e| format!("cannot list: {e}"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "sql") && p.is_file())
        .collect();
    files.sort();
    Ok(files)
}

/// Parses one rule file: one rule, or several, each starting with its own `-- name:` header.
/// Header problems (no actions…) are left to validation, which reports them with positions.
pub fn parse_rule_file(path: &Path, text: &str) -> Vec<RuleConfig> {
    let lines: Vec<&str> = text.lines().collect();
    let mut starts = vec![0];
    let mut seen_sql = false;
    for (n, line) in lines.iter().enumerate() {
        let t = line.trim_start();
        if is_header(t, "name") && seen_sql {
            starts.push(n);
            seen_sql = false;
        } else if !t.is_empty() && !t.starts_with("--") {
            seen_sql = true;
        }
    }
    starts.push(lines.len());
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    starts
        .windows(2)
        .map(|w| parse_section(path, &lines, w[0], w[1], &stem))
        .collect()
}

fn is_header(trimmed: &str, key: &str) -> bool {
    trimmed
        .strip_prefix("--")
        .and_then(|c| c.split_once(':'))
        .is_some_and(|(k, _)| k.trim() == key)
}

/// The rule in `lines[from..to]`; line numbers stay those of the file.
fn parse_section(path: &Path, lines: &[&str], from: usize, to: usize, stem: &str) -> RuleConfig {
    let mut rule = RuleConfig {
        name: stem.to_string(),
        ..Default::default()
    };
    let mut positions = BTreeMap::new();
    let mut body_start = to;
    for (n, line) in lines.iter().enumerate().take(to).skip(from) {
        let trimmed = line.trim_start();
        let Some(comment) = trimmed.strip_prefix("--") else {
            if trimmed.is_empty() {
                continue;
            }
            body_start = n;
            break;
        };
        if let Some((key, value)) = comment.split_once(':') {
            header_value(
                &mut rule,
                &mut positions,
                line,
                comment,
                key.trim(),
                value,
                n + 1,
            );
        }
    }
    let body = lines[body_start.min(to)..to].join("\n");
    rule.sql = format!("{}{body}", "\n".repeat(body_start.min(to)));
    positions.insert("sql".into(), (body_start + 1, 1));
    rule.origin = RuleOrigin::File {
        path: path.to_path_buf(),
        positions,
    };
    rule
}

fn header_value(
    rule: &mut RuleConfig,
    positions: &mut BTreeMap<String, (usize, usize)>,
    line: &str,
    comment: &str,
    key: &str,
    value: &str,
    line_no: usize,
) {
    // 1-based column (in characters) where the value starts.
    let value_start = line.len() - comment.len() + key_offset(comment);
    let value_col = line[..value_start].chars().count() + 1;
    match key {
        "name" => {
            rule.name = value.trim().to_string();
            positions.insert("name".into(), (line_no, value_col));
        }
        "actions" => {
            let mut col = value_col - (value.len() - value.trim_start().len());
            for part in value.split(',') {
                let lead = part.len() - part.trim_start().len();
                let name = part.trim();
                if !name.is_empty() {
                    let key = format!("actions[{}]", rule.actions.len());
                    positions.insert(key, (line_no, col + lead));
                    rule.actions.push(name.to_string());
                }
                col += part.chars().count() + 1;
            }
            positions.insert("actions".into(), (line_no, value_col));
        }
        "error_action" => {
            rule.error_action = Some(value.trim().to_string());
            positions.insert("error_action".into(), (line_no, value_col));
        }
        "description" => rule.description = Some(value.trim().to_string()),
        _ => {}
    }
}

/// Bytes from the start of `comment` (after `--`) to the first character of its value.
fn key_offset(comment: &str) -> usize {
    let colon = comment.find(':').unwrap_or(0);
    let after = &comment[colon + 1..];
    colon + 1 + (after.len() - after.trim_start().len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_gives_name_actions_and_positions_and_sql_keeps_file_lines() {
        let text = "-- name: hot\n-- actions: lake,  alerts\n-- error_action: errors\nSELECT x\nFROM telemetry\n";
        let r = parse_rule_file(Path::new("rules/hot.sql"), text).remove(0);
        assert_eq!(r.name, "hot");
        assert_eq!(r.actions, ["lake", "alerts"]);
        assert_eq!(r.error_action.as_deref(), Some("errors"));
        assert_eq!(r.sql, "\n\n\nSELECT x\nFROM telemetry");
        assert_eq!(r.locate("actions[0]"), "rules/hot.sql:2:13");
        assert_eq!(r.locate("actions[1]"), "rules/hot.sql:2:20");
    }

    #[test]
    fn name_defaults_to_the_file_stem() {
        let r = parse_rule_file(
            Path::new("x/cold.sql"),
            "-- actions: lake\nSELECT 1 FROM telemetry",
        );
        assert_eq!(r[0].name, "cold");
    }

    #[test]
    fn a_file_may_hold_several_rules_each_with_file_line_numbers() {
        let text = "-- name: a\n-- actions: lake\nSELECT 1\nFROM telemetry\n\n-- name: b\n-- actions: lake\nSELECT 2 FROM telemetry\n";
        let r = parse_rule_file(Path::new("two.sql"), text);
        assert_eq!(r.len(), 2);
        assert_eq!((r[0].name.as_str(), r[1].name.as_str()), ("a", "b"));
        assert_eq!(r[1].sql.lines().position(|l| !l.is_empty()), Some(7));
        assert_eq!(r[1].locate("actions[0]"), "two.sql:7:13");
    }
}

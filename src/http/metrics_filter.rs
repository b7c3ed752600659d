//! `[metrics]` allow/block lists, applied to the Prometheus text before it is served.
//!
//! Filtering works on metric *families*: a `# TYPE` line names a family, and its samples
//! (`name`, `name_bucket`, `name_sum`, `name_count`) go with it, so a histogram is kept or
//! dropped whole and the output stays valid exposition text.

use sluice_config::MetricsConfig;

/// `*` matches any run of characters; everything else literally.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let Some((first, rest)) = pattern.split_once('*') else {
        return pattern == name;
    };
    let Some(mut remaining) = name.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = rest.split('*').collect();
    let (last, middle) = parts.split_last().expect("split yields at least one part");
    for part in middle {
        match remaining.find(part) {
            Some(i) => remaining = &remaining[i + part.len()..],
            None => return false,
        }
    }
    remaining.len() >= last.len() && remaining.ends_with(last)
}

/// Whether a family is exported.
pub fn exported(config: &MetricsConfig, family: &str) -> bool {
    let allowed = config.allow.is_empty() || config.allow.iter().any(|p| glob_match(p, family));
    allowed && !config.block.iter().any(|p| glob_match(p, family))
}

/// The family a line belongs to: from `# HELP name`/`# TYPE name`, or the sample name.
fn family_of<'a>(line: &'a str, current: Option<&'a str>) -> Option<&'a str> {
    if let Some(rest) = line
        .strip_prefix("# TYPE ")
        .or_else(|| line.strip_prefix("# HELP "))
    {
        return rest.split_whitespace().next();
    }
    let name = line.split(['{', ' ']).next()?;
    match current {
        Some(f) if name == f || name.strip_prefix(f).is_some_and(|s| s.starts_with('_')) => Some(f),
        _ => Some(name),
    }
}

/// Keeps the lines of exported families.
pub fn filter(text: &str, config: &MetricsConfig) -> String {
    if config.allow.is_empty() && config.block.is_empty() {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len());
    let mut current: Option<&str> = None;
    for line in text.lines() {
        if line.trim().is_empty() {
            out.push('\n');
            continue;
        }
        let family = family_of(line, current);
        if line.starts_with("# TYPE ") {
            current = family;
        }
        if family.is_some_and(|f| exported(config, f)) {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_whole_names() {
        assert!(glob_match("sluice_rule_*", "sluice_rule_rows_total"));
        assert!(glob_match("*_total", "sluice_rule_rows_total"));
        assert!(glob_match("sluice_*_rows_*", "sluice_rule_rows_total"));
        assert!(!glob_match("sluice_rule", "sluice_rule_rows_total"));
        assert!(!glob_match("*_seconds", "sluice_rule_rows_total"));
    }

    #[test]
    fn whole_families_are_kept_or_dropped() {
        let text = "# TYPE sluice_batch_seconds histogram\n\
            sluice_batch_seconds_bucket{le=\"0.1\"} 1\nsluice_batch_seconds_sum 0.05\n\
            sluice_batch_seconds_count 1\n\n\
            # TYPE sluice_rule_rows_total counter\nsluice_rule_rows_total{rule=\"a\"} 3\n\n\
            # TYPE sluice_unmatched_total counter\nsluice_unmatched_total 2\n";
        let config = MetricsConfig {
            allow: vec!["sluice_*".into()],
            block: vec!["sluice_rule_*".into()],
        };
        let out = filter(text, &config);
        assert!(out.contains("sluice_batch_seconds_count 1"));
        assert!(out.contains("sluice_unmatched_total 2"));
        assert!(!out.contains("sluice_rule_rows_total"));
        let only = MetricsConfig {
            allow: vec!["sluice_unmatched_total".into()],
            block: vec![],
        };
        assert!(!filter(text, &only).contains("sluice_batch_seconds"));
    }
}

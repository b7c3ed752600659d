//! MQTT topic filters in rules: `FROM 'factory/+/telemetry'`.

use arrow::array::{BooleanArray, StringArray};

/// A `FROM '…'` that is not an MQTT topic filter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("topic filter '{filter}': {reason}")]
pub struct TopicFilterError {
    pub filter: String,
    pub reason: String,
}

/// A parsed MQTT topic filter (`+` one level, `#` the rest).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicFilter {
    filter: String,
    levels: Vec<String>,
}

impl TopicFilter {
    pub fn parse(filter: &str) -> Result<Self, TopicFilterError> {
        sluice_config::check_topic_filter(filter).map_err(|reason| TopicFilterError {
            filter: filter.to_string(),
            reason: reason.to_string(),
        })?;
        Ok(Self {
            filter: filter.to_string(),
            levels: filter.split('/').map(str::to_string).collect(),
        })
    }

    pub fn as_str(&self) -> &str {
        &self.filter
    }

    /// MQTT matching rules, including: `#` also matches the parent level (`a/#` matches `a`),
    /// and wildcards at the first level do not match topics starting with `$`.
    pub fn matches(&self, topic: &str) -> bool {
        if topic.starts_with('$')
            && matches!(self.levels.first().map(String::as_str), Some("+" | "#"))
        {
            return false;
        }
        let mut parts = topic.split('/');
        for level in &self.levels {
            match level.as_str() {
                "#" => return true,
                "+" => {
                    if parts.next().is_none() {
                        return false;
                    }
                }
                exact => {
                    if parts.next() != Some(exact) {
                        return false;
                    }
                }
            }
        }
        parts.next().is_none()
    }

    /// One boolean per row of a topic column.
    pub fn mask(&self, topics: &StringArray) -> BooleanArray {
        let mut last: Option<(&str, bool)> = None;
        topics
            .iter()
            .map(|t| {
                let t = t?;
                // Consecutive rows often share a topic (one device's burst): reuse the answer.
                if let Some((prev, m)) = last {
                    if prev == t {
                        return Some(m);
                    }
                }
                let m = self.matches(t);
                last = Some((t, m));
                Some(m)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(filter: &str, topic: &str) -> bool {
        TopicFilter::parse(filter).unwrap().matches(topic)
    }

    #[test]
    fn wildcards_follow_mqtt() {
        assert!(m("factory/+/telemetry", "factory/7/telemetry"));
        assert!(!m("factory/+/telemetry", "factory/7/status"));
        assert!(!m("factory/+/telemetry", "factory/7/telemetry/x"));
        assert!(m("factory/#", "factory/7/telemetry"));
        assert!(m("factory/#", "factory"));
        assert!(m("#", "a/b"));
        assert!(!m("#", "$SYS/x"));
        assert!(m("+/+", "a/b"));
        assert!(!m("+/+", "a"));
        assert!(m("a/b", "a/b"));
        assert!(!m("a/b", "a/c"));
    }

    #[test]
    fn bad_filters_are_refused() {
        assert!(TopicFilter::parse("a/#/b").is_err());
        assert!(TopicFilter::parse("a+").is_err());
    }

    #[test]
    fn mask_covers_every_row() {
        let f = TopicFilter::parse("a/+").unwrap();
        let topics = StringArray::from(vec!["a/1", "a/1", "b/1", "a/2"]);
        let mask = f.mask(&topics);
        assert_eq!(
            mask.iter().collect::<Vec<_>>(),
            [Some(true), Some(true), Some(false), Some(true)]
        );
        assert_eq!(mask.len(), 4);
    }
}

//! The running schema's leaf fields by flat name: the cap on distinct fields, name collisions
//! between messages, and when each top-level field was last seen (to retire stale ones).

use super::limits::for_each_leaf;
use arrow::datatypes::{DataType, Fields, Schema};
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Flat name (`loc.lat`) → the path of keys it stands for (`["loc", "lat"]`).
#[derive(Debug, Default)]
pub struct FieldIndex {
    leaves: HashMap<String, Vec<String>>,
}

fn add_fields(fields: &Fields, path: &mut Vec<String>, out: &mut HashMap<String, Vec<String>>) {
    for f in fields {
        path.push(f.name().clone());
        match f.data_type() {
            DataType::Struct(children) => add_fields(children, path, out),
            _ => {
                out.insert(path.join("."), path.clone());
            }
        }
        path.pop();
    }
}

/// Why a message's fields may not join the batch's schema (the message is dead-lettered).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error(
        "field name collision: '{0}' already names another field once nested objects are flattened"
    )]
    Collision(String),
    #[error("schema full: {new} new fields would pass router.decode.max_schema_fields {cap} ({in_use} in use)")]
    SchemaFull {
        new: usize,
        cap: usize,
        in_use: usize,
    },
}

impl FieldIndex {
    pub fn of(schema: &Schema) -> Self {
        let mut leaves = HashMap::new();
        add_fields(schema.fields(), &mut Vec::new(), &mut leaves);
        Self { leaves }
    }

    pub fn len(&self) -> usize {
        self.leaves.len()
    }

    /// Admits one message's fields into the schema being built, or says why it may not join:
    /// a flat name that already stands for another path, or more fields than `cap` in all.
    pub fn admit(&mut self, row: &Map<String, Value>, cap: usize) -> Result<(), Refused> {
        let mut new: Vec<(String, Vec<String>)> = Vec::new();
        let mut clash = None;
        for_each_leaf(row, &mut Vec::new(), &mut |path| {
            let name = path.join(".");
            match self.leaves.get(&name) {
                Some(known) if known.iter().map(String::as_str).eq(path.iter().copied()) => {}
                Some(_) => {
                    clash.get_or_insert(name);
                }
                None => new.push((name, path.iter().map(|s| s.to_string()).collect())),
            }
        });
        if let Some(name) = clash {
            return Err(Refused::Collision(name));
        }
        new.sort();
        new.dedup();
        if self.leaves.len() + new.len() > cap {
            return Err(Refused::SchemaFull {
                new: new.len(),
                cap,
                in_use: self.leaves.len(),
            });
        }
        self.leaves.extend(new);
        Ok(())
    }
}

/// When each top-level field was last carried by a message.
#[derive(Debug, Clone, Default)]
pub struct LastSeen {
    at: HashMap<String, Instant>,
    last_sweep: Option<Instant>,
}

impl LastSeen {
    pub fn saw(&mut self, name: &str, now: Instant) {
        match self.at.get_mut(name) {
            Some(t) => *t = now,
            None => {
                self.at.insert(name.to_string(), now);
            }
        }
    }

    /// Top-level fields of `schema` not seen for `ttl`, checked at most every `ttl / 10`.
    pub fn stale(&mut self, schema: &Schema, ttl: Duration, now: Instant) -> Vec<String> {
        let due = self
            .last_sweep
            .is_none_or(|t| now.duration_since(t) >= ttl / 10);
        if !due {
            return vec![];
        }
        self.last_sweep = Some(now);
        let stale: Vec<String> = schema
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .filter(|name| {
                // A field the index never saw (the schema came from elsewhere) starts now.
                let seen = *self.at.entry(name.clone()).or_insert(now);
                now.duration_since(seen) >= ttl
            })
            .collect();
        for name in &stale {
            self.at.remove(name);
        }
        stale
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::Field;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => panic!("not an object"),
        }
    }

    #[test]
    fn a_flat_name_cannot_stand_for_two_paths_across_messages() {
        let loc = DataType::Struct(vec![Field::new("b", DataType::Int64, true)].into());
        let schema = Schema::new(vec![Field::new("a", loc, true)]);
        let mut index = FieldIndex::of(&schema);
        assert!(index
            .admit(&obj(json!({"a": {"b": 1}, "c": 2})), 10)
            .is_ok());
        let err = index
            .admit(&obj(json!({"a.b": 3})), 10)
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("field name collision: 'a.b'"), "{err}");
        assert_eq!(index.len(), 2);
    }

    #[test]
    fn the_cap_counts_distinct_fields() {
        let mut index = FieldIndex::default();
        assert!(index.admit(&obj(json!({"a": 1, "b": 2})), 3).is_ok());
        assert!(index.admit(&obj(json!({"a": 1, "c": 2})), 3).is_ok());
        let err = index
            .admit(&obj(json!({"d": 1})), 3)
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("schema full: 1 new fields"), "{err}");
    }

    #[test]
    fn fields_unseen_for_the_ttl_go_stale() {
        let schema = Schema::new(vec![
            Field::new("old", DataType::Int64, true),
            Field::new("live", DataType::Int64, true),
        ]);
        let ttl = Duration::from_secs(100);
        let t0 = Instant::now();
        let mut seen = LastSeen::default();
        seen.saw("old", t0);
        seen.saw("live", t0);
        assert!(seen.stale(&schema, ttl, t0).is_empty());
        seen.saw("live", t0 + Duration::from_secs(90));
        let stale = seen.stale(&schema, ttl, t0 + Duration::from_secs(120));
        assert_eq!(stale, ["old"]);
    }
}

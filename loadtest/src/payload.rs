//! The payload template: per-device sequence number, send timestamp, and generated fields.
//!
//! `--field NAME=GEN`, GEN one of `walk:START:STEP` (a value drifting by up to ±STEP per
//! message), `uniform:LO:HI`, `const:VALUE`, `choice:A,B,C`. Default: temperature (walk),
//! humidity (uniform), status (choice).

pub use crate::encoding::Encoding;
use serde_json::{Map, Value};
use sluice_common::now_ms;

/// A `--field` generator spec that does not parse (the message shows the expected form).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct SpecError(pub String);

#[derive(Debug, Clone, PartialEq)]
pub enum Generator {
    Walk { start: f64, step: f64 },
    Uniform { lo: f64, hi: f64 },
    Const(Value),
    Choice(Vec<String>),
}

/// A cheap deterministic hash: the same (device, seq) always gives the same payload.
fn mix(a: u64, b: u64) -> u64 {
    let mut x = a.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ b.wrapping_add(0xD1B5_4A32_D192_ED03);
    x ^= x >> 29;
    x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x ^ (x >> 32)
}

fn unit(h: u64) -> f64 {
    (h % 10_000) as f64 / 10_000.0
}

impl Generator {
    pub fn parse(spec: &str) -> Result<Generator, SpecError> {
        let (kind, args) = spec.split_once(':').unwrap_or((spec, ""));
        let err = |form: &str| SpecError(format!("'{spec}': {form}"));
        let nums = || -> Result<Vec<f64>, SpecError> {
            args.split(':')
                .map(|a| {
                    a.parse::<f64>()
                        .map_err(|_| err(&format!("'{a}' is not a number")))
                })
                .collect()
        };
        Ok(match kind {
            "walk" => match nums()?.as_slice() {
                [start, step] => Generator::Walk {
                    start: *start,
                    step: *step,
                },
                _ => return Err(err("walk:START:STEP")),
            },
            "uniform" => match nums()?.as_slice() {
                [lo, hi] if lo <= hi => Generator::Uniform { lo: *lo, hi: *hi },
                _ => return Err(err("uniform:LO:HI with LO <= HI")),
            },
            "const" => Generator::Const(
                serde_json::from_str(args).unwrap_or_else(|_| Value::String(args.into())),
            ),
            "choice" if !args.is_empty() => {
                Generator::Choice(args.split(',').map(String::from).collect())
            }
            _ => return Err(err("walk, uniform, const or choice")),
        })
    }

    fn value(&self, salt: u64, device: usize, seq: u64) -> Value {
        let h = mix(salt ^ device as u64, seq);
        match self {
            // A bounded drift: the device's base plus a slow triangle wave of STEP-sized moves.
            Generator::Walk { start, step } => {
                let phase = (seq + device as u64 * 7) % 200;
                let wave = if phase < 100 { phase } else { 200 - phase } as f64;
                let v = start + step * (wave - 50.0) + step * (unit(h) - 0.5);
                Value::from((v * 100.0).round() / 100.0)
            }
            Generator::Uniform { lo, hi } => {
                Value::from(((lo + (hi - lo) * unit(h)) * 100.0).round() / 100.0)
            }
            Generator::Const(v) => v.clone(),
            Generator::Choice(options) => {
                Value::from(options[(h as usize) % options.len()].clone())
            }
        }
    }
}

#[derive(Debug, Clone)]
pub struct Template {
    /// `{device}` is replaced by the device name.
    pub topic: String,
    pub fields: Vec<(String, Generator)>,
    pub encoding: Encoding,
}

impl Template {
    pub fn new(topic: &str, specs: &[String]) -> Result<Template, SpecError> {
        Self::encoded(topic, specs, Encoding::Json)
    }

    /// A template whose readings travel in `encoding`.
    pub fn encoded(
        topic: &str,
        specs: &[String],
        encoding: Encoding,
    ) -> Result<Template, SpecError> {
        let mut fields = Vec::new();
        for spec in specs {
            let (name, generator) = spec
                .split_once('=')
                .ok_or_else(|| SpecError(format!("--field '{spec}': NAME=GEN")))?;
            fields.push((name.to_string(), Generator::parse(generator)?));
        }
        if specs.is_empty() {
            fields = vec![
                (
                    "temperature".into(),
                    Generator::Walk {
                        start: 40.0,
                        step: 0.4,
                    },
                ),
                ("humidity".into(), Generator::Uniform { lo: 20.0, hi: 80.0 }),
                (
                    "status".into(),
                    Generator::Choice(vec!["ok".into(), "ok".into(), "warn".into()]),
                ),
            ];
        }
        Ok(Template {
            topic: topic.to_string(),
            fields,
            encoding,
        })
    }

    /// (MQTT topic, payload) of message `seq` of `device`.
    pub fn render(&self, device: usize, seq: u64) -> (String, Vec<u8>) {
        let name = device_name(device);
        let reading = self.reading(&name, device, seq);
        let topic = self.encoding.topic(&self.topic, &name);
        (topic, self.encoding.encode(&reading, seq))
    }

    /// What `device` sends once before its first reading (a Sparkplug NBIRTH), if anything.
    pub fn birth(&self, device: usize) -> Option<(String, Vec<u8>)> {
        let name = device_name(device);
        self.encoding.birth(&name, &self.reading(&name, device, 0))
    }

    fn reading(&self, name: &str, device: usize, seq: u64) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("device".into(), Value::from(name));
        m.insert("seq".into(), Value::from(seq));
        m.insert("sent_ms".into(), Value::from(now_ms()));
        for (i, (field, generator)) in self.fields.iter().enumerate() {
            m.insert(field.clone(), generator.value(i as u64, device, seq));
        }
        m
    }
}

pub fn device_name(i: usize) -> String {
    format!("lt-{i:06}")
}

/// The index of a `lt-NNNNNN` device name.
pub fn device_index(name: &str) -> Option<usize> {
    name.strip_prefix("lt-")?.parse().ok()
}

/// One reading of the demo's, the tests' and the benchmarks' fleets as JSON: device, seq and
/// event time, drifting readings, a status string and a nested object (~200 bytes).
pub fn reading(device: &str, seq: u64, ts_ms: i64) -> String {
    let temperature = 20.0 + ((seq * 7 + device.len() as u64) % 80) as f64 + 0.5;
    format!(
        r#"{{"device":"{device}","seq":{seq},"ts":{ts_ms},"temperature":{temperature},"humidity":{h},"status":"{status}","battery":{{"level":{b},"charging":{c}}}}}"#,
        h = 30 + seq % 40,
        status = if seq % 50 == 0 { "warn" } else { "ok" },
        b = 100 - (seq % 100),
        c = seq % 7 == 0,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_carry_device_seq_time_and_generated_fields() {
        let t = Template::new(
            "devices/{device}/telemetry",
            &[
                "t=walk:20:0.5".into(),
                "s=choice:a,b".into(),
                "k=const:7".into(),
            ],
        )
        .unwrap();
        let (topic, payload) = t.render(42, 9);
        assert_eq!(topic, "devices/lt-000042/telemetry");
        let v: Value = serde_json::from_slice(&payload).unwrap();
        assert_eq!(
            (v["device"].as_str(), v["seq"].as_u64()),
            (Some("lt-000042"), Some(9))
        );
        assert!(v["sent_ms"].as_i64().unwrap() > 0);
        assert!((v["t"].as_f64().unwrap() - 20.0).abs() <= 26.0);
        assert!(matches!(v["s"].as_str(), Some("a" | "b")));
        assert_eq!(v["k"], 7);
        assert_eq!(device_index("lt-000042"), Some(42));
        assert!(Template::new("x", &["bad".into()]).is_err());
        assert!(Generator::parse("uniform:5:1").is_err());
    }
}

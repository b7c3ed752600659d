//! Does a payload fit the running schema as the fast path reads it? Answered in one streaming
//! pass over the bytes with serde_json, building nothing.
//!
//! Used when a batch holds odd messages (a value of another type, a new field, invalid JSON):
//! instead of sending the whole batch down the checked path, the decoder reads the messages
//! that fit on the fast path and only the others on the checked path ([`super::split`]).
//!
//! The answer only has to be *safe*, not exact: a message said not to fit takes the checked
//! path, which gives the same row for it (the property tests hold the paths to that); a
//! message said to fit that the fast path then refuses sends the batch to the checked path
//! whole. So where arrow-json's behaviour is subtle, this says "does not fit".

use super::schema::EXACT_IN_FLOAT;
use arrow::datatypes::{DataType, Fields};
use serde::de::{DeserializeSeed, Deserializer, Error, MapAccess, SeqAccess, Visitor};
use std::fmt;

/// Whether `payload` is exactly one JSON object whose every key is a field of `fields` and
/// every value is null or of its field's type (integers exact in a float where the field is
/// `Int64`).
pub fn fits(payload: &[u8], fields: &Fields) -> bool {
    let mut de = serde_json::Deserializer::from_slice(payload);
    let fits = Typed(Shape::Object(fields)).deserialize(&mut de).is_ok();
    fits && de.end().is_ok()
}

/// What a JSON value must look like.
#[derive(Clone, Copy)]
enum Shape<'a> {
    Object(&'a Fields),
    Of(&'a DataType),
}

/// A seed that checks one value against its shape; a mismatch is an error, which also stops
/// the parse at the first odd byte.
struct Typed<'a>(Shape<'a>);

impl<'de> DeserializeSeed<'de> for Typed<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<(), D::Error> {
        de.deserialize_any(self)
    }
}

impl Typed<'_> {
    fn data_type(&self) -> Option<&DataType> {
        match self.0 {
            Shape::Of(dt) => Some(dt),
            Shape::Object(_) => None,
        }
    }

    fn number<E: Error>(&self, exact: impl FnOnce() -> bool) -> Result<(), E> {
        match self.data_type() {
            Some(DataType::Float64) => Ok(()),
            Some(DataType::Int64) if exact() => Ok(()),
            _ => Err(E::custom("odd")),
        }
    }

    fn is<E: Error>(&self, want: &DataType) -> Result<(), E> {
        match self.data_type() {
            Some(dt) if dt == want => Ok(()),
            _ => Err(E::custom("odd")),
        }
    }
}

impl<'de> Visitor<'de> for Typed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a value of the schema's type")
    }

    fn visit_unit<E: Error>(self) -> Result<(), E> {
        match self.0 {
            Shape::Object(_) => Err(E::custom("odd")),
            Shape::Of(_) => Ok(()),
        }
    }

    fn visit_bool<E: Error>(self, _: bool) -> Result<(), E> {
        self.is(&DataType::Boolean)
    }

    fn visit_i64<E: Error>(self, v: i64) -> Result<(), E> {
        self.number(|| v.unsigned_abs() < EXACT_IN_FLOAT as u64)
    }

    fn visit_u64<E: Error>(self, v: u64) -> Result<(), E> {
        self.number(|| v < EXACT_IN_FLOAT as u64)
    }

    fn visit_f64<E: Error>(self, v: f64) -> Result<(), E> {
        if !v.is_finite() {
            return Err(E::custom("odd"));
        }
        self.number(|| v.fract() == 0.0 && v.abs() < EXACT_IN_FLOAT)
    }

    fn visit_str<E: Error>(self, _: &str) -> Result<(), E> {
        self.is(&DataType::Utf8)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let Some(DataType::List(item)) = self.data_type() else {
            return Err(A::Error::custom("odd"));
        };
        while seq
            .next_element_seed(Typed(Shape::Of(item.data_type())))?
            .is_some()
        {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let fields = match self.0 {
            Shape::Object(fields) => fields,
            Shape::Of(DataType::Struct(fields)) => fields,
            Shape::Of(_) => return Err(A::Error::custom("odd")),
        };
        while let Some(key) = map.next_key::<Key>()? {
            // Strict mode: a key the schema lacks is a new field (the checked path admits it).
            let Some((_, field)) = fields.find(&key.0) else {
                return Err(A::Error::custom("odd"));
            };
            map.next_value_seed(Typed(Shape::Of(field.data_type())))?;
        }
        Ok(())
    }
}

/// An object key, borrowed from the payload unless it holds escapes.
struct Key<'de>(std::borrow::Cow<'de, str>);

impl<'de> serde::Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a key")
            }
            fn visit_borrowed_str<E: Error>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(v.into()))
            }
            fn visit_str<E: Error>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(v.to_string().into()))
            }
        }
        de.deserialize_str(KeyVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::Field;
    use std::sync::Arc;

    fn schema() -> Fields {
        let loc = Fields::from(vec![Field::new("lat", DataType::Float64, true)]);
        let tags = Field::new("item", DataType::Utf8, true);
        Fields::from(vec![
            Field::new("t", DataType::Float64, true),
            Field::new("seq", DataType::Int64, true),
            Field::new("s", DataType::Utf8, true),
            Field::new("ok", DataType::Boolean, true),
            Field::new("loc", DataType::Struct(loc), true),
            Field::new("tags", DataType::List(Arc::new(tags)), true),
        ])
    }

    #[test]
    fn messages_of_the_schema_fit() {
        let f = schema();
        for p in [
            r#"{"t": 21.5, "seq": 7, "s": "ok", "ok": true}"#,
            r#" {"t": 21, "seq": 3.0, "loc": {"lat": 1.5}, "tags": ["a", null]} "#,
            r#"{"t": null, "loc": null, "tags": []}"#,
            r#"{}"#,
            r#"{"s": "esc\"aped", "t\u0000": 1}"#,
        ] {
            let expected = !p.contains("\\u0000");
            assert_eq!(fits(p.as_bytes(), &f), expected, "{p}");
        }
    }

    #[test]
    fn odd_messages_do_not_fit() {
        let f = schema();
        for p in [
            r#"{"t": "hot"}"#,
            r#"{"seq": 2.5}"#,
            r#"{"seq": 9007199254740993}"#,
            r#"{"s": 1}"#,
            r#"{"ok": 1}"#,
            r#"{"new": 1}"#,
            r#"{"loc": {"lat": 1, "lon": 2}}"#,
            r#"{"loc": 1}"#,
            r#"{"tags": [1]}"#,
            r#"{"t": 1}{"t": 2}"#,
            r#"{"t": 1"#,
            r#"[1, 2]"#,
            r#"null"#,
            r#"{"t": 1e999}"#,
            "\u{feff}{}",
        ] {
            assert!(!fits(p.as_bytes(), &f), "{p}");
        }
        assert!(!fits(b"\xff{}", &f));
    }
}

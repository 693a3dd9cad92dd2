//! JSON objects rewritten without building a tree of the parts the proxy never touches:
//! the top-level fields are kept as raw JSON text (a prompt's messages and an embedding's
//! floats stay byte for byte what the client or OpenAI sent), and only the fields the
//! proxy reads or sets are looked at: `model`, `stream` and `messages` of a request,
//! `model` and `usage` of an answer (and of a Responses API event's `response` object).

use std::borrow::Cow;
use std::collections::HashMap;
use std::collections::hash_map::Entry;

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::Value;
use serde_json::value::RawValue;

use crate::observe::Usage;

/// Up to this many fields, a key given twice is found by comparing it with each key kept
/// (no hashing: requests and answers have a dozen fields); past it, through an index.
const SCAN_LIMIT: usize = 32;

/// A JSON object's top-level fields, in their order, values as raw JSON text. A key
/// given twice keeps its first place and its last value, as JSON parsers that keep the
/// last value (OpenAI's among them) read it: the proxy checks the value OpenAI will use.
#[derive(Debug)]
pub struct Fields<'a> {
    fields: Vec<(Cow<'a, str>, &'a RawValue)>,
}

impl<'a> Fields<'a> {
    /// Fails when `text` is not JSON, or not an object (a `Data` error).
    pub fn parse(text: &'a str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }

    pub fn get(&self, key: &str) -> Option<&'a RawValue> {
        self.fields.iter().find(|(k, _)| k == key).map(|(_, v)| *v)
    }

    /// The field's raw JSON text, trimmed: `null`, `[]`, `{...}`.
    pub fn raw(&self, key: &str) -> Option<&'a str> {
        self.get(key).map(|v| v.get().trim())
    }

    pub fn remove(&mut self, key: &str) {
        self.fields.retain(|(k, _)| k != key);
    }

    /// The token usage, from `usage` or a Responses API event's `response.usage`.
    pub fn usage(&self) -> Option<Usage> {
        let own = self
            .raw("usage")
            .filter(|u| u.starts_with('{'))
            .and_then(|u| serde_json::from_str(u).ok());
        own.or_else(|| {
            let response = self.raw("response").filter(|r| r.starts_with('{'))?;
            Fields::parse(response).ok()?.usage()
        })
    }

    /// The object again, each field named in `set` given that raw JSON value instead
    /// (and added at the end when it was absent).
    pub fn write_with(&self, set: &[(&str, &str)], out: &mut String) {
        out.push('{');
        for (i, (key, value)) in self.fields.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            write_key(key, out);
            match set.iter().find(|(k, _)| k == key) {
                Some((_, raw)) => out.push_str(raw),
                None => out.push_str(value.get()),
            }
        }
        for (key, raw) in set.iter().filter(|(k, _)| self.get(k).is_none()) {
            if out.len() > 1 {
                out.push(',');
            }
            write_key(key, out);
            out.push_str(raw);
        }
        out.push('}');
    }

    /// The object again, with `model` (at the top and in a `response` object) set to
    /// `model`.
    pub fn write_with_model(&self, model: &str, out: &mut String) {
        out.push('{');
        for (i, (key, value)) in self.fields.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            write_key(key, out);
            let raw = value.get();
            match key.as_ref() {
                "model" if raw.trim_start().starts_with('"') => write_string(model, out),
                "response" => match Fields::parse(raw) {
                    Ok(inner) => inner.write_with_model(model, out),
                    Err(_) => out.push_str(raw),
                },
                _ => out.push_str(raw),
            }
        }
        out.push('}');
    }
}

/// `text` as a JSON string.
pub fn json_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    write_string(text, &mut out);
    out
}

fn write_string(text: &str, out: &mut String) {
    if text.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push('"');
        out.push_str(text);
        out.push('"');
    } else {
        out.push_str(&Value::from(text).to_string());
    }
}

fn write_key(key: &str, out: &mut String) {
    write_string(key, out);
    out.push(':');
}

/// A key borrowed from the text when it has no escapes (the common case: no copy).
struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Fields<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct FieldsVisitor<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for FieldsVisitor<'a> {
            type Value = Fields<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Fields<'a>, M::Error> {
                let mut fields: Vec<(Cow<'a, str>, &'a RawValue)> =
                    Vec::with_capacity(map.size_hint().unwrap_or(8));
                // Where each key stands, once there are too many to compare one by one:
                // a client's 150,000 keys cost 150,000 lookups, not 10^10 comparisons.
                let mut index: Option<HashMap<Cow<'a, str>, usize>> = None;
                while let Some((Key(key), value)) = map.next_entry::<Key<'de>, &'de RawValue>()? {
                    if fields.len() < SCAN_LIMIT {
                        match fields.iter_mut().find(|(k, _)| *k == key) {
                            Some(field) => field.1 = value,
                            None => fields.push((key, value)),
                        }
                        continue;
                    }
                    let index = index.get_or_insert_with(|| {
                        fields
                            .iter()
                            .enumerate()
                            .map(|(at, (k, _))| (k.clone(), at))
                            .collect()
                    });
                    match index.entry(key) {
                        Entry::Occupied(at) => fields[*at.get()].1 = value,
                        Entry::Vacant(slot) => {
                            fields.push((slot.key().clone(), value));
                            slot.insert(fields.len() - 1);
                        }
                    }
                }
                Ok(Fields { fields })
            }
        }
        deserializer.deserialize_map(FieldsVisitor(std::marker::PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewritten(text: &str) -> String {
        let mut out = String::new();
        Fields::parse(text)
            .unwrap()
            .write_with_model("client-model", &mut out);
        out
    }

    #[test]
    fn only_model_changes_and_everything_else_keeps_its_bytes() {
        let text = r#"{"object":"list","data":[{"embedding":[0.1000000000000000055511151231257827,-2.5e-7],"index":0}],"model":"text-embedding-3-small","usage":{"prompt_tokens":2,"total_tokens":2}}"#;
        assert_eq!(
            rewritten(text),
            text.replace("text-embedding-3-small", "client-model")
        );
    }

    #[test]
    fn a_responses_events_nested_model_and_usage_are_found() {
        let text = r#"{"type":"response.completed","response":{"id":"r1","model":"gpt-4o-mini","usage":{"input_tokens":3,"output_tokens":4,"total_tokens":7}}}"#;
        let fields = Fields::parse(text).unwrap();
        assert_eq!(fields.usage().unwrap().total_tokens, Some(7));
        assert_eq!(rewritten(text), text.replace("gpt-4o-mini", "client-model"));
    }

    #[test]
    fn duplicate_keys_keep_their_first_place_and_last_value_past_the_scan_limit() {
        let keys: Vec<String> = (0..SCAN_LIMIT * 3).map(|i| format!("\"k{i}\":{i}")).collect();
        let text = format!("{{{},\"k1\":\"again\",\"k80\":\"again\"}}", keys.join(","));
        let fields = Fields::parse(&text).unwrap();
        assert_eq!(fields.fields.len(), SCAN_LIMIT * 3);
        assert_eq!(fields.raw("k1"), Some("\"again\""));
        assert_eq!(fields.raw("k80"), Some("\"again\""));
        assert_eq!(fields.fields[80].0, "k80");
    }

    #[test]
    fn escaped_keys_survive_and_non_objects_are_refused() {
        assert_eq!(
            rewritten(r#"{"a\"b":1,"model":"m"}"#),
            r#"{"a\"b":1,"model":"client-model"}"#
        );
        assert!(Fields::parse("[1,2]").is_err());
        assert!(Fields::parse("not json").is_err());
    }
}

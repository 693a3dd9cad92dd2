//! Puts the client's model id into an upstream JSON answer without building a tree of
//! the parts the proxy never touches: the top-level fields are kept as raw JSON text
//! (an embedding's floats stay byte for byte what OpenAI sent), and only `model`, the
//! `model` of a Responses API event's `response` object, and `usage` are looked at.

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::Value;
use serde_json::value::RawValue;

/// A JSON object's top-level fields, in their order, values as raw JSON text.
pub struct Fields<'a> {
    fields: Vec<(String, &'a RawValue)>,
}

impl<'a> Fields<'a> {
    /// `None` when `text` is not a JSON object.
    pub fn parse(text: &'a str) -> Option<Self> {
        serde_json::from_str(text).ok()
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
    pub fn usage(&self) -> Option<Value> {
        let own = self
            .raw("usage")
            .filter(|u| u.starts_with('{'))
            .and_then(|u| serde_json::from_str(u).ok());
        own.or_else(|| {
            let response = self.raw("response").filter(|r| r.starts_with('{'))?;
            Fields::parse(response)?.usage()
        })
    }

    /// The object again, with `model` (at the top and in a `response` object) set to
    /// `model`.
    pub fn write_with_model(&self, model: &str, out: &mut String) {
        out.push('{');
        for (i, (key, value)) in self.fields.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(&Value::String(key.clone()).to_string());
            out.push(':');
            let raw = value.get();
            match key.as_str() {
                "model" if raw.trim_start().starts_with('"') => {
                    out.push_str(&Value::String(model.to_owned()).to_string());
                }
                "response" => match Fields::parse(raw) {
                    Some(inner) => inner.write_with_model(model, out),
                    None => out.push_str(raw),
                },
                _ => out.push_str(raw),
            }
        }
        out.push('}');
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
                let mut fields = Vec::with_capacity(map.size_hint().unwrap_or(8));
                while let Some((key, value)) = map.next_entry::<String, &'de RawValue>()? {
                    fields.push((key, value));
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
        assert_eq!(fields.usage().unwrap()["total_tokens"], 7);
        assert_eq!(rewritten(text), text.replace("gpt-4o-mini", "client-model"));
    }

    #[test]
    fn escaped_keys_survive_and_non_objects_are_refused() {
        assert_eq!(
            rewritten(r#"{"a\"b":1,"model":"m"}"#),
            r#"{"a\"b":1,"model":"client-model"}"#
        );
        assert!(Fields::parse("[1,2]").is_none());
        assert!(Fields::parse("not json").is_none());
    }
}

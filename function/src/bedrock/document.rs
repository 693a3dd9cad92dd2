//! JSON values ⇄ Smithy documents: tool schemas and tool inputs cross as documents.

use aws_smithy_types::{Document, Number};
use serde_json::Value;

pub fn from_json(value: &Value) -> Document {
    match value {
        Value::Null => Document::Null,
        Value::Bool(b) => Document::Bool(*b),
        Value::Number(n) => Document::Number(if let Some(u) = n.as_u64() {
            Number::PosInt(u)
        } else if let Some(i) = n.as_i64() {
            Number::NegInt(i)
        } else {
            Number::Float(n.as_f64().unwrap_or_default())
        }),
        Value::String(s) => Document::String(s.clone()),
        Value::Array(items) => Document::Array(items.iter().map(from_json).collect()),
        Value::Object(map) => Document::Object(map.iter().map(|(k, v)| (k.clone(), from_json(v))).collect()),
    }
}

pub fn to_json(document: &Document) -> Value {
    match document {
        Document::Null => Value::Null,
        Document::Bool(b) => Value::Bool(*b),
        Document::Number(Number::PosInt(u)) => Value::from(*u),
        Document::Number(Number::NegInt(i)) => Value::from(*i),
        Document::Number(Number::Float(f)) => {
            serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number)
        }
        Document::String(s) => Value::String(s.clone()),
        Document::Array(items) => Value::Array(items.iter().map(to_json).collect()),
        Document::Object(map) => {
            // Sorted keys: the same input always serialises the same way.
            let sorted: std::collections::BTreeMap<&String, &Document> = map.iter().collect();
            Value::Object(sorted.into_iter().map(|(k, v)| (k.clone(), to_json(v))).collect())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_crosses_as_a_document_and_back_with_integers_kept_integers() {
        let value = serde_json::json!({
            "type": "object", "required": ["city"], "n": 3, "neg": -2, "f": 0.5, "ok": true, "none": null,
            "properties": {"city": {"type": "string"}},
        });
        let document = from_json(&value);
        assert!(
            matches!(&document, Document::Object(m) if matches!(m["n"], Document::Number(Number::PosInt(3))))
        );
        assert_eq!(to_json(&document), value);
    }
}

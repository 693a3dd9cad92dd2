//! YAML (or JSON) to JSON, turning CloudFormation's short-form tags into the long form
//! CloudFormation reads in JSON: `!Ref X` → `{"Ref": "X"}`, `!GetAtt A.B` →
//! `{"Fn::GetAtt": ["A", "B"]}`, `!Condition C` → `{"Condition": "C"}`, any other
//! `!Name v` → `{"Fn::Name": v}`.

use serde_json::{Map, Value};
use serde_norway::Value as Yaml;

pub fn to_json(text: &str) -> Result<Value, String> {
    let yaml: Yaml = serde_norway::from_str(text).map_err(|e| e.to_string())?;
    convert(yaml)
}

fn convert(yaml: Yaml) -> Result<Value, String> {
    Ok(match yaml {
        Yaml::Null => Value::Null,
        Yaml::Bool(b) => Value::Bool(b),
        Yaml::Number(n) => serde_json::to_value(&n).map_err(|e| e.to_string())?,
        Yaml::String(s) => Value::String(s),
        Yaml::Sequence(items) => Value::Array(items.into_iter().map(convert).collect::<Result<_, _>>()?),
        Yaml::Mapping(map) => {
            let mut out = Map::new();
            for (key, value) in map {
                let key = match key {
                    Yaml::String(s) => s,
                    Yaml::Bool(b) => b.to_string(),
                    Yaml::Number(n) => n.to_string(),
                    other => return Err(format!("a mapping key is not a string: {other:?}")),
                };
                out.insert(key, convert(value)?);
            }
            Value::Object(out)
        }
        Yaml::Tagged(tagged) => {
            let tag = tagged.tag.to_string();
            let name = tag.trim_start_matches('!');
            let value = convert(tagged.value)?;
            let (key, value) = match (name, value) {
                ("Ref", v) => ("Ref".to_owned(), v),
                ("Condition", v) => ("Condition".to_owned(), v),
                ("GetAtt", Value::String(s)) => {
                    let (resource, attribute) = s
                        .split_once('.')
                        .ok_or_else(|| format!("!GetAtt {s} needs the form Resource.Attribute"))?;
                    ("Fn::GetAtt".to_owned(), serde_json::json!([resource, attribute]))
                }
                (other, v) => (format!("Fn::{other}"), v),
            };
            Value::Object(Map::from_iter([(key, value)]))
        }
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn short_form_tags_become_cloudformations_long_form() {
        let doc = to_json(
            "A: !Ref X\nB: !GetAtt Fn.Arn\nC: !Sub \"${X}-y\"\nD: !If [Cond, !Ref Y, !Ref AWS::NoValue]\nE: !Equals [!Condition C, true]\nF: !Join ['', [a, !Ref Z]]\nG: 512\n",
        )
        .unwrap();
        assert_eq!(
            doc,
            json!({
                "A": {"Ref": "X"},
                "B": {"Fn::GetAtt": ["Fn", "Arn"]},
                "C": {"Fn::Sub": "${X}-y"},
                "D": {"Fn::If": ["Cond", {"Ref": "Y"}, {"Ref": "AWS::NoValue"}]},
                "E": {"Fn::Equals": [{"Condition": "C"}, true]},
                "F": {"Fn::Join": ["", ["a", {"Ref": "Z"}]]},
                "G": 512
            })
        );
    }

    #[test]
    fn json_templates_pass_unchanged() {
        let doc =
            to_json(r#"{"Resources": {"A": {"Type": "T", "Properties": {"N": {"Ref": "P"}}}}}"#).unwrap();
        assert_eq!(doc["Resources"]["A"]["Properties"]["N"], json!({"Ref": "P"}));
    }
}

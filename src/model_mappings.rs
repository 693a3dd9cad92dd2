//! `MODEL_MAPPINGS`, the deployer's one home of its grammar: a JSON object of client
//! model id -> an OpenAI model id (`"gpt-4o-mini"`), or an object naming the providers
//! that serve it: `{"openai": "gpt-4o-mini", "bedrock": "amazon.nova-lite-v1:0",
//! "primary": "openai"}` (`bedrock` a Bedrock model id, inference profile or ARN;
//! `primary` optional). The function's configuration parser reads the same forms
//! (tests/secret_contract.rs holds the two together).
//!
//! The deployer checks the mappings when it reads its configuration, writes them into
//! the secret as given, and grants the function Bedrock on exactly the models they name
//! (the template's `BedrockModelArns`).

use std::collections::BTreeSet;

use serde_json::{Map, Value};

/// The template parameter that lists the Bedrock resources the function may invoke.
pub const BEDROCK_PARAMETER: &str = "BedrockModelArns";

const EXAMPLE: &str = "e.g. {\"amazon.nova-lite-v1:0\":\"gpt-4o-mini\"} or {\"amazon.nova-lite-v1:0\":{\"openai\":\"gpt-4o-mini\",\"bedrock\":\"amazon.nova-lite-v1:0\"}}";

/// What is wrong with the mappings, one line each, naming the model id and the fix.
pub fn problems(mappings: &Map<String, Value>) -> Vec<String> {
    if mappings.is_empty() {
        return vec![format!(
            "MODEL_MAPPINGS is empty: map at least one client model id, {EXAMPLE}"
        )];
    }
    mappings
        .iter()
        .filter_map(|(id, value)| problem(id, value))
        .collect()
}

fn problem(id: &str, value: &Value) -> Option<String> {
    let at = format!("MODEL_MAPPINGS[{id:?}]");
    if id.trim().is_empty() {
        return Some(format!("{at}: the client model id is empty, {EXAMPLE}"));
    }
    let object = match value {
        Value::String(model) if !model.trim().is_empty() => return None,
        Value::Object(object) => object,
        _ => {
            return Some(format!(
                "MODEL_MAPPINGS[{id:?}] must be a non-empty OpenAI model id or an object of `openai`, `bedrock` and `primary`, {EXAMPLE}"
            ));
        }
    };
    if let Some(unknown) = object
        .keys()
        .find(|k| !["openai", "bedrock", "primary"].contains(&k.as_str()))
    {
        return Some(format!(
            "{at}.{unknown} is not a mapping field: use `openai`, `bedrock` and `primary`"
        ));
    }
    let named = |provider: &str| {
        object
            .get(provider)
            .and_then(Value::as_str)
            .is_some_and(|m| !m.trim().is_empty())
    };
    for provider in ["openai", "bedrock"] {
        if object.get(provider).is_some_and(|v| !v.is_null()) && !named(provider) {
            return Some(format!("{at}.{provider} must be a non-empty model id"));
        }
    }
    if let Some(model) = object.get("bedrock").and_then(Value::as_str)
        && !grantable(model.trim())
    {
        return Some(format!(
            "MODEL_MAPPINGS[{id:?}].bedrock must be a Bedrock model id (such as amazon.nova-lite-v1:0), a cross-region profile (us.amazon.nova-lite-v1:0), or the ARN of a foundation model, inference profile or application inference profile: the function is granted those only (the template's BedrockModelArns)"
        ));
    }
    if named("openai")
        && object
            .get("bedrock")
            .and_then(Value::as_str)
            .is_some_and(|m| m.contains("titan-embed-text"))
    {
        return Some(format!(
            "MODEL_MAPPINGS[{id:?}] maps embeddings to both OpenAI and Amazon Titan: vectors of two models cannot be compared, so a failover would mix them in a vector index; map it to one provider"
        ));
    }
    if !named("openai") && !named("bedrock") {
        return Some(format!(
            "{at} names no provider: give `openai`, `bedrock` or both, {EXAMPLE}"
        ));
    }
    match object.get("primary") {
        None | Some(Value::Null) => None,
        Some(Value::String(p)) if (p == "openai" || p == "bedrock") && named(p) => None,
        Some(Value::String(p)) if p == "openai" || p == "bedrock" => Some(format!(
            "{at}.primary is {p:?} but the mapping gives no `{p}` model id: add it, or leave `primary` out"
        )),
        Some(_) => Some(format!("{at}.primary must be \"openai\" or \"bedrock\"")),
    }
}

/// Whether `model` is one the template can grant (`BedrockModelArns`' AllowedPattern): an
/// id or profile id, or an ARN of a foundation model or an inference profile.
fn grantable(model: &str) -> bool {
    let id_chars = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".:_-".contains(&b))
    };
    let Some(arn) = model.strip_prefix("arn:") else {
        return id_chars(model);
    };
    let parts: Vec<&str> = arn.splitn(5, ':').collect();
    let [partition, "bedrock", _region, account, resource] = parts.as_slice() else {
        return false;
    };
    let Some((kind, id)) = resource.split_once('/') else {
        return false;
    };
    partition.starts_with("aws")
        && account.bytes().all(|b| b.is_ascii_digit())
        && [
            "foundation-model",
            "inference-profile",
            "application-inference-profile",
        ]
        .contains(&kind)
        && id_chars(&id.replace('*', ""))
}

/// The Bedrock model ids, inference profiles and ARNs the mappings name.
pub fn bedrock_models(mappings: &Map<String, Value>) -> BTreeSet<String> {
    mappings
        .values()
        .filter_map(|v| v.get("bedrock")?.as_str())
        .map(|m| m.trim().to_owned())
        .filter(|m| !m.is_empty())
        .collect()
}

/// The geographic prefixes of Bedrock's cross-region inference profiles.
const PROFILE_PREFIXES: &[&str] = &["us.", "eu.", "apac.", "us-gov.", "jp.", "au.", "ca.", "global."];

/// The foundation model `model` names or routes to, which AWS charges it at: the id in a
/// foundation-model or system inference-profile ARN, without a cross-region prefix. An
/// application inference profile's ARN names no model and is returned whole. (The
/// function prices the same way: `function/src/config/spend.rs`, `price_of`.)
pub fn priced_as(model: &str) -> &str {
    let id = match model.strip_prefix("arn:") {
        Some(arn) => [":foundation-model/", ":inference-profile/"]
            .iter()
            .find_map(|kind| Some(&arn[arn.find(kind)? + kind.len()..]))
            .unwrap_or(model),
        None => model,
    };
    PROFILE_PREFIXES
        .iter()
        .find_map(|p| id.strip_prefix(p))
        .unwrap_or(id)
}

/// The resources `bedrock:InvokeModel` and `bedrock:InvokeModelWithResponseStream` must
/// name for `models` to be invoked from `region` of `account`, as the Bedrock user guide
/// has it: a foundation model's ARN (no account); for a cross-region inference profile,
/// by id or ARN, the profile's ARN and the foundation model in every region the profile
/// may route to (hence the `*` region); any other ARN as given.
pub fn bedrock_arns(models: &BTreeSet<String>, partition: &str, region: &str, account: &str) -> Vec<String> {
    let mut arns = BTreeSet::new();
    for model in models {
        if model.starts_with("arn:") {
            arns.insert(model.clone());
            // A system cross-region profile's ARN routes to its model in other regions
            // too; an application profile's models are not in its ARN (see docs/api.md).
            if model.contains(":inference-profile/") {
                arns.insert(format!(
                    "arn:{partition}:bedrock:*::foundation-model/{}",
                    priced_as(model)
                ));
            }
        } else if let Some(base) = PROFILE_PREFIXES.iter().find_map(|p| model.strip_prefix(p)) {
            arns.insert(format!(
                "arn:{partition}:bedrock:{region}:{account}:inference-profile/{model}"
            ));
            arns.insert(format!("arn:{partition}:bedrock:*::foundation-model/{base}"));
        } else {
            arns.insert(format!(
                "arn:{partition}:bedrock:{region}::foundation-model/{model}"
            ));
        }
    }
    arns.into_iter().collect()
}

/// The partition of a region (`aws`, `aws-cn`, `aws-us-gov`).
pub fn partition(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else {
        "aws"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(json: &str) -> Map<String, Value> {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn both_forms_pass_and_each_mistake_is_named_with_its_fix() {
        assert!(problems(&map(
            r#"{"a":"gpt-4o-mini","b":{"openai":"gpt-4o","bedrock":"us.amazon.nova-pro-v1:0","primary":"bedrock"},"c":{"bedrock":"amazon.nova-lite-v1:0"},
                "d":{"bedrock":"arn:aws:bedrock:us-east-1::foundation-model/amazon.nova-lite-v1:0"},
                "e":{"bedrock":"arn:aws-us-gov:bedrock:us-gov-west-1:123456789012:inference-profile/us-gov.amazon.nova-lite-v1:0"},
                "f":{"bedrock":"arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/a1b2c3"}}"#
        ))
        .is_empty());
        for (json, expected) in [
            (r#"{}"#, "MODEL_MAPPINGS is empty"),
            (
                r#"{"a":""}"#,
                "MODEL_MAPPINGS[\"a\"] must be a non-empty OpenAI model id or an object",
            ),
            (r#"{"a":{}}"#, "MODEL_MAPPINGS[\"a\"] names no provider"),
            (
                r#"{"a":{"openai":" "}}"#,
                "MODEL_MAPPINGS[\"a\"].openai must be a non-empty model id",
            ),
            (
                r#"{"a":{"bedrock":1}}"#,
                "MODEL_MAPPINGS[\"a\"].bedrock must be a non-empty model id",
            ),
            (
                r#"{"a":{"openai":"x","fallback":"y"}}"#,
                "MODEL_MAPPINGS[\"a\"].fallback is not a mapping field",
            ),
            (
                r#"{"a":{"openai":"x","primary":"bedrock"}}"#,
                "MODEL_MAPPINGS[\"a\"].primary is \"bedrock\" but the mapping gives no `bedrock` model id",
            ),
            (
                r#"{"a":{"openai":"x","primary":"azure"}}"#,
                "MODEL_MAPPINGS[\"a\"].primary must be",
            ),
            // What the template's BedrockModelArns would refuse after the secret was
            // written: refused before.
            (
                r#"{"a":{"bedrock":"arn:aws:bedrock:us-east-1:123456789012:provisioned-model/x1"}}"#,
                "MODEL_MAPPINGS[\"a\"].bedrock must be a Bedrock model id",
            ),
            (
                r#"{"a":{"bedrock":"amazon nova"}}"#,
                "MODEL_MAPPINGS[\"a\"].bedrock must be a Bedrock model id",
            ),
            (
                r#"{"e":{"openai":"text-embedding-3-small","bedrock":"amazon.titan-embed-text-v2:0"}}"#,
                "MODEL_MAPPINGS[\"e\"] maps embeddings to both OpenAI and Amazon Titan",
            ),
        ] {
            let found = problems(&map(json));
            assert_eq!(found.len(), 1, "{json}: {found:?}");
            assert!(found[0].starts_with(expected), "{json}: {}", found[0]);
        }
    }

    #[test]
    fn bedrock_is_granted_on_the_named_models_only_and_a_profile_on_every_region_it_routes_to() {
        let models = bedrock_models(&map(
            r#"{"a":"gpt-4o-mini","b":{"openai":"gpt-4o","bedrock":"us.amazon.nova-pro-v1:0"},"c":{"bedrock":"amazon.nova-lite-v1:0"},"d":{"bedrock":"arn:aws:bedrock:us-east-1:1:application-inference-profile/x"},"e":{"bedrock":"arn:aws:bedrock:us-east-1:1:inference-profile/eu.amazon.nova-micro-v1:0"}}"#,
        ));
        assert_eq!(
            bedrock_arns(&models, partition("us-east-1"), "us-east-1", "123456789012"),
            [
                "arn:aws:bedrock:*::foundation-model/amazon.nova-micro-v1:0",
                "arn:aws:bedrock:*::foundation-model/amazon.nova-pro-v1:0",
                "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.amazon.nova-pro-v1:0",
                "arn:aws:bedrock:us-east-1:1:application-inference-profile/x",
                "arn:aws:bedrock:us-east-1:1:inference-profile/eu.amazon.nova-micro-v1:0",
                "arn:aws:bedrock:us-east-1::foundation-model/amazon.nova-lite-v1:0",
            ]
        );
        assert!(bedrock_models(&map(r#"{"a":"gpt-4o-mini"}"#)).is_empty());
        // Priced as the model they name, but an application profile's ARN names none.
        let app = "arn:aws:bedrock:us-east-1:1:application-inference-profile/x";
        assert_eq!(priced_as(app), app);
        assert_eq!(
            priced_as("arn:aws:bedrock:us-east-1:1:inference-profile/eu.amazon.nova-micro-v1:0"),
            "amazon.nova-micro-v1:0"
        );
        assert_eq!(partition("cn-north-1"), "aws-cn");
    }
}

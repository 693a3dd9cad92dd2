//! `model_mappings`: which upstream serves each client model id.
//!
//! A value is either an OpenAI model id (`"gpt-4o-mini"`), or an object naming one or
//! both providers: `{"openai": "gpt-4o-mini", "bedrock": "amazon.nova-lite-v1:0"}`, where
//! `bedrock` is a Bedrock model id or inference profile (`us.amazon.nova-lite-v1:0`).
//! With both, the `primary` (`"openai"` unless it says `"bedrock"`) serves and the other
//! takes over when the primary fails for reasons that are not the client's.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::{InvalidConfig, field};

/// Who answers a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Provider {
    OpenAi,
    Bedrock,
}

impl Provider {
    /// As the secret, the logs, the metrics' `Provider` dimension and the
    /// `x-proxy-provider` header name it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OpenAi => "openai",
            Self::Bedrock => "bedrock",
        }
    }
}

/// Where one client model id is served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelRoute {
    /// The OpenAI model id, when OpenAI serves it.
    pub openai: Option<String>,
    /// The Bedrock model id or inference profile, when Bedrock serves it.
    pub bedrock: Option<String>,
    /// Tried first; the other provider, when named, is the fallback.
    pub primary: Provider,
}

impl ModelRoute {
    /// A model served by OpenAI alone (the string form).
    pub fn openai(model: impl Into<String>) -> Self {
        Self {
            openai: Some(model.into()),
            bedrock: None,
            primary: Provider::OpenAi,
        }
    }

    /// The upstream model id `provider` serves this model as.
    pub fn upstream(&self, provider: Provider) -> Option<&str> {
        match provider {
            Provider::OpenAi => self.openai.as_deref(),
            Provider::Bedrock => self.bedrock.as_deref(),
        }
    }

    /// The primary provider and its model id.
    pub fn first(&self) -> (Provider, &str) {
        let model = self.upstream(self.primary).unwrap_or_default();
        (self.primary, model)
    }

    /// The fallback provider and its model id, when the mapping names one.
    pub fn fallback(&self) -> Option<(Provider, &str)> {
        let other = match self.primary {
            Provider::OpenAi => Provider::Bedrock,
            Provider::Bedrock => Provider::OpenAi,
        };
        self.upstream(other).map(|model| (other, model))
    }

    /// Every upstream model id of this route (for prices and permissions).
    pub fn upstreams(&self) -> impl Iterator<Item = &str> {
        self.openai.as_deref().into_iter().chain(self.bedrock.as_deref())
    }
}

pub type ModelMappings = BTreeMap<String, ModelRoute>;

/// Failover between two embedding models is not the same model: their vectors cannot be
/// compared, and a vector index fed by both would be silently wrong.
const EMBEDDINGS_OF_TWO_MODELS: &str = "maps embeddings to both OpenAI and Amazon Titan: vectors of two models cannot be compared, so a failover would mix them in a vector index; map it to one provider";

const VALUE_PROBLEM: &str = "must be an OpenAI model id, or {\"openai\": \"<OpenAI model id>\", \"bedrock\": \"<Bedrock model id or inference profile>\", \"primary\": \"openai\" | \"bedrock\"}";

pub(super) fn parse(map: &Map<String, Value>) -> Result<ModelMappings, InvalidConfig> {
    if map.is_empty() {
        return Err(field("model_mappings", "is empty: map at least one model id"));
    }
    map.iter()
        .map(|(client, value)| {
            let at = |suffix: &str| format!("model_mappings.{client}{suffix}");
            if client.trim().is_empty() {
                return Err(field(at(""), "is an empty model id"));
            }
            let route = match value {
                Value::String(model) => ModelRoute::openai(model_id(model, || at(""))?),
                Value::Object(object) => route(object, &at)?,
                _ => return Err(field(at(""), VALUE_PROBLEM)),
            };
            Ok((client.clone(), route))
        })
        .collect()
}

fn model_id(raw: &str, at: impl Fn() -> String) -> Result<String, InvalidConfig> {
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Err(field(at(), "is empty"));
    }
    Ok(trimmed.to_owned())
}

fn route(object: &Map<String, Value>, at: &dyn Fn(&str) -> String) -> Result<ModelRoute, InvalidConfig> {
    if let Some(unknown) = object
        .keys()
        .find(|k| !["openai", "bedrock", "primary"].contains(&k.as_str()))
    {
        return Err(field(
            at(&format!(".{unknown}")),
            "is not a mapping field: use openai, bedrock and primary",
        ));
    }
    let provider = |name: &str| match object.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(model)) => model_id(model, || at(&format!(".{name}"))).map(Some),
        Some(_) => Err(field(at(&format!(".{name}")), "must be a string (a model id)")),
    };
    let (openai, bedrock) = (provider("openai")?, provider("bedrock")?);
    let primary = match (object.get("primary"), &openai, &bedrock) {
        (None | Some(Value::Null), Some(_), _) => Provider::OpenAi,
        (None | Some(Value::Null), None, Some(_)) => Provider::Bedrock,
        (None | Some(Value::Null), None, None) => {
            return Err(field(
                at(""),
                "names no provider: give `openai`, `bedrock` or both",
            ));
        }
        (Some(Value::String(p)), Some(_), _) if p == "openai" => Provider::OpenAi,
        (Some(Value::String(p)), _, Some(_)) if p == "bedrock" => Provider::Bedrock,
        (Some(Value::String(p)), _, _) if p == "openai" || p == "bedrock" => {
            return Err(field(
                at(".primary"),
                "names a provider the mapping does not give a model id for",
            ));
        }
        (Some(_), _, _) => return Err(field(at(".primary"), "must be \"openai\" or \"bedrock\"")),
    };
    if openai.is_some() && bedrock.as_deref().and_then(titan_version).is_some() {
        return Err(field(at(""), EMBEDDINGS_OF_TWO_MODELS));
    }
    Ok(ModelRoute {
        openai,
        bedrock,
        primary,
    })
}

/// Which Titan text embeddings `model` is (an id, a profile id or an ARN): 1 (G1) or 2;
/// `None` for any other model, which Bedrock cannot embed with here.
pub fn titan_version(model: &str) -> Option<u8> {
    let base = model.rsplit('/').next().unwrap_or(model);
    base.split('.').find_map(|part| match part {
        "titan-embed-text-v1" => Some(1),
        _ if part.starts_with("titan-embed-text-v2") => Some(2),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(doc: Value) -> Result<ModelMappings, String> {
        parse(doc.as_object().unwrap()).map_err(|e| e.to_string())
    }

    #[test]
    fn the_string_form_is_openai_alone_and_the_object_form_names_both_with_openai_first() {
        let mappings = parsed(serde_json::json!({
            "plain": " gpt-4o-mini ",
            "both": {"openai": "gpt-4o-mini", "bedrock": "us.amazon.nova-lite-v1:0"},
            "native": {"openai": "gpt-4o-mini", "bedrock": "amazon.nova-lite-v1:0", "primary": "bedrock"},
            "bedrock-only": {"bedrock": "amazon.nova-pro-v1:0"},
        }))
        .unwrap();
        assert_eq!(mappings["plain"], ModelRoute::openai("gpt-4o-mini"));
        let order = |id: &str| (mappings[id].first(), mappings[id].fallback());
        use Provider::{Bedrock, OpenAi};
        for (id, first, fallback) in [
            ("plain", (OpenAi, "gpt-4o-mini"), None),
            (
                "both",
                (OpenAi, "gpt-4o-mini"),
                Some((Bedrock, "us.amazon.nova-lite-v1:0")),
            ),
            (
                "native",
                (Bedrock, "amazon.nova-lite-v1:0"),
                Some((OpenAi, "gpt-4o-mini")),
            ),
            ("bedrock-only", (Bedrock, "amazon.nova-pro-v1:0"), None),
        ] {
            assert_eq!(order(id), (first, fallback), "{id}");
        }
    }

    #[test]
    fn a_mapping_that_cannot_be_served_is_refused_naming_the_field() {
        for (doc, expected) in [
            (
                serde_json::json!({"m": 1}),
                "field `model_mappings.m` must be an OpenAI model id, or {",
            ),
            (serde_json::json!({"m": " "}), "field `model_mappings.m` is empty"),
            (
                serde_json::json!({"m": {}}),
                "field `model_mappings.m` names no provider",
            ),
            (
                serde_json::json!({"m": {"openai": ""}}),
                "field `model_mappings.m.openai` is empty",
            ),
            (
                serde_json::json!({"m": {"bedrock": 3}}),
                "field `model_mappings.m.bedrock` must be a string",
            ),
            (
                serde_json::json!({"m": {"openai": "gpt-4o", "fallback": "x"}}),
                "field `model_mappings.m.fallback` is not a mapping field",
            ),
            (
                serde_json::json!({"m": {"openai": "gpt-4o", "primary": "bedrock"}}),
                "field `model_mappings.m.primary` names a provider the mapping does not give",
            ),
            (
                serde_json::json!({"e": {"openai": "text-embedding-3-small", "bedrock": "amazon.titan-embed-text-v2:0"}}),
                "field `model_mappings.e` maps embeddings to both OpenAI and Amazon Titan",
            ),
            (
                serde_json::json!({"m": {"openai": "gpt-4o", "primary": "anthropic"}}),
                "field `model_mappings.m.primary` must be \"openai\" or \"bedrock\"",
            ),
            (serde_json::json!({}), "field `model_mappings` is empty"),
        ] {
            let message = parsed(doc).unwrap_err();
            assert!(message.starts_with(expected), "{message}");
        }
    }
}

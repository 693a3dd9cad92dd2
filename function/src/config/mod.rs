//! The proxy's configuration: the secret's JSON shape, validated.
//!
//! Errors name the offending field and what is wrong with it, never the value: the
//! document holds the OpenAI key.

pub mod source;
mod store;

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde_json::{Map, Value};

pub use source::ConfigSource;
pub use store::ConfigStore;

pub const DEFAULT_OPENAI_BASE_URL: &str = "https://api.openai.com/v1";

/// The mappings used when the configuration comes from `OPENAI_API_KEY` alone.
pub const DEFAULT_MODEL_MAPPINGS: &[(&str, &str)] = &[
    ("amazon.nova-lite-v1:0", "gpt-4o-mini"),
    ("amazon.nova-pro-v1:0", "gpt-4o-mini"),
    ("amazon.nova-micro-v1:0", "gpt-4o-mini"),
    ("amazon.titan-embed-text-v2:0", "text-embedding-3-small"),
];

#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(***)")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    pub openai_api: Duration,
    pub secrets_manager: Duration,
    pub lambda: Duration,
    /// Longest silence between two events of a streamed answer (slow models think
    /// for minutes before they write).
    pub stream_idle: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            openai_api: Duration::from_secs(30),
            secrets_manager: Duration::from_secs(10),
            lambda: Duration::from_secs(300),
            stream_idle: Duration::from_secs(300),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyConfig {
    pub openai_api_key: ApiKey,
    /// Client-facing model id -> upstream model id. Also the allowlist.
    pub model_mappings: BTreeMap<String, String>,
    pub timeouts: Timeouts,
    /// Without a trailing slash.
    pub openai_base_url: String,
    /// SHA-256 digests of the client keys accepted when authentication is enabled.
    pub client_api_keys: Vec<[u8; 32]>,
}

/// Why a configuration document was refused. Carries field names, never values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidConfig {
    #[error("is not a JSON object")]
    NotAnObject,
    #[error("field `{field}` {problem}")]
    Field { field: String, problem: &'static str },
}

fn field(field: impl Into<String>, problem: &'static str) -> InvalidConfig {
    InvalidConfig::Field {
        field: field.into(),
        problem,
    }
}

impl ProxyConfig {
    /// Parses the secret's JSON. `default_base_url` is `OPENAI_BASE_URL` (or OpenAI's);
    /// the document's own `openai_base_url` wins.
    pub fn from_json(text: &str, default_base_url: &str) -> Result<Self, InvalidConfig> {
        let doc: Value = serde_json::from_str(text).map_err(|_| InvalidConfig::NotAnObject)?;
        let Value::Object(doc) = doc else {
            return Err(InvalidConfig::NotAnObject);
        };
        let openai_api_key = api_key(&doc)?;
        let model_mappings = match doc.get("model_mappings") {
            None | Some(Value::Null) => default_mappings(),
            Some(Value::Object(map)) => mappings(map)?,
            Some(_) => {
                return Err(field(
                    "model_mappings",
                    "must be an object of model id -> OpenAI model id",
                ));
            }
        };
        let timeouts = timeouts(doc.get("timeout_settings"))?;
        let openai_base_url = match doc.get("openai_base_url") {
            None | Some(Value::Null) => base_url(default_base_url).ok_or_else(|| {
                field(
                    "OPENAI_BASE_URL",
                    "must be an http(s) URL such as https://api.openai.com/v1",
                )
            })?,
            Some(Value::String(s)) => base_url(s).ok_or_else(|| {
                field(
                    "openai_base_url",
                    "must be an http(s) URL such as https://api.openai.com/v1",
                )
            })?,
            Some(_) => return Err(field("openai_base_url", "must be a string")),
        };
        let client_api_keys = client_keys(doc.get("client_api_keys"))?;
        Ok(Self {
            openai_api_key,
            model_mappings,
            timeouts,
            openai_base_url,
            client_api_keys,
        })
    }

    /// The configuration `OPENAI_API_KEY` alone gives: default mappings and timeouts.
    pub fn from_key(key: &str, base: &str) -> Result<Self, InvalidConfig> {
        let doc = serde_json::json!({ "openai_api_key": key });
        Self::from_json(&doc.to_string(), base).map_err(|e| match e {
            InvalidConfig::Field { field, problem } if field == "openai_api_key" => InvalidConfig::Field {
                field: "OPENAI_API_KEY".into(),
                problem,
            },
            other => other,
        })
    }
}

pub fn default_mappings() -> BTreeMap<String, String> {
    DEFAULT_MODEL_MAPPINGS
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn api_key(doc: &Map<String, Value>) -> Result<ApiKey, InvalidConfig> {
    match doc.get("openai_api_key") {
        Some(Value::String(key)) => {
            let key = key.trim();
            if key.is_empty() {
                Err(field("openai_api_key", "is empty"))
            } else if key.chars().any(|c| c.is_whitespace() || c.is_control()) {
                Err(field(
                    "openai_api_key",
                    "contains whitespace or control characters",
                ))
            } else {
                Ok(ApiKey(key.to_owned()))
            }
        }
        None | Some(Value::Null) => Err(field("openai_api_key", "is missing")),
        Some(_) => Err(field("openai_api_key", "must be a string")),
    }
}

fn mappings(map: &Map<String, Value>) -> Result<BTreeMap<String, String>, InvalidConfig> {
    if map.is_empty() {
        return Err(field("model_mappings", "is empty: map at least one model id"));
    }
    map.iter()
        .map(|(client, upstream)| match upstream {
            Value::String(up) if !up.trim().is_empty() && !client.trim().is_empty() => {
                Ok((client.clone(), up.trim().to_owned()))
            }
            Value::String(_) => Err(field(format!("model_mappings.{client}"), "is empty")),
            _ => Err(field(
                format!("model_mappings.{client}"),
                "must be a string (an OpenAI model id)",
            )),
        })
        .collect()
}

fn timeouts(value: Option<&Value>) -> Result<Timeouts, InvalidConfig> {
    let mut timeouts = Timeouts::default();
    let map = match value {
        None | Some(Value::Null) => return Ok(timeouts),
        Some(Value::Object(map)) => map,
        Some(_) => return Err(field("timeout_settings", "must be an object")),
    };
    for (name, slot) in [
        ("openai_api_timeout", &mut timeouts.openai_api),
        ("secrets_manager_timeout", &mut timeouts.secrets_manager),
        ("lambda_timeout", &mut timeouts.lambda),
        ("stream_idle_timeout", &mut timeouts.stream_idle),
    ] {
        match map.get(name) {
            None | Some(Value::Null) => {}
            Some(v) => match v.as_f64() {
                Some(secs) if secs > 0.0 && secs <= 900.0 => *slot = Duration::from_secs_f64(secs),
                _ => {
                    return Err(field(
                        format!("timeout_settings.{name}"),
                        "must be a number of seconds between 0 and 900",
                    ));
                }
            },
        }
    }
    Ok(timeouts)
}

fn base_url(raw: &str) -> Option<String> {
    let trimmed = raw.trim().trim_end_matches('/');
    let rest = trimmed
        .strip_prefix("https://")
        .or_else(|| trimmed.strip_prefix("http://"))?;
    let host = rest.split('/').next().unwrap_or("");
    (!host.is_empty() && !trimmed.contains(char::is_whitespace)).then(|| trimmed.to_owned())
}

fn client_keys(value: Option<&Value>) -> Result<Vec<[u8; 32]>, InvalidConfig> {
    let list = match value {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(list)) => list,
        Some(_) => return Err(field("client_api_keys", "must be a list of SHA-256 hex digests")),
    };
    list.iter()
        .enumerate()
        .map(|(i, v)| {
            let digest = v.as_str().and_then(parse_sha256_hex);
            digest.ok_or_else(|| {
                field(
                    format!("client_api_keys[{i}]"),
                    "must be the SHA-256 hex digest (64 hex characters) of a client key, not the key itself",
                )
            })
        })
        .collect()
}

fn parse_sha256_hex(text: &str) -> Option<[u8; 32]> {
    let text = text.trim();
    if text.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = DEFAULT_OPENAI_BASE_URL;

    fn err(doc: serde_json::Value) -> String {
        ProxyConfig::from_json(&doc.to_string(), BASE)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn the_design_documents_secret_parses() {
        let doc = serde_json::json!({
            "openai_api_key": "sk-abc",
            "model_mappings": {"amazon.nova-lite-v1:0": "gpt-4o-mini"},
            "timeout_settings": {"openai_api_timeout": 12, "secrets_manager_timeout": 3, "lambda_timeout": 300,
                                 "stream_idle_timeout": 600},
            "client_api_keys": ["a".repeat(64)],
        });
        let config = ProxyConfig::from_json(&doc.to_string(), "http://localhost:9/v1/").unwrap();
        assert_eq!(config.openai_api_key.expose(), "sk-abc");
        assert_eq!(config.model_mappings["amazon.nova-lite-v1:0"], "gpt-4o-mini");
        assert_eq!(config.timeouts.openai_api, Duration::from_secs(12));
        assert_eq!(config.timeouts.secrets_manager, Duration::from_secs(3));
        assert_eq!(config.timeouts.stream_idle, Duration::from_secs(600));
        assert_eq!(config.openai_base_url, "http://localhost:9/v1");
        assert_eq!(config.client_api_keys, vec![[0xaa; 32]]);
    }

    #[test]
    fn secrets_own_base_url_wins_over_the_environments() {
        let doc =
            serde_json::json!({"openai_api_key": "sk-1", "openai_base_url": "https://proxy.example/v1"});
        let config = ProxyConfig::from_json(&doc.to_string(), "http://ignored/v1").unwrap();
        assert_eq!(config.openai_base_url, "https://proxy.example/v1");
        assert_eq!(config.model_mappings, default_mappings());
        assert_eq!(config.timeouts.stream_idle, Duration::from_secs(300));
    }

    #[test]
    fn errors_name_the_field_and_never_the_value() {
        let cases = [
            (serde_json::json!({}), "field `openai_api_key` is missing"),
            (
                serde_json::json!({"openai_api_key": 7}),
                "field `openai_api_key` must be a string",
            ),
            (
                serde_json::json!({"openai_api_key": "sk-SECRET", "model_mappings": {"m": 1}}),
                "field `model_mappings.m` must be a string",
            ),
            (
                serde_json::json!({"openai_api_key": "sk-SECRET", "timeout_settings": {"openai_api_timeout": "sk-SECRET"}}),
                "field `timeout_settings.openai_api_timeout` must be a number",
            ),
            (
                serde_json::json!({"openai_api_key": "sk-SECRET", "client_api_keys": ["sk-SECRET"]}),
                "field `client_api_keys[0]` must be the SHA-256 hex digest",
            ),
            (
                serde_json::json!({"openai_api_key": "sk-SECRET", "openai_base_url": "ftp://sk-SECRET"}),
                "field `openai_base_url` must be an http(s) URL",
            ),
        ];
        for (doc, expected) in cases {
            let message = err(doc);
            assert!(message.starts_with(expected), "{message}");
            assert!(!message.contains("SECRET"), "{message}");
        }
        assert_eq!(
            ProxyConfig::from_json("sk-not-json", BASE)
                .unwrap_err()
                .to_string(),
            "is not a JSON object"
        );
    }

    #[test]
    fn key_from_the_environment_gets_default_mappings_and_names_the_variable() {
        let config = ProxyConfig::from_key("sk-env", BASE).unwrap();
        assert_eq!(config.model_mappings.len(), 4);
        assert_eq!(
            config.model_mappings["amazon.titan-embed-text-v2:0"],
            "text-embedding-3-small"
        );
        let message = ProxyConfig::from_key("  ", BASE).unwrap_err().to_string();
        assert_eq!(message, "field `OPENAI_API_KEY` is empty");
    }

    #[test]
    fn debug_output_hides_the_key() {
        let config = ProxyConfig::from_key("sk-hidden", BASE).unwrap();
        assert!(!format!("{config:?}").contains("sk-hidden"));
    }
}

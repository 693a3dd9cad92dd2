//! The proxy's configuration: the secret's JSON shape, validated.
//!
//! Errors name the offending field and what is wrong with it, never the value: the
//! document holds the OpenAI key.

pub mod models;
pub mod source;
pub mod spend;
mod store;

use std::collections::BTreeSet;
use std::fmt;
use std::time::Duration;

use serde_json::{Map, Value};

pub use models::{ModelMappings, ModelRoute, Provider, titan_version};
pub use source::ConfigSource;
pub use spend::{Limits, MicroUsd, Price, Prices, price_of};
pub use store::{ConfigStore, FAILURE_RETRY};

pub const DEFAULT_OPENAI_BASE_URL: &str = "https://api.openai.com/v1";

/// The mappings used when the configuration names none (`OPENAI_API_KEY` alone, or a
/// secret without `model_mappings`): a flat JSON object of client model id -> OpenAI
/// model id. The deployer includes the same file, so both always agree.
pub const DEFAULT_MODEL_MAPPINGS_JSON: &str = include_str!("default_mappings.json");

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
    /// Client-facing model id -> where it is served. Also the allowlist.
    pub model_mappings: ModelMappings,
    pub timeouts: Timeouts,
    /// Without a trailing slash.
    pub openai_base_url: String,
    /// The client keys accepted when authentication is enabled.
    pub client_api_keys: Vec<ClientKey>,
    /// Upstream model id -> price: the built-in ones, overridden by the secret's `prices`.
    pub prices: Prices,
}

/// One entry of `client_api_keys`: a plain SHA-256 hex digest, or
/// `{"name": "web-app", "sha256": "<hex>", "models": ["amazon.nova-lite-v1:0"]}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientKey {
    /// Logged as `client` and the metrics' `Client` dimension; `None` for a plain digest.
    pub name: Option<String>,
    pub digest: [u8; 32],
    /// The model ids this key may use; `None` means every mapped model.
    pub models: Option<BTreeSet<String>>,
    /// The most choices (`n`) one request of this key may ask for; `None`: no cap.
    pub max_n: Option<u64>,
    /// The most output tokens one request of this key may ask for (`max_tokens`,
    /// `max_completion_tokens`, `max_output_tokens`); `None`: no cap.
    pub max_tokens: Option<u64>,
    /// What this key may use per minute, day and month; `None`: unlimited, and the
    /// usage table is never consulted for it.
    pub limits: Option<Limits>,
}

impl ClientKey {
    pub fn may_use(&self, model: &str) -> bool {
        self.models.as_ref().is_none_or(|models| models.contains(model))
    }
}

/// Why a configuration document was refused. Carries field names, never values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidConfig {
    #[error("is not a JSON object")]
    NotAnObject,
    #[error("field `{field}` {problem}")]
    Field { field: String, problem: &'static str },
    /// A USD limit that could not be enforced: the key reaches a model without a price.
    #[error(
        "field `{field}` cannot be enforced: model `{model}` maps to `{upstream}`, which has no price; \
         add \"prices\": {{\"{upstream}\": {{\"input_per_million\": n, \"output_per_million\": n}}}} \
         (USD per million tokens) to the secret, or limit the key's `models`"
    )]
    Unpriced {
        field: String,
        model: String,
        upstream: String,
    },
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
            Some(Value::Object(map)) => models::parse(map)?,
            Some(_) => {
                return Err(field(
                    "model_mappings",
                    "must be an object of model id -> OpenAI model id (or {\"openai\", \"bedrock\"} object)",
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
        let prices = spend::prices(doc.get("prices"))?;
        let client_api_keys = client_keys(doc.get("client_api_keys"), &model_mappings)?;
        unpriced_usd_limit(&client_api_keys, &model_mappings, &prices)?;
        Ok(Self {
            openai_api_key,
            model_mappings,
            timeouts,
            openai_base_url,
            client_api_keys,
            prices,
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

/// [`DEFAULT_MODEL_MAPPINGS_JSON`], parsed once.
pub fn default_mappings() -> ModelMappings {
    static PARSED: std::sync::OnceLock<ModelMappings> = std::sync::OnceLock::new();
    PARSED
        .get_or_init(|| {
            // The file is part of the source, checked by the tests below: it parses.
            serde_json::from_str::<Map<String, Value>>(DEFAULT_MODEL_MAPPINGS_JSON)
                .ok()
                .and_then(|map| models::parse(&map).ok())
                .unwrap_or_default()
        })
        .clone()
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
    let valid =
        !host.is_empty() && !trimmed.contains(char::is_whitespace) && trimmed.parse::<http::Uri>().is_ok();
    valid.then(|| trimmed.to_owned())
}

const DIGEST_PROBLEM: &str =
    "must be the SHA-256 hex digest (64 hex characters) of a client key, not the key itself";

fn client_keys(value: Option<&Value>, mappings: &ModelMappings) -> Result<Vec<ClientKey>, InvalidConfig> {
    let list = match value {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(list)) => list,
        Some(_) => {
            return Err(field(
                "client_api_keys",
                "must be a list of SHA-256 hex digests or {\"name\", \"sha256\", \"models\"} objects",
            ));
        }
    };
    let mut names = BTreeSet::new();
    let mut keys = Vec::with_capacity(list.len());
    for (i, entry) in list.iter().enumerate() {
        let at = |suffix: &str| format!("client_api_keys[{i}]{suffix}");
        let key = match entry {
            Value::String(digest) => ClientKey {
                name: None,
                digest: parse_sha256_hex(digest).ok_or_else(|| field(at(""), DIGEST_PROBLEM))?,
                models: None,
                max_n: None,
                max_tokens: None,
                limits: None,
            },
            Value::Object(object) => named_key(object, mappings, &at)?,
            _ => {
                return Err(field(
                    at(""),
                    "must be a SHA-256 hex digest or a {\"name\", \"sha256\", \"models\"} object",
                ));
            }
        };
        if let Some(name) = &key.name
            && !names.insert(name.clone())
        {
            return Err(field(
                at(".name"),
                "is used by another client key: names must be unique",
            ));
        }
        keys.push(key);
    }
    Ok(keys)
}

fn named_key(
    object: &Map<String, Value>,
    mappings: &ModelMappings,
    at: &dyn Fn(&str) -> String,
) -> Result<ClientKey, InvalidConfig> {
    if let Some(unknown) = object
        .keys()
        .find(|k| !["name", "sha256", "models", "max_n", "max_tokens", "limits"].contains(&k.as_str()))
    {
        return Err(field(
            at(&format!(".{unknown}")),
            "is not a client key field: use name, sha256, models, max_n, max_tokens and limits",
        ));
    }
    let cap = |name: &str| match object.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .filter(|n| *n >= 1)
            .map(Some)
            .ok_or_else(|| field(at(&format!(".{name}")), "must be a whole number of at least 1")),
    };
    let (max_n, max_tokens) = (cap("max_n")?, cap("max_tokens")?);
    let limits = spend::limits(object.get("limits"), at)?;
    // The name becomes a log field and a CloudWatch dimension value.
    let name = match object.get("name") {
        Some(Value::String(name))
            if !name.is_empty()
                && name.len() <= 64
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.:@".contains(&b)) =>
        {
            name.clone()
        }
        None | Some(Value::Null) => return Err(field(at(".name"), "is missing")),
        Some(_) => {
            return Err(field(
                at(".name"),
                "must be 1 to 64 characters of A-Z a-z 0-9 - _ . : @ (e.g. \"web-app\")",
            ));
        }
    };
    let digest = match object.get("sha256") {
        Some(Value::String(digest)) => {
            parse_sha256_hex(digest).ok_or_else(|| field(at(".sha256"), DIGEST_PROBLEM))?
        }
        None | Some(Value::Null) => return Err(field(at(".sha256"), "is missing")),
        Some(_) => return Err(field(at(".sha256"), DIGEST_PROBLEM)),
    };
    let models = match object.get("models") {
        None | Some(Value::Null) => None,
        Some(Value::Array(list)) => {
            let mut models = BTreeSet::new();
            for (j, model) in list.iter().enumerate() {
                match model.as_str() {
                    Some(model) if mappings.contains_key(model) => {
                        models.insert(model.to_owned());
                    }
                    Some(_) => {
                        return Err(field(
                            at(&format!(".models[{j}]")),
                            "is not a model id of model_mappings",
                        ));
                    }
                    None => return Err(field(at(&format!(".models[{j}]")), "must be a string")),
                }
            }
            Some(models)
        }
        Some(_) => {
            return Err(field(
                at(".models"),
                "must be a list of model ids of model_mappings",
            ));
        }
    };
    Ok(ClientKey {
        name: Some(name),
        digest,
        models,
        max_n,
        max_tokens,
        limits,
    })
}

/// Refuses a USD limit on a key that can reach a model without a price: its spend could
/// not be counted, so the cap would not hold (the overspend other gateways ship).
fn unpriced_usd_limit(
    keys: &[ClientKey],
    mappings: &ModelMappings,
    prices: &Prices,
) -> Result<(), InvalidConfig> {
    for (i, key) in keys.iter().enumerate() {
        let Some(usd_field) = key.limits.as_ref().and_then(|l| l.usd_fields().next()) else {
            continue;
        };
        let unpriced = mappings
            .iter()
            .filter(|(model, _)| key.may_use(model))
            .find_map(|(model, route)| {
                let upstream = route.upstreams().find(|up| price_of(prices, up).is_none())?;
                Some((model, upstream))
            });
        if let Some((model, upstream)) = unpriced {
            return Err(InvalidConfig::Unpriced {
                field: format!("client_api_keys[{i}].limits.{usd_field}"),
                model: model.clone(),
                upstream: upstream.to_owned(),
            });
        }
    }
    Ok(())
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
        assert_eq!(
            config.model_mappings["amazon.nova-lite-v1:0"],
            ModelRoute::openai("gpt-4o-mini")
        );
        assert_eq!(config.timeouts.openai_api, Duration::from_secs(12));
        assert_eq!(config.timeouts.secrets_manager, Duration::from_secs(3));
        assert_eq!(config.timeouts.stream_idle, Duration::from_secs(600));
        assert_eq!(config.openai_base_url, "http://localhost:9/v1");
        assert_eq!(
            config.client_api_keys,
            vec![ClientKey {
                name: None,
                digest: [0xaa; 32],
                models: None,
                max_n: None,
                max_tokens: None,
                limits: None,
            }]
        );
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
                "field `model_mappings.m` must be an OpenAI model id",
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
            (
                serde_json::json!({"openai_api_key": "sk-SECRET", "openai_base_url": "http://[::1/sk-SECRET"}),
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
    fn named_client_keys_sit_beside_plain_digests() {
        let doc = serde_json::json!({
            "openai_api_key": "sk-abc",
            "client_api_keys": [
                "b".repeat(64),
                {"name": "web-app", "sha256": "c".repeat(64), "models": ["amazon.nova-lite-v1:0"]},
                {"name": "batch", "sha256": "d".repeat(64)},
            ],
        });
        let keys = ProxyConfig::from_json(&doc.to_string(), BASE)
            .unwrap()
            .client_api_keys;
        assert_eq!(keys.len(), 3);
        assert_eq!((keys[0].name.as_deref(), keys[0].models.is_none()), (None, true));
        assert_eq!(keys[1].name.as_deref(), Some("web-app"));
        assert!(keys[1].may_use("amazon.nova-lite-v1:0") && !keys[1].may_use("amazon.nova-pro-v1:0"));
        assert!(keys[2].may_use("amazon.nova-pro-v1:0"));
    }

    #[test]
    fn named_client_key_errors_name_the_field() {
        let digest = "c".repeat(64);
        let cases = [
            (
                serde_json::json!([{"sha256": digest}]),
                "field `client_api_keys[0].name` is missing",
            ),
            (
                serde_json::json!([{"name": "a b", "sha256": digest}]),
                "field `client_api_keys[0].name` must be 1 to 64",
            ),
            (
                serde_json::json!([{"name": "a"}]),
                "field `client_api_keys[0].sha256` is missing",
            ),
            (
                serde_json::json!([{"name": "a", "sha256": "sk-SECRET"}]),
                "field `client_api_keys[0].sha256` must be the SHA-256",
            ),
            (
                serde_json::json!([{"name": "a", "sha256": digest, "models": ["gpt-4o"]}]),
                "field `client_api_keys[0].models[0]` is not a model id of model_mappings",
            ),
            (
                serde_json::json!([{"name": "a", "sha256": digest, "key": "x"}]),
                "field `client_api_keys[0].key` is not a client key field",
            ),
            (
                serde_json::json!([{"name": "a", "sha256": digest}, {"name": "a", "sha256": "d".repeat(64)}]),
                "field `client_api_keys[1].name` is used by another client key",
            ),
            (
                serde_json::json!([{"name": "a", "sha256": digest, "max_n": 0}]),
                "field `client_api_keys[0].max_n` must be a whole number of at least 1",
            ),
            (
                serde_json::json!([{"name": "a", "sha256": digest, "max_tokens": "many"}]),
                "field `client_api_keys[0].max_tokens` must be a whole number",
            ),
            (
                serde_json::json!([7]),
                "field `client_api_keys[0]` must be a SHA-256 hex digest or",
            ),
        ];
        for (keys, expected) in cases {
            let message = err(serde_json::json!({"openai_api_key": "sk-SECRET", "client_api_keys": keys}));
            assert!(message.starts_with(expected), "{message}");
            assert!(!message.contains("SECRET"), "{message}");
        }
    }

    #[test]
    fn limits_and_prices_parse_into_micro_dollars() {
        let doc = serde_json::json!({
            "openai_api_key": "sk-abc",
            "model_mappings": {"m": "gpt-4o-mini", "big": "gpt-4o"},
            "prices": {"gpt-4o": {"input_per_million": 2.5, "output_per_million": 10}},
            "client_api_keys": [
                {"name": "web-app", "sha256": "c".repeat(64), "limits": {
                    "requests_per_minute": 60, "tokens_per_minute": 100000,
                    "usd_per_day": 5, "usd_per_month": 50.25}},
                {"name": "free", "sha256": "d".repeat(64), "limits": {}},
            ],
        });
        let config = ProxyConfig::from_json(&doc.to_string(), BASE).unwrap();
        assert_eq!(
            config.client_api_keys[0].limits,
            Some(Limits {
                requests_per_minute: Some(60),
                tokens_per_minute: Some(100_000),
                usd_per_day: Some(5_000_000),
                usd_per_month: Some(50_250_000),
            })
        );
        assert_eq!(
            config.client_api_keys[1].limits, None,
            "no limit set: never waits on the table"
        );
        assert_eq!(config.prices["gpt-4o"].output_per_million, 10_000_000);
        assert_eq!(
            config.prices["gpt-4o-mini"].input_per_million, 150_000,
            "the built-in price stays for models the secret does not price"
        );
    }

    #[test]
    fn a_secrets_price_wins_over_the_built_in_one() {
        let doc = serde_json::json!({
            "openai_api_key": "sk-abc",
            "prices": {"gpt-4o-mini": {"input_per_million": 1, "output_per_million": 2}},
        });
        let config = ProxyConfig::from_json(&doc.to_string(), BASE).unwrap();
        assert_eq!(
            config.prices["gpt-4o-mini"],
            Price {
                input_per_million: 1_000_000,
                output_per_million: 2_000_000
            }
        );
    }

    #[test]
    fn a_usd_limit_reaching_an_unpriced_model_is_refused_naming_the_model_and_field() {
        let digest = "c".repeat(64);
        let doc = |models: serde_json::Value, limits: serde_json::Value| {
            serde_json::json!({
                "openai_api_key": "sk-SECRET",
                "model_mappings": {"cheap": "gpt-4o-mini", "new": "gpt-9"},
                "client_api_keys": [{"name": "a", "sha256": digest, "models": models, "limits": limits}],
            })
        };
        let message = err(doc(
            serde_json::Value::Null,
            serde_json::json!({"usd_per_month": 50}),
        ));
        assert!(
            message.starts_with(
                "field `client_api_keys[0].limits.usd_per_month` cannot be enforced: model `new` maps to `gpt-9`, which has no price"
            ),
            "{message}"
        );
        assert!(
            message.contains(r#""prices": {"gpt-9""#) && !message.contains("SECRET"),
            "{message}"
        );
        // Counting limits need no price; nor does a key that cannot reach the model.
        for (models, limits) in [
            (
                serde_json::Value::Null,
                serde_json::json!({"requests_per_minute": 5}),
            ),
            (
                serde_json::json!(["cheap"]),
                serde_json::json!({"usd_per_day": 1}),
            ),
        ] {
            ProxyConfig::from_json(&doc(models, limits).to_string(), BASE).unwrap();
        }
    }

    #[test]
    fn limit_and_price_errors_name_the_field() {
        let digest = "c".repeat(64);
        let key = |limits: serde_json::Value| {
            serde_json::json!({"openai_api_key": "sk-SECRET",
                "client_api_keys": [{"name": "a", "sha256": digest, "limits": limits}]})
        };
        let priced =
            |prices: serde_json::Value| serde_json::json!({"openai_api_key": "sk-SECRET", "prices": prices});
        let cases = [
            (
                key(serde_json::json!(5)),
                "field `client_api_keys[0].limits` must be an object",
            ),
            (
                key(serde_json::json!({"usd_per_year": 5})),
                "field `client_api_keys[0].limits.usd_per_year` is not a limit",
            ),
            (
                key(serde_json::json!({"requests_per_minute": 0})),
                "field `client_api_keys[0].limits.requests_per_minute` must be a whole number of at least 1",
            ),
            (
                key(serde_json::json!({"tokens_per_minute": 1.5})),
                "field `client_api_keys[0].limits.tokens_per_minute` must be a whole number",
            ),
            (
                key(serde_json::json!({"usd_per_day": -1})),
                "field `client_api_keys[0].limits.usd_per_day` must be a number of USD",
            ),
            (
                key(serde_json::json!({"usd_per_month": "sk-SECRET"})),
                "field `client_api_keys[0].limits.usd_per_month` must be a number of USD",
            ),
            (priced(serde_json::json!([])), "field `prices` must be an object"),
            (
                priced(serde_json::json!({"gpt-4o": 2.5})),
                "field `prices.gpt-4o` must be an object",
            ),
            (
                priced(serde_json::json!({"gpt-4o": {"input_per_million": 2.5}})),
                "field `prices.gpt-4o.output_per_million` is missing",
            ),
            (
                priced(serde_json::json!({"gpt-4o": {"input_per_million": -2, "output_per_million": 1}})),
                "field `prices.gpt-4o.input_per_million` must be a number of USD per million tokens",
            ),
            (
                priced(serde_json::json!({"gpt-4o": {"input": 2, "output_per_million": 1}})),
                "field `prices.gpt-4o.input` is not a price field",
            ),
        ];
        for (doc, expected) in cases {
            let message = err(doc);
            assert!(message.starts_with(expected), "{message}");
            assert!(!message.contains("SECRET"), "{message}");
        }
    }

    #[test]
    fn key_from_the_environment_gets_default_mappings_and_names_the_variable() {
        let config = ProxyConfig::from_key("sk-env", BASE).unwrap();
        assert_eq!(config.model_mappings.len(), 4);
        assert_eq!(
            config.model_mappings["amazon.titan-embed-text-v2:0"],
            ModelRoute::openai("text-embedding-3-small")
        );
        let message = ProxyConfig::from_key("  ", BASE).unwrap_err().to_string();
        assert_eq!(message, "field `OPENAI_API_KEY` is empty");
    }

    #[test]
    fn the_default_mappings_file_is_a_flat_object_of_model_ids() {
        let parsed: serde_json::Map<String, Value> = serde_json::from_str(DEFAULT_MODEL_MAPPINGS_JSON)
            .expect("default_mappings.json is a JSON object");
        assert!(!parsed.is_empty());
        assert!(parsed.values().all(|v| v.as_str().is_some_and(|s| !s.is_empty())));
        assert_eq!(default_mappings().len(), parsed.len());
    }

    #[test]
    fn debug_output_hides_the_key() {
        let config = ProxyConfig::from_key("sk-hidden", BASE).unwrap();
        assert!(!format!("{config:?}").contains("sk-hidden"));
    }
}

//! The proxy's configuration secret in Secrets Manager: created or updated from
//! `OPENAI_API_KEY`, `MODEL_MAPPINGS`, `CLIENT_API_KEYS` (as SHA-256 digests) and the
//! timeouts, idempotently. Fields set by hand (`openai_base_url`, client keys listed by
//! hand, ...) survive updates, and an unchanged value writes no new secret version.

use crate::aws::Aws;
use crate::client_keys::{self, ClientKey};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::model_mappings;
use serde_json::{Map, Value, json};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Created,
    Updated,
    Unchanged,
    /// Used as found: the deployer was given nothing to write.
    Existing,
    /// Updated, then put back to the version before this run (the deploy failed and the
    /// stack stayed or went back to what read that version).
    Restored,
}

impl Action {
    /// For the log and the report.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Created => "created",
            Action::Updated => "updated (new version)",
            Action::Unchanged => "unchanged (no new version)",
            Action::Existing => "used as is",
            Action::Restored => "put back to its version before this run",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Outcome {
    pub arn: String,
    pub action: Action,
    /// The clients the secret lists after this run, with their limits (for the report).
    pub clients: Vec<client_keys::Listed>,
    /// For an update, how to put the version before it back.
    pub undo: Option<Undo>,
}

/// An update of the secret, undoable: the version that was current before it, and the
/// one it wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Undo {
    pub arn: String,
    pub previous: String,
    pub written: String,
}

/// Makes the version before an update current again (Secrets Manager keeps it as
/// AWSPREVIOUS): the function, reading AWSCURRENT, reads what it read before the run.
pub async fn restore(aws: &Aws, undo: &Undo) -> Result<()> {
    aws.secrets
        .update_secret_version_stage()
        .secret_id(&undo.arn)
        .version_stage("AWSCURRENT")
        .move_to_version_id(&undo.previous)
        .remove_from_version_id(&undo.written)
        .send()
        .await
        .map(|_| ())
        .map_err(|e| {
            Error::aws(
                format_args!("put back the previous version of secret {}", undo.arn),
                &e,
            )
        })
}

/// Where the secret is: the configured ARN, or the deployer's own name for it.
pub fn id(config: &Config) -> String {
    config
        .openai_api_key_secret_arn
        .clone()
        .or_else(|| config.secret_name.clone())
        .unwrap_or_else(|| format!("{}/config", config.stack_name))
}

/// The shape of an OpenAI key, checked without ever printing it.
pub fn check_key(key: &str) -> Result<()> {
    let ok = key.starts_with("sk-") && key.len() >= 20 && key.bytes().all(|b| b.is_ascii_graphic());
    if ok {
        Ok(())
    } else {
        Err(Error::new(
            "OPENAI_API_KEY does not look like an OpenAI API key (expected `sk-` and at least 17 more characters, no spaces or newlines)",
            "copy it again from https://platform.openai.com/api-keys into the repository secret",
        ))
    }
}

/// The digest an entry of the secret's `client_api_keys` holds: a string, or an object's
/// `sha256`.
fn entry_digest(entry: &Value) -> Option<&str> {
    entry
        .as_str()
        .or_else(|| entry.get("sha256").and_then(Value::as_str))
}

/// `existing` (the secret's `client_api_keys`, kept as set by hand) plus `keys`: a key
/// already listed is left as it is; a named key replaces the entry of the same name (a
/// rotated key), keeping that entry's other fields (`models`). A key given with limits
/// sets its entry's `limits`; one given without leaves the entry's as they are.
fn merge_client_keys(existing: Option<&Value>, keys: &[ClientKey]) -> Value {
    let mut list = existing.and_then(Value::as_array).cloned().unwrap_or_default();
    for key in keys {
        let limits = (!key.limits.is_empty()).then(|| key.limits.to_json());
        let listed = list
            .iter()
            .position(|e| entry_digest(e) == Some(key.sha256.as_str()));
        if let Some(at) = listed {
            match (&mut list[at], &key.name) {
                (Value::Object(entry), _) => {
                    // Limits only come with a name (client_keys refuses them on a bare key).
                    if let Some(limits) = limits {
                        entry.insert("limits".into(), limits);
                    }
                    continue;
                }
                (_, None) => continue,
                // A digest listed bare, now named: it goes, and the key is merged below as
                // a named one (taking over the entry of its name, as a rotation, rather
                // than leaving two entries of one name, or that entry's old key, behind).
                (_, Some(_)) => {
                    list.remove(at);
                }
            }
        }
        match &key.name {
            None => list.push(Value::from(key.sha256.clone())),
            Some(name) => {
                let same_name = list
                    .iter_mut()
                    .find(|e| e.get("name").and_then(Value::as_str) == Some(name));
                match same_name {
                    Some(Value::Object(entry)) => {
                        entry.insert("sha256".into(), Value::from(key.sha256.clone()));
                        if let Some(limits) = limits {
                            entry.insert("limits".into(), limits);
                        }
                    }
                    _ => {
                        let mut entry = json!({"name": name, "sha256": key.sha256});
                        if let Some(limits) = limits {
                            entry["limits"] = limits;
                        }
                        list.push(entry);
                    }
                }
            }
        }
    }
    Value::Array(list)
}

/// The upstream models' built-in prices, from the file the function reads them from.
fn default_prices() -> Map<String, Value> {
    serde_json::from_str(include_str!("../function/src/config/default_prices.json"))
        .expect("function/src/config/default_prices.json is a JSON object")
}

/// The function refuses, when it loads the secret, a USD limit on a client key that can
/// reach a model without a price (its spend could not be counted). The same check here
/// stops the deploy before the secret is written, instead of leaving a proxy that answers
/// every request with a configuration error. It reads every upstream a mapping names
/// (OpenAI's and Bedrock's, priced as [`model_mappings::priced_as`] says); the function's
/// own check at load stays the final word.
pub fn unpriced_usd_limit(value: &Value) -> Result<()> {
    let mut prices = default_prices();
    if let Some(Value::Object(set)) = value.get("prices") {
        prices.extend(set.clone());
    }
    let empty = Map::new();
    let mappings = value
        .get("model_mappings")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let keys = value.get("client_api_keys").and_then(Value::as_array);
    for (i, entry) in keys.into_iter().flatten().enumerate() {
        let limits = client_keys::Limits::from_json(entry.get("limits"));
        let Some(field) = limits.usd_names().next() else {
            continue;
        };
        let models = entry.get("models").and_then(Value::as_array);
        let may_use = |model: &str| models.is_none_or(|list| list.iter().any(|m| m == model));
        let priced = |up: &str| prices.contains_key(up) || prices.contains_key(model_mappings::priced_as(up));
        let unpriced = mappings
            .iter()
            .filter(|(model, _)| may_use(model))
            .find_map(|(model, target)| {
                let upstreams = [
                    target.as_str(),
                    target.get("openai").and_then(Value::as_str),
                    target.get("bedrock").and_then(Value::as_str),
                ];
                let upstream = upstreams.into_iter().flatten().find(|up| !priced(up))?;
                Some((model, upstream))
            });
        if let Some((model, upstream)) = unpriced {
            let client = entry
                .get("name")
                .and_then(Value::as_str)
                .map_or_else(|| format!("client_api_keys[{i}]"), str::to_owned);
            return Err(Error::new(
                format!(
                    "client {client} has a USD limit ({field}) but can reach model {model}, which maps to {upstream}: that model has no price, so its spend could not be counted and the proxy would refuse its configuration"
                ),
                format!(
                    "add \"prices\": {{\"{upstream}\": {{\"input_per_million\": n, \"output_per_million\": n}}}} (USD per million tokens) to the secret, map {model} to a model with a built-in price (docs/api.md), or drop the USD limit"
                ),
            ));
        }
    }
    Ok(())
}

/// Whether `value` (a secret's JSON) lists at least one client key.
pub fn has_client_keys(value: &Value) -> bool {
    value
        .get("client_api_keys")
        .and_then(Value::as_array)
        .is_some_and(|list| list.iter().any(|e| entry_digest(e).is_some()))
}

/// With authentication on, a deploy needs a client key from `CLIENT_API_KEYS` or already
/// in the secret: otherwise every request would be refused. The problem to report, if any.
pub async fn auth_problem(aws: &Aws, config: &Config) -> Option<String> {
    if !config.enable_authentication {
        return None;
    }
    if let Some(raw) = &config.client_api_keys {
        match client_keys::digests(raw.expose()) {
            Ok(keys) if !keys.is_empty() => return None,
            Ok(_) => {}
            Err(e) => return Some(e),
        }
    }
    let id = id(config);
    let current = aws.secrets.get_secret_value().secret_id(&id).send().await;
    let listed = match current {
        Ok(out) => out
            .secret_string()
            .and_then(|s| serde_json::from_str::<Value>(s).ok())
            .is_some_and(|v| has_client_keys(&v)),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_resource_not_found_exception()) =>
        {
            false
        }
        Err(e) => {
            return Some(
                Error::aws(format_args!("read secret {id} to look for client keys"), &e).to_string(),
            );
        }
    };
    (!listed).then(|| format!(
        "authentication is on (ENABLE_AUTHENTICATION, default true) but no client API key is configured: CLIENT_API_KEYS is empty and the secret {id} lists none in client_api_keys, so the proxy would refuse every request. Fix: put one key per line (`name=key` names one) in a repository secret CLIENT_API_KEYS and pass it (input `client-api-keys: ${{{{ secrets.CLIENT_API_KEYS }}}}`), or set ENABLE_AUTHENTICATION=false (input `enable-authentication: false`) knowingly: anyone with the URL can then spend your OpenAI key"
    ))
}

/// The mappings a new secret gets without `MODEL_MAPPINGS`: the function's own defaults
/// (what it serves from `OPENAI_API_KEY` alone), from the one file both crates read.
pub fn default_mappings() -> Map<String, Value> {
    serde_json::from_str(include_str!("../function/src/config/default_mappings.json"))
        .expect("function/src/config/default_mappings.json is a JSON object")
}

/// The timeouts the secret takes from the inputs, by their names in `timeout_settings`.
fn timeouts(config: &Config) -> Map<String, Value> {
    [
        ("openai_api_timeout", config.openai_api_timeout),
        ("secrets_manager_timeout", config.secrets_manager_timeout),
        ("lambda_timeout", config.lambda_timeout),
    ]
    .into_iter()
    .map(|(name, seconds)| (name.to_owned(), Value::from(seconds)))
    .collect()
}

/// The secret's value after this run: `existing` with the deployer-owned fields replaced.
pub fn desired(existing: Option<&Value>, config: &Config) -> Result<Value> {
    let mut value = match existing {
        Some(Value::Object(map)) => map.clone(),
        Some(_) => {
            return Err(Error::new(
                "the existing secret is not a JSON object",
                "fix its value in Secrets Manager (docs/function.md, \"The secret\") or delete it and run setup-secrets again",
            ));
        }
        None => Map::new(),
    };
    match &config.openai_api_key {
        Some(key) => {
            check_key(key.expose())?;
            value.insert("openai_api_key".into(), Value::from(key.expose()));
        }
        None if value.get("openai_api_key").is_some_and(Value::is_string) => {}
        None => {
            return Err(Error::new(
                "OPENAI_API_KEY is not set and the secret holds no key",
                "set OPENAI_API_KEY (e.g. from secrets.OPENAI_API_KEY) to create it",
            ));
        }
    }
    match &config.model_mappings {
        // Checked (model_mappings::problems) when the configuration was read.
        Some(mappings) => {
            value.insert("model_mappings".into(), Value::Object(mappings.clone()));
        }
        None => {
            let kept = value
                .entry("model_mappings")
                .or_insert_with(|| Value::Object(default_mappings()));
            // Kept as set before: the proxy this deploy ships must still take it.
            if let Some(problem) = kept
                .as_object()
                .and_then(|m| model_mappings::problems(m).into_iter().next())
            {
                return Err(Error::new(
                    format!("the secret's model_mappings, kept as MODEL_MAPPINGS is not set: {problem}"),
                    "set MODEL_MAPPINGS to the mappings to serve, or correct model_mappings in the secret",
                ));
            }
        }
    }
    if let Some(raw) = &config.client_api_keys {
        let keys = client_keys::digests(raw.expose()).map_err(|e| Error::new(e, ""))?;
        if !keys.is_empty() {
            let merged = merge_client_keys(value.get("client_api_keys"), &keys);
            value.insert("client_api_keys".into(), merged);
        }
    }
    // Into the settings there, so that one set by hand (stream_idle_timeout) stays.
    match value.entry("timeout_settings").or_insert_with(|| json!({})) {
        Value::Object(settings) => settings.extend(timeouts(config)),
        other => *other = Value::Object(timeouts(config)),
    }
    let value = Value::Object(value);
    unpriced_usd_limit(&value)?;
    client_entry_problems(&value)?;
    Ok(value)
}

/// What the function refuses in `client_api_keys` that a deploy could leave there: a
/// name it does not take or one used twice (set by hand), and `models` naming ids that
/// the new `model_mappings` no longer has. Checked before the secret is written, so that
/// a deploy never leaves a proxy that cannot load its configuration. Names only, never
/// digests, in the messages.
fn client_entry_problems(value: &Value) -> Result<()> {
    let mappings = value.get("model_mappings").and_then(Value::as_object);
    let entries = value.get("client_api_keys").and_then(Value::as_array);
    let mut names = std::collections::BTreeSet::new();
    for (i, entry) in entries.into_iter().flatten().enumerate() {
        let Some(name) = entry.get("name").and_then(Value::as_str) else {
            continue;
        };
        let problem = if !client_keys::is_name(name) || name.len() > client_keys::MAX_NAME_LEN {
            Some(format!(
                "client_api_keys[{i}] of the secret has a name the proxy does not take (1 to {} of A-Z a-z 0-9 - _ . : @)",
                client_keys::MAX_NAME_LEN
            ))
        } else if !names.insert(name) {
            Some(format!(
                "two client_api_keys entries of the secret are named {name}"
            ))
        } else {
            let models = entry.get("models").and_then(Value::as_array);
            models.into_iter().flatten().find_map(|model| {
                let model = model.as_str()?;
                (!mappings.is_some_and(|m| m.contains_key(model))).then(|| {
                    format!("client {name} may use model {model} (its `models` in the secret), which MODEL_MAPPINGS no longer maps")
                })
            })
        };
        if let Some(cause) = problem {
            return Err(Error::new(
                format!("{cause}: the proxy would refuse its configuration, so the secret was not written"),
                "fix the entry in the secret (Secrets Manager console or `aws secretsmanager put-secret-value`), or keep the model in MODEL_MAPPINGS, then run again",
            ));
        }
    }
    Ok(())
}

/// The secret's JSON as it is now (`null` when it holds no JSON).
pub async fn read(aws: &Aws, id: &str) -> Result<Value> {
    let out = aws
        .secrets
        .get_secret_value()
        .secret_id(id)
        .send()
        .await
        .map_err(|e| Error::aws(format_args!("read secret {id}"), &e))?;
    Ok(out
        .secret_string()
        .and_then(|s| serde_json::from_str(s).ok())
        .unwrap_or(Value::Null))
}

/// Creates or updates the secret when the configuration carries something to write;
/// otherwise finds the existing one.
pub async fn apply(aws: &Aws, config: &Config) -> Result<Outcome> {
    let id = id(config);
    let current = aws.secrets.get_secret_value().secret_id(&id).send().await;
    let (arn, existing, version) = match current {
        Ok(out) => {
            let arn = out.arn().unwrap_or(&id).to_owned();
            let parsed = out
                .secret_string()
                .map(|s| serde_json::from_str::<Value>(s).unwrap_or(Value::Null));
            (Some(arn), parsed, out.version_id().map(str::to_owned))
        }
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_resource_not_found_exception()) =>
        {
            (None, None, None)
        }
        Err(e) => return Err(Error::aws(format_args!("read secret {id}"), &e)),
    };
    // The timeouts are the inputs' (LAMBDA_TIMEOUT is also the function's): the
    // deployer's own secret is written when they differ, even with nothing else given. A
    // secret named by OPENAI_API_KEY_SECRET_ARN is the operator's: only what is given.
    let stale_timeouts = config.openai_api_key_secret_arn.is_none()
        && existing.as_ref().is_some_and(|secret| {
            timeouts(config)
                .into_iter()
                .any(|(name, value)| secret.pointer(&format!("/timeout_settings/{name}")) != Some(&value))
        });
    let writes = config.openai_api_key.is_some()
        || config.model_mappings.is_some()
        || config.client_api_keys.is_some()
        || stale_timeouts;
    if let (Some(arn), false) = (&arn, writes) {
        return Ok(Outcome {
            arn: arn.clone(),
            action: Action::Existing,
            clients: existing.as_ref().map(client_keys::listed).unwrap_or_default(),
            undo: None,
        });
    }
    if arn.is_none() && config.openai_api_key_secret_arn.is_some() {
        return Err(Error::new(
            format!(
                "OPENAI_API_KEY_SECRET_ARN={id} does not exist in region {}",
                aws.region
            ),
            "check the ARN and region, or unset it and set OPENAI_API_KEY to let the deployer create the secret",
        ));
    }
    let value = desired(existing.as_ref(), config)?;
    let clients = client_keys::listed(&value);
    if existing.as_ref() == Some(&value) {
        return Ok(Outcome {
            arn: arn.unwrap_or(id),
            action: Action::Unchanged,
            clients,
            undo: None,
        });
    }
    let text = value.to_string();
    match arn {
        Some(arn) => {
            let out = aws
                .secrets
                .put_secret_value()
                .secret_id(&arn)
                .secret_string(text)
                .send()
                .await
                .map_err(|e| Error::aws(format_args!("update secret {arn}"), &e))?;
            let undo = version.zip(out.version_id()).map(|(previous, written)| Undo {
                arn: arn.clone(),
                previous,
                written: written.to_owned(),
            });
            Ok(Outcome {
                arn,
                action: Action::Updated,
                clients,
                undo,
            })
        }
        None => {
            let out = aws
                .secrets
                .create_secret()
                .name(&id)
                .description("openai-lambda-proxy configuration: OpenAI key, model mappings, timeouts")
                .secret_string(text)
                .tags(
                    aws_sdk_secretsmanager::types::Tag::builder()
                        .key("managed-by")
                        .value("openai-proxy-deployer")
                        .build(),
                )
                .send()
                .await
                .map_err(|e| Error::aws(format_args!("create secret {id}"), &e))?;
            Ok(Outcome {
                arn: out.arn().unwrap_or(&id).to_owned(),
                action: Action::Created,
                clients,
                undo: None,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)]) -> Config {
        Config::from_vars(pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))).unwrap()
    }

    const KEY: &str = "sk-test-0123456789abcdef";

    #[test]
    fn a_new_secret_gets_the_key_default_mappings_and_timeouts() {
        let value = desired(None, &config(&[("OPENAI_API_KEY", KEY)])).unwrap();
        assert_eq!(value["openai_api_key"], KEY);
        assert_eq!(value["model_mappings"]["amazon.nova-lite-v1:0"], "gpt-4o-mini");
        assert_eq!(
            value["timeout_settings"],
            json!({"openai_api_timeout": 30, "secrets_manager_timeout": 10, "lambda_timeout": 300})
        );
    }

    #[test]
    fn an_update_keeps_fields_set_by_hand_and_is_unchanged_when_nothing_differs() {
        let first = desired(None, &config(&[("OPENAI_API_KEY", KEY)])).unwrap();
        let mut by_hand = first.clone();
        by_hand["client_api_keys"] = json!(["ab12"]);
        by_hand["openai_base_url"] = json!("http://127.0.0.1:9/v1");
        let again = desired(Some(&by_hand), &config(&[("OPENAI_API_KEY", KEY)])).unwrap();
        assert_eq!(again, by_hand);
        let remapped = desired(
            Some(&by_hand),
            &config(&[("MODEL_MAPPINGS", r#"{"mine":"gpt-4o"}"#)]),
        )
        .unwrap();
        assert_eq!(remapped["model_mappings"], json!({"mine": "gpt-4o"}));
        assert_eq!(remapped["client_api_keys"], json!(["ab12"]));
        assert_eq!(remapped["openai_api_key"], KEY);
    }

    #[test]
    fn client_keys_join_those_set_by_hand_and_a_named_key_is_rotated_in_place() {
        let digest = |k: &str| client_keys::digests(k).unwrap()[0].sha256.clone();
        let mut by_hand = desired(None, &config(&[("OPENAI_API_KEY", KEY)])).unwrap();
        by_hand["client_api_keys"] = json!([
            "ab".repeat(32),
            {"name": "web-app", "sha256": "cd".repeat(32), "models": ["amazon.nova-lite-v1:0"]},
        ]);
        let keys = "web-app=rotated-key-0123456789\nnew-unnamed-key-0123456789";
        let value = desired(Some(&by_hand), &config(&[("CLIENT_API_KEYS", keys)])).unwrap();
        assert_eq!(
            value["client_api_keys"],
            json!([
                "ab".repeat(32),
                {"name": "web-app", "sha256": digest("rotated-key-0123456789"), "models": ["amazon.nova-lite-v1:0"]},
                digest("new-unnamed-key-0123456789"),
            ])
        );
        assert!(!value.to_string().contains("rotated-key"), "{value}");
        // The same keys again change nothing: no new secret version.
        let again = desired(Some(&value), &config(&[("CLIENT_API_KEYS", keys)])).unwrap();
        assert_eq!(again, value);
        assert!(has_client_keys(&value));
        assert!(!has_client_keys(&json!({"client_api_keys": []})));
    }

    #[test]
    fn limits_of_a_named_key_are_written_and_kept_when_a_later_run_gives_none() {
        let keys = "web-app=web-app-key-0123456789;usd_per_month=50;requests_per_minute=60";
        let value = desired(
            None,
            &config(&[("OPENAI_API_KEY", KEY), ("CLIENT_API_KEYS", keys)]),
        )
        .unwrap();
        let digest = client_keys::digests(keys).unwrap()[0].sha256.clone();
        assert_eq!(
            value["client_api_keys"],
            json!([{"name": "web-app", "sha256": digest, "limits": {"requests_per_minute": 60, "usd_per_month": 50}}])
        );
        let plain = desired(
            Some(&value),
            &config(&[("CLIENT_API_KEYS", "web-app=web-app-key-0123456789")]),
        )
        .unwrap();
        assert_eq!(plain, value, "limits set before stay");
        let changed = desired(
            Some(&value),
            &config(&[("CLIENT_API_KEYS", "web-app=web-app-key-0123456789;usd_per_day=1")]),
        )
        .unwrap();
        assert_eq!(
            changed["client_api_keys"][0]["limits"],
            json!({"usd_per_day": 1}),
            "limits given replace those before"
        );
    }

    #[test]
    fn a_usd_limit_on_a_key_that_reaches_an_unpriced_model_stops_before_the_secret_is_written() {
        let keys = "web-app=web-app-key-0123456789;usd_per_day=5";
        let err = desired(
            None,
            &config(&[
                ("OPENAI_API_KEY", KEY),
                (
                    "MODEL_MAPPINGS",
                    r#"{"mine":"gpt-4o-mini","big":"gpt-9-unpriced"}"#,
                ),
                ("CLIENT_API_KEYS", keys),
            ]),
        )
        .unwrap_err();
        assert!(
            err.cause.contains("client web-app has a USD limit (usd_per_day) but can reach model big, which maps to gpt-9-unpriced"),
            "{err}"
        );
        assert!(err.fix.contains("\"prices\": {\"gpt-9-unpriced\""), "{err}");
        assert!(!err.to_string().contains("web-app-key"), "{err}");
        // A price in the secret, or a key limited to priced models, is enforceable.
        let mut existing = desired(None, &config(&[("OPENAI_API_KEY", KEY)])).unwrap();
        existing["prices"] = json!({"gpt-9-unpriced": {"input_per_million": 1, "output_per_million": 2}});
        let mapped = [
            (
                "MODEL_MAPPINGS",
                r#"{"mine":"gpt-4o-mini","big":"gpt-9-unpriced"}"#,
            ),
            ("CLIENT_API_KEYS", keys),
        ];
        assert!(desired(Some(&existing), &config(&mapped)).is_ok());
        existing.as_object_mut().unwrap().remove("prices");
        existing["client_api_keys"] =
            json!([{"name": "web-app", "sha256": "ab".repeat(32), "models": ["mine"]}]);
        assert!(desired(Some(&existing), &config(&mapped)).is_ok());
    }

    #[test]
    fn bad_keys_and_mappings_are_refused_without_echoing_the_key() {
        let err = desired(None, &config(&[("OPENAI_API_KEY", "not-a-key with spaces")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("OPENAI_API_KEY does not look like"), "{err}");
        assert!(!err.contains("not-a-key"), "{err}");
        let err = desired(None, &config(&[])).unwrap_err().to_string();
        assert!(err.contains("OPENAI_API_KEY is not set"), "{err}");
        // Mappings are checked once, when the configuration is read.
        let err = Config::from_vars([("MODEL_MAPPINGS".to_owned(), r#"{"a":""}"#.to_owned())])
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("MODEL_MAPPINGS[\"a\"]"), "{err}");
        let err = desired(Some(&json!("plain")), &config(&[("OPENAI_API_KEY", KEY)]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("not a JSON object"), "{err}");
    }
}

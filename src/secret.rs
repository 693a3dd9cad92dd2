//! The proxy's configuration secret in Secrets Manager: created or updated from
//! `OPENAI_API_KEY`, `MODEL_MAPPINGS` and the timeouts, idempotently. Fields set by hand
//! (`client_api_keys`, `openai_base_url`, ...) survive updates, and an unchanged value
//! writes no new secret version.

use serde_json::{Map, Value, json};

use crate::aws::{self, Aws};
use crate::config::Config;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Created,
    Updated,
    Unchanged,
    /// Used as found: the deployer was given nothing to write.
    Existing,
}

impl Action {
    /// For the log and the report.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Created => "created",
            Action::Updated => "updated (new version)",
            Action::Unchanged => "unchanged (no new version)",
            Action::Existing => "used as is",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Outcome {
    pub arn: String,
    pub action: Action,
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
pub fn check_key(key: &str) -> Result<(), String> {
    let ok = key.starts_with("sk-") && key.len() >= 20 && key.bytes().all(|b| b.is_ascii_graphic());
    if ok {
        Ok(())
    } else {
        Err("OPENAI_API_KEY does not look like an OpenAI API key (expected `sk-` and at least 17 more characters, no spaces or newlines): copy it again from https://platform.openai.com/api-keys into the repository secret".into())
    }
}

pub fn default_mappings() -> Map<String, Value> {
    [
        "amazon.nova-lite-v1:0",
        "amazon.nova-pro-v1:0",
        "amazon.nova-micro-v1:0",
    ]
    .into_iter()
    .map(|id| (id.to_owned(), Value::from("gpt-4o-mini")))
    .collect()
}

/// The secret's value after this run: `existing` with the deployer-owned fields replaced.
pub fn desired(existing: Option<&Value>, config: &Config) -> Result<Value, String> {
    let mut value = match existing {
        Some(Value::Object(map)) => map.clone(),
        Some(_) => {
            return Err("the existing secret is not a JSON object: fix its value in Secrets Manager (see README, \"The secret's shape\") or delete it and run setup-secrets again".into());
        }
        None => Map::new(),
    };
    match &config.openai_api_key {
        Some(key) => {
            check_key(key.expose())?;
            value.insert("openai_api_key".into(), Value::from(key.expose()));
        }
        None if value.get("openai_api_key").is_some_and(Value::is_string) => {}
        None => return Err("OPENAI_API_KEY is not set and the secret holds no key: set OPENAI_API_KEY (e.g. from secrets.OPENAI_API_KEY) to create it".into()),
    }
    match &config.model_mappings {
        // Checked (non-empty, strings) when the configuration was read.
        Some(mappings) => {
            let mappings = mappings
                .iter()
                .map(|(k, v)| (k.clone(), Value::from(v.as_str())))
                .collect();
            value.insert("model_mappings".into(), Value::Object(mappings));
        }
        None => {
            value
                .entry("model_mappings")
                .or_insert_with(|| Value::Object(default_mappings()));
        }
    }
    value.insert(
        "timeout_settings".into(),
        json!({
            "openai_api_timeout": config.openai_api_timeout,
            "secrets_manager_timeout": config.secrets_manager_timeout,
            "lambda_timeout": config.lambda_timeout,
        }),
    );
    Ok(Value::Object(value))
}

/// Creates or updates the secret when the configuration carries something to write;
/// otherwise finds the existing one.
pub async fn apply(aws: &Aws, config: &Config) -> Result<Outcome, String> {
    let id = id(config);
    let current = aws.secrets.get_secret_value().secret_id(&id).send().await;
    let (arn, existing) = match current {
        Ok(out) => {
            let arn = out.arn().unwrap_or(&id).to_owned();
            let parsed = out
                .secret_string()
                .map(|s| serde_json::from_str::<Value>(s).unwrap_or(Value::Null));
            (Some(arn), parsed)
        }
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_resource_not_found_exception()) =>
        {
            (None, None)
        }
        Err(e) => {
            return Err(format!(
                "could not read secret {id} ({}): the deploying role needs secretsmanager:GetSecretValue on it (see docs/iam-policy.json)",
                aws::describe(&e)
            ));
        }
    };
    let writes = config.openai_api_key.is_some() || config.model_mappings.is_some();
    if let (Some(arn), false) = (&arn, writes) {
        return Ok(Outcome {
            arn: arn.clone(),
            action: Action::Existing,
        });
    }
    if arn.is_none() && config.openai_api_key_secret_arn.is_some() {
        return Err(format!(
            "OPENAI_API_KEY_SECRET_ARN={id} does not exist in region {}: check the ARN and region, or unset it and set OPENAI_API_KEY to let the deployer create the secret",
            aws.region
        ));
    }
    let value = desired(existing.as_ref(), config)?;
    if existing.as_ref() == Some(&value) {
        return Ok(Outcome {
            arn: arn.unwrap_or(id),
            action: Action::Unchanged,
        });
    }
    let text = value.to_string();
    match arn {
        Some(arn) => {
            aws.secrets
                .put_secret_value()
                .secret_id(&arn)
                .secret_string(text)
                .send()
                .await
                .map_err(|e| format!("could not update secret {arn} ({}): the deploying role needs secretsmanager:PutSecretValue on it", aws::describe(&e)))?;
            Ok(Outcome {
                arn,
                action: Action::Updated,
            })
        }
        None => {
            let out = aws
                .secrets
                .create_secret()
                .name(&id)
                .description("openai-lambda-proxy configuration: OpenAI key, model mappings, timeouts")
                .secret_string(text)
                .tags(aws_sdk_secretsmanager::types::Tag::builder().key("managed-by").value("openai-proxy-deployer").build())
                .send()
                .await
                .map_err(|e| format!("could not create secret {id} ({}): the deploying role needs secretsmanager:CreateSecret", aws::describe(&e)))?;
            Ok(Outcome {
                arn: out.arn().unwrap_or(&id).to_owned(),
                action: Action::Created,
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
    fn bad_keys_and_mappings_are_refused_without_echoing_the_key() {
        let err = desired(None, &config(&[("OPENAI_API_KEY", "not-a-key with spaces")])).unwrap_err();
        assert!(err.contains("OPENAI_API_KEY does not look like"), "{err}");
        assert!(!err.contains("not-a-key"), "{err}");
        let err = desired(None, &config(&[])).unwrap_err();
        assert!(err.contains("OPENAI_API_KEY is not set"), "{err}");
        // Mappings are checked once, when the configuration is read.
        let err = Config::from_vars([("MODEL_MAPPINGS".to_owned(), r#"{"a":""}"#.to_owned())])
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("MODEL_MAPPINGS[\"a\"]"), "{err}");
        let err = desired(Some(&json!("plain")), &config(&[("OPENAI_API_KEY", KEY)])).unwrap_err();
        assert!(err.contains("not a JSON object"), "{err}");
    }
}

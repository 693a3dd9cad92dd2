//! Where the configuration comes from, first that is set: `OPENAI_API_KEY_SECRET_ARN`
//! (Secrets Manager), `PROXY_CONFIG_FILE`, `OPENAI_API_KEY`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_secretsmanager::error::DisplayErrorContext;

use super::{DEFAULT_OPENAI_BASE_URL, InvalidConfig, ProxyConfig};
use crate::env::Environment;

pub enum ConfigSource {
    SecretsManager {
        secret_id: String,
        client: aws_sdk_secretsmanager::Client,
    },
    File(PathBuf),
    Key(String),
    /// A configuration built in code (tests, benchmarks).
    Fixed(Arc<ProxyConfig>),
}

/// Why loading failed; shown in logs (never values), summarised to clients.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LoadError {
    #[error("{source_name} is unavailable: {reason}")]
    Unavailable { source_name: String, reason: String },
    #[error("{source_name} {invalid}")]
    Invalid {
        source_name: String,
        invalid: InvalidConfig,
    },
}

impl ConfigSource {
    /// Chooses the source from the environment; `Err` says what to set.
    pub async fn from_env(env: &Environment) -> Result<Self, String> {
        let set = |name: &str| env.get(name);
        if let Some(arn) = set("OPENAI_API_KEY_SECRET_ARN") {
            // Region, credentials and AWS_ENDPOINT_URL come from the SDK's standard chain.
            let shared = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
            let client = aws_sdk_secretsmanager::Client::new(&shared);
            return Ok(Self::SecretsManager {
                secret_id: arn.trim().to_owned(),
                client,
            });
        }
        if let Some(path) = set("PROXY_CONFIG_FILE") {
            return Ok(Self::File(PathBuf::from(path)));
        }
        if let Some(key) = set("OPENAI_API_KEY") {
            return Ok(Self::Key(key.to_owned()));
        }
        Err(
            "no configuration source: set OPENAI_API_KEY_SECRET_ARN (Secrets Manager secret), \
             PROXY_CONFIG_FILE (a JSON file of the secret's shape) or OPENAI_API_KEY"
                .to_owned(),
        )
    }

    /// Names the source for logs. ARNs and paths are not secret; keys are never named.
    pub fn name(&self) -> String {
        match self {
            Self::SecretsManager { secret_id, .. } => format!("Secrets Manager secret {secret_id}"),
            Self::File(path) => format!("PROXY_CONFIG_FILE {}", path.display()),
            Self::Key(_) => "OPENAI_API_KEY".to_owned(),
            Self::Fixed(_) => "built-in configuration".to_owned(),
        }
    }

    pub(super) async fn load(
        &self,
        base_url: &str,
        timeout: Duration,
    ) -> Result<Arc<ProxyConfig>, LoadError> {
        let invalid = |invalid| LoadError::Invalid {
            source_name: self.name(),
            invalid,
        };
        let unavailable = |reason: String| LoadError::Unavailable {
            source_name: self.name(),
            reason,
        };
        match self {
            Self::Fixed(config) => Ok(config.clone()),
            Self::Key(key) => ProxyConfig::from_key(key, base_url)
                .map(Arc::new)
                .map_err(invalid),
            Self::File(path) => {
                let text = tokio::fs::read_to_string(path)
                    .await
                    .map_err(|e| unavailable(e.to_string()))?;
                ProxyConfig::from_json(&text, base_url)
                    .map(Arc::new)
                    .map_err(invalid)
            }
            Self::SecretsManager { secret_id, client } => {
                let request = client.get_secret_value().secret_id(secret_id).send();
                let output = tokio::time::timeout(timeout, request)
                    .await
                    .map_err(|_| unavailable(format!("no answer within {} s", timeout.as_secs_f64())))?
                    .map_err(|e| unavailable(DisplayErrorContext(e).to_string()))?;
                let text = output.secret_string().ok_or_else(|| {
                    unavailable(
                        "the secret has no SecretString (binary secrets are not supported)".to_owned(),
                    )
                })?;
                ProxyConfig::from_json(text, base_url)
                    .map(Arc::new)
                    .map_err(invalid)
            }
        }
    }
}

/// `OPENAI_BASE_URL`, or OpenAI's.
pub fn base_url_from_env(env: &Environment) -> String {
    env.get("OPENAI_BASE_URL")
        .unwrap_or(DEFAULT_OPENAI_BASE_URL)
        .to_owned()
}

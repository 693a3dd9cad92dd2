//! Configuration from the environment, and nowhere else.
//!
//! [`VARIABLES`] is the one source of truth: `--help` prints it, its defaults are fed to
//! envy before deserializing, and a test keeps it and [`Config`] in step.

use std::collections::HashMap;
use std::fmt;

use serde::Deserialize;

pub struct Variable {
    pub name: &'static str,
    pub default: Option<&'static str>,
    pub meaning: &'static str,
}

macro_rules! var {
    ($name:literal, $default:expr, $meaning:literal) => {
        Variable {
            name: $name,
            default: $default,
            meaning: $meaning,
        }
    };
}

pub const VARIABLES: &[Variable] = &[
    var!(
        "DEPLOYER_COMMAND",
        Some("deploy"),
        "validate | deploy | test | destroy | setup-secrets"
    ),
    var!(
        "STACK_NAME",
        Some("openai-lambda-proxy"),
        "CloudFormation stack name"
    ),
    var!(
        "AWS_REGION",
        None,
        "AWS region (required unless the SDK's chain resolves one)"
    ),
    var!(
        "TEMPLATE_FILE",
        Some("template.yaml"),
        "CloudFormation template to deploy"
    ),
    var!(
        "FUNCTION_ARTIFACT",
        Some("target/lambda/openai-proxy-function/bootstrap.zip"),
        "a bootstrap.zip or a bootstrap executable"
    ),
    var!(
        "ARCHITECTURE",
        None,
        "arm64 | x86_64 (default: read from the artifact's ELF header)"
    ),
    var!(
        "OPENAI_API_KEY_SECRET_ARN",
        None,
        "Secrets Manager secret holding the proxy configuration"
    ),
    var!(
        "LAMBDA_FUNCTION_NAME",
        Some("openai-lambda-proxy"),
        "name of the Lambda function"
    ),
    var!(
        "API_GATEWAY_NAME",
        Some("openai-proxy-api"),
        "name of the API Gateway REST API"
    ),
    var!("STAGE", Some("prod"), "deployment stage: dev | test | prod"),
    var!(
        "LOG_LEVEL",
        Some("INFO"),
        "function log level: DEBUG | INFO | WARNING | ERROR"
    ),
    var!(
        "ENABLE_AUTHENTICATION",
        Some("false"),
        "require client API keys: true | false"
    ),
    var!(
        "PARAMETER_OVERRIDES",
        None,
        "JSON object of further template parameters"
    ),
    var!(
        "OPENAI_API_KEY",
        None,
        "when set, the secret is created or updated from it (never printed)"
    ),
    var!(
        "MODEL_MAPPINGS",
        None,
        "JSON object: client model id -> OpenAI model id"
    ),
    var!(
        "API_BASE_URL",
        None,
        "endpoint tests target (default: the stack's ApiUrl output)"
    ),
    var!("REPORT_FILE", None, "also write the markdown report to this path"),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Command {
    Validate,
    Deploy,
    Test,
    Destroy,
    SetupSecrets,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum Stage {
    #[serde(rename = "dev")]
    Dev,
    #[serde(rename = "test")]
    Test,
    #[serde(rename = "prod")]
    Prod,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum LogLevel {
    #[serde(rename = "DEBUG")]
    Debug,
    #[serde(rename = "INFO")]
    Info,
    #[serde(rename = "WARNING")]
    Warning,
    #[serde(rename = "ERROR")]
    Error,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum Architecture {
    #[serde(rename = "arm64")]
    Arm64,
    #[serde(rename = "x86_64")]
    X86_64,
}

#[derive(Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub struct Config {
    pub deployer_command: Command,
    pub stack_name: String,
    pub aws_region: Option<String>,
    pub template_file: String,
    pub function_artifact: String,
    pub architecture: Option<Architecture>,
    pub openai_api_key_secret_arn: Option<String>,
    pub lambda_function_name: String,
    pub api_gateway_name: String,
    pub stage: Stage,
    pub log_level: LogLevel,
    pub enable_authentication: bool,
    pub parameter_overrides: Option<String>,
    pub openai_api_key: Option<Secret>,
    pub model_mappings: Option<String>,
    pub api_base_url: Option<String>,
    pub report_file: Option<String>,
}

/// A value that must never reach a log, report or error message.
#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(String);

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_vars(std::env::vars())
    }

    /// Builds the config from `vars`, filling what is unset (or empty, as GitHub Actions
    /// passes unset inputs) from [`VARIABLES`].
    pub fn from_vars(vars: impl IntoIterator<Item = (String, String)>) -> Result<Self, ConfigError> {
        let mut known: HashMap<String, String> = vars
            .into_iter()
            .filter(|(k, v)| !v.is_empty() && VARIABLES.iter().any(|var| var.name == k))
            .collect();
        for var in VARIABLES {
            if let Some(default) = var.default {
                known
                    .entry(var.name.to_owned())
                    .or_insert_with(|| default.to_owned());
            }
        }
        envy::from_iter(known).map_err(|e| ConfigError(describe(e)))
    }
}

/// envy names the field but, for enums, echoes the value: say what is allowed instead,
/// and never echo anything for a secret.
fn describe(error: envy::Error) -> String {
    let text = error.to_string();
    for var in VARIABLES {
        let field = var.name.to_ascii_lowercase();
        if text.contains(&field) || text.contains(var.name) {
            return format!(
                "{} is not valid: expected {} (e.g. {}={})",
                var.name,
                var.meaning,
                var.name,
                example(var)
            );
        }
    }
    text
}

fn example(var: &Variable) -> &'static str {
    match var.name {
        "ENABLE_AUTHENTICATION" => "true",
        _ => var.default.unwrap_or("..."),
    }
}

pub fn help() -> String {
    let mut out = format!(
        "{} {}\n{}\n\nUsage: openai-proxy-deployer [--help | --version]\n\nAll configuration comes from environment variables:\n\n",
        env!("CARGO_PKG_NAME"),
        env!("CARGO_PKG_VERSION"),
        env!("CARGO_PKG_DESCRIPTION"),
    );
    let width = VARIABLES.iter().map(|v| v.name.len()).max().unwrap_or(0);
    for var in VARIABLES {
        let default = var
            .default
            .map(|d| format!(" [default: {d}]"))
            .unwrap_or_default();
        out.push_str(&format!("  {:width$}  {}{}\n", var.name, var.meaning, default));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn empty_environment_gives_the_design_documents_defaults() {
        let config = Config::from_vars(vars(&[])).unwrap();
        assert_eq!(config.deployer_command, Command::Deploy);
        assert_eq!(config.lambda_function_name, "openai-lambda-proxy");
        assert_eq!(config.api_gateway_name, "openai-proxy-api");
        assert_eq!(config.stage, Stage::Prod);
        assert_eq!(config.log_level, LogLevel::Info);
        assert!(!config.enable_authentication);
        assert_eq!(config.template_file, "template.yaml");
    }

    #[test]
    fn empty_values_count_as_unset_like_github_action_inputs() {
        let config =
            Config::from_vars(vars(&[("STAGE", ""), ("DEPLOYER_COMMAND", "setup-secrets")])).unwrap();
        assert_eq!(config.stage, Stage::Prod);
        assert_eq!(config.deployer_command, Command::SetupSecrets);
    }

    #[test]
    fn invalid_value_names_the_variable_and_an_example() {
        let err = Config::from_vars(vars(&[("STAGE", "production")]))
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("STAGE is not valid"), "{err}");
        assert!(err.contains("dev | test | prod"), "{err}");
    }

    #[test]
    fn errors_never_echo_the_openai_key() {
        // A well-formed key parses; nothing about a bad neighbour may print it.
        let err = Config::from_vars(vars(&[
            ("OPENAI_API_KEY", "sk-live-secret"),
            ("ENABLE_AUTHENTICATION", "yes"),
        ]))
        .err()
        .unwrap()
        .to_string();
        assert!(err.contains("ENABLE_AUTHENTICATION"), "{err}");
        assert!(!err.contains("sk-live-secret"), "{err}");
        let config = Config::from_vars(vars(&[("OPENAI_API_KEY", "sk-live-secret")])).unwrap();
        assert!(!format!("{:?}", config.openai_api_key).contains("sk-live"));
    }

    #[test]
    fn help_lists_every_variable_with_its_default() {
        let help = help();
        for var in VARIABLES {
            assert!(help.contains(var.name), "{} missing from --help", var.name);
            if let Some(d) = var.default {
                assert!(
                    help.contains(&format!("[default: {d}]")),
                    "default of {} missing",
                    var.name
                );
            }
        }
    }
}

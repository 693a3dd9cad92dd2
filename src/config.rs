//! Configuration from the environment, and nowhere else.
//!
//! [`VARIABLES`] is the one source of truth: `--help` prints it, its defaults are fed to
//! envy before deserializing, and a test keeps it and [`Config`] in step.
//!
//! Each variable is also an action input ([`Variable::input_id`]). The runner passes an
//! input as `INPUT_<ID uppercased>` (hyphens kept: `INPUT_STACK-NAME`), in `runs.image`
//! and `uses: docker://` steps alike, and that wins over the plain variable: a job's or
//! workflow's `env:` of the same name must not beat what the step's `with:` says.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use serde::Deserialize;
use serde_json::Value;

pub struct Variable {
    pub name: &'static str,
    pub default: Option<&'static str>,
    pub kind: Kind,
    pub meaning: &'static str,
}

/// What a variable holds; checked before deserializing so every bad value is reported
/// at once, by name, and without echoing what the user set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Text,
    /// Never printed, not even when invalid.
    Secret,
    OneOf(&'static [&'static str]),
    Bool,
    JsonObject,
    /// A whole number within `min..=max`.
    Number(u64, u64),
}

macro_rules! var {
    ($name:literal, $default:expr, $kind:expr, $meaning:literal) => {
        Variable {
            name: $name,
            default: $default,
            kind: $kind,
            meaning: $meaning,
        }
    };
}

const COMMANDS: &[&str] = &["validate", "deploy", "test", "destroy", "setup-secrets", "usage"];
const STAGES: &[&str] = &["dev", "test", "prod"];
const LOG_LEVELS: &[&str] = &["DEBUG", "INFO", "WARNING", "ERROR"];
const ARCHITECTURES: &[&str] = &["arm64", "x86_64"];
const PROVIDERS: &[&str] = &["auto", "openai", "bedrock"];

pub const VARIABLES: &[Variable] = &[
    var!(
        "DEPLOYER_COMMAND",
        Some("deploy"),
        Kind::OneOf(COMMANDS),
        "what to do"
    ),
    var!(
        "STACK_NAME",
        Some("openai-lambda-proxy"),
        Kind::Text,
        "CloudFormation stack name"
    ),
    var!(
        "AWS_REGION",
        None,
        Kind::Text,
        "AWS region (required unless the SDK's chain resolves one)"
    ),
    var!(
        "TEMPLATE_FILE",
        Some("template.yaml"),
        Kind::Text,
        "CloudFormation template to deploy"
    ),
    var!(
        "FUNCTION_ARTIFACT",
        Some("target/lambda/openai-proxy-function/bootstrap.zip"),
        Kind::Text,
        "a bootstrap.zip or a bootstrap executable"
    ),
    var!(
        "ARCHITECTURE",
        None,
        Kind::OneOf(ARCHITECTURES),
        "Lambda architecture (default: read from the artifact's ELF header)"
    ),
    var!(
        "OPENAI_API_KEY_SECRET_ARN",
        None,
        Kind::Text,
        "Secrets Manager secret holding the proxy configuration"
    ),
    var!(
        "LAMBDA_FUNCTION_NAME",
        Some("openai-lambda-proxy"),
        Kind::Text,
        "name of the Lambda function"
    ),
    var!(
        "API_GATEWAY_NAME",
        Some("openai-proxy-api"),
        Kind::Text,
        "name of the API Gateway REST API"
    ),
    var!("STAGE", Some("prod"), Kind::OneOf(STAGES), "deployment stage"),
    var!(
        "LOG_LEVEL",
        Some("INFO"),
        Kind::OneOf(LOG_LEVELS),
        "function log level"
    ),
    var!(
        "ENABLE_AUTHENTICATION",
        Some("true"),
        Kind::Bool,
        "require client API keys (a deploy stops when none is configured)"
    ),
    var!(
        "CLIENT_API_KEYS",
        None,
        Kind::Secret,
        "client API keys, one per line, name=key allowed, limits after it (web-app=<key>;usd_per_month=50); stored in the secret as SHA-256 digests (never printed)"
    ),
    var!(
        "PARAMETER_OVERRIDES",
        None,
        Kind::JsonObject,
        "further template parameters, e.g. {\"MemorySize\":\"1024\"}"
    ),
    var!(
        "OPENAI_API_KEY",
        None,
        Kind::Secret,
        "when set, the secret is created or updated from it (never printed)"
    ),
    var!(
        "MODEL_MAPPINGS",
        None,
        Kind::JsonObject,
        "client model id -> OpenAI model id, e.g. {\"amazon.nova-lite-v1:0\":\"gpt-4o-mini\"}, or -> {\"openai\",\"bedrock\",\"primary\"} for failover to Amazon Bedrock (docs/api.md)"
    ),
    var!(
        "API_BASE_URL",
        None,
        Kind::Text,
        "endpoint tests target (default: the stack's ApiUrl output)"
    ),
    var!(
        "REPORT_FILE",
        None,
        Kind::Text,
        "also write the markdown report to this path"
    ),
    var!(
        "SECRET_NAME",
        None,
        Kind::Text,
        "name of the secret setup-secrets creates when no ARN is given (default: <STACK_NAME>/config)"
    ),
    var!(
        "OPENAI_API_TIMEOUT",
        Some("30"),
        Kind::Number(1, 900),
        "seconds the function waits for OpenAI (written into the secret)"
    ),
    var!(
        "SECRETS_MANAGER_TIMEOUT",
        Some("10"),
        Kind::Number(1, 60),
        "seconds the function waits for Secrets Manager (written into the secret)"
    ),
    var!(
        "LAMBDA_TIMEOUT",
        Some("300"),
        Kind::Number(1, 900),
        "the function's timeout in seconds (secret and template)"
    ),
    var!(
        "ARTIFACT_BUCKET",
        None,
        Kind::Text,
        "S3 bucket for function code (default: openai-lambda-proxy-<account>-<region>, created hardened when absent)"
    ),
    var!(
        "WAIT_TIMEOUT",
        Some("1800"),
        Kind::Number(60, 21600),
        "seconds to wait for the stack before giving up"
    ),
    var!(
        "ROLLBACK_WINDOW_MINUTES",
        Some("3"),
        Kind::Number(0, 180),
        "guarded deploys: minutes CloudFormation monitors an update, while the endpoint tests run and a failure rolls back; 0 turns the guard off"
    ),
    var!(
        "TERMINATION_PROTECTION",
        Some("false"),
        Kind::Bool,
        "turn on the stack's termination protection"
    ),
    var!(
        "RUN_ENDPOINT_TESTS",
        Some("true"),
        Kind::Bool,
        "run the endpoint tests as the last phase of deploy"
    ),
    var!(
        "TEST_CHAT_COMPLETION",
        Some("true"),
        Kind::Bool,
        "endpoint tests include real chat completions (costs a few tokens)"
    ),
    var!(
        "TEST_PROVIDER",
        Some("auto"),
        Kind::OneOf(PROVIDERS),
        "the provider the endpoint tests' chats ask for first (x-proxy-provider); bedrock exercises the failover path of models mapped to both"
    ),
    var!(
        "TEST_CLIENT_API_KEY",
        None,
        Kind::Secret,
        "a client key for the endpoint tests when authentication is on (never printed)"
    ),
    var!(
        "PERF_REQUESTS",
        Some("20"),
        Kind::Number(0, 1000),
        "requests per performance probe (sequential and concurrent); 0 skips it"
    ),
    var!(
        "DESTROY_SECRET",
        Some("false"),
        Kind::Bool,
        "destroy also deletes the secret (7-day recovery window)"
    ),
    var!(
        "DESTROY_ARTIFACTS",
        Some("false"),
        Kind::Bool,
        "destroy also empties and deletes the artifact bucket"
    ),
];

impl Variable {
    /// The action input that sets this variable: the name in kebab-case
    /// (`STACK_NAME` → `stack-name`), except `DEPLOYER_COMMAND`, which is `command`.
    pub fn input_id(&self) -> String {
        match self.name {
            "DEPLOYER_COMMAND" => "command".to_owned(),
            name => name.to_ascii_lowercase().replace('_', "-"),
        }
    }

    /// The environment variable the runner sets for the input: `INPUT_STACK-NAME`.
    pub fn input_env(&self) -> String {
        format!("{INPUT_PREFIX}{}", self.input_id().to_ascii_uppercase())
    }

    /// What is wrong with `value`, in words that never repeat a secret.
    fn check(&self, value: &str) -> Result<(), String> {
        let problem = match self.kind {
            Kind::Text | Kind::Secret => return Ok(()),
            Kind::OneOf(allowed) if allowed.contains(&value) => return Ok(()),
            Kind::OneOf(allowed) => {
                format!(
                    "must be one of {} (e.g. {}={})",
                    allowed.join(" | "),
                    self.name,
                    allowed[0]
                )
            }
            Kind::Bool if matches!(value, "true" | "false") => return Ok(()),
            Kind::Bool => format!("must be true or false (e.g. {}=true)", self.name),
            Kind::Number(min, max) => match value.parse::<u64>() {
                Ok(n) if (min..=max).contains(&n) => return Ok(()),
                _ => format!(
                    "must be a whole number from {min} to {max} (e.g. {}={max})",
                    self.name
                ),
            },
            Kind::JsonObject => match serde_json::from_str::<serde_json::Value>(value) {
                Ok(serde_json::Value::Object(_)) => return Ok(()),
                Ok(_) => "must be a JSON object, {...}".to_owned(),
                Err(e) => format!("is not valid JSON ({e})"),
            },
        };
        Err(format!("{} {problem}", self.name))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Command {
    Validate,
    Deploy,
    Test,
    Destroy,
    SetupSecrets,
    Usage,
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

/// `TEST_PROVIDER`: whom the endpoint tests' chats ask for first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum TestProvider {
    /// The mapping's primary.
    #[serde(rename = "auto")]
    Auto,
    #[serde(rename = "openai")]
    OpenAi,
    #[serde(rename = "bedrock")]
    Bedrock,
}

impl TestProvider {
    /// The `x-proxy-provider` value the chats send (None: the mapping decides).
    pub fn header(self) -> Option<&'static str> {
        match self {
            Self::Auto => None,
            Self::OpenAi => Some("openai"),
            Self::Bedrock => Some("bedrock"),
        }
    }
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

impl Command {
    pub fn as_str(self) -> &'static str {
        match self {
            Command::Validate => "validate",
            Command::Deploy => "deploy",
            Command::Test => "test",
            Command::Destroy => "destroy",
            Command::SetupSecrets => "setup-secrets",
            Command::Usage => "usage",
        }
    }
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Dev => "dev",
            Stage::Test => "test",
            Stage::Prod => "prod",
        }
    }
}

impl LogLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Debug => "DEBUG",
            LogLevel::Info => "INFO",
            LogLevel::Warning => "WARNING",
            LogLevel::Error => "ERROR",
        }
    }
}

impl Architecture {
    pub fn as_str(self) -> &'static str {
        match self {
            Architecture::Arm64 => "arm64",
            Architecture::X86_64 => "x86_64",
        }
    }
}

#[derive(Deserialize)]
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
    pub client_api_keys: Option<Secret>,
    /// `PARAMETER_OVERRIDES`, as the strings CloudFormation takes (parsed once).
    #[serde(default, deserialize_with = "settings::overrides")]
    pub parameter_overrides: BTreeMap<String, String>,
    pub openai_api_key: Option<Secret>,
    /// `MODEL_MAPPINGS`: client model id -> OpenAI model id or providers object
    /// (parsed once, checked by `model_mappings::problems`).
    #[serde(default, deserialize_with = "settings::object")]
    pub model_mappings: Option<serde_json::Map<String, Value>>,
    pub api_base_url: Option<String>,
    pub report_file: Option<String>,
    pub secret_name: Option<String>,
    pub openai_api_timeout: u64,
    pub secrets_manager_timeout: u64,
    pub lambda_timeout: u64,
    pub artifact_bucket: Option<String>,
    pub wait_timeout: u64,
    pub rollback_window_minutes: u64,
    pub termination_protection: bool,
    pub run_endpoint_tests: bool,
    pub test_chat_completion: bool,
    pub test_provider: TestProvider,
    pub test_client_api_key: Option<Secret>,
    pub perf_requests: u64,
    pub destroy_secret: bool,
    pub destroy_artifacts: bool,
    /// Read beside the variables, never inputs: see [`Surroundings`].
    #[serde(skip)]
    pub surroundings: Surroundings,
    /// The variables the run set (an input, or outside Actions the variable), as opposed
    /// to those left at their defaults: the action image's bundled template and function
    /// serve unless `template-file` / `function-artifact` is given.
    #[serde(skip)]
    pub given: std::collections::BTreeSet<&'static str>,
}

/// What the deployer reads from the environment besides its own variables (GitHub's
/// are [`crate::runner`]'s).
#[derive(Debug, Clone, Default)]
pub struct Surroundings {
    /// `AWS_ENDPOINT_URL` is set but empty, which the AWS SDK cannot take (it stops the
    /// process): a prerequisite problem with its fix instead.
    pub aws_endpoint_url_empty: bool,
    /// `OPENAI_PROXY_BUNDLED_TEMPLATE`, set in the action's image: the stock template.
    pub bundled_template: Option<String>,
    /// `OPENAI_PROXY_BUNDLED_ARTIFACT`, likewise: the stock function's bootstrap.zip.
    pub bundled_artifact: Option<String>,
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
#[error("invalid configuration:\n  - {}\nSee `openai-proxy-deployer --help` for every variable.", .problems.join("\n  - "))]
pub struct ConfigError {
    pub problems: Vec<String>,
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_vars(std::env::vars())
    }

    /// Builds the config from `vars`: each variable from its action input (`INPUT_<ID>`)
    /// when that is set, else (outside Actions only) from the variable itself, and what is unset (or empty, as
    /// GitHub Actions passes inputs left out) from [`VARIABLES`]. Every invalid value,
    /// and every `INPUT_*` that is no input, is reported at once.
    pub fn from_vars(vars: impl IntoIterator<Item = (String, String)>) -> Result<Self, ConfigError> {
        let vars: HashMap<String, String> = vars.into_iter().collect();
        let mut problems: Vec<String> = unknown_inputs(vars.keys()).collect();
        let mut known: HashMap<&'static str, String> = HashMap::new();
        let mut from_input: Vec<&'static str> = Vec::new();
        // Under Actions every variable of the workflow reaches the container (workflow,
        // job and step `env:`, `$GITHUB_ENV`): a `STAGE` or `OPENAI_API_KEY` meant for
        // something else must not retarget the deploy or rewrite the secret, so only the
        // step's inputs count there. Values are trimmed: a secret pasted with a trailing
        // newline must not be stored with it.
        let under_actions = vars.get("GITHUB_ACTIONS").is_some_and(|v| v.trim() == "true");
        for var in VARIABLES {
            let set = |key: &str| vars.get(key).map(|v| v.trim()).filter(|v| !v.is_empty());
            if let Some(value) = set(&var.input_env()) {
                known.insert(var.name, value.to_owned());
                from_input.push(var.name);
            } else if let Some(value) = set(var.name).filter(|_| !under_actions) {
                known.insert(var.name, value.to_owned());
            }
        }
        let given = known.keys().copied().collect();
        for var in VARIABLES {
            match (known.get(var.name), var.default) {
                (Some(value), _) => problems.extend(var.check(value).err().map(|problem| {
                    if from_input.contains(&var.name) {
                        format!("{problem} (set by the input `{}`)", var.input_id())
                    } else {
                        problem
                    }
                })),
                (None, Some(default)) => {
                    known.insert(var.name, default.to_owned());
                }
                (None, None) => {}
            }
        }
        if problems.is_empty() {
            problems.extend(settings::problems(&known));
        }
        if !problems.is_empty() {
            return Err(ConfigError { problems });
        }
        // Values were checked above; envy's own messages echo values, so they must not
        // reach the user even in the unexpected case.
        let mut config: Self =
            envy::from_iter(known.into_iter().map(|(k, v)| (k.to_owned(), v))).map_err(|e| ConfigError {
                problems: vec![match e {
                    envy::Error::MissingValue(field) => format!("{} is required", field.to_ascii_uppercase()),
                    envy::Error::Custom(_) => {
                        "a variable could not be read (values are not shown)".to_owned()
                    }
                }],
            })?;
        config.given = given;
        let set = |key: &str| vars.get(key).filter(|v| !v.trim().is_empty()).cloned();
        // Without the `aws-region` input, the AWS chain's own variables (read as always,
        // also under Actions, where configure-aws-credentials sets them). An empty one
        // counts as unset: the SDK would take AWS_REGION="" as a region named "", and it
        // does not read AWS_DEFAULT_REGION itself.
        config.aws_region = config
            .aws_region
            .take()
            .or_else(|| set("AWS_REGION"))
            .or_else(|| set("AWS_DEFAULT_REGION"));
        config.surroundings = Surroundings {
            aws_endpoint_url_empty: vars.get("AWS_ENDPOINT_URL").is_some_and(|v| v.trim().is_empty()),
            bundled_template: set("OPENAI_PROXY_BUNDLED_TEMPLATE"),
            bundled_artifact: set("OPENAI_PROXY_BUNDLED_ARTIFACT"),
        };
        // The endpoint tests need a key the proxy accepts: the first client key, unless
        // TEST_CLIENT_API_KEY names another.
        if config.test_client_api_key.is_none() {
            config.test_client_api_key = config
                .client_api_keys
                .as_ref()
                .and_then(|keys| crate::client_keys::first_key(keys.expose()))
                .map(|key| Secret(key.to_owned()));
        }
        Ok(config)
    }
}

/// The JSON settings, checked once (with messages that name the fix) and then parsed
/// into the types the rest of the deployer uses.
mod settings {
    use super::*;

    /// Parameters only the deployer may set: they must match what it uploaded.
    pub const OWNED: &[&str] = &["CodeS3Bucket", "CodeS3Key"];

    pub fn problems(known: &HashMap<&'static str, String>) -> Vec<String> {
        let mut problems = Vec::new();
        if let Some(raw) = known.get("PARAMETER_OVERRIDES")
            && let Ok(serde_json::Value::Object(object)) = serde_json::from_str(raw)
        {
            for (key, value) in &object {
                if OWNED.contains(&key.as_str()) {
                    problems.push(format!(
                        "PARAMETER_OVERRIDES sets {key}, which the deployer sets from the uploaded artifact: remove it and point FUNCTION_ARTIFACT at the code instead"
                    ));
                } else if scalar(value).is_none() {
                    problems.push(format!(
                        "PARAMETER_OVERRIDES.{key} must be a string, number, boolean or list of those, e.g. {{\"{key}\":\"value\"}}"
                    ));
                }
            }
        }
        if let Some(raw) = known.get("MODEL_MAPPINGS")
            && let Ok(serde_json::Value::Object(mappings)) = serde_json::from_str(raw)
        {
            problems.extend(crate::model_mappings::problems(&mappings));
        }
        problems
    }

    /// A JSON value as CloudFormation's parameter text: numbers and booleans as written,
    /// lists joined by commas (`CommaDelimitedList`).
    pub fn scalar(value: &Value) -> Option<String> {
        match value {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            Value::Array(items) => items
                .iter()
                .map(|item| match item {
                    Value::Array(_) | Value::Object(_) | Value::Null => None,
                    other => scalar(other),
                })
                .collect::<Option<Vec<_>>>()
                .map(|parts| parts.join(",")),
            Value::Null | Value::Object(_) => None,
        }
    }

    pub fn object<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<Option<serde_json::Map<String, Value>>, D::Error> {
        let Some(raw) = Option::<String>::deserialize(d)? else {
            return Ok(None);
        };
        // Checked before deserializing: a failure here is a bug, never shown with the value.
        serde_json::from_str(&raw).map_err(|_| serde::de::Error::custom("not a JSON object"))
    }

    pub fn overrides<'de, D: serde::Deserializer<'de>>(d: D) -> Result<BTreeMap<String, String>, D::Error> {
        Ok(object(d)?
            .unwrap_or_default()
            .iter()
            .filter_map(|(k, v)| Some((k.clone(), scalar(v)?)))
            .collect())
    }
}

const INPUT_PREFIX: &str = "INPUT_";

/// One problem per `INPUT_*` variable that matches no input, naming the closest input.
/// A typo in a workflow's `with:` (or an input of another version of the action) would
/// otherwise be ignored without a word, and the deploy would run with the default.
fn unknown_inputs<'a>(keys: impl Iterator<Item = &'a String>) -> impl Iterator<Item = String> {
    let mut unknown: Vec<&str> = keys
        .filter_map(|key| key.strip_prefix(INPUT_PREFIX))
        .filter(|id| {
            !VARIABLES
                .iter()
                .any(|var| var.input_env()[INPUT_PREFIX.len()..] == **id)
        })
        .collect();
    unknown.sort_unstable();
    unknown.into_iter().map(|id| {
        let given = id.to_ascii_lowercase().replace('_', "-");
        let closest = VARIABLES
            .iter()
            .map(Variable::input_id)
            .min_by_key(|candidate| edit_distance(&given, candidate))
            .unwrap_or_default();
        format!(
            "{INPUT_PREFIX}{id} is no input of this action: did you mean `{closest}`? (inputs are the variables `openai-proxy-deployer --help` lists, in kebab-case)"
        )
    })
}

/// Levenshtein distance, for naming the input a typo meant.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1).min(row[j] + 1).min(diagonal + usize::from(ca != *cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

pub fn help() -> String {
    let mut out = format!(
        "{} {}\n{}\n\nUsage: openai-proxy-deployer [--help | --version]\n\nAs a GitHub Action, each variable is also the input named like it in kebab-case\n(STACK_NAME: stack-name; DEPLOYER_COMMAND: command), which wins over the variable.\n\nAll configuration comes from environment variables:\n\n",
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
        assert!(config.enable_authentication);
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
        assert!(
            err.contains("STAGE must be one of dev | test | prod (e.g. STAGE=dev)"),
            "{err}"
        );
    }

    #[test]
    fn every_invalid_value_is_reported_together() {
        let err = Config::from_vars(vars(&[
            ("LOG_LEVEL", "info"),
            ("PARAMETER_OVERRIDES", "[1]"),
            ("MODEL_MAPPINGS", "{oops"),
        ]))
        .err()
        .unwrap();
        assert_eq!(err.problems.len(), 3, "{err}");
        assert!(
            err.problems[0].starts_with("LOG_LEVEL must be one of DEBUG"),
            "{err}"
        );
        assert!(
            err.problems[1].starts_with("PARAMETER_OVERRIDES must be a JSON object"),
            "{err}"
        );
        assert!(
            err.problems[2].starts_with("MODEL_MAPPINGS is not valid JSON"),
            "{err}"
        );
    }

    #[test]
    fn numbers_outside_their_range_are_refused_with_the_range() {
        let err = Config::from_vars(vars(&[("WAIT_TIMEOUT", "5"), ("PERF_REQUESTS", "many")]))
            .err()
            .unwrap();
        assert_eq!(
            err.problems,
            [
                "WAIT_TIMEOUT must be a whole number from 60 to 21600 (e.g. WAIT_TIMEOUT=21600)",
                "PERF_REQUESTS must be a whole number from 0 to 1000 (e.g. PERF_REQUESTS=1000)"
            ]
        );
        let config = Config::from_vars(vars(&[("WAIT_TIMEOUT", "600")])).unwrap();
        assert_eq!(config.wait_timeout, 600);
        assert_eq!(config.perf_requests, 20);
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
    fn inputs_are_read_as_the_runner_passes_them_in_kebab_case() {
        let config = Config::from_vars(vars(&[
            ("INPUT_COMMAND", "validate"),
            ("INPUT_STACK-NAME", "from-input"),
            ("INPUT_PARAMETER-OVERRIDES", "{\"MemorySize\":\"1024\"}"),
        ]))
        .unwrap();
        assert_eq!(config.deployer_command, Command::Validate);
        assert_eq!(config.stack_name, "from-input");
        assert_eq!(config.parameter_overrides["MemorySize"], "1024");
    }

    #[test]
    fn an_input_wins_over_the_variable_of_the_same_name() {
        let config = Config::from_vars(vars(&[
            ("STAGE", "prod"),
            ("INPUT_STAGE", "dev"),
            ("AWS_REGION", "us-east-1"),
            ("INPUT_AWS-REGION", "eu-west-2"),
        ]))
        .unwrap();
        assert_eq!(config.stage, Stage::Dev);
        assert_eq!(config.aws_region.as_deref(), Some("eu-west-2"));
    }

    #[test]
    fn an_empty_input_leaves_the_variable_to_decide() {
        let config = Config::from_vars(vars(&[("STAGE", "test"), ("INPUT_STAGE", "")])).unwrap();
        assert_eq!(config.stage, Stage::Test);
    }

    #[test]
    fn an_invalid_input_is_named_as_the_input() {
        let err = Config::from_vars(vars(&[("INPUT_LOG-LEVEL", "loud")]))
            .err()
            .unwrap();
        assert_eq!(err.problems.len(), 1, "{err}");
        assert!(err.problems[0].starts_with("LOG_LEVEL must be one of"), "{err}");
        assert!(
            err.problems[0].ends_with("(set by the input `log-level`)"),
            "{err}"
        );
    }

    #[test]
    fn an_input_that_is_no_input_is_refused_naming_the_closest_one() {
        let err = Config::from_vars(vars(&[
            ("INPUT_STACK_NAME", "old-snake-case"),
            ("INPUT_STAGES", "dev"),
            ("INPUT_COMMAND", "validate"),
        ]))
        .err()
        .unwrap();
        assert_eq!(
            err.problems,
            [
                "INPUT_STACK_NAME is no input of this action: did you mean `stack-name`? (inputs are the variables `openai-proxy-deployer --help` lists, in kebab-case)",
                "INPUT_STAGES is no input of this action: did you mean `stage`? (inputs are the variables `openai-proxy-deployer --help` lists, in kebab-case)",
            ]
        );
    }

    #[test]
    fn every_input_id_is_the_kebab_case_name() {
        let ids: Vec<String> = VARIABLES.iter().map(Variable::input_id).collect();
        assert!(ids.contains(&"command".to_owned()));
        assert!(ids.contains(&"openai-api-key-secret-arn".to_owned()));
        assert_eq!(
            VARIABLES
                .iter()
                .find(|v| v.name == "STACK_NAME")
                .unwrap()
                .input_env(),
            "INPUT_STACK-NAME"
        );
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

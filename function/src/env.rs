//! Every environment variable the proxy reads, read here and only here: [`VARIABLES`]
//! says what each one does, and [`Environment`] holds their values, read once at start-up.
//! The modules that use a value parse it (`app::Settings`, `runtime::Runtime`,
//! `config::ConfigSource`), from an [`Environment`] they are given, so a test builds one
//! from pairs instead of changing the process's environment.
//!
//! The AWS SDK reads its own variables (`AWS_REGION`, credentials, `AWS_ENDPOINT_URL`)
//! through its standard chain, and lambda_http reads `AWS_LAMBDA_HTTP_IGNORE_STAGE_IN_PATH`.

use std::collections::BTreeMap;

/// One variable: its name, its default (`None`: unset means off or absent), and what it does.
#[derive(Debug, Clone, Copy)]
pub struct Variable {
    pub name: &'static str,
    pub default: Option<&'static str>,
    pub meaning: &'static str,
}

const fn var(name: &'static str, default: Option<&'static str>, meaning: &'static str) -> Variable {
    Variable {
        name,
        default,
        meaning,
    }
}

/// The variables, grouped by who sets them.
pub const VARIABLES: &[Variable] = &[
    // The configuration source, first that is set.
    var(
        "OPENAI_API_KEY_SECRET_ARN",
        None,
        "Secrets Manager secret holding the configuration (wins over the next two)",
    ),
    var(
        "PROXY_CONFIG_FILE",
        None,
        "a JSON file of the secret's shape (wins over OPENAI_API_KEY)",
    ),
    var(
        "OPENAI_API_KEY",
        None,
        "the OpenAI key alone, with the default model mappings",
    ),
    var(
        "OPENAI_BASE_URL",
        Some("https://api.openai.com/v1"),
        "the upstream's base URL (the secret's openai_base_url wins)",
    ),
    var(
        "USAGE_TABLE",
        None,
        "the DynamoDB table counting the usage of client keys with limits (unset: keys with limits are refused)",
    ),
    // Behaviour.
    var(
        "ENABLE_AUTHENTICATION",
        Some("false"),
        "true: every route but /health needs a client key of client_api_keys",
    ),
    var(
        "CORS_ALLOWED_ORIGINS",
        Some("*"),
        "origins browsers may call from: * or a comma-separated list",
    ),
    var(
        "SECRET_CACHE_TTL_SECONDS",
        Some("300"),
        "how long a loaded configuration is used before it is loaded again",
    ),
    var("LOG_LEVEL", Some("INFO"), "DEBUG | INFO | WARNING | ERROR"),
    // How the proxy is served.
    var(
        "RESPONSE_MODE",
        Some("stream"),
        "inside Lambda: stream (API Gateway ResponseTransferMode STREAM) or buffered",
    ),
    var(
        "PROXY_LISTEN_ADDR",
        Some("127.0.0.1:8080"),
        "outside Lambda: the address the plain HTTP server listens on",
    ),
    var(
        "PROXY_WORKER_THREADS",
        None,
        "outside Lambda: worker threads, 1 to 1024 (default one per core)",
    ),
    // Set by the Lambda service.
    var(
        "AWS_LAMBDA_RUNTIME_API",
        None,
        "set by Lambda: the Runtime API's host:port; its presence means running in Lambda",
    ),
    var(
        "AWS_LAMBDA_FUNCTION_NAME",
        Some("local"),
        "set by Lambda: the function's name, the FunctionName metric dimension",
    ),
    var(
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
        None,
        "set by Lambda: the invocation context's memory size",
    ),
    var(
        "AWS_LAMBDA_FUNCTION_VERSION",
        None,
        "set by Lambda: the invocation context's function version",
    ),
    var(
        "AWS_LAMBDA_LOG_STREAM_NAME",
        None,
        "set by Lambda: the invocation context's log stream",
    ),
    var(
        "AWS_LAMBDA_LOG_GROUP_NAME",
        None,
        "set by Lambda: the invocation context's log group",
    ),
];

/// The values of [`VARIABLES`]: a variable set to blanks counts as unset.
#[derive(Debug, Clone, Default)]
pub struct Environment {
    values: BTreeMap<&'static str, String>,
}

impl Environment {
    /// The process's environment, read once (`main`).
    pub fn from_process() -> Self {
        Self::from_pairs(
            VARIABLES
                .iter()
                .filter_map(|v| Some((v.name, std::env::var(v.name).ok()?))),
        )
    }

    /// An environment of these pairs (tests); names not in [`VARIABLES`] are left out.
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, String)>) -> Self {
        let values = pairs
            .into_iter()
            .filter(|(_, value)| !value.trim().is_empty())
            .filter_map(|(name, value)| Some((known(name)?.name, value)))
            .collect();
        Self { values }
    }

    /// The variable's value, untrimmed; `None` when it is unset or blank.
    ///
    /// # Panics
    /// In debug builds, for a name missing from [`VARIABLES`]: every variable has its row.
    pub fn get(&self, name: &str) -> Option<&str> {
        debug_assert!(known(name).is_some(), "{name} is not in env::VARIABLES");
        self.values.get(name).map(String::as_str)
    }

    /// The value, or the variable's default from [`VARIABLES`].
    pub fn get_or_default(&self, name: &str) -> Option<&str> {
        self.get(name).or_else(|| known(name)?.default)
    }

    /// The function's identity for the Lambda invocation context, as lambda_runtime reads
    /// it, without failing on a missing variable: the Lambda service always sets them.
    pub fn lambda_config(&self) -> lambda_http::lambda_runtime::Config {
        let text = |name| self.get(name).unwrap_or_default().to_owned();
        lambda_http::lambda_runtime::Config {
            function_name: text("AWS_LAMBDA_FUNCTION_NAME"),
            memory: text("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
                .parse()
                .unwrap_or_default(),
            version: text("AWS_LAMBDA_FUNCTION_VERSION"),
            log_stream: text("AWS_LAMBDA_LOG_STREAM_NAME"),
            log_group: text("AWS_LAMBDA_LOG_GROUP_NAME"),
        }
    }
}

fn known(name: &str) -> Option<&'static Variable> {
    VARIABLES.iter().find(|v| v.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blank_values_are_unset_and_defaults_come_from_the_table() {
        let env = Environment::from_pairs([
            ("LOG_LEVEL", "  ".to_owned()),
            ("PROXY_LISTEN_ADDR", "127.0.0.1:9".to_owned()),
            ("NOT_OURS", "x".to_owned()),
        ]);
        assert_eq!(env.get("LOG_LEVEL"), None);
        assert_eq!(env.get_or_default("LOG_LEVEL"), Some("INFO"));
        assert_eq!(env.get("PROXY_LISTEN_ADDR"), Some("127.0.0.1:9"));
        assert_eq!(env.values.len(), 1);
    }

    #[test]
    fn every_variable_is_listed_once() {
        let mut names: Vec<_> = VARIABLES.iter().map(|v| v.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), VARIABLES.len());
    }
}

//! Process-wide state, built once at start-up: settings from the environment, the
//! configuration store, the pooled upstream client and the logger.

use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;

use crate::bedrock::Bedrock;
use crate::breaker::CircuitBreaker;
use crate::config::{ConfigStore, ProxyConfig};
use crate::cors::Cors;
use crate::env::Environment;
use crate::error::ApiError;
use crate::observe::{Level, Logger, Sink};
use crate::spend::Spend;
use crate::upstream::{RetryPolicy, Upstream};

/// Lambda's synchronous payload limit: larger request bodies are refused unread.
pub const MAX_BODY_BYTES: usize = 6_000_000;

pub const DEFAULT_SECRET_CACHE_TTL: Duration = Duration::from_secs(300);

/// Longest time a request body may take to arrive, whole: a client trickling its body
/// byte by byte is answered 408 instead of holding the request.
pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Silence on a stream after which the client gets a keep-alive comment.
pub const STREAM_KEEP_ALIVE: Duration = Duration::from_secs(15);

/// Settings read from plain environment variables (the secret holds the rest).
#[derive(Debug, Clone)]
pub struct Settings {
    pub auth_enabled: bool,
    /// `None` means any origin (`*`).
    pub cors_origins: Option<Vec<String>>,
    pub secret_cache_ttl: Duration,
    pub log_level: Level,
    /// [`STREAM_KEEP_ALIVE`]; tests shorten it.
    pub stream_keep_alive: Duration,
    /// The Lambda function's name (`local` outside Lambda): the metrics' `FunctionName`.
    pub function_name: String,
    /// [`BODY_READ_TIMEOUT`]; tests shorten it.
    pub body_read_timeout: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            auth_enabled: false,
            cors_origins: None,
            secret_cache_ttl: DEFAULT_SECRET_CACHE_TTL,
            log_level: Level::Info,
            stream_keep_alive: STREAM_KEEP_ALIVE,
            function_name: "local".to_owned(),
            body_read_timeout: BODY_READ_TIMEOUT,
        }
    }
}

impl Settings {
    /// Parses the environment; every invalid variable is named, with an example.
    pub fn from_env(env: &Environment) -> Result<Self, Vec<String>> {
        let get = |name: &str| env.get(name);
        let mut problems = Vec::new();
        let auth_enabled = match get("ENABLE_AUTHENTICATION")
            .map(|v| v.trim().to_ascii_lowercase())
            .as_deref()
        {
            None | Some("false") => false,
            Some("true") => true,
            Some(_) => {
                problems.push(
                    "ENABLE_AUTHENTICATION must be true or false (e.g. ENABLE_AUTHENTICATION=true)".into(),
                );
                false
            }
        };
        let cors_origins = match get("CORS_ALLOWED_ORIGINS").map(|v| v.trim().to_owned()) {
            None => None,
            Some(v) if v == "*" => None,
            Some(list) => {
                let origins: Vec<String> = list
                    .split(',')
                    .map(|o| o.trim().trim_end_matches('/').to_owned())
                    .filter(|o| !o.is_empty())
                    .collect();
                if origins
                    .iter()
                    .any(|o| !(o.starts_with("https://") || o.starts_with("http://")))
                {
                    problems.push(
                        "CORS_ALLOWED_ORIGINS must be * or a comma-separated list of origins \
                         (e.g. CORS_ALLOWED_ORIGINS=https://app.example.com,http://localhost:3000)"
                            .into(),
                    );
                }
                Some(origins)
            }
        };
        let secret_cache_ttl = match get("SECRET_CACHE_TTL_SECONDS").map(|v| v.trim().parse::<u64>()) {
            None => DEFAULT_SECRET_CACHE_TTL,
            Some(Ok(secs)) if secs <= 86_400 => Duration::from_secs(secs),
            Some(_) => {
                problems.push(
                    "SECRET_CACHE_TTL_SECONDS must be a whole number of seconds up to 86400 \
                     (e.g. SECRET_CACHE_TTL_SECONDS=300)"
                        .into(),
                );
                DEFAULT_SECRET_CACHE_TTL
            }
        };
        let log_level = Level::parse(get("LOG_LEVEL")).unwrap_or_else(|e| {
            problems.push(e);
            Level::Info
        });
        if problems.is_empty() {
            Ok(Self {
                auth_enabled,
                cors_origins,
                secret_cache_ttl,
                log_level,
                stream_keep_alive: STREAM_KEEP_ALIVE,
                function_name: env
                    .get_or_default("AWS_LAMBDA_FUNCTION_NAME")
                    .unwrap_or("local")
                    .trim()
                    .to_owned(),
                body_read_timeout: BODY_READ_TIMEOUT,
            })
        } else {
            Err(problems)
        }
    }
}

pub struct AppState {
    pub settings: Settings,
    /// The CORS policy, from `settings.cors_origins`.
    pub cors: Cors,
    pub config: ConfigStore,
    pub upstream: Upstream,
    pub logger: Logger,
    /// The local server's address, once it listens (never set under Lambda): with
    /// authentication off, requests must name it in `Host`.
    pub local_listen: std::sync::OnceLock<std::net::SocketAddr>,
    /// The usage table that holds the limits of client keys (`USAGE_TABLE`); none
    /// until [`Spend::from_env`] or a test sets one.
    pub spend: Spend,
    /// Amazon Bedrock, for models whose mapping names it (its client made on first use).
    pub bedrock: Bedrock,
}

pub type App = Arc<AppState>;

impl AppState {
    pub fn new(
        settings: Settings,
        config: ConfigStore,
        upstream: Upstream,
        sink: Sink,
        metrics: bool,
    ) -> Self {
        let logger = Logger {
            level: settings.log_level,
            sink,
            metrics,
            function: settings.function_name.clone(),
        };
        Self {
            cors: Cors::new(settings.cors_origins.as_deref()),
            settings,
            config,
            upstream,
            logger,
            local_listen: std::sync::OnceLock::new(),
            spend: Spend::none(),
            bedrock: Bedrock::default(),
        }
    }
}

impl AppState {
    /// The current configuration, or the 503 a request gets when it cannot be loaded:
    /// the details go to the log, the client learns that nothing was sent upstream and
    /// that retrying is right.
    pub async fn load_config(&self) -> Result<Arc<ProxyConfig>, ApiError> {
        self.config.get().await.map_err(|error| {
            tracing::error!(source = %self.config.source_name(), error = %error, "configuration unavailable");
            ApiError::server(
                StatusCode::SERVICE_UNAVAILABLE,
                "configuration_unavailable",
                "The proxy could not load its configuration, so the request was not sent upstream. Retry shortly; \
                 if this persists, the operator should check the proxy's logs.",
            )
            .with_retry_after(Duration::from_secs(1))
        })
    }
}

/// The upstream as production runs it: three attempts, and a breaker that opens after
/// five consecutive failed requests for 30 s; a connection pool for each of `workers`.
pub fn default_upstream(workers: usize) -> Result<Upstream, String> {
    Upstream::new(
        RetryPolicy::default(),
        CircuitBreaker::new(5, Duration::from_secs(30)),
        workers,
    )
    .map_err(|e| format!("cannot build the HTTP client: {e}"))
}

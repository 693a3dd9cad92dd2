//! One JSON log line per request and CloudWatch Embedded Metric Format (EMF) lines.
//!
//! What is logged is chosen field by field: ids, route, status, timings, model ids and
//! token counts. Prompts, completions, keys and the configuration are never fields.

use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde_json::json;

/// CloudWatch namespace of the proxy's EMF metrics (alarms and the dashboard use it).
pub const METRICS_NAMESPACE: &str = "OpenAILambdaProxy";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Debug,
    Info,
    Warning,
    Error,
}

impl Level {
    pub fn parse(value: Option<&str>) -> Result<Self, String> {
        match value.map(|v| v.trim().to_ascii_uppercase()).as_deref() {
            None | Some("") | Some("INFO") => Ok(Self::Info),
            Some("DEBUG") => Ok(Self::Debug),
            Some("WARNING") | Some("WARN") => Ok(Self::Warning),
            Some("ERROR") => Ok(Self::Error),
            Some(_) => {
                Err("LOG_LEVEL must be one of DEBUG | INFO | WARNING | ERROR (e.g. LOG_LEVEL=INFO)".into())
            }
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Debug => "DEBUG",
            Self::Info => "INFO",
            Self::Warning => "WARNING",
            Self::Error => "ERROR",
        }
    }
}

#[derive(Debug, Default, Clone, Serialize)]
pub struct RequestLog {
    /// The proxy's id for the request (its `x-request-id` answer header).
    pub request_id: String,
    /// The caller's own `x-request-id`, when sane: logged beside ours, never in its place.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_request_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
    /// API Gateway's own request id (its access log's `requestId`), to join the two logs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub apigw_request_id: Option<String>,
    /// The client key's name (named `client_api_keys` entries only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    #[serde(serialize_with = "capped")]
    pub method: String,
    #[serde(serialize_with = "capped")]
    pub path: String,
    pub status: u16,
    pub duration_ms: f64,
    /// The model id the client asked for, mapped or not (the log line caps its length).
    #[serde(serialize_with = "capped_option")]
    pub model: Option<String>,
    /// Whether `model` is a mapped id the client may use: only those become the
    /// metrics' `Model` dimension, so made-up names cannot mint new metrics.
    #[serde(skip)]
    pub model_known: bool,
    #[serde(serialize_with = "capped_option")]
    pub upstream_model: Option<String>,
    /// Who served it: `openai` or `bedrock` (the metrics' `Provider` dimension).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider: Option<&'static str>,
    /// The provider that failed before `provider` took the request over.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failed_over_from: Option<&'static str>,
    /// Whether OpenAI's and Bedrock's circuit breakers were open when the request was
    /// answered (the metrics `OpenAIBreakerOpen`, `BedrockBreakerOpen`).
    #[serde(skip)]
    pub breakers_open: (bool, bool),
    pub upstream_status: Option<u16>,
    /// OpenAI's own request id (`x-upstream-request-id`), to quote to OpenAI.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream_request_id: Option<String>,
    pub upstream_ms: Option<f64>,
    pub attempts: u32,
    pub stream: bool,
    pub prompt_tokens: Option<u64>,
    pub completion_tokens: Option<u64>,
    pub total_tokens: Option<u64>,
    pub error_type: Option<String>,
    /// The upstream model's price, micro-USD per million input and output tokens, when
    /// known: with the token counts, what the request cost (`cost_usd`, the `Spend`
    /// metric). Set by the handler from the configuration's prices.
    #[serde(skip)]
    pub price_per_million: Option<(u64, u64)>,
    /// Time spent waiting for the usage table (reservation and settling) for a key
    /// with limits, in milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage_ms: Option<f64>,
    /// How much of its monthly budget (`usd_per_month`) the client key has used,
    /// counting this request's reservation, in percent: the `BudgetUsedPercent` metric
    /// that the budget alarm watches.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub budget_used_percent: Option<f64>,
}

/// `value` trimmed, when it is safe to log and echo as an id: 1 to 128 characters of
/// ASCII letters, digits and `punctuation`.
pub fn sane_id(value: &str, punctuation: &[u8]) -> Option<String> {
    let value = value.trim();
    let ok = !value.is_empty()
        && value.len() <= 128
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || punctuation.contains(&b));
    ok.then(|| value.to_owned())
}

/// Longest string field of a log line, in bytes: a client's multi-megabyte model name or
/// path is cut, so a log line stays a log line.
pub const MAX_LOG_FIELD: usize = 256;

/// The `Model` dimension of requests whose model is not a mapped id.
pub const UNKNOWN_MODEL: &str = "unknown";

/// `text`, cut at [`MAX_LOG_FIELD`] bytes (on a character boundary) and marked `…`.
pub fn cap(text: &str) -> std::borrow::Cow<'_, str> {
    if text.len() <= MAX_LOG_FIELD {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut end = MAX_LOG_FIELD;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    std::borrow::Cow::Owned(format!("{}…", &text[..end]))
}

fn capped<S: serde::Serializer>(text: &str, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&cap(text))
}

fn capped_option<S: serde::Serializer>(text: &Option<String>, serializer: S) -> Result<S::Ok, S::Error> {
    match text {
        Some(text) => serializer.serialize_str(&cap(text)),
        None => serializer.serialize_none(),
    }
}

/// An answer's `usage`, the counts only (the rest of the object is skipped unread).
/// Chat and embeddings count `prompt_tokens`/`completion_tokens`; the Responses API
/// `input_tokens`/`output_tokens`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
pub struct Usage {
    pub prompt_tokens: Option<u64>,
    pub completion_tokens: Option<u64>,
    pub total_tokens: Option<u64>,
    pub input_tokens: Option<u64>,
    pub output_tokens: Option<u64>,
}

impl RequestLog {
    /// What the request cost in USD: its token counts at the upstream model's price.
    pub fn cost_usd(&self) -> Option<f64> {
        let (input, output) = self.price_per_million?;
        let (prompt, completion) = (self.prompt_tokens?, self.completion_tokens.unwrap_or(0));
        let micro_usd = (prompt as f64 * input as f64 + completion as f64 * output as f64) / 1e6;
        Some(micro_usd / 1e6)
    }

    pub fn record_usage(&mut self, usage: &Usage) {
        self.prompt_tokens = usage.prompt_tokens.or(usage.input_tokens).or(self.prompt_tokens);
        self.completion_tokens = usage
            .completion_tokens
            .or(usage.output_tokens)
            .or(self.completion_tokens);
        self.total_tokens = usage.total_tokens.or(self.total_tokens);
    }
}

/// A request's log line, written straight from the record (no JSON tree in between).
#[derive(Serialize)]
struct Line<'a> {
    level: &'static str,
    message: &'static str,
    #[serde(flatten)]
    record: &'a RequestLog,
    #[serde(skip_serializing_if = "Option::is_none")]
    cost_usd: Option<f64>,
}

/// Shared between the service that emits the line (`service`) and the handler (and, for
/// streams, the relay) that fill it in.
pub type LogHandle = Arc<Mutex<RequestLog>>;

#[derive(Clone)]
pub enum Sink {
    Stdout,
    /// Captured lines, for tests.
    Memory(Arc<Mutex<Vec<String>>>),
}

#[derive(Clone)]
pub struct Logger {
    pub level: Level,
    pub sink: Sink,
    /// EMF lines only make sense where CloudWatch Logs reads stdout (inside Lambda).
    pub metrics: bool,
    /// The Lambda function's name: every metric carries it, so two stacks in one account
    /// and region never add into each other's alarms.
    pub function: String,
}

impl Logger {
    fn write(&self, mut line: String) {
        match &self.sink {
            Sink::Stdout => {
                // One write per line, as Lambda's log capture reads it.
                line.push('\n');
                let _ = std::io::Write::write_all(&mut std::io::stdout().lock(), line.as_bytes());
            }
            Sink::Memory(lines) => lines.lock().unwrap_or_else(|p| p.into_inner()).push(line),
        }
    }

    pub fn request(&self, record: &RequestLog) {
        let level = match record.status {
            500.. => Level::Error,
            400.. => Level::Warning,
            _ => Level::Info,
        };
        if level >= self.level {
            let line = Line {
                level: level.name(),
                message: "request",
                record,
                cost_usd: record.cost_usd(),
            };
            self.write(serde_json::to_string(&line).unwrap_or_default());
        }
        if self.metrics {
            self.write(emf(&self.function, record, now_ms()));
        }
    }
}

fn now_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or_default()
}

/// One EMF document of `function`'s: request and error counts, latency, tokens and spend
/// (USD), per function in total, by `Model`, and by `Client` for requests with a named
/// client key (who spends what); and a limited key's share of its monthly budget, whose
/// per-function maximum the budget alarm watches.
pub fn emf(function: &str, record: &RequestLog, timestamp_ms: u128) -> String {
    let is_error = record.status >= 500
        || record
            .error_type
            .as_deref()
            .is_some_and(|t| t.starts_with("upstream"));
    let mut metrics = vec![
        json!({"Name": "Requests", "Unit": "Count"}),
        json!({"Name": "Errors", "Unit": "Count"}),
        json!({"Name": "Latency", "Unit": "Milliseconds"}),
    ];
    let mut doc = json!({
        "FunctionName": function,
        "Model": match &record.model {
            Some(model) if record.model_known => model.as_str(),
            Some(_) => UNKNOWN_MODEL,
            None => "none",
        },
        "Requests": 1,
        "Errors": u8::from(is_error),
        "Latency": record.duration_ms,
    });
    if let Some(ms) = record.upstream_ms {
        metrics.push(json!({"Name": "UpstreamLatency", "Unit": "Milliseconds"}));
        doc["UpstreamLatency"] = json!(ms);
    }
    for (name, value) in [
        ("PromptTokens", record.prompt_tokens),
        ("CompletionTokens", record.completion_tokens),
        ("TotalTokens", record.total_tokens),
    ] {
        if let Some(v) = value {
            metrics.push(json!({"Name": name, "Unit": "Count"}));
            doc[name] = json!(v);
        }
    }
    for (name, value, unit) in [
        ("Spend", record.cost_usd(), "None"),
        ("BudgetUsedPercent", record.budget_used_percent, "Percent"),
    ] {
        if let Some(v) = value {
            metrics.push(json!({"Name": name, "Unit": unit}));
            doc[name] = json!(v);
        }
    }
    // A request that failed over, and each provider's breaker (open: 1).
    if record.failed_over_from.is_some() {
        metrics.push(json!({"Name": "Failovers", "Unit": "Count"}));
        doc["Failovers"] = json!(1);
    }
    for (name, open) in [
        ("OpenAIBreakerOpen", record.breakers_open.0),
        ("BedrockBreakerOpen", record.breakers_open.1),
    ] {
        metrics.push(json!({"Name": name, "Unit": "Count"}));
        doc[name] = json!(u8::from(open));
    }
    let mut directive = json!({
        "Namespace": METRICS_NAMESPACE,
        "Dimensions": [["FunctionName"], ["FunctionName", "Model"]],
        "Metrics": metrics,
    });
    if let (Some(client), Some(dimensions)) = (&record.client, directive["Dimensions"].as_array_mut()) {
        doc["Client"] = json!(client);
        dimensions.push(json!(["FunctionName", "Client"]));
    }
    // Who served it: the dashboard's per-provider panels.
    if let (Some(provider), Some(dimensions)) = (record.provider, directive["Dimensions"].as_array_mut()) {
        doc["Provider"] = json!(provider);
        dimensions.push(json!(["FunctionName", "Provider"]));
    }
    doc["_aws"] = json!({
        "Timestamp": timestamp_ms,
        "CloudWatchMetrics": [directive],
    });
    doc.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emf_declares_every_metric_it_carries() {
        let record = RequestLog {
            status: 200,
            model: Some("amazon.nova-lite-v1:0".into()),
            model_known: true,
            duration_ms: 12.5,
            upstream_ms: Some(10.0),
            prompt_tokens: Some(3),
            completion_tokens: Some(4),
            total_tokens: Some(7),
            ..Default::default()
        };
        let doc: serde_json::Value = serde_json::from_str(&emf("proxy-prod", &record, 42)).unwrap();
        let directive = &doc["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], METRICS_NAMESPACE);
        // Every dimension set is per function, and every dimension has its value.
        for set in directive["Dimensions"].as_array().unwrap() {
            let set = set.as_array().unwrap();
            assert_eq!(set[0], "FunctionName");
            for dimension in set {
                assert!(
                    doc[dimension.as_str().unwrap()].is_string(),
                    "{dimension} has no value"
                );
            }
        }
        assert_eq!(doc["FunctionName"], "proxy-prod");
        for metric in directive["Metrics"].as_array().unwrap() {
            let name = metric["Name"].as_str().unwrap();
            assert!(
                doc.get(name).is_some_and(|v| v.is_number()),
                "{name} declared but not set"
            );
        }
        assert_eq!(doc["TotalTokens"], 7);
        assert_eq!(doc["Errors"], 0);
        assert_eq!(doc["Model"], "amazon.nova-lite-v1:0");
    }

    #[test]
    fn spend_is_the_tokens_at_the_models_price_and_a_limited_keys_budget_share_goes_with_it() {
        let record = RequestLog {
            status: 200,
            client: Some("web-app".into()),
            prompt_tokens: Some(1_000_000),
            completion_tokens: Some(500_000),
            // gpt-4o-mini: $0.15 and $0.60 per million.
            price_per_million: Some((150_000, 600_000)),
            budget_used_percent: Some(81.5),
            ..Default::default()
        };
        assert_eq!(record.cost_usd(), Some(0.45));
        let doc: serde_json::Value = serde_json::from_str(&emf("f", &record, 1)).unwrap();
        let declared = |name: &str| {
            doc["_aws"]["CloudWatchMetrics"][0]["Metrics"]
                .as_array()
                .unwrap()
                .iter()
                .find(|m| m["Name"] == name)
                .cloned()
        };
        assert_eq!(doc["Spend"], 0.45);
        assert_eq!(declared("Spend").unwrap()["Unit"], "None");
        assert_eq!(doc["BudgetUsedPercent"], 81.5);
        assert_eq!(declared("BudgetUsedPercent").unwrap()["Unit"], "Percent");
        // Without a price nothing is made up.
        let unpriced = RequestLog {
            price_per_million: None,
            budget_used_percent: None,
            ..record
        };
        assert_eq!(unpriced.cost_usd(), None);
        let doc: serde_json::Value = serde_json::from_str(&emf("f", &unpriced, 1)).unwrap();
        assert!(doc.get("Spend").is_none() && doc.get("BudgetUsedPercent").is_none());
    }

    #[test]
    fn the_provider_is_a_dimension_and_a_failover_and_open_breakers_are_counted() {
        let record = RequestLog {
            status: 200,
            provider: Some("bedrock"),
            failed_over_from: Some("openai"),
            breakers_open: (true, false),
            ..Default::default()
        };
        let doc: serde_json::Value = serde_json::from_str(&emf("f", &record, 1)).unwrap();
        let directive = &doc["_aws"]["CloudWatchMetrics"][0];
        assert!(
            directive["Dimensions"]
                .as_array()
                .unwrap()
                .contains(&json!(["FunctionName", "Provider"]))
        );
        assert_eq!(doc["Provider"], "bedrock");
        assert_eq!(
            (
                doc["Failovers"].clone(),
                doc["OpenAIBreakerOpen"].clone(),
                doc["BedrockBreakerOpen"].clone()
            ),
            (json!(1), json!(1), json!(0))
        );
        let line = serde_json::to_value(&record).unwrap();
        assert_eq!(
            (line["provider"].as_str(), line["failed_over_from"].as_str()),
            (Some("bedrock"), Some("openai"))
        );
        let plain: serde_json::Value = serde_json::from_str(&emf("f", &RequestLog::default(), 1)).unwrap();
        assert!(plain.get("Provider").is_none() && plain.get("Failovers").is_none());
    }

    #[test]
    fn a_named_client_is_a_dimension_and_an_unnamed_one_is_not() {
        let named = RequestLog {
            status: 200,
            client: Some("web-app".into()),
            ..Default::default()
        };
        let doc: serde_json::Value = serde_json::from_str(&emf("f", &named, 1)).unwrap();
        assert_eq!(doc["Client"], "web-app");
        assert_eq!(
            doc["_aws"]["CloudWatchMetrics"][0]["Dimensions"][2],
            json!(["FunctionName", "Client"])
        );
        let unnamed: serde_json::Value = serde_json::from_str(&emf("f", &RequestLog::default(), 1)).unwrap();
        assert!(unnamed.get("Client").is_none());
        assert_eq!(
            unnamed["_aws"]["CloudWatchMetrics"][0]["Dimensions"]
                .as_array()
                .unwrap()
                .len(),
            2
        );
    }

    #[test]
    fn an_unknown_model_is_one_dimension_value_and_long_fields_are_cut() {
        let record = RequestLog {
            status: 404,
            model: Some("x".repeat(10_000)),
            path: "é".repeat(1000),
            ..Default::default()
        };
        let doc: serde_json::Value = serde_json::from_str(&emf("f", &record, 1)).unwrap();
        assert_eq!(doc["Model"], UNKNOWN_MODEL);
        let line = serde_json::to_string(&record).unwrap();
        assert!(line.len() < 4 * MAX_LOG_FIELD, "{} bytes", line.len());
        let line: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert!(line["model"].as_str().unwrap().ends_with('…'));
    }

    #[test]
    fn level_filters_request_lines_but_not_metrics() {
        let lines = Arc::new(Mutex::new(Vec::new()));
        let logger = Logger {
            level: Level::Error,
            sink: Sink::Memory(lines.clone()),
            metrics: true,
            function: "f".to_owned(),
        };
        logger.request(&RequestLog {
            status: 200,
            ..Default::default()
        });
        let captured = lines.lock().unwrap().clone();
        assert_eq!(captured.len(), 1, "only the EMF line: {captured:?}");
        assert!(captured[0].contains("_aws"));
    }
}

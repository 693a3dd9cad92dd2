//! The template parameters the deployer passes: the design document's names from the
//! configuration, the code location from the artifact, and `PARAMETER_OVERRIDES`.

use std::collections::BTreeMap;

use crate::config::{Architecture, Config, LogLevel, Stage};

/// Parameters only the deployer may set: they must match what it uploaded.
const OWNED: &[&str] = &["CodeS3Bucket", "CodeS3Key"];

pub struct Inputs<'a> {
    pub secret_arn: &'a str,
    pub bucket: &'a str,
    pub key: &'a str,
    pub architecture: Architecture,
}

pub fn build(config: &Config, inputs: &Inputs<'_>) -> Result<BTreeMap<String, String>, Vec<String>> {
    let mut params = BTreeMap::from([
        ("OpenAIApiKeySecretArn".to_owned(), inputs.secret_arn.to_owned()),
        (
            "LambdaFunctionName".to_owned(),
            config.lambda_function_name.clone(),
        ),
        ("ApiGatewayName".to_owned(), config.api_gateway_name.clone()),
        ("Stage".to_owned(), stage(config.stage).to_owned()),
        ("LogLevel".to_owned(), log_level(config.log_level).to_owned()),
        (
            "EnableAuthentication".to_owned(),
            config.enable_authentication.to_string(),
        ),
        ("CodeS3Bucket".to_owned(), inputs.bucket.to_owned()),
        ("CodeS3Key".to_owned(), inputs.key.to_owned()),
        ("Architecture".to_owned(), inputs.architecture.as_str().to_owned()),
        ("LambdaTimeout".to_owned(), config.lambda_timeout.to_string()),
    ]);
    params.extend(overrides(config)?);
    Ok(params)
}

/// `PARAMETER_OVERRIDES` as strings (numbers and booleans as written, lists joined by
/// commas as CloudFormation's `CommaDelimitedList` expects).
pub fn overrides(config: &Config) -> Result<BTreeMap<String, String>, Vec<String>> {
    let Some(raw) = &config.parameter_overrides else {
        return Ok(BTreeMap::new());
    };
    // Config already checked that this is a JSON object.
    let object: serde_json::Map<String, serde_json::Value> = serde_json::from_str(raw).unwrap_or_default();
    let mut problems = Vec::new();
    let mut out = BTreeMap::new();
    for (key, value) in object {
        if OWNED.contains(&key.as_str()) {
            problems.push(format!(
                "PARAMETER_OVERRIDES sets {key}, which the deployer sets from the uploaded artifact: remove it and point FUNCTION_ARTIFACT at the code instead"
            ));
            continue;
        }
        match scalar(&value) {
            Some(text) => {
                out.insert(key, text);
            }
            None => problems.push(format!(
                "PARAMETER_OVERRIDES.{key} must be a string, number, boolean or list of those, e.g. {{\"{key}\":\"value\"}}"
            )),
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

fn scalar(value: &serde_json::Value) -> Option<String> {
    use serde_json::Value;
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

pub fn stage(stage: Stage) -> &'static str {
    match stage {
        Stage::Dev => "dev",
        Stage::Test => "test",
        Stage::Prod => "prod",
    }
}

pub fn log_level(level: LogLevel) -> &'static str {
    match level {
        LogLevel::Debug => "DEBUG",
        LogLevel::Info => "INFO",
        LogLevel::Warning => "WARNING",
        LogLevel::Error => "ERROR",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(overrides: &str) -> Config {
        Config::from_vars([("PARAMETER_OVERRIDES".to_owned(), overrides.to_owned())]).unwrap()
    }

    fn inputs() -> Inputs<'static> {
        Inputs {
            secret_arn: "arn:s",
            bucket: "b",
            key: "k.zip",
            architecture: Architecture::Arm64,
        }
    }

    #[test]
    fn design_document_parameters_come_from_the_configuration_and_overrides_win() {
        let params = build(
            &config(r#"{"MemorySize":1024,"Stage":"dev","Subnets":["a","b"],"X":true}"#),
            &inputs(),
        )
        .unwrap();
        assert_eq!(params["MemorySize"], "1024");
        assert_eq!(params["Stage"], "dev");
        assert_eq!(params["Subnets"], "a,b");
        assert_eq!(params["X"], "true");
        assert_eq!(params["LambdaFunctionName"], "openai-lambda-proxy");
        assert_eq!(params["EnableAuthentication"], "true");
        assert_eq!(params["Architecture"], "arm64");
        assert_eq!(params["CodeS3Key"], "k.zip");
    }

    #[test]
    fn overriding_the_code_location_or_nesting_objects_is_refused() {
        let problems = build(
            &config(r#"{"CodeS3Key":"x","Nested":{"a":1},"Null":null}"#),
            &inputs(),
        )
        .unwrap_err();
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(problems[0].contains("sets CodeS3Key"));
        assert!(problems[1].contains("PARAMETER_OVERRIDES.Nested must be"));
        assert!(problems[2].contains("PARAMETER_OVERRIDES.Null must be"));
    }
}

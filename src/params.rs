//! The template parameters the deployer passes: the design document's names from the
//! configuration, the code location from the artifact, and `PARAMETER_OVERRIDES`.

use std::collections::BTreeMap;

use crate::config::{Architecture, Config};

pub struct Inputs<'a> {
    pub secret_arn: &'a str,
    pub bucket: &'a str,
    pub key: &'a str,
    pub architecture: Architecture,
    /// Whether the stack sets API Gateway's account-wide logging role (None: the
    /// template does not ask).
    pub manage_api_gateway_account: Option<bool>,
    /// `BedrockModelArns` (comma-separated), when the template asks (None: it does not).
    pub bedrock_model_arns: Option<&'a str>,
}

pub fn build(config: &Config, inputs: &Inputs<'_>) -> BTreeMap<String, String> {
    let mut params = BTreeMap::from([
        ("OpenAIApiKeySecretArn".to_owned(), inputs.secret_arn.to_owned()),
        (
            "LambdaFunctionName".to_owned(),
            config.lambda_function_name.clone(),
        ),
        ("ApiGatewayName".to_owned(), config.api_gateway_name.clone()),
        ("Stage".to_owned(), config.stage.as_str().to_owned()),
        ("LogLevel".to_owned(), config.log_level.as_str().to_owned()),
        (
            "EnableAuthentication".to_owned(),
            config.enable_authentication.to_string(),
        ),
        ("CodeS3Bucket".to_owned(), inputs.bucket.to_owned()),
        ("CodeS3Key".to_owned(), inputs.key.to_owned()),
        ("Architecture".to_owned(), inputs.architecture.as_str().to_owned()),
        ("LambdaTimeout".to_owned(), config.lambda_timeout.to_string()),
    ]);
    if let Some(manage) = inputs.manage_api_gateway_account {
        params.insert("ManageApiGatewayAccount".to_owned(), manage.to_string());
    }
    if let Some(arns) = inputs.bedrock_model_arns {
        params.insert(
            crate::model_mappings::BEDROCK_PARAMETER.to_owned(),
            arns.to_owned(),
        );
    }
    // The user's word wins, also over what the deployer would choose.
    params.extend(config.parameter_overrides.clone());
    params
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
            manage_api_gateway_account: None,
            bedrock_model_arns: None,
        }
    }

    #[test]
    fn design_document_parameters_come_from_the_configuration_and_overrides_win() {
        let params = build(
            &config(r#"{"MemorySize":1024,"Stage":"dev","Subnets":["a","b"],"X":true}"#),
            &inputs(),
        );
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
    fn overriding_the_code_location_or_nesting_objects_is_refused_as_configuration() {
        let problems = Config::from_vars([(
            "PARAMETER_OVERRIDES".to_owned(),
            r#"{"CodeS3Key":"x","Nested":{"a":1},"Null":null}"#.to_owned(),
        )])
        .err()
        .unwrap()
        .problems;
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(problems[0].contains("sets CodeS3Key"));
        assert!(problems[1].contains("PARAMETER_OVERRIDES.Nested must be"));
        assert!(problems[2].contains("PARAMETER_OVERRIDES.Null must be"));
    }
}

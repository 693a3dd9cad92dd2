//! The AWS clients, built once from the SDK's standard chain (so `AWS_ENDPOINT_URL`,
//! profiles, OIDC web identity and instance roles all work as users expect).

use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

#[derive(Clone)]
pub struct Aws {
    pub region: String,
    /// The endpoint is plain HTTP (a local emulator): requests cannot be TLS.
    pub plain_http: bool,
    pub apigateway: aws_sdk_apigateway::Client,
    pub cloudformation: aws_sdk_cloudformation::Client,
    pub cloudwatch: aws_sdk_cloudwatch::Client,
    pub logs: aws_sdk_cloudwatchlogs::Client,
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub lambda: aws_sdk_lambda::Client,
    pub s3: aws_sdk_s3::Client,
    pub secrets: aws_sdk_secretsmanager::Client,
    pub sts: aws_sdk_sts::Client,
}

impl Aws {
    /// Loads the SDK configuration; `None` when no region can be found.
    pub async fn load(region: Option<&str>) -> Option<Self> {
        // Throttling and transient 5xx answers are retried by the SDK with backoff and
        // jitter; five attempts ride out the bursts CloudFormation polling can cause.
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .retry_config(RetryConfig::standard().with_max_attempts(5));
        // The configuration's region (AWS_REGION, else AWS_DEFAULT_REGION) wins; without
        // one the SDK's chain (a profile's region) may still find one.
        if let Some(region) = region {
            loader = loader.region(Region::new(region.to_owned()));
        }
        let sdk = loader.load().await;
        sdk.region().filter(|r| !r.as_ref().trim().is_empty())?;
        Some(Self::from_sdk_config(&sdk))
    }

    pub fn from_sdk_config(sdk: &SdkConfig) -> Self {
        let region = sdk.region().map(|r| r.to_string()).unwrap_or_default();
        // Emulators serve buckets by path, not by virtual host.
        let s3_config = aws_sdk_s3::config::Builder::from(sdk)
            .force_path_style(sdk.endpoint_url().is_some())
            .build();
        Self {
            region,
            plain_http: sdk.endpoint_url().is_some_and(|url| url.starts_with("http://")),
            apigateway: aws_sdk_apigateway::Client::new(sdk),
            cloudformation: aws_sdk_cloudformation::Client::new(sdk),
            cloudwatch: aws_sdk_cloudwatch::Client::new(sdk),
            logs: aws_sdk_cloudwatchlogs::Client::new(sdk),
            dynamodb: aws_sdk_dynamodb::Client::new(sdk),
            lambda: aws_sdk_lambda::Client::new(sdk),
            s3: aws_sdk_s3::Client::from_conf(s3_config),
            secrets: aws_sdk_secretsmanager::Client::new(sdk),
            sts: aws_sdk_sts::Client::new(sdk),
        }
    }
}

type SdkError<E> = aws_smithy_runtime_api::client::result::SdkError<E, HttpResponse>;

/// An SDK error in one line: the service's code and message when it answered (e.g.
/// "ValidationError: Template format error: ..."), else the chain of causes (DNS,
/// connection, timeout, missing credentials).
pub fn describe<E>(err: &SdkError<E>) -> String
where
    E: std::error::Error + ProvideErrorMetadata + 'static,
{
    if let Some(service) = err.as_service_error() {
        let status = err.raw_response().map(|r| r.status().as_u16());
        return match (service.code(), service.message(), status) {
            (Some(code), Some(message), _) => format!("{code}: {message}"),
            (Some(code), None, _) => code.to_owned(),
            (None, Some(message), _) => message.to_owned(),
            (None, None, Some(status)) => format!("HTTP {status} with no error details"),
            (None, None, None) => "an error with no details".to_owned(),
        };
    }
    aws_smithy_types::error::display::DisplayErrorContext(err).to_string()
}

/// The service error code (e.g. `ValidationError`) of an SDK error, if the service answered.
pub fn error_code<E: ProvideErrorMetadata>(err: &SdkError<E>) -> Option<&str> {
    err.as_service_error().and_then(|e| e.code())
}

/// The service's message of an SDK error, if the service answered.
pub fn error_message<E: ProvideErrorMetadata>(err: &SdkError<E>) -> Option<&str> {
    err.as_service_error().and_then(|e| e.message())
}

#[cfg(test)]
pub(crate) mod mocked {
    //! Clients for aws-smithy-mocks tests: what the local emulator cannot produce
    //! (rollbacks, throttling, conflicts, slow stacks).

    use std::time::Duration;

    use aws_config::retry::RetryConfig;
    use aws_smithy_mocks::{Rule, RuleMode, mock_client};

    use super::Aws;

    /// Retries as in production, with millisecond backoff.
    fn fast_retries() -> RetryConfig {
        RetryConfig::standard()
            .with_max_attempts(5)
            .with_initial_backoff(Duration::from_millis(1))
            .with_max_backoff(Duration::from_millis(5))
    }

    /// An `Aws` whose CloudFormation and Lambda clients answer from `cfn` and `lambda`;
    /// the other clients are never called in these tests.
    pub fn aws(cfn: &[&Rule], lambda: &[&Rule]) -> Aws {
        with_alarms(cfn, lambda, &[])
    }

    /// Also a CloudWatch client answering from `cloudwatch`.
    pub fn with_alarms(cfn: &[&Rule], lambda: &[&Rule], cloudwatch: &[&Rule]) -> Aws {
        let cloudformation = mock_client!(aws_sdk_cloudformation, RuleMode::MatchAny, cfn, |c| c
            .retry_config(fast_retries())
            .sleep_impl(aws_smithy_async::rt::sleep::TokioSleep::new()));
        let lambda = mock_client!(aws_sdk_lambda, RuleMode::MatchAny, lambda, |c| c
            .retry_config(fast_retries())
            .sleep_impl(aws_smithy_async::rt::sleep::TokioSleep::new()));
        let cloudwatch = mock_client!(aws_sdk_cloudwatch, RuleMode::MatchAny, cloudwatch, |c| c
            .retry_config(fast_retries())
            .sleep_impl(aws_smithy_async::rt::sleep::TokioSleep::new()));
        let sdk = aws_config::SdkConfig::builder()
            .region(aws_config::Region::new("us-east-1"))
            .behavior_version(aws_config::BehaviorVersion::latest())
            .build();
        Aws {
            region: "us-east-1".into(),
            plain_http: false,
            apigateway: aws_sdk_apigateway::Client::new(&sdk),
            cloudformation,
            cloudwatch,
            logs: aws_sdk_cloudwatchlogs::Client::new(&sdk),
            dynamodb: aws_sdk_dynamodb::Client::new(&sdk),
            lambda,
            s3: aws_sdk_s3::Client::new(&sdk),
            secrets: aws_sdk_secretsmanager::Client::new(&sdk),
            sts: aws_sdk_sts::Client::new(&sdk),
        }
    }

    /// A CloudFormation-style (awsQuery XML) error answer.
    pub fn query_error(status: u16, code: &str, message: &str) -> aws_smithy_runtime_api::http::Response {
        let body = format!(
            "<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error><RequestId>r</RequestId></ErrorResponse>"
        );
        aws_smithy_runtime_api::http::Response::new(
            aws_smithy_runtime_api::http::StatusCode::try_from(status).unwrap(),
            aws_smithy_types::body::SdkBody::from(body),
        )
    }
}

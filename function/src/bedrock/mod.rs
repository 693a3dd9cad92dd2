//! Amazon Bedrock as the second provider: chat through Converse and ConverseStream,
//! embeddings through InvokeModel, with aws-sdk-bedrockruntime (which decodes the
//! event stream). The client is made on first use, from the same credential chain as
//! Secrets Manager (`AWS_ENDPOINT_URL_BEDROCK_RUNTIME` or `AWS_ENDPOINT_URL` point it
//! elsewhere), so a proxy that never maps a model to Bedrock never loads it.
//!
//! Bedrock has a circuit breaker of its own: OpenAI failing says nothing of Bedrock.

pub mod answer;
pub mod document;
pub mod embeddings;
pub mod request;
pub mod stream;

use std::time::{Duration, Instant};

use aws_sdk_bedrockruntime::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use http::StatusCode;
use serde_json::Value;
use tokio::sync::OnceCell;

use crate::breaker::CircuitBreaker;
use crate::error::ApiError;
use crate::observe::Usage;

pub use request::Conversation;

/// A Converse or ConverseStream call (their builders are different types) for `model`
/// with the conversation's messages, system blocks, settings and tools.
macro_rules! with_conversation {
    ($builder:expr, $model:expr, $conversation:expr) => {
        $builder
            .model_id($model)
            .set_messages(Some($conversation.messages))
            .set_system(Some($conversation.system).filter(|s| !s.is_empty()))
            .inference_config($conversation.inference)
            .set_tool_config($conversation.tools)
    };
}

pub struct Bedrock {
    client: OnceCell<aws_sdk_bedrockruntime::Client>,
    breaker: CircuitBreaker,
}

impl Default for Bedrock {
    fn default() -> Self {
        Self {
            client: OnceCell::new(),
            breaker: CircuitBreaker::new(5, Duration::from_secs(30)),
        }
    }
}

/// Why Bedrock did not answer.
#[derive(Debug)]
pub enum Failure {
    /// Bedrock cannot take the request as asked (its ValidationException, or what the
    /// proxy cannot send it): the client's to fix when Bedrock is the only provider left;
    /// OpenAI, whose API the client speaks, may still take it.
    Client(ApiError),
    /// Bedrock could not serve it (throttled, failing, unreachable, or not set up for
    /// this model), and billed nothing: the other provider may.
    Unavailable(ApiError),
    /// No answer in time, or the model timed out: Bedrock may have been generating, so
    /// what it billed is unknown (a reservation stays counted). The other provider may
    /// serve it.
    Unanswered(ApiError),
}

impl Failure {
    pub fn into_error(self) -> ApiError {
        match self {
            Self::Client(error) | Self::Unavailable(error) | Self::Unanswered(error) => error,
        }
    }
}

impl Bedrock {
    /// A Bedrock that answers through `client` (tests).
    pub fn with_client(client: aws_sdk_bedrockruntime::Client) -> Self {
        Self {
            client: OnceCell::new_with(Some(client)),
            ..Self::default()
        }
    }

    pub fn breaker(&self) -> &CircuitBreaker {
        &self.breaker
    }

    async fn client(&self) -> &aws_sdk_bedrockruntime::Client {
        self.client
            .get_or_init(|| async {
                let shared = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
                aws_sdk_bedrockruntime::Client::new(&shared)
            })
            .await
    }

    /// One whole answer from `model`, as OpenAI's `chat.completion` for `client_model`.
    pub async fn converse(
        &self,
        conversation: Conversation,
        model: &str,
        client_model: &str,
        deadline: Instant,
    ) -> Result<(Value, Option<Usage>), Failure> {
        let permit = self.breaker.try_acquire().map_err(open)?;
        let call = with_conversation!(self.client().await.converse(), model, conversation).send();
        let output = match within(deadline, call).await {
            Ok(output) => output,
            Err(failure) => {
                report(permit, &failure);
                return Err(failure);
            }
        };
        permit.succeeded();
        let usage = answer::usage(output.usage());
        let content = output
            .output()
            .and_then(|o| o.as_message().ok())
            .map(|m| m.content())
            .unwrap_or_default();
        Ok((
            answer::completion(client_model, content, output.stop_reason(), usage.as_ref()),
            usage,
        ))
    }

    /// A streamed answer: the call, and its first event, before anything reaches the
    /// client, so that a failure up to then can still be served by the other provider.
    pub async fn converse_stream(
        &self,
        conversation: Conversation,
        model: &str,
        client_model: &str,
        deadline: Instant,
    ) -> Result<stream::Opened, Failure> {
        let permit = self.breaker.try_acquire().map_err(open)?;
        let include_usage = conversation.include_usage;
        let call = with_conversation!(self.client().await.converse_stream(), model, conversation).send();
        let opened = match within(deadline, async {
            let mut output = call.await?;
            let first = output.stream.recv().await.map_err(stream::event_failure)?;
            Ok::<_, Failure>((output.stream, first))
        })
        .await
        {
            Ok(opened) => opened,
            Err(failure) => {
                report(permit, &failure);
                return Err(failure);
            }
        };
        permit.succeeded();
        Ok(stream::Opened::new(
            opened.0,
            opened.1,
            client_model,
            include_usage,
        ))
    }
}

fn open(retry_after: Duration) -> Failure {
    Failure::Unavailable(
        ApiError::server(
            StatusCode::SERVICE_UNAVAILABLE,
            "upstream_unavailable",
            "Amazon Bedrock is failing; the proxy is not sending requests to it for a short while. Retry after the indicated delay.",
        )
        .with_retry_after(retry_after),
    )
}

/// A failure counts against the breaker when it says Bedrock is unwell; the client's
/// mistakes and Bedrock's word that the model is not set up say nothing of its health
/// (one model not enabled must not stop failover to every other).
fn report(permit: crate::breaker::Permit<'_>, failure: &Failure) {
    match failure {
        Failure::Unavailable(error) | Failure::Unanswered(error)
            if (error.status.is_server_error() || error.status == StatusCode::TOO_MANY_REQUESTS)
                && error.code.as_deref() != Some(NOT_SET_UP) =>
        {
            permit.failed();
        }
        _ => drop(permit),
    }
}

/// The code of Bedrock's refusals that are the operator's to fix: the model not enabled,
/// not granted, or not invocable on demand.
const NOT_SET_UP: &str = "upstream_configuration";

/// ValidationException messages that are about the model id the operator mapped, not the
/// client's request: "The provided model identifier is invalid.", "Invocation of model ID
/// … with on-demand throughput isn't supported. Retry your request with the ID or ARN of
/// an inference profile that contains this model."
fn names_the_model(message: &str) -> bool {
    message.contains("model identifier is invalid") || message.contains("on-demand throughput")
}

fn not_set_up(message: &str) -> Failure {
    Failure::Unavailable(ApiError::server(
        StatusCode::BAD_GATEWAY,
        NOT_SET_UP,
        format!(
            "Amazon Bedrock cannot serve this model for the proxy ({message}). The operator must enable the model in the \
             account and region (Bedrock console, Model access), map it by the id Bedrock invokes it by (a cross-region \
             profile such as us.<model id> where on-demand calls are not supported) and deploy with MODEL_MAPPINGS naming \
             it, which grants the function bedrock:InvokeModel on it."
        ),
    ))
}

/// `call` within the deadline; its SDK error classified.
async fn within<T, E, F>(deadline: Instant, call: F) -> Result<T, Failure>
where
    F: std::future::Future<Output = Result<T, E>>,
    E: Into<Failure>,
{
    let left = deadline.saturating_duration_since(Instant::now());
    match tokio::time::timeout(left, call).await {
        Ok(result) => result.map_err(Into::into),
        Err(_) => Err(Failure::Unanswered(
            ApiError::server(
                StatusCode::GATEWAY_TIMEOUT,
                "upstream_timeout",
                "Amazon Bedrock did not answer in time. Retry shortly.",
            )
            .not_retryable(),
        )),
    }
}

/// An SDK error of any Bedrock operation, by its error code (the operations share
/// them: ValidationException, ThrottlingException, AccessDeniedException, ...).
pub(crate) fn classify<E, R>(error: &SdkError<E, R>) -> Failure
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let Some(service) = error.as_service_error() else {
        // No answer: a connection that failed or broke, a timeout of the SDK's own.
        tracing::warn!(error = %DisplayErrorContext(error), "Amazon Bedrock unreachable");
        return Failure::Unavailable(ApiError::server(
            StatusCode::BAD_GATEWAY,
            "upstream_unreachable",
            "Amazon Bedrock could not be reached. Retry shortly.",
        ));
    };
    let message = service.message().unwrap_or("no message").to_owned();
    tracing::warn!(code = service.code().unwrap_or("unknown"), message = %message, "Amazon Bedrock refused the request");
    match service.code() {
        Some("ValidationException") if names_the_model(&message) => not_set_up(&message),
        Some("ValidationException") => Failure::Client(ApiError::invalid_request(format!(
            "Amazon Bedrock refused the request: {message}"
        ))),
        Some("ThrottlingException" | "ServiceQuotaExceededException") => Failure::Unavailable(
            ApiError::server(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limit_exceeded",
                "Amazon Bedrock is throttling this account's requests for the model. Retry after the indicated delay.",
            )
            .with_retry_after(Duration::from_secs(1)),
        ),
        Some("AccessDeniedException" | "ResourceNotFoundException") => not_set_up(&message),
        Some("ModelTimeoutException") => Failure::Unanswered(
            ApiError::server(StatusCode::GATEWAY_TIMEOUT, "upstream_timeout", "Amazon Bedrock's model timed out. Retry shortly.")
                .not_retryable(),
        ),
        _ => Failure::Unavailable(ApiError::server(
            StatusCode::BAD_GATEWAY,
            "upstream_error",
            "Amazon Bedrock failed to answer. Retry shortly.",
        )),
    }
}

impl<E, R> From<SdkError<E, R>> for Failure
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    fn from(error: SdkError<E, R>) -> Self {
        classify(&error)
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_bedrockruntime::Client;
    use aws_sdk_bedrockruntime::operation::converse::ConverseOutput;
    use aws_sdk_bedrockruntime::types::{
        ContentBlock, ConversationRole, ConverseOutput as Output, Message, StopReason, TokenUsage,
    };
    use aws_smithy_mocks::{RuleMode, mock, mock_client};
    use serde_json::json;

    use super::*;

    /// Bedrock's error answer (restJson1: the code in `x-amzn-ErrorType`), as AWS
    /// documents it.
    fn error(
        status: u16,
        code: &'static str,
        message: &'static str,
    ) -> impl Fn() -> aws_smithy_runtime_api::http::Response {
        move || {
            let mut response = aws_smithy_runtime_api::http::Response::new(
                aws_smithy_runtime_api::http::StatusCode::try_from(status).unwrap(),
                aws_smithy_types::body::SdkBody::from(format!("{{\"message\":\"{message}\"}}")),
            );
            response
                .headers_mut()
                .insert("x-amzn-ErrorType", format!("{code}:http://internal.amazon.com/"));
            response
        }
    }

    fn bedrock(rule: &aws_smithy_mocks::Rule) -> Bedrock {
        Bedrock::with_client(mock_client!(
            aws_sdk_bedrockruntime,
            RuleMode::MatchAny,
            [rule],
            |c| c.retry_config(aws_config::retry::RetryConfig::disabled())
        ))
    }

    fn hello() -> Conversation {
        request::conversation(&json!({"model": "m", "messages": [{"role": "user", "content": "Hi"}]}))
            .unwrap()
    }

    fn soon() -> Instant {
        Instant::now() + Duration::from_secs(5)
    }

    #[tokio::test]
    async fn a_converse_answer_is_openais_completion_for_the_clients_model() {
        let rule = mock!(Client::converse).then_output(|| {
            ConverseOutput::builder()
                .output(Output::Message(
                    Message::builder()
                        .role(ConversationRole::Assistant)
                        .content(ContentBlock::Text("Hello!".into()))
                        .build()
                        .unwrap(),
                ))
                .stop_reason(StopReason::EndTurn)
                .usage(
                    TokenUsage::builder()
                        .input_tokens(3)
                        .output_tokens(2)
                        .total_tokens(5)
                        .build()
                        .unwrap(),
                )
                .build()
                .unwrap()
        });
        let bedrock = bedrock(&rule);
        let (answer, usage) = bedrock
            .converse(
                hello(),
                "us.amazon.nova-lite-v1:0",
                "amazon.nova-lite-v1:0",
                soon(),
            )
            .await
            .unwrap();
        assert_eq!(answer["model"], "amazon.nova-lite-v1:0");
        assert_eq!(answer["choices"][0]["message"]["content"], "Hello!");
        assert_eq!(answer["choices"][0]["finish_reason"], "stop");
        assert_eq!(usage.unwrap().total_tokens, Some(5));
    }

    #[tokio::test]
    async fn each_failure_is_the_clients_or_bedrocks_and_says_what_to_do() {
        for (status, code, expected_status, client_fault, says) in [
            (
                400,
                "ValidationException",
                400,
                true,
                "Amazon Bedrock refused the request: bad",
            ),
            (429, "ThrottlingException", 429, false, "throttling"),
            (403, "AccessDeniedException", 502, false, "enable the model"),
            (404, "ResourceNotFoundException", 502, false, "MODEL_MAPPINGS"),
            (408, "ModelTimeoutException", 504, false, "timed out"),
            (500, "InternalServerException", 502, false, "failed to answer"),
            (503, "ServiceUnavailableException", 502, false, "failed to answer"),
        ] {
            let rule = mock!(Client::converse).then_http_response(error(status, code, "bad"));
            let failure = bedrock(&rule)
                .converse(hello(), "m", "m", soon())
                .await
                .unwrap_err();
            assert_eq!(matches!(failure, Failure::Client(_)), client_fault, "{code}");
            let error = failure.into_error();
            assert_eq!(error.status.as_u16(), expected_status, "{code}");
            assert!(error.message.contains(says), "{code}: {}", error.message);
        }
    }

    #[tokio::test]
    async fn five_failures_open_bedrocks_own_breaker_and_the_clients_mistakes_do_not() {
        let rule = mock!(Client::converse).then_http_response(error(400, "ValidationException", "bad"));
        let bedrock = bedrock(&rule);
        for _ in 0..6 {
            bedrock.converse(hello(), "m", "m", soon()).await.unwrap_err();
        }
        assert!(
            bedrock.breaker().try_acquire().is_ok(),
            "the client's mistakes say nothing of Bedrock"
        );
        let rule = mock!(Client::converse).then_http_response(error(500, "InternalServerException", "down"));
        let bedrock = super::tests::bedrock(&rule);
        for _ in 0..5 {
            bedrock.converse(hello(), "m", "m", soon()).await.unwrap_err();
        }
        let open = bedrock
            .converse(hello(), "m", "m", soon())
            .await
            .unwrap_err()
            .into_error();
        assert_eq!(open.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(rule.num_calls(), 5, "no call while the breaker is open");
    }
}

//! `POST /v1/chat/completions`, `/v1/embeddings` and `/v1/responses`: check the request,
//! map the model, call the upstream, and answer with the model id the client asked
//! for, whole or as a relayed event stream.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderValue, StatusCode, header};

use crate::app::App;
use crate::auth::{self, Client};
use crate::bedrock;
use crate::body::{self, Body, Response};
use crate::breaker::State as BreakerState;
use crate::config::{ClientKey, Price, Provider, ProxyConfig, price_of, titan_version};
use crate::endpoint::{Endpoint, Request, StoredAction};
use crate::error::ApiError;
use crate::observe::LogHandle;
use crate::relay;
use crate::relayed;
use crate::rewrite::Fields;
use crate::spend::{self, Hold};
use crate::upstream::{self, Failure};

/// Time kept back from the Lambda timeout so the answer (or the error) still gets out.
const DEADLINE_MARGIN: Duration = Duration::from_secs(1);

/// The answer header that says which provider served the request.
pub const PROVIDER_HEADER: &str = "x-proxy-provider";

/// The provider a request asks to be served by first (`x-proxy-provider: bedrock` or
/// `openai`), as the deployer's endpoint tests ask to exercise each path. It only
/// reorders the providers the model's mapping names: no client reaches a model or a
/// provider the operator did not map.
pub fn preferred_provider(headers: &http::HeaderMap) -> Option<Provider> {
    match headers.get(PROVIDER_HEADER)?.as_bytes() {
        b"openai" => Some(Provider::OpenAi),
        b"bedrock" => Some(Provider::Bedrock),
        _ => None,
    }
}

/// Checks the request, maps its model, and answers from its primary provider (or the
/// one `prefer` names), or from the other one (when the mapping names both) when the
/// first fails for reasons that are not the client's and before any byte of an answer
/// went out.
pub async fn forward(
    endpoint: Endpoint,
    app: &App,
    log: &LogHandle,
    client: Option<&Client>,
    body: Bytes,
    prefer: Option<Provider>,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let request = endpoint.parse(&body)?;
    let (model, stream) = (request.model.clone(), request.stream);
    {
        let mut record = log.lock().unwrap_or_else(|p| p.into_inner());
        record.model = Some(model.clone());
        record.stream = stream;
    }

    let config = app.load_config().await?;
    // A model the client's key may not use is answered as if it did not exist.
    let route = config
        .model_mappings
        .get(&model)
        .filter(|_| auth::may_use(client, &model))
        .ok_or_else(|| ApiError::model_not_found(&model))?;
    if let Some(client) = client {
        within_key_caps(endpoint, &request, client.key())?;
    }
    let mut providers: Vec<(Provider, &str)> = std::iter::once(route.first())
        .chain(route.fallback())
        .filter(|(provider, upstream)| serves(endpoint, *provider, upstream))
        .collect();
    if let Some(prefer) = prefer {
        providers.sort_by_key(|(provider, _)| *provider != prefer);
    }
    if providers.is_empty() {
        return Err(ApiError::invalid_request(format!(
            "The model `{model}` is served by Amazon Bedrock only, which does not serve {}: use /v1/chat/completions.",
            endpoint.upstream_path()
        ))
        .with_param("model"));
    }
    let deadline = started + config.timeouts.lambda.saturating_sub(DEADLINE_MARGIN);
    let attempt = Attempt {
        endpoint,
        app,
        log,
        request: &request,
        body: &body,
        config: &config,
        deadline,
    };
    let mut hold = attempt.reserve(client, &providers, false).await?;
    {
        let mut record = log.lock().unwrap_or_else(|p| p.into_inner());
        record.model_known = true;
        record.budget_used_percent = hold.as_ref().and_then(Hold::budget_used_percent);
    }
    let note_breakers = || {
        log.lock().unwrap_or_else(|p| p.into_inner()).breakers_open = (
            !matches!(app.upstream.breaker().state(), BreakerState::Closed { .. }),
            !matches!(app.bedrock.breaker().state(), BreakerState::Closed { .. }),
        );
    };
    // The failure of the provider before, while another is tried.
    let mut earlier: Option<ApiError> = None;
    for (i, &(provider, upstream_model)) in providers.iter().enumerate() {
        let last = i + 1 == providers.len();
        {
            let mut record = log.lock().unwrap_or_else(|p| p.into_inner());
            record.provider = Some(provider.as_str());
            record.upstream_model = Some(upstream_model.to_owned());
            record.price_per_million =
                price_of(&config.prices, upstream_model).map(|p| (p.input_per_million, p.output_per_million));
        }
        let this_hold = match hold.take() {
            Some(hold) => Some(hold.priced(price_of(&config.prices, upstream_model))),
            // The attempt before may have been billed and kept its reservation: this
            // one's tokens and spend are counted afresh, the request not again.
            None if i > 0 => attempt.reserve(client, &providers[i..], true).await?,
            None => None,
        };
        let served = match provider {
            Provider::OpenAi => attempt.openai(upstream_model, this_hold).await,
            Provider::Bedrock => attempt.bedrock(upstream_model, this_hold, last).await,
        };
        let refused = matches!(served, Served::Refused { .. });
        match served {
            Served::Answer(mut response) => {
                note_breakers();
                response
                    .headers_mut()
                    .insert(PROVIDER_HEADER, HeaderValue::from_static(provider.as_str()));
                return Ok(response);
            }
            Served::Final(error) => {
                note_breakers();
                return Err(error);
            }
            Served::FailOver { error, hold: kept } | Served::Refused { error, hold: kept } if last => {
                note_breakers();
                if let Some(kept) = kept {
                    kept.release().await;
                }
                // A request the last provider cannot take as asked, after the one before
                // failed: the failure is the answer (retrying may find it back), not a
                // 400 for what the client's own API accepts.
                return Err(match (refused, earlier) {
                    (true, Some(earlier)) => earlier,
                    _ => error,
                });
            }
            Served::FailOver { error, hold: kept } | Served::Refused { error, hold: kept } => {
                tracing::warn!(
                    model = %model,
                    from = provider.as_str(),
                    status = error.status.as_u16(),
                    code = error.code.as_deref().unwrap_or(""),
                    "primary provider failed or cannot take the request; failing over"
                );
                log.lock().unwrap_or_else(|p| p.into_inner()).failed_over_from = Some(provider.as_str());
                hold = kept;
                earlier = Some(error);
            }
        }
    }
    // The last provider's failure returned above; an empty list was refused before.
    Err(ApiError::server(
        StatusCode::BAD_GATEWAY,
        "upstream_error",
        "No provider could serve the request.",
    ))
}

/// Whether `provider` can serve `endpoint` as `upstream_model`: OpenAI serves them all;
/// Bedrock serves chat, and embeddings for Titan's embedding models, and has no
/// Responses API.
fn serves(endpoint: Endpoint, provider: Provider, upstream_model: &str) -> bool {
    match (provider, endpoint) {
        (Provider::OpenAi, _) | (Provider::Bedrock, Endpoint::ChatCompletions) => true,
        (Provider::Bedrock, Endpoint::Embeddings) => titan_version(upstream_model).is_some(),
        (Provider::Bedrock, Endpoint::Responses) => false,
    }
}

/// What one provider made of the request.
enum Served {
    /// The answer, about to go to the client.
    Answer(Response),
    /// The client's error, or one after which the other provider must not be tried.
    Final(ApiError),
    /// The provider failed for reasons that are not the client's, before any byte went
    /// out: the other provider may serve it. `hold` comes back when nothing was billed.
    FailOver { error: ApiError, hold: Option<Hold> },
    /// Bedrock cannot take the request as asked (what the proxy cannot translate, or its
    /// ValidationException), though OpenAI's API, the one the client speaks, may: OpenAI
    /// is asked when it is next; `error` is the answer when no provider is left. Nothing
    /// was billed.
    Refused { error: ApiError, hold: Option<Hold> },
}

/// Bedrock's answer: whole, or a stream whose first event has arrived.
enum Answered {
    Whole(serde_json::Value, Option<crate::observe::Usage>),
    Stream(Box<bedrock::stream::Opened>),
}

/// One request, as each provider is asked for it.
struct Attempt<'a> {
    endpoint: Endpoint,
    app: &'a App,
    log: &'a LogHandle,
    request: &'a Request<'a>,
    body: &'a Bytes,
    config: &'a ProxyConfig,
    deadline: Instant,
}

impl Attempt<'_> {
    /// Admission and reservation: a key with limits has its worst case counted before
    /// anything goes upstream, at the dearest price among `providers` (settled later at
    /// the price of the one that served it; the first's model sizes the worst case).
    /// Keys without limits pass untouched: no table call, and their bodies' counts are
    /// the upstream's to check. `again`: a failover's further reservation.
    async fn reserve(
        &self,
        client: Option<&Client>,
        providers: &[(Provider, &str)],
        again: bool,
    ) -> Result<Option<Hold>, ApiError> {
        let Some(key) = client.map(Client::key).filter(|key| key.limits.is_some()) else {
            return Ok(None);
        };
        let price = providers
            .iter()
            .filter_map(|(_, model)| price_of(&self.config.prices, model).copied())
            .reduce(|a, b| Price {
                input_per_million: a.input_per_million.max(b.input_per_million),
                output_per_million: a.output_per_million.max(b.output_per_million),
            });
        let worst = spend::Request {
            body_len: self.body.len(),
            output_tokens: output_tokens(self.endpoint, self.request)?,
            choices: match self.endpoint {
                Endpoint::ChatCompletions => self.request.count("n")?,
                _ => None,
            },
            upstream_model: providers.first().map_or("", |(_, model)| model),
            again,
        };
        self.app
            .spend
            .reserve(Some(key), price.as_ref(), worst, self.log)
            .await
    }

    /// OpenAI: the client's body with the model replaced, its answer relayed.
    async fn openai(&self, upstream_model: &str, hold: Option<Hold>) -> Served {
        let (endpoint, request, config, log) = (self.endpoint, self.request, self.config, self.log);
        let (model, stream) = (request.model.clone(), request.stream);
        // Usage is asked for on every chat stream, so token metrics count all traffic; the
        // relay drops the usage chunk again when the client did not ask for it. (Responses
        // streams always end with their usage.)
        let force_usage = stream && endpoint == Endpoint::ChatCompletions;
        let hide_usage = force_usage && !request.asks_for_usage();
        let upstream_body = Bytes::from(request.upstream_body(upstream_model, force_usage));
        let result = self
            .app
            .upstream
            .post(config, endpoint.upstream_path(), upstream_body, self.deadline)
            .await;
        let secret = config.openai_api_key.expose();
        let answer = match result {
            Ok(answer) => answer,
            Err(failure) => {
                {
                    let mut record = log.lock().unwrap_or_else(|p| p.into_inner());
                    record.attempts = failure.attempts();
                    if let Failure::Status { status, headers, .. } = &failure {
                        record.upstream_status = Some(status.as_u16());
                        record.upstream_request_id = relayed::request_id(headers);
                    }
                }
                // An error answer, a breaker open or no connection: nothing was generated.
                // A timeout or a broken answer may have been billed: the worst case stands.
                let billed = matches!(failure, Failure::Timeout { .. } | Failure::Broken { .. });
                let error = failure_to_error(failure, secret);
                return match (billed, hold) {
                    (true, _) => Served::FailOver { error, hold: None },
                    (false, hold) if not_the_clients(&error) => Served::FailOver { error, hold },
                    (false, hold) => {
                        if let Some(hold) = hold {
                            hold.release().await;
                        }
                        Served::Final(error)
                    }
                };
            }
        };
        let status = answer.response.status();
        let headers = relayed::headers(answer.response.headers());
        {
            let mut record = log.lock().unwrap_or_else(|p| p.into_inner());
            record.attempts = answer.attempts;
            record.upstream_status = Some(status.as_u16());
            record.upstream_ms = Some(answer.elapsed.as_secs_f64() * 1000.0);
            record.upstream_request_id = relayed::request_id(answer.response.headers());
        }
        if !status.is_success() {
            let error = upstream_error(answer, answer_time_left(self.deadline, config), secret).await;
            if not_the_clients(&error) {
                return Served::FailOver { error, hold };
            }
            if let Some(hold) = hold {
                hold.release().await;
            }
            return Served::Final(error);
        }
        let is_sse = answer
            .response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        let response = if stream && is_sse {
            let options = relay::Options {
                model,
                idle_timeout: config.timeouts.stream_idle,
                keep_alive: self.app.settings.stream_keep_alive,
                hide_usage,
                dialect: match endpoint {
                    Endpoint::Responses => relay::Dialect::Responses,
                    _ => relay::Dialect::Chat,
                },
            };
            Ok(event_stream(Body::stream(relay::sse(
                answer.response,
                options,
                log.clone(),
                hold,
            ))))
        } else {
            complete(answer.response, &model, config, self.deadline, log, hold).await
        };
        match response {
            Ok(mut response) => {
                response.headers_mut().extend(headers);
                Served::Answer(response)
            }
            Err(error) => Served::Final(error),
        }
    }

    /// Amazon Bedrock: the request translated to Converse (or InvokeModel for
    /// embeddings), its answer translated back.
    async fn bedrock(&self, bedrock_model: &str, hold: Option<Hold>, last: bool) -> Served {
        let (request, log) = (self.request, self.log);
        let model = request.model.as_str();
        let body: serde_json::Value = match serde_json::from_slice(self.body) {
            Ok(body) => body,
            Err(_) => {
                return Served::Final(ApiError::invalid_request(
                    "The request body must be a JSON object.",
                ));
            }
        };
        let bedrock = &self.app.bedrock;
        let started = Instant::now();
        // With OpenAI after it, Bedrock's answer (or a stream's first event) is waited for
        // as OpenAI's is, at most the upstream timeout, so that a Bedrock that hangs leaves
        // OpenAI time to serve; the last provider has the function's time.
        let answer_by = if last {
            self.deadline
        } else {
            self.deadline.min(started + self.config.timeouts.openai_api)
        };
        let outcome = match self.endpoint {
            Endpoint::Embeddings => bedrock
                .embeddings(&body, bedrock_model, model, answer_by)
                .await
                .map(|(answer, usage)| Answered::Whole(answer, usage)),
            _ => match bedrock::request::conversation(&body) {
                Err(error) => Err(bedrock::Failure::Client(error)),
                Ok(conversation) if request.stream => bedrock
                    .converse_stream(conversation, bedrock_model, model, answer_by)
                    .await
                    .map(|opened| Answered::Stream(Box::new(opened))),
                Ok(conversation) => bedrock
                    .converse(conversation, bedrock_model, model, answer_by)
                    .await
                    .map(|(answer, usage)| Answered::Whole(answer, usage)),
            },
        };
        log.lock().unwrap_or_else(|p| p.into_inner()).upstream_ms =
            Some(started.elapsed().as_secs_f64() * 1000.0);
        match outcome {
            Ok(Answered::Whole(answer, usage)) => {
                if let Some(usage) = &usage {
                    log.lock().unwrap_or_else(|p| p.into_inner()).record_usage(usage);
                }
                if let Some(hold) = hold {
                    hold.settle(usage.as_ref()).await;
                }
                Served::Answer(body::with_type(
                    StatusCode::OK,
                    "application/json",
                    answer.to_string(),
                ))
            }
            Ok(Answered::Stream(opened)) => Served::Answer(event_stream(Body::stream(opened.sse(
                log.clone(),
                hold,
                self.config.timeouts.stream_idle,
                self.app.settings.stream_keep_alive,
            )))),
            Err(bedrock::Failure::Client(error)) => Served::Refused { error, hold },
            Err(bedrock::Failure::Unavailable(error)) => Served::FailOver { error, hold },
            // Possibly billed: the worst case stays counted (the hold is dropped).
            Err(bedrock::Failure::Unanswered(error)) => Served::FailOver { error, hold: None },
        }
    }
}

/// Whether an upstream's error is not the client's doing, so that the other provider
/// may serve the request: its server failing or unreachable, its breaker open, a
/// timeout before the first byte, or OpenAI refusing the proxy's own key for quota.
fn not_the_clients(error: &ApiError) -> bool {
    error.status.is_server_error()
        || error.status == StatusCode::REQUEST_TIMEOUT
        || (error.status == StatusCode::TOO_MANY_REQUESTS
            && error.code.as_deref() == Some("insufficient_quota"))
}

/// A streamed answer's response: its body, and the headers every event stream gets.
fn event_stream(body: Body) -> Response {
    let mut response = http::Response::new(body);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// A stored Responses API response (`GET`/`DELETE /v1/responses/{id}`, `POST …/cancel`,
/// `GET …/input_items`): relayed to OpenAI and its answer relayed back as OpenAI wrote
/// it. `query` is the request's query string (`include[]`, `after`, `limit`, `order`).
pub async fn stored(
    action: StoredAction,
    id: &str,
    query: Option<&str>,
    app: &App,
    log: &LogHandle,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let config = app.load_config().await?;
    let mut path = action.upstream_path(id);
    if let Some(query) = query.filter(|q| !q.is_empty()) {
        path.push('?');
        path.push_str(query);
    }
    let deadline = started + config.timeouts.lambda.saturating_sub(DEADLINE_MARGIN);
    let body = if action.method() == http::Method::POST {
        Bytes::from_static(b"{}")
    } else {
        Bytes::new()
    };
    let result = app
        .upstream
        .call(&config, action.method(), &path, body, deadline)
        .await;
    let secret = config.openai_api_key.expose();
    let answer = match result {
        Ok(answer) => answer,
        Err(failure) => {
            log.lock().unwrap_or_else(|p| p.into_inner()).attempts = failure.attempts();
            return Err(failure_to_error(failure, secret));
        }
    };
    let status = answer.response.status();
    let upstream_headers = answer.response.headers().clone();
    {
        let mut record = log.lock().unwrap_or_else(|p| p.into_inner());
        record.attempts = answer.attempts;
        record.upstream_status = Some(status.as_u16());
        record.upstream_request_id = relayed::request_id(&upstream_headers);
    }
    let left = answer_time_left(deadline, &config);
    if !status.is_success() {
        return Err(upstream_error(answer, left, secret).await);
    }
    let bytes = read_answer(answer.response, left).await?;
    let mut response = body::with_type(status, "application/json", bytes);
    response.headers_mut().extend(relayed::headers(&upstream_headers));
    Ok(response)
}

/// A non-streamed answer: read it (within the deadline), put the requested model id
/// back, note the token usage. Only the top-level fields are parsed: the rest goes out
/// as OpenAI wrote it.
async fn complete(
    response: upstream::Response,
    model: &str,
    config: &ProxyConfig,
    deadline: Instant,
    log: &LogHandle,
    hold: Option<Hold>,
) -> Result<Response, ApiError> {
    let bytes = read_answer(response, answer_time_left(deadline, config)).await?;
    let invalid = || upstream_broken("The upstream answered with invalid JSON.");
    let text = std::str::from_utf8(&bytes).map_err(|_| invalid())?;
    let fields = Fields::parse(text).map_err(|_| invalid())?;
    let usage = fields.usage();
    if let Some(usage) = &usage {
        log.lock().unwrap_or_else(|p| p.into_inner()).record_usage(usage);
    }
    if let Some(hold) = hold {
        hold.settle(usage.as_ref()).await;
    }
    let mut out = String::with_capacity(text.len() + model.len());
    fields.write_with_model(model, &mut out);
    Ok(body::with_type(StatusCode::OK, "application/json", out))
}

/// Refuses a request that asks for more than its client key may (`max_n`, `max_tokens`
/// of `client_api_keys`): a capped key must name its output tokens, or it could ask for
/// the model's maximum by leaving them out.
fn within_key_caps(endpoint: Endpoint, request: &Request<'_>, key: &ClientKey) -> Result<(), ApiError> {
    let over = |param: &str, asked: u64, cap: u64| {
        ApiError::invalid_request(format!(
            "`{param}` is {asked}, more than this API key may ask for ({cap}): ask for {cap} or fewer."
        ))
        .with_param(param)
        .with_code("key_limit_exceeded")
    };
    if let Some(cap) = key.max_n
        && endpoint == Endpoint::ChatCompletions
        && let Some(n) = request.count("n")?
        && n > cap
    {
        return Err(over("n", n, cap));
    }
    let caps = endpoint.token_caps();
    if let (Some(cap), Some(first)) = (key.max_tokens, caps.first()) {
        let mut named = false;
        for param in caps {
            if let Some(asked) = request.count(param)? {
                named = true;
                if asked > cap {
                    return Err(over(param, asked, cap));
                }
            }
        }
        if !named {
            return Err(ApiError::invalid_request(format!(
                "This API key may ask for at most {cap} output tokens per request: set `{first}` to {cap} or fewer."
            ))
            .with_param(*first)
            .with_code("key_limit_exceeded"));
        }
    }
    Ok(())
}

/// The output tokens the request asks for at most (`max_tokens` and its kin; the
/// smallest when it names several, as OpenAI stops at the first reached).
fn output_tokens(endpoint: Endpoint, request: &Request<'_>) -> Result<Option<u64>, ApiError> {
    let mut asked: Option<u64> = None;
    for param in endpoint.token_caps() {
        if let Some(n) = request.count(param)? {
            asked = Some(asked.map_or(n, |a| a.min(n)));
        }
    }
    Ok(asked)
}

/// An upstream error answer, for the client. Its body is read within `left`: an
/// upstream that sends an error's head and stalls must not hold the request until the
/// Lambda times out.
async fn upstream_error(answer: upstream::Answer, left: Duration, secret: &str) -> ApiError {
    let status = answer.response.status();
    let headers = answer.response.headers().clone();
    match tokio::time::timeout(left, upstream::read_error_body(answer.response)).await {
        Ok(body) => relayed::error(status, &headers, &body, secret, answer.attempts),
        Err(_) => upstream_timeout(),
    }
}

/// A successful answer's whole body, within `left`.
async fn read_answer(response: upstream::Response, left: Duration) -> Result<Bytes, ApiError> {
    match tokio::time::timeout(left, upstream::read_body(response)).await {
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(_)) => Err(upstream_broken(
            "The upstream connection broke while sending the answer.",
        )),
        Err(_) => Err(upstream_timeout()),
    }
}

/// How long an answer's body may still take: the OpenAI timeout, within the deadline.
fn answer_time_left(deadline: Instant, config: &ProxyConfig) -> Duration {
    deadline
        .saturating_duration_since(Instant::now())
        .min(config.timeouts.openai_api)
}

/// OpenAI got the request and its answer broke: a retry would be a second paid request.
fn upstream_broken(message: &str) -> ApiError {
    ApiError::server(StatusCode::BAD_GATEWAY, "upstream_error", message).not_retryable()
}

/// The model may still be generating (and billing): the SDKs must not send it again.
fn upstream_timeout() -> ApiError {
    ApiError::server(
        StatusCode::GATEWAY_TIMEOUT,
        "upstream_timeout",
        "The upstream OpenAI API did not answer in time. The request may have reached it, so it was not retried: \
         retry if a second request is acceptable, or ask the operator to raise timeout_settings.openai_api_timeout.",
    )
    .not_retryable()
}

fn failure_to_error(failure: Failure, secret: &str) -> ApiError {
    match failure {
        Failure::CircuitOpen { retry_after } => ApiError::server(
            StatusCode::SERVICE_UNAVAILABLE,
            "upstream_unavailable",
            "The upstream OpenAI API is failing; the proxy is not sending requests to it for a short while. Retry after the indicated delay.",
        )
        .with_retry_after(retry_after),
        Failure::Status {
            status,
            retry_after,
            headers,
            body,
            attempts,
        } => {
            let mut error = relayed::error(status, &headers, &body, secret, attempts);
            error.retry_after = retry_after;
            error
        }
        Failure::Timeout { .. } => upstream_timeout(),
        Failure::Broken { .. } => upstream_broken(
            "The upstream connection broke after the request was sent, before an answer; it may have reached OpenAI, so it was not retried.",
        ),
        Failure::Connect { attempts } => ApiError::server(
            StatusCode::BAD_GATEWAY,
            "upstream_unreachable",
            format!("The upstream OpenAI API could not be reached after {attempts} attempts. Retry shortly."),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn upstream_body(body: &str) -> (Value, bool) {
        let request = Endpoint::ChatCompletions.parse(body.as_bytes()).unwrap();
        let text = request.upstream_body("gpt-4o-mini", true);
        (serde_json::from_str(&text).unwrap(), request.asks_for_usage())
    }

    #[test]
    fn usage_is_forced_and_the_clients_own_choice_remembered() {
        let (body, asked) = upstream_body(r#"{"model":"m","messages":[{}],"stream":true}"#);
        assert!(!asked);
        assert_eq!(body["stream_options"], serde_json::json!({"include_usage": true}));
        let (body, asked) =
            upstream_body(r#"{"model":"m","messages":[{}],"stream_options":{"include_usage":true,"x":1}}"#);
        assert!(asked);
        assert_eq!(
            body["stream_options"],
            serde_json::json!({"include_usage": true, "x": 1})
        );
        let (body, asked) = upstream_body(r#"{"model":"m","messages":[{}],"stream_options":"odd"}"#);
        assert!(!asked);
        assert_eq!(body["stream_options"], serde_json::json!({"include_usage": true}));
    }
}

//! The routing table: every path the proxy serves, and which handler answers it.
//!
//! Six fixed paths do not need a router framework: matching them by hand is a few
//! comparisons, where a general router cost time on every request (docs/benchmarks.md).

use http::Method;
use serde_json::json;

use crate::app::App;
use crate::auth::{self, Client};
use crate::body::{self, Response};
use crate::endpoint::{Endpoint, StoredAction};
use crate::error::ApiError;
use crate::observe::LogHandle;

/// What a request asks for, once its method and path are matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    Health,
    ListModels,
    /// `GET /v1/models/{model}`, with the id percent-decoded.
    GetModel(String),
    /// A POST relayed to OpenAI.
    Forward(Endpoint),
    /// A stored Responses API response: retrieved, deleted, cancelled or its input
    /// items listed, relayed to OpenAI as `responses/{id}[/…]`.
    Stored(StoredAction, String),
}

/// The routed paths, in OpenAPI's template syntax (`/v1/models/{model}`), with the
/// method each answers. [`route`] serves exactly these, and the OpenAPI test reads the
/// paths from here, so a route added here and not to `docs/openapi.yaml` fails the tests.
const TABLE: [(&str, Method); 10] = [
    ("/health", Method::GET),
    ("/v1/models", Method::GET),
    ("/v1/models/{model}", Method::GET),
    ("/v1/chat/completions", Method::POST),
    ("/v1/embeddings", Method::POST),
    ("/v1/responses", Method::POST),
    ("/v1/responses/{response_id}", Method::GET),
    ("/v1/responses/{response_id}", Method::DELETE),
    ("/v1/responses/{response_id}/cancel", Method::POST),
    ("/v1/responses/{response_id}/input_items", Method::GET),
];

pub fn paths() -> Vec<&'static str> {
    let mut paths: Vec<_> = TABLE.iter().map(|(path, _)| *path).collect();
    paths.dedup();
    paths
}

/// Matches a request to its route: an unknown path is a 404, a known path asked with
/// another method a 405 (HEAD is answered as GET, as HTTP has it).
pub fn route(method: &Method, path: &str) -> Result<Route, ApiError> {
    let route = match path {
        "/health" => Route::Health,
        "/v1/models" => Route::ListModels,
        "/v1/chat/completions" => Route::Forward(Endpoint::ChatCompletions),
        "/v1/embeddings" => Route::Forward(Endpoint::Embeddings),
        "/v1/responses" => Route::Forward(Endpoint::Responses),
        _ => match path.strip_prefix("/v1/models/") {
            Some(id) if !id.is_empty() && !id.contains('/') => {
                Route::GetModel(percent_decode(id).ok_or_else(|| {
                    ApiError::invalid_request("The model id in the path is not valid percent-encoded UTF-8.")
                        .with_param("model")
                })?)
            }
            _ => return stored(method, path),
        },
    };
    let expected = match route {
        Route::Forward(_) => Method::POST,
        _ => Method::GET,
    };
    let allow = if expected == Method::GET {
        "GET, HEAD"
    } else {
        "POST"
    };
    if *method == expected || (*method == Method::HEAD && expected == Method::GET) {
        Ok(route)
    } else {
        Err(ApiError::method_not_allowed(method.as_str(), path, allow))
    }
}

/// `/v1/responses/{id}`, `…/cancel` and `…/input_items`. The id goes into the upstream
/// path, so only OpenAI's id characters pass: nothing can steer the request elsewhere.
fn stored(method: &Method, path: &str) -> Result<Route, ApiError> {
    let rest = path
        .strip_prefix("/v1/responses/")
        .ok_or_else(|| ApiError::not_found(path))?;
    let (id, tail) = rest.split_once('/').unwrap_or((rest, ""));
    let valid_id = !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    let (allow, action) = match (tail, method) {
        ("", &Method::GET | &Method::HEAD) => ("GET, DELETE", Some(StoredAction::Retrieve)),
        ("", &Method::DELETE) => ("GET, DELETE", Some(StoredAction::Delete)),
        ("", _) => ("GET, DELETE", None),
        ("cancel", &Method::POST) => ("POST", Some(StoredAction::Cancel)),
        ("cancel", _) => ("POST", None),
        ("input_items", &Method::GET | &Method::HEAD) => ("GET", Some(StoredAction::InputItems)),
        ("input_items", _) => ("GET", None),
        _ => return Err(ApiError::not_found(path)),
    };
    let Some(action) = action else {
        return Err(ApiError::method_not_allowed(method.as_str(), path, allow));
    };
    if !valid_id {
        return Err(ApiError::invalid_request(
            "The response id in the path is not an OpenAI response id (letters, digits, _ and -).",
        )
        .with_param("response_id"));
    }
    Ok(Route::Stored(action, id.to_owned()))
}

/// `%XX` escapes decoded; `None` for a broken escape or bytes that are not UTF-8.
fn percent_decode(segment: &str) -> Option<String> {
    if !segment.contains('%') {
        return Some(segment.to_owned());
    }
    let hex = |b: u8| char::from(b).to_digit(16).map(|d| d as u8);
    let mut bytes = Vec::with_capacity(segment.len());
    let mut rest = segment.as_bytes();
    while let Some((&b, tail)) = rest.split_first() {
        if b == b'%' {
            let [hi, lo, ..] = *tail else { return None };
            bytes.push(hex(hi)? << 4 | hex(lo)?);
            rest = &tail[2..];
        } else {
            bytes.push(b);
            rest = tail;
        }
    }
    String::from_utf8(bytes).ok()
}

pub fn health() -> Response {
    body::json(&json!({"status": "ok", "version": env!("CARGO_PKG_VERSION")}))
}

fn model_object(id: &str) -> serde_json::Value {
    json!({"id": id, "object": "model", "created": 0, "owned_by": "openai-lambda-proxy"})
}

/// The models the client may use: all mapped ids, or those its named key lists.
pub async fn list_models(app: &App, client: Option<&Client>) -> Result<Response, ApiError> {
    let config = app.load_config().await?;
    let data: Vec<_> = config
        .model_mappings
        .keys()
        .filter(|id| auth::may_use(client, id))
        .map(|id| model_object(id))
        .collect();
    Ok(body::json(&json!({"object": "list", "data": data})))
}

pub async fn get_model(
    app: &App,
    log: &LogHandle,
    client: Option<&Client>,
    model: String,
) -> Result<Response, ApiError> {
    let config = app.load_config().await?;
    let known = config.model_mappings.contains_key(&model) && auth::may_use(client, &model);
    let answer = if known {
        Ok(body::json(&model_object(&model)))
    } else {
        Err(ApiError::model_not_found(&model))
    };
    let mut record = log.lock().unwrap_or_else(|p| p.into_inner());
    record.model = Some(model);
    record.model_known = known;
    drop(record);
    answer
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_path_in_the_table_is_routed_with_its_method_and_refused_with_another() {
        for (path, method) in TABLE {
            let path = path.replace("{model}", "m").replace("{response_id}", "resp_1");
            assert!(route(&method, &path).is_ok(), "{method} {path}");
            let other = Method::PUT;
            let refused = route(&other, &path).unwrap_err();
            assert_eq!(
                refused.status,
                http::StatusCode::METHOD_NOT_ALLOWED,
                "{other} {path}"
            );
        }
    }

    #[test]
    fn model_ids_in_the_path_are_percent_decoded() {
        assert_eq!(
            route(&Method::GET, "/v1/models/amazon.nova-lite-v1%3A0"),
            Ok(Route::GetModel("amazon.nova-lite-v1:0".into()))
        );
        assert_eq!(
            route(&Method::GET, "/v1/models/ft:gpt-4o:org::x"),
            Ok(Route::GetModel("ft:gpt-4o:org::x".into()))
        );
        for broken in ["/v1/models/a%3", "/v1/models/a%zz", "/v1/models/%ff"] {
            let refused = route(&Method::GET, broken).unwrap_err();
            assert_eq!(refused.status, http::StatusCode::BAD_REQUEST, "{broken}");
        }
    }

    #[test]
    fn near_misses_are_unknown_paths() {
        for path in [
            "/",
            "/v1/models/",
            "/v1/models/a/b",
            "/health/",
            "/v1/chat/completions/x",
        ] {
            let refused = route(&Method::GET, path).unwrap_err();
            assert_eq!(refused.status, http::StatusCode::NOT_FOUND, "{path}");
        }
    }
}

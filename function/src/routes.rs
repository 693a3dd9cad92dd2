//! The HTTP surface of the proxy, shared by both runtimes.

use axum::extract::{DefaultBodyLimit, OriginalUri, Path, State};
use axum::http::Method;
use axum::response::{IntoResponse, Json};
use axum::routing::{MethodRouter, get, post};
use axum::{Extension, Router, middleware};
use serde_json::json;

use crate::app::App;
use crate::app::MAX_BODY_BYTES;
use crate::auth::{self, Client};
use crate::error::ApiError;
use crate::forward;
use crate::middleware::front;
use crate::observe::LogHandle;

/// The routing table: every path the proxy serves, with its handlers. [`router`] serves
/// exactly these, and the OpenAPI test reads the paths from here, so a route added here
/// and not to `docs/openapi.yaml` fails the tests.
fn routes() -> [(&'static str, MethodRouter<App>); 6] {
    [
        ("/health", get(health)),
        ("/v1/models", get(list_models)),
        ("/v1/models/{model}", get(get_model)),
        ("/v1/chat/completions", post(forward::chat_completions)),
        ("/v1/embeddings", post(forward::embeddings)),
        ("/v1/responses", post(forward::responses)),
    ]
}

/// The routed paths, in axum's (and OpenAPI's) template syntax: `/v1/models/{model}`.
pub fn paths() -> Vec<&'static str> {
    routes().iter().map(|(path, _)| *path).collect()
}

pub fn router(app: App) -> Router {
    routes()
        .into_iter()
        .fold(Router::new(), |router, (path, handlers)| {
            router.route(path, handlers.fallback(wrong_method))
        })
        .fallback(unknown_path)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn_with_state(app.clone(), front))
        .with_state(app)
}

async fn health() -> impl IntoResponse {
    Json(json!({"status": "ok", "version": env!("CARGO_PKG_VERSION")}))
}

fn model_object(id: &str) -> serde_json::Value {
    json!({"id": id, "object": "model", "created": 0, "owned_by": "openai-lambda-proxy"})
}

/// The models the client may use: all mapped ids, or those its named key lists.
async fn list_models(
    State(app): State<App>,
    client: Option<Extension<Client>>,
) -> Result<impl IntoResponse, ApiError> {
    let config = app.load_config().await?;
    let client = client.map(|c| c.0);
    let data: Vec<_> = config
        .model_mappings
        .keys()
        .filter(|id| auth::may_use(client.as_ref(), id))
        .map(|id| model_object(id))
        .collect();
    Ok(Json(json!({"object": "list", "data": data})))
}

async fn get_model(
    State(app): State<App>,
    Extension(log): Extension<LogHandle>,
    client: Option<Extension<Client>>,
    Path(model): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    log.lock().unwrap_or_else(|p| p.into_inner()).model = Some(model.clone());
    let config = app.load_config().await?;
    let client = client.map(|c| c.0);
    if config.model_mappings.contains_key(&model) && auth::may_use(client.as_ref(), &model) {
        Ok(Json(model_object(&model)))
    } else {
        Err(ApiError::model_not_found(&model))
    }
}

async fn unknown_path(OriginalUri(uri): OriginalUri) -> ApiError {
    ApiError::not_found(uri.path())
}

async fn wrong_method(method: Method, OriginalUri(uri): OriginalUri) -> ApiError {
    ApiError::method_not_allowed(method.as_str(), uri.path())
}

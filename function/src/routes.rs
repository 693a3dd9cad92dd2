//! The HTTP surface of the proxy.

use axum::Router;
use axum::extract::OriginalUri;
use axum::http::Method;
use axum::response::{IntoResponse, Json};
use axum::routing::get;
use serde_json::json;

use crate::error::ApiError;

pub fn router() -> Router {
    Router::new()
        .route("/health", get(health).fallback(wrong_method))
        .fallback(unknown_path)
}

async fn health() -> impl IntoResponse {
    Json(json!({"status": "ok", "version": env!("CARGO_PKG_VERSION")}))
}

async fn unknown_path(OriginalUri(uri): OriginalUri) -> ApiError {
    ApiError::not_found(uri.path())
}

async fn wrong_method(method: Method, OriginalUri(uri): OriginalUri) -> ApiError {
    ApiError::method_not_allowed(method.as_str(), uri.path())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    async fn call(method: &str, path: &str) -> (StatusCode, serde_json::Value) {
        let request = Request::builder()
            .method(method)
            .uri(path)
            .body(Body::empty())
            .unwrap();
        let response = router().oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    #[tokio::test]
    async fn health_answers_ok_without_configuration() {
        let (status, body) = call("GET", "/health").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["status"], "ok");
    }

    #[tokio::test]
    async fn unknown_path_is_a_404_in_openai_error_shape() {
        let (status, body) = call("GET", "/v2/nothing").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(body["error"]["type"], "invalid_request_error");
        assert_eq!(body["error"]["code"], "unknown_url");
        assert!(body["error"]["message"].as_str().unwrap().contains("/v2/nothing"));
        assert!(body["error"].as_object().unwrap().contains_key("param"));
    }

    #[tokio::test]
    async fn wrong_method_is_a_405_in_openai_error_shape() {
        let (status, body) = call("DELETE", "/health").await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(body["error"]["code"], "method_not_allowed");
    }
}

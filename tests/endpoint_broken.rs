//! The endpoint tests against deliberately broken targets: each breakage fails exactly
//! the checks it should, with expected and actual in one line, and the `test` command
//! exits non-zero.

mod assertions;
mod endpoint_support;

use assertions::contains_all;
use endpoint_support::*;
use openai_proxy_deployer::endpoint::Verdict;

#[tokio::test]
async fn a_server_that_is_down_fails_health_and_skips_the_rest() {
    // A port that was just free: nothing listens on it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let results = run(&plan(&format!("http://127.0.0.1:{port}"))).await;
    let health = failed_only(&results, &["health"]);
    assert!(
        health.starts_with(
            "expected HTTP 200 with {\"status\":\"ok\"} from GET /health; got no answer (after "
        ) && health.contains("could not connect"),
        "{health}"
    );
    assert_eq!(names(&results, Verdict::Skipped).len(), 7);
    assert!(names(&results, Verdict::Passed).is_empty() && results.probes.is_empty());
    assert!(!results.passed());
    insta::with_settings!({filters => filters()}, {
        insta::assert_snapshot!("server_down", section(results));
    });
}

#[tokio::test]
async fn a_missing_model_fails_the_model_list_only() {
    let base = Proxy {
        models: vec![MODELS[0]],
        ..Proxy::default()
    }
    .start()
    .await;
    let results = run(&plan(&base)).await;
    let failed = failed_only(&results, &["models list"]);
    assert_eq!(
        failed,
        "expected the list to contain amazon.nova-lite-v1:0, amazon.nova-pro-v1:0; missing amazon.nova-pro-v1:0 (listed: amazon.nova-lite-v1:0)"
    );
    // The chat tests still run, with the first expected (and mapped) model.
    assert_eq!(results.model.as_deref(), Some(MODELS[0]));
}

#[tokio::test]
async fn no_cors_headers_fail_the_preflight_only() {
    let upstream = upstream().await;
    let router = broken(Proxy::default().router(&upstream), pass_through, true);
    let base = format!("http://{}", serve(router).await);
    let results = run(&plan(&base)).await;
    let failed = failed_only(&results, &["CORS preflight"]);
    assert_eq!(
        failed,
        "expected a 2xx allowing origin https://app.example.com, method POST and headers authorization, content-type, x-stainless-os; got HTTP 200 with allow-origin (none), allow-methods (none), allow-headers (none)"
    );
}

#[tokio::test]
async fn a_500_on_chat_fails_both_chat_checks_and_nothing_else() {
    let upstream = upstream().await;
    let router = broken(Proxy::default().router(&upstream), fail_chat, false);
    let base = format!("http://{}", serve(router).await);
    let results = run(&plan(&base)).await;
    let chat = failed_only(&results, &["chat completion", "streaming chat"]);
    let sent = format!("got HTTP 500 (x-request-id {}-", results.run_id);
    assert!(
        chat.starts_with(&format!(
            "expected HTTP 200 with a chat.completion for model amazon.nova-lite-v1:0; {sent}"
        )) && chat.contains("): {\"error\":{\"message\":\"The server had an error"),
        "{chat}"
    );
    assert!(
        detail(&results, "streaming chat").starts_with(
            "expected HTTP 200, SSE chunks for model amazon.nova-lite-v1:0, then data: [DONE]; got HTTP 500"
        ),
        "{results:#?}"
    );
    insta::with_settings!({filters => filters()}, {
        insta::assert_snapshot!("chat_500", section(results));
    });
}

#[tokio::test]
async fn a_stream_cut_short_upstream_fails_the_streaming_check_only() {
    let upstream = upstream_with(true).await;
    let base = format!("http://{}", serve(Proxy::default().router(&upstream)).await);
    let results = run(&plan(&base)).await;
    let stream = failed_only(&results, &["streaming chat"]);
    assert!(
        stream.starts_with(
            "expected HTTP 200, SSE chunks for model amazon.nova-lite-v1:0, then data: [DONE]; got an error event after 3 chunks: {\"error\""
        ),
        "{stream}"
    );
}

/// All of the answer's events in one piece once it is complete, with the right
/// content-type: whether the head waits too (API Gateway's BUFFERED mode) or goes first
/// (a streaming gateway in front of a function that buffers), it is not a stream.
#[tokio::test]
async fn a_stream_buffered_on_its_way_fails_the_streaming_check_only() {
    for head_first in [false, true] {
        let upstream = upstream().await;
        let router = buffering(Proxy::default().router(&upstream), head_first);
        let base = format!("http://{}", serve(router).await);
        let results = run(&plan(&base)).await;
        let stream = failed_only(&results, &["streaming chat"]);
        assert!(
            stream.starts_with(
                "expected HTTP 200, SSE chunks for model amazon.nova-lite-v1:0, then data: [DONE]; got all 4 events at once, the first after "
            ) && stream.contains(" ms: the answer was buffered on its way, not streamed ("),
            "head first: {head_first}: {stream}"
        );
    }
}

#[tokio::test]
async fn an_unhealthy_answer_is_retried_then_reported_and_the_rest_still_runs() {
    fn unhealthy(_: &axum::http::Method, path: &str, _: &[u8]) -> Option<axum::response::Response> {
        use axum::response::IntoResponse;
        (path == "/health").then(|| {
            (
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                "{\"message\":\"Service Unavailable\"}",
            )
                .into_response()
        })
    }
    let upstream = upstream().await;
    let base = format!(
        "http://{}",
        serve(broken(Proxy::default().router(&upstream), unhealthy, false)).await
    );
    let mut plan = plan(&base);
    plan.perf_requests = 2;
    let results = run(&plan).await;
    let health = failed_only(
        &results,
        &[
            "health",
            "performance: sequential /health",
            "performance: concurrent /health",
        ],
    );
    assert!(
        health.contains("got HTTP 503 (x-request-id deployer-")
            && health.contains("): {\"message\":\"Service Unavailable\"} (after ")
            && !health.contains("(after 1 attempts)"),
        "retried: {health}"
    );
    assert!(
        detail(&results, "performance: sequential /health")
            .starts_with("expected 2 × HTTP 200; got 2 errors (first: HTTP 503"),
        "{results:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_test_command_exits_1_and_its_report_names_the_failure() {
    let upstream = upstream().await;
    let router = broken(Proxy::default().router(&upstream), pass_through, true);
    let base = format!("http://{}", serve(router).await);
    let (code, stdout, report, outputs) = deployer(vec![("API_BASE_URL", base)]).await;
    assert_eq!(code, 1, "{stdout}");
    contains_all(
        &stdout,
        &["❌ CORS preflight", "endpoint tests: 9 passed, 1 failed"],
    );
    contains_all(
        &report,
        &[
            "❌ **test**: failed",
            "| CORS preflight | ❌ |",
            "**Fix:** each failed test",
        ],
    );
    assert!(outputs.contains("status=failed\n"), "{outputs}");
}

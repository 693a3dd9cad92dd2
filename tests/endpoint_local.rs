//! The endpoint tests against the real proxy (the function crate's router on a local
//! port) in front of a canned upstream: every check passes, authentication is tested
//! when it is on, and the deployer's `test` command exits 0 with the results in its
//! report and outputs.

mod endpoint_support;

use endpoint_support::*;
use openai_proxy_deployer::endpoint::{Plan, Results, Verdict};

const ALL: [&str; 10] = [
    "health",
    "models list",
    "chat completion",
    "streaming chat",
    "CORS preflight",
    "malformed JSON → 400",
    "unknown model → 404",
    "unknown path → 404",
    "performance: sequential /health",
    "performance: concurrent /health",
];

#[tokio::test]
async fn every_check_passes_against_the_proxy_and_its_upstream() {
    let base = Proxy::default().start().await;
    let results = run(&plan(&base)).await;
    assert_eq!(names(&results, Verdict::Passed), ALL, "{results:#?}");
    assert!(results.passed());
    assert_eq!(results.model.as_deref(), Some(MODELS[0]));
    assert_eq!(
        detail(&results, "chat completion"),
        format!("answer: \"{ANSWER}\", served by openai")
    );
    // Three events paced by the upstream: the last arrives at least 2 × PACE after the first.
    let stream = detail(&results, "streaming chat");
    let spread: f64 = stream
        .strip_prefix("3 chunks, then [DONE]; first event after ")
        .and_then(|rest| rest.split_once(" ms, the last "))
        .and_then(|(_, spread)| spread.strip_suffix(" ms later, served by openai"))
        .and_then(|spread| spread.parse().ok())
        .unwrap_or_else(|| panic!("{stream}"));
    assert!(spread >= 2.0 * PACE.as_millis() as f64, "{stream}");
    assert_eq!(results.probes.len(), 2);
    assert!(results.probes.iter().all(|p| p.requests == 5 && p.errors == 0));
    insta::with_settings!({filters => filters()}, {
        insta::assert_snapshot!("all_pass", section(results));
    });
}

#[tokio::test]
async fn every_request_carries_a_request_id_of_the_run_which_the_proxy_logs() {
    // The proxy logs a caller's id beside its own, as `client_request_id` (issue 21).
    let (router, logs) = Proxy::default().router_logged(&upstream().await);
    let base = format!("http://{}", serve(router).await);
    let results = run(&plan(&base)).await;
    assert!(results.passed(), "{results:#?}");
    let ids: Vec<String> = logs
        .lock()
        .unwrap()
        .iter()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter_map(|line| line["client_request_id"].as_str().map(str::to_owned))
        .collect();
    // 8 checks with one request each (health answered at once), 5 + 5 probe requests.
    assert_eq!(ids.len(), 18, "{ids:?}");
    let expected: Vec<String> = (1..=18).map(|n| format!("{}-{n}", results.run_id)).collect();
    let mut sorted = ids.clone();
    sorted.sort_by_key(|id| id.rsplit('-').next().unwrap().parse::<u32>().unwrap());
    assert_eq!(sorted, expected);
}

/// Every check against `proxy`, with the plan made for it changed by `adjust`.
async fn run_against(proxy: Proxy, adjust: impl FnOnce(&mut Plan)) -> Results {
    let base = proxy.start().await;
    let mut plan = plan(&base);
    adjust(&mut plan);
    run(&plan).await
}

/// Every check against a proxy that requires client keys, sending `client_key`.
async fn run_with_authentication(client_key: Option<&str>) -> Results {
    let proxy = Proxy {
        auth: true,
        ..Proxy::default()
    };
    run_against(proxy, |plan| {
        plan.auth = true;
        plan.client_key = client_key.map(str::to_owned);
    })
    .await
}

#[tokio::test]
async fn with_authentication_on_the_key_is_sent_and_its_absence_refused() {
    let results = run_with_authentication(Some(CLIENT_KEY)).await;
    let mut expected = ALL.to_vec();
    expected.splice(8..8, ["auth: no key → 401", "auth: valid key → 200"]);
    assert_eq!(names(&results, Verdict::Passed), expected, "{results:#?}");
    assert!(!section(results).contains(CLIENT_KEY));
}

#[tokio::test]
async fn authentication_on_without_a_test_key_fails_and_says_what_to_set() {
    let results = run_with_authentication(None).await;
    assert_eq!(names(&results, Verdict::Failed), ["auth: valid key → 200"]);
    assert!(detail(&results, "auth: valid key → 200").contains("TEST_CLIENT_API_KEY is not set"));
    assert_eq!(
        names(&results, Verdict::Skipped),
        [
            "models list",
            "chat completion",
            "streaming chat",
            "malformed JSON → 400",
            "unknown model → 404",
            "unknown path → 404"
        ]
    );
    assert_eq!(
        names(&results, Verdict::Passed),
        [
            "health",
            "CORS preflight",
            "auth: no key → 401",
            "performance: sequential /health",
            "performance: concurrent /health"
        ]
    );
}

#[tokio::test]
async fn chat_can_be_left_out_and_without_expected_ids_any_listed_model_will_do() {
    let base = Proxy::default().start().await;
    let mut plan = plan(&base);
    plan.chat = false;
    plan.expected_models.clear();
    plan.perf_requests = 0;
    let results = run(&plan).await;
    assert_eq!(
        names(&results, Verdict::Skipped),
        ["chat completion", "streaming chat"]
    );
    assert_eq!(detail(&results, "chat completion"), "TEST_CHAT_COMPLETION=false");
    assert_eq!(detail(&results, "models list"), "2 listed");
    assert_eq!(results.model.as_deref(), Some(MODELS[0]));
    assert!(results.passed() && results.probes.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_test_command_passes_with_exit_code_0_and_writes_the_report() {
    let base = Proxy::default().start().await;
    let (code, stdout, report, outputs) = deployer(vec![
        ("API_BASE_URL", base.clone()),
        (
            "MODEL_MAPPINGS",
            r#"{"amazon.nova-lite-v1:0":"gpt-4o-mini","amazon.nova-pro-v1:0":"gpt-4o"}"#.into(),
        ),
    ])
    .await;
    assert_eq!(code, 0, "{stdout}");
    assert!(
        stdout.contains("▹▹▹▹▹ Endpoint tests: http://127.0.0.1:"),
        "{stdout}"
    );
    assert!(stdout.contains("endpoint tests: 10 passed"), "{stdout}");
    assert!(
        report.contains("✅ **test**: the proxy answers as it should"),
        "{report}"
    );
    assert!(report.contains(&format!("base_url=\"{base}/v1\"")), "{report}");
    assert!(report.contains("| endpoint tests | ✅ |"), "{report}");
    assert!(outputs.contains("status=succeeded\n"), "{outputs}");
    assert!(outputs.contains("report-path="), "{outputs}");
}

/// The demo's upstream (scripts/test-upstream.py) behind the real proxy: every check
/// passes, and the answer says where it came from.
#[tokio::test]
async fn the_demos_test_upstream_passes_every_check_and_labels_its_answers() {
    let dir = tempfile::tempdir().unwrap();
    let port_file = dir.path().join("port");
    let python = std::env::var("VENV_DIR")
        .map(|venv| format!("{venv}/bin/python"))
        .ok()
        .filter(|p| std::path::Path::new(p).exists())
        .unwrap_or_else(|| "python3".into());
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/test-upstream.py");
    /// Stops the script however the test ends.
    struct Stop(std::process::Child);
    impl Drop for Stop {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _child = Stop(
        std::process::Command::new(&python)
            .arg(script)
            .arg("--port-file")
            .arg(&port_file)
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {python} {script}: {e}")),
    );
    let mut port = String::new();
    for _ in 0..100 {
        port = std::fs::read_to_string(&port_file).unwrap_or_default();
        if !port.trim().is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(!port.trim().is_empty(), "the test upstream did not start");
    let upstream = format!("http://127.0.0.1:{}/v1", port.trim());
    let base = format!("http://{}", serve(Proxy::default().router(&upstream)).await);

    let results = run(&plan(&base)).await;
    assert_eq!(names(&results, Verdict::Passed), ALL, "{results:#?}");
    assert!(
        detail(&results, "chat completion").starts_with("answer: \"[local test upstream] ok."),
        "{results:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_test_command_with_authentication_never_prints_the_client_key() {
    let base = Proxy {
        auth: true,
        ..Proxy::default()
    }
    .start()
    .await;
    let (code, stdout, report, outputs) = deployer(vec![
        ("API_BASE_URL", base),
        ("ENABLE_AUTHENTICATION", "true".into()),
        ("TEST_CLIENT_API_KEY", CLIENT_KEY.into()),
        ("GITHUB_ACTIONS", "true".into()),
    ])
    .await;
    assert_eq!(code, 0, "{stdout}");
    assert!(stdout.contains("auth: valid key → 200"), "{stdout}");
    // In Actions the runner is told to mask it before anything else is printed...
    assert!(
        stdout.starts_with(&format!("::add-mask::{CLIENT_KEY}\n")),
        "{stdout}"
    );
    // ...and nothing else ever shows it.
    let rest = stdout.split_once('\n').unwrap().1;
    for text in [rest, &report, &outputs] {
        assert!(!text.contains(CLIENT_KEY), "{text}");
    }
    assert!(
        report.contains("api_key=os.environ[\"PROXY_API_KEY\"]"),
        "{report}"
    );
    // No stack was consulted, so the report names none.
    assert!(!report.contains("| Stack |"), "{report}");
}

/// The Python interpreter of the project's tools (`make setup`), which has the `openai` SDK.
fn venv_python() -> String {
    let venv =
        std::env::var("VENV_DIR").unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/.venv").into());
    let python = format!("{venv}/bin/python");
    assert!(
        std::path::Path::new(&python).exists(),
        "{python} is missing: run `make setup` (or set VENV_DIR)"
    );
    python
}

/// The report's copy-paste snippet, run as is with the official OpenAI Python SDK.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reports_python_snippet_runs_with_the_openai_sdk() {
    let base = Proxy::default().start().await;
    let results = run(&plan(&base)).await;
    let report = openai_proxy_deployer::report::Report {
        command: "test".into(),
        status: Some(openai_proxy_deployer::report::Status::Succeeded),
        endpoint: Some(results),
        ..Default::default()
    }
    .markdown();
    let code = report
        .split_once("```python\n")
        .and_then(|(_, rest)| rest.split_once("```"))
        .map(|(code, _)| code.to_owned())
        .unwrap_or_else(|| panic!("no python snippet in {report}"));
    let python = venv_python();
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(python)
            .args(["-c", &code])
            .env_remove("OPENAI_API_KEY")
            .env_remove("OPENAI_BASE_URL")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        format!("{ANSWER}\n"),
        "{stderr}"
    );
}

/// With CorsAllowedOrigins listing origins, the preflight comes from one of them: from
/// the stack's parameter, or PARAMETER_OVERRIDES when only API_BASE_URL is given.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restricted_cors_origins_are_preflighted_from_an_allowed_origin() {
    let base = Proxy {
        cors: Some(vec!["https://mine.example".into()]),
        ..Proxy::default()
    }
    .start()
    .await;
    let (code, stdout, _, _) = deployer(vec![
        ("API_BASE_URL", base.clone()),
        (
            "PARAMETER_OVERRIDES",
            r#"{"CorsAllowedOrigins":"https://mine.example,https://other.example"}"#.into(),
        ),
    ])
    .await;
    assert_eq!(code, 0, "{stdout}");
    assert!(stdout.contains("✅ CORS preflight"), "{stdout}");

    // The fixed origin is not among them: exactly the preflight fails.
    let results = run(&plan(&base)).await;
    let failed = failed_only(&results, &["CORS preflight"]);
    assert!(
        failed.contains("got HTTP 200 with allow-origin (none)"),
        "{results:#?}"
    );
}

/// TEST_PROVIDER=bedrock: the chats ask for Bedrock first and must be served by it; the
/// report says who served each.
#[tokio::test]
async fn test_provider_bedrock_exercises_the_failover_path_and_says_who_served() {
    let bedrock = |plan: &mut Plan| plan.provider = Some("bedrock");
    let both = Proxy {
        bedrock: true,
        ..Proxy::default()
    };
    let results = run_against(both, bedrock).await;
    assert!(results.passed(), "{results:#?}");
    assert!(
        detail(&results, "chat completion").ends_with(", served by bedrock"),
        "{results:#?}"
    );
    // Without the mapping naming Bedrock, the same test fails and says why.
    let results = run_against(Proxy::default(), bedrock).await;
    let failed = failed_only(&results, &["chat completion", "streaming chat"]);
    assert!(
        failed.contains("served by openai, not by bedrock as TEST_PROVIDER asked"),
        "{failed}"
    );
}

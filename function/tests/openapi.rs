//! docs/openapi.yaml against the router, in-process:
//! - every documented path is routed, and every routed path (the router's own table) is
//!   documented; every method a path answers (anything but 405) is documented;
//! - every documented operation, sent with each of its documented examples, answers
//!   with a documented status and content type, and its JSON body (or each streamed
//!   event) matches the documented schema;
//! - the documented security matches what the router enforces with authentication on,
//!   including the header each scheme names.

mod common;

use std::collections::BTreeMap;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use common::*;
use openai_proxy_function::app::Settings;
use serde_json::{Value, json};
use wiremock::matchers::{body_partial_json, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const SPEC: &str = include_str!("../../docs/openapi.yaml");
const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

fn spec() -> Value {
    serde_saphyr::from_str(SPEC).expect("docs/openapi.yaml is valid YAML")
}

/// Follows local `$ref`s (`#/components/...`) until a non-reference object.
fn resolve<'a>(spec: &'a Value, mut value: &'a Value) -> &'a Value {
    while let Some(reference) = value.get("$ref").and_then(Value::as_str) {
        let pointer = reference
            .strip_prefix('#')
            .unwrap_or_else(|| panic!("only local references are used: {reference}"));
        value = spec
            .pointer(pointer)
            .unwrap_or_else(|| panic!("dangling reference {reference}"));
    }
    value
}

/// The documented operations: (path, method, operation, path-level parameters).
fn operations(spec: &Value) -> Vec<(String, String, Value, Vec<Value>)> {
    let mut out = Vec::new();
    for (path, item) in spec["paths"].as_object().expect("paths") {
        let item = resolve(spec, item);
        let shared = item["parameters"].as_array().cloned().unwrap_or_default();
        for method in METHODS {
            if let Some(op) = item.get(method) {
                out.push((path.clone(), method.to_owned(), op.clone(), shared.clone()));
            }
        }
    }
    out
}

/// The values an example-bearing object documents: `example`, or every `examples` value.
fn example_values(spec: &Value, holder: &Value) -> Vec<Value> {
    if let Some(example) = holder.get("example") {
        return vec![example.clone()];
    }
    holder
        .get("examples")
        .and_then(Value::as_object)
        .map(|examples| {
            examples
                .values()
                .map(|e| resolve(spec, e)["value"].clone())
                .collect()
        })
        .unwrap_or_default()
}

struct Case {
    method: Method,
    uri: String,
    headers: Vec<(String, String)>,
    body: Option<Value>,
}

impl Case {
    fn request(&self) -> Request<Body> {
        let mut builder = Request::builder().method(self.method.clone()).uri(&self.uri);
        for (name, value) in &self.headers {
            builder = builder.header(name, value);
        }
        match &self.body {
            Some(body) => builder
                .header("content-type", "application/json")
                .body(Body::from(body.to_string())),
            None => builder.body(Body::empty()),
        }
        .unwrap()
    }

    fn describe(&self) -> String {
        let body = self.body.as_ref().map(Value::to_string).unwrap_or_default();
        format!("{} {} {body}", self.method, self.uri)
    }
}

/// One request per combination of the documented path-parameter and body examples,
/// with every documented header example set.
fn cases(spec: &Value, path: &str, method: &str, op: &Value, shared: &[Value]) -> Vec<Case> {
    let params: Vec<&Value> = shared
        .iter()
        .chain(op["parameters"].as_array().into_iter().flatten())
        .map(|p| resolve(spec, p))
        .collect();
    let mut uris = vec![path.to_owned()];
    let mut headers = Vec::new();
    for param in &params {
        let name = param["name"].as_str().unwrap();
        let values = example_values(spec, param);
        match param["in"].as_str() {
            Some("path") => {
                assert!(
                    !values.is_empty(),
                    "{method} {path}: path parameter `{name}` has no example"
                );
                let placeholder = format!("{{{name}}}");
                let placeholder = &placeholder;
                uris = uris
                    .iter()
                    .flat_map(|uri| {
                        values
                            .iter()
                            .map(move |v| uri.replace(placeholder, v.as_str().unwrap()))
                    })
                    .collect();
            }
            Some("header") => {
                if let Some(value) = values.first() {
                    let value = value
                        .as_str()
                        .map(str::to_owned)
                        .unwrap_or_else(|| value.to_string());
                    headers.push((name.to_owned(), value));
                } else {
                    assert_ne!(
                        param["required"], true,
                        "{method} {path}: required header `{name}` has no example"
                    );
                }
            }
            other => panic!("{method} {path}: parameter `{name}` in {other:?} is not exercised by this test"),
        }
    }
    let bodies: Vec<Option<Value>> = match op.get("requestBody") {
        None => vec![None],
        Some(body) => {
            let media = &resolve(spec, body)["content"]["application/json"];
            let examples = example_values(spec, media);
            assert!(
                !examples.is_empty(),
                "{method} {path}: the request body has no example"
            );
            examples.into_iter().map(Some).collect()
        }
    };
    let method = Method::from_bytes(method.to_ascii_uppercase().as_bytes()).unwrap();
    uris.iter()
        .flat_map(|uri| {
            bodies.iter().map(|body| Case {
                method: method.clone(),
                uri: uri.clone(),
                headers: headers.clone(),
                body: body.clone(),
            })
        })
        .collect()
}

/// The documented response for `status`: exact code, then `4XX`-style range, then
/// `default`.
fn documented_response<'a>(spec: &'a Value, op: &'a Value, status: StatusCode) -> Option<&'a Value> {
    let responses = &op["responses"];
    let code = status.as_str().to_owned();
    let range = format!("{}XX", &code[..1]);
    [code.as_str(), range.as_str(), "default"]
        .iter()
        .find_map(|key| responses.get(*key))
        .map(|r| resolve(spec, r))
}

/// A JSON Schema check for the keywords the document uses. A keyword it does not know
/// fails the test rather than being ignored, so the document cannot outgrow the check.
fn check(spec: &Value, schema: &Value, value: &Value, at: &str, errors: &mut Vec<String>) {
    let schema = resolve(spec, schema);
    let Some(keywords) = schema.as_object() else {
        panic!("schema at {at} is not an object: {schema}");
    };
    for (keyword, rule) in keywords {
        match keyword.as_str() {
            "description" | "title" | "example" | "examples" | "$ref" => {}
            "type" => {
                let types: Vec<&str> = match rule {
                    Value::String(t) => vec![t.as_str()],
                    Value::Array(list) => list.iter().filter_map(Value::as_str).collect(),
                    _ => panic!("bad `type` at {at}"),
                };
                let ok = types.iter().any(|t| match *t {
                    "object" => value.is_object(),
                    "array" => value.is_array(),
                    "string" => value.is_string(),
                    "integer" => value.is_i64() || value.is_u64(),
                    "number" => value.is_number(),
                    "boolean" => value.is_boolean(),
                    "null" => value.is_null(),
                    other => panic!("unknown type {other} at {at}"),
                });
                if !ok {
                    errors.push(format!("{at}: {value} is not of type {rule}"));
                }
            }
            "const" if value != rule => errors.push(format!("{at}: {value} is not {rule}")),
            "const" => {}
            "enum" if !rule.as_array().unwrap().contains(value) => {
                errors.push(format!("{at}: {value} is not one of {rule}"))
            }
            "enum" => {}
            "required" => {
                for name in rule.as_array().unwrap().iter().filter_map(Value::as_str) {
                    if value.is_object() && value.get(name).is_none() {
                        errors.push(format!("{at}: `{name}` is missing"));
                    }
                }
            }
            "properties" => {
                for (name, property) in rule.as_object().unwrap() {
                    if let Some(v) = value.get(name) {
                        check(spec, property, v, &format!("{at}.{name}"), errors);
                    }
                }
            }
            "additionalProperties" => match (rule, value.as_object()) {
                (Value::Bool(true), _) | (_, None) => {}
                (Value::Bool(false), Some(map)) => {
                    let known = schema["properties"].as_object();
                    for name in map.keys() {
                        if !known.is_some_and(|k| k.contains_key(name)) {
                            errors.push(format!("{at}: `{name}` is not documented"));
                        }
                    }
                }
                _ => panic!("additionalProperties with a schema at {at} is not checked"),
            },
            "items" => {
                for (i, item) in value.as_array().into_iter().flatten().enumerate() {
                    check(spec, rule, item, &format!("{at}[{i}]"), errors);
                }
            }
            "minItems" => {
                if value
                    .as_array()
                    .is_some_and(|a| (a.len() as u64) < rule.as_u64().unwrap())
                {
                    errors.push(format!("{at}: fewer than {rule} items"));
                }
            }
            "minLength" => {
                if value
                    .as_str()
                    .is_some_and(|s| (s.chars().count() as u64) < rule.as_u64().unwrap())
                {
                    errors.push(format!("{at}: shorter than {rule}"));
                }
            }
            "minimum" => {
                if value.as_f64().is_some_and(|n| n < rule.as_f64().unwrap()) {
                    errors.push(format!("{at}: {value} is below {rule}"));
                }
            }
            "oneOf" | "anyOf" => {
                let passing = rule
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|alternative| {
                        let mut e = Vec::new();
                        check(spec, alternative, value, at, &mut e);
                        e.is_empty()
                    })
                    .count();
                let ok = if keyword == "oneOf" {
                    passing == 1
                } else {
                    passing >= 1
                };
                if !ok {
                    errors.push(format!(
                        "{at}: {value} matches {passing} of the {keyword} alternatives"
                    ));
                }
            }
            other => {
                panic!("schema keyword `{other}` at {at} is not checked by this test: teach `check` about it")
            }
        }
    }
}

fn schema_errors(spec: &Value, schema: &Value, value: &Value) -> Vec<String> {
    let mut errors = Vec::new();
    check(spec, schema, value, "$", &mut errors);
    errors
}

/// Asserts that `reply` is what `op` documents for it.
fn assert_documented(spec: &Value, op: &Value, case: &str, reply: &Reply) {
    let ctx = format!("{case} -> {} {}", reply.status, reply.text());
    let response =
        documented_response(spec, op, reply.status).unwrap_or_else(|| panic!("undocumented status: {ctx}"));
    if reply.status.is_client_error() {
        let code = reply.json()["error"]["code"].clone();
        assert!(
            code != "unknown_url" && code != "method_not_allowed",
            "documented but not routed: {ctx}"
        );
    }
    let headers = response["headers"].as_object().cloned().unwrap_or_default();
    assert!(
        headers.contains_key("x-request-id"),
        "response lacks the x-request-id header in the document: {ctx}"
    );
    for (name, header) in &headers {
        if name == "x-request-id" || resolve(spec, header)["required"] == true {
            assert!(
                reply.headers.contains_key(name.as_str()),
                "header `{name}` missing: {ctx}"
            );
        }
    }
    let Some(content) = response.get("content").and_then(Value::as_object) else {
        assert!(
            reply.body.is_empty(),
            "documented without content, but has a body: {ctx}"
        );
        return;
    };
    let content_type = reply
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap().trim().to_owned())
        .unwrap_or_else(|| panic!("no content type: {ctx}"));
    let media = content
        .get(&content_type)
        .unwrap_or_else(|| panic!("undocumented content type {content_type}: {ctx}"));
    let errors = if content_type == "application/json" {
        schema_errors(spec, &media["schema"], &reply.json())
    } else if content_type == "text/event-stream" {
        // Each event's schema; its `data` holds JSON of `contentSchema` (or is `[DONE]`).
        let data = &resolve(spec, &media["schema"])["properties"]["data"];
        let schema = data
            .get("contentSchema")
            .or_else(|| {
                data["anyOf"]
                    .as_array()?
                    .iter()
                    .find_map(|s| s.get("contentSchema"))
            })
            .unwrap_or_else(|| panic!("event stream without a data contentSchema: {ctx}"));
        let text = reply.text();
        // Each event: optional `event:` line, then `data:` lines.
        let data: Vec<String> = text
            .split("\n\n")
            .filter(|e| !e.is_empty())
            .map(|e| {
                e.lines()
                    .filter(|l| !l.starts_with("event: "))
                    .map(|l| {
                        l.strip_prefix("data: ")
                            .unwrap_or_else(|| panic!("not a data event: {e}"))
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            })
            .collect();
        let events = if media.get("x-ends-with-done") == Some(&Value::Bool(true)) {
            assert_eq!(data.last().map(String::as_str), Some("[DONE]"), "{ctx}");
            &data[..data.len() - 1]
        } else {
            assert!(!data.iter().any(|d| d == "[DONE]"), "{ctx}");
            &data[..]
        };
        events
            .iter()
            .flat_map(|d| schema_errors(spec, schema, &serde_json::from_str(d).unwrap()))
            .collect()
    } else {
        panic!("no check for {content_type}: {ctx}")
    };
    assert!(
        errors.is_empty(),
        "body does not match the documented schema: {errors:#?}\n{ctx}"
    );
}

/// Answers POSTs to `at` with `sse` when they ask for a stream, with `whole` otherwise.
async fn answer_both_ways(server: &MockServer, at: &str, sse: String, whole: Value) {
    Mock::given(method("POST"))
        .and(path(at))
        .and(body_partial_json(json!({"stream": true})))
        .respond_with(ResponseTemplate::new(200).set_body_raw(sse, "text/event-stream"))
        .with_priority(1)
        .mount(server)
        .await;
    Mock::given(method("POST"))
        .and(path(at))
        .respond_with(ResponseTemplate::new(200).set_body_json(whole))
        .mount(server)
        .await;
}

/// An upstream answering every chat request, streamed or not.
async fn upstream() -> (MockServer, String) {
    let server = MockServer::start().await;
    let chunk = |delta: Value| {
        json!({"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o-mini",
               "choices": [{"index": 0, "delta": delta, "finish_reason": null}]})
    };
    let usage = json!({"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o-mini",
                       "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}});
    let events = [
        chunk(json!({"role": "assistant", "content": "Hel"})).to_string(),
        chunk(json!({"content": "lo"})).to_string(),
        usage.to_string(),
        "[DONE]".to_owned(),
    ];
    let sse: String = events.iter().map(|e| format!("data: {e}\n\n")).collect();
    answer_both_ways(&server, "/v1/chat/completions", sse, completion("gpt-4o-mini")).await;
    let embeddings = json!({"object": "list", "model": "text-embedding-3-small",
                            "data": [{"object": "embedding", "index": 0, "embedding": [0.1, -0.2]}],
                            "usage": {"prompt_tokens": 2, "total_tokens": 2}});
    Mock::given(method("POST"))
        .and(path("/v1/embeddings"))
        .respond_with(ResponseTemplate::new(200).set_body_json(embeddings))
        .mount(&server)
        .await;
    let response = |status: &str| {
        json!({"id": "resp_1", "object": "response", "status": status, "model": "gpt-4o-mini", "output": [],
               "usage": {"input_tokens": 3, "output_tokens": 1, "total_tokens": 4}})
    };
    let events = [
        (
            "response.created",
            json!({"type": "response.created", "sequence_number": 0, "response": response("in_progress")}),
        ),
        (
            "response.output_text.delta",
            json!({"type": "response.output_text.delta", "sequence_number": 1, "delta": "Hi"}),
        ),
        (
            "response.completed",
            json!({"type": "response.completed", "sequence_number": 2, "response": response("completed")}),
        ),
    ];
    let sse: String = events
        .iter()
        .map(|(name, data)| format!("event: {name}\ndata: {data}\n\n"))
        .collect();
    answer_both_ways(&server, "/v1/responses", sse, response("completed")).await;
    let base = format!("{}/v1", server.uri());
    (server, base)
}

#[test]
fn the_document_is_openapi_3_1_and_its_references_resolve() {
    let spec = spec();
    assert!(
        spec["openapi"].as_str().is_some_and(|v| v.starts_with("3.1.")),
        "{}",
        spec["openapi"]
    );
    fn walk(spec: &Value, value: &Value) {
        match value {
            Value::Object(map) => {
                resolve(spec, value);
                map.values().for_each(|v| walk(spec, v));
            }
            Value::Array(list) => list.iter().for_each(|v| walk(spec, v)),
            _ => {}
        }
    }
    walk(&spec, &spec);
    // Every error response is OpenAI's error shape.
    for (path, method, op, _) in operations(&spec) {
        for (status, response) in op["responses"].as_object().unwrap() {
            if status.starts_with('4') || status.starts_with('5') {
                let schema = &resolve(&spec, response)["content"]["application/json"]["schema"];
                assert_eq!(
                    schema["$ref"], "#/components/schemas/Error",
                    "{method} {path} {status}"
                );
            }
        }
    }
}

#[tokio::test]
async fn every_routed_path_and_method_is_documented() {
    let spec = spec();
    let documented: BTreeMap<String, Vec<String>> =
        operations(&spec)
            .into_iter()
            .fold(BTreeMap::new(), |mut map, (path, method, _, _)| {
                map.entry(path).or_default().push(method);
                map
            });
    let routed = openai_proxy_function::routes::paths();
    for path in &routed {
        assert!(
            documented.contains_key(*path),
            "routed but not documented: {path}"
        );
    }
    for path in documented.keys() {
        assert!(
            routed.contains(&path.as_str()),
            "documented but not routed: {path}"
        );
    }

    let h = harness("http://127.0.0.1:9/v1", Settings::default());
    for (path, methods) in &documented {
        let uri = path.replace('{', "probe-").replace('}', "");
        for method in METHODS {
            let reply = h
                .send(
                    Request::builder()
                        .method(method.to_ascii_uppercase().as_str())
                        .uri(&uri)
                        .body(Body::empty())
                        .unwrap(),
                )
                .await;
            // (A HEAD answer has no body to name the code.)
            let refused = reply.status == StatusCode::METHOD_NOT_ALLOWED
                && (method == "head" || reply.error()["code"] == "method_not_allowed");
            // HEAD is answered by the GET handler (HTTP semantics), documented with it.
            let documented_as = if method == "head" { "get" } else { method };
            assert_eq!(
                !refused,
                methods.iter().any(|m| m == documented_as),
                "{method} {uri}: answered {} but the document {} it",
                reply.status,
                if refused { "lists" } else { "does not list" },
            );
        }
    }
}

#[tokio::test]
async fn every_documented_operation_answers_its_examples_as_documented() {
    let spec = spec();
    let (_server, base) = upstream().await;
    let h = harness(&base, Settings::default());
    let mut statuses = BTreeMap::<String, Vec<u16>>::new();
    for (path, method, op, shared) in operations(&spec) {
        for case in cases(&spec, &path, &method, &op, &shared) {
            let reply = h.send(case.request()).await;
            assert_documented(&spec, &op, &case.describe(), &reply);
            statuses
                .entry(format!("{method} {path}"))
                .or_default()
                .push(reply.status.as_u16());
        }
    }
    // The examples reach both the answers and the documented errors.
    statuses.values_mut().for_each(|s| s.sort_unstable());
    assert_eq!(statuses["get /v1/models/{model}"], [200, 404]);
    assert_eq!(statuses["post /v1/chat/completions"], [200, 200, 400, 404]);
    assert_eq!(statuses["options /v1/chat/completions"], [200]);
}

#[tokio::test]
async fn documented_security_is_what_the_router_enforces() {
    let spec = spec();
    let schemes = spec["components"]["securitySchemes"].as_object().unwrap().clone();
    let (_server, base) = upstream().await;
    let h = harness(
        &base,
        Settings {
            auth_enabled: true,
            ..Settings::default()
        },
    );
    for (path, method, op, shared) in operations(&spec) {
        let security = op.get("security").unwrap_or(&spec["security"]);
        let requirements: Vec<&str> = security
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|r| r.as_object().unwrap().keys().map(String::as_str))
            .collect();
        let case = cases(&spec, &path, &method, &op, &shared).remove(0);
        let anonymous = h.send(case.request()).await;
        let what = format!("{} (authentication on)", case.describe());
        if requirements.is_empty() {
            assert_ne!(
                anonymous.status,
                StatusCode::UNAUTHORIZED,
                "{what} is documented as open"
            );
            assert_documented(&spec, &op, &what, &anonymous);
            continue;
        }
        assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED, "{what} without a key");
        assert_documented(&spec, &op, &what, &anonymous);
        for name in requirements {
            let scheme = &schemes[name];
            let (header, value) = match (scheme["type"].as_str(), scheme["scheme"].as_str()) {
                (Some("http"), Some("bearer")) => {
                    ("authorization".to_owned(), format!("Bearer {CLIENT_KEY}"))
                }
                (Some("apiKey"), _) if scheme["in"] == "header" => {
                    (scheme["name"].as_str().unwrap().to_owned(), CLIENT_KEY.to_owned())
                }
                _ => panic!("security scheme {name} is not exercised by this test"),
            };
            for (key, expect_ok) in [
                (value.clone(), true),
                (value.replace(CLIENT_KEY, "wrong-key"), false),
            ] {
                let mut request = case.request();
                request.headers_mut().insert(
                    axum::http::HeaderName::from_bytes(header.as_bytes()).unwrap(),
                    key.parse().unwrap(),
                );
                let reply = h.send(request).await;
                assert_eq!(
                    reply.status != StatusCode::UNAUTHORIZED,
                    expect_ok,
                    "{what} with scheme {name} ({header}), right key: {expect_ok}"
                );
                assert_documented(&spec, &op, &what, &reply);
            }
        }
    }
}

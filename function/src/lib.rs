//! The OpenAI-compatible proxy. One service serves both runtimes: lambda_http inside
//! AWS Lambda, and a plain HTTP server on localhost everywhere else.
//!
//! A request's path, top-down; each module uses only modules declared after it here
//! (`tests/layering.rs` holds the code to that): `runtime` serves the `service` (in
//! Lambda stream mode through `stream_runtime`, the Runtime API loop; locally through
//! `server`) → `service` (request id, log line and CORS; body limit and client keys) →
//! `routes` (the routing table, and the model list) → `forward` (the OpenAI endpoints:
//! `endpoint` checks the request, `relay` streams the answer, `rewrite` puts the
//! client's model id back, `relayed` passes OpenAI's errors and headers on) → `auth`
//! (who the client is, which models it may use) → `app` (process state, with the `cors`
//! policy) → `bedrock` (Amazon Bedrock, the second provider: Converse and
//! InvokeModel, with a breaker of its own) → `spend` (the limits of client keys: reserve before forwarding, settle
//! after, in the usage table) → `upstream` (OpenAI, with retries and the `breaker`) →
//! `config`, `observe`, `error`, `body` (the response body), `worker` (which of the
//! local server's threads serves the request), `env` (every environment variable the
//! proxy reads, read once).

pub mod runtime;

pub mod stream_runtime;

pub mod server;

pub mod service;

pub mod routes;

pub mod forward;

pub mod endpoint;

pub mod relay;

pub mod relayed;

pub mod rewrite;

pub mod auth;

pub mod app;

pub mod cors;

pub mod bedrock;

pub mod spend;

pub mod upstream;

pub mod breaker;

pub mod config;

pub mod observe;

pub mod error;

pub mod body;

pub mod worker;

pub mod env;

pub use service::Proxy;

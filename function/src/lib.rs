//! The OpenAI-compatible proxy. One router serves both runtimes: lambda_http inside
//! AWS Lambda, and a plain HTTP server on localhost everywhere else.

pub mod app;
pub mod auth;
pub mod breaker;
pub mod config;
pub mod endpoint;
pub mod error;
pub mod forward;
pub mod middleware;
pub mod observe;
pub mod relay;
pub mod relayed;
pub mod rewrite;
pub mod routes;
pub mod runtime;
pub mod upstream;

pub use routes::router;

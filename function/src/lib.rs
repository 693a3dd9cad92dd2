//! The OpenAI-compatible proxy. One router serves both runtimes: lambda_http inside
//! AWS Lambda, and a plain HTTP server on localhost everywhere else.

pub mod error;
pub mod routes;
pub mod runtime;

pub use routes::router;

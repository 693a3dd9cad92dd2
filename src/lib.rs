//! The CI-native deployer of the OpenAI-compatible Lambda proxy. Configured only by
//! environment variables; see [`config::VARIABLES`].

pub mod config;
pub mod artifact;
pub mod ui;

//! The CI-native deployer of the OpenAI-compatible Lambda proxy. Configured only by
//! environment variables; see [`config::VARIABLES`].

pub mod api;
pub mod artifact;
pub mod aws;
pub mod bucket;
pub mod code;
pub mod config;
pub mod endpoint;
pub mod params;
pub mod prereq;
pub mod publish;
pub mod report;
pub mod run;
pub mod secret;
pub mod stack;
pub mod template;
pub mod ui;

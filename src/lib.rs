//! The CI-native deployer of the OpenAI-compatible Lambda proxy. Configured only by
//! environment variables (or the action's inputs); see [`config::VARIABLES`].
//!
//! Where things live: [`commands`] (one file per command, each a sequence of phases),
//! [`config`] (variables and settings, parsed once), [`error`] (the one error type,
//! with its fix), [`prereq`] (checks before anything is created), [`artifact`],
//! [`template`] (reading, and preparing it for a deploy), [`s3`], [`secret`],
//! [`cfn`] (stack, change sets, classification, events, waits), [`lambda_code`],
//! [`endpoint`] (the endpoint tests), [`report`] (the report and where it goes).

pub mod artifact;
pub mod aws;
pub mod cancel;
pub mod cfn;
pub mod client_keys;
pub mod commands;
pub mod config;
pub mod endpoint;
pub mod error;
pub mod lambda_code;
pub mod model_mappings;
pub mod params;
pub mod prereq;
pub mod report;
pub mod runner;
pub mod runner_paths;
pub mod s3;
pub mod secret;
pub mod template;
pub mod ui;

/// What the unit tests share.
#[cfg(test)]
pub(crate) mod test_support {
    /// Asserts that `text` contains each of `needles`, showing the text when one is missing.
    #[track_caller]
    pub fn contains_all(text: &str, needles: &[&str]) {
        for needle in needles {
            assert!(text.contains(needle), "expected {needle:?} in:\n{text}");
        }
    }
}

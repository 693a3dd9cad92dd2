//! After the stack settles, the function must run the artifact just uploaded. If its
//! code was changed out of band (console edits, another pipeline), CloudFormation sees
//! no difference and leaves it: this puts the right code back.

use aws_sdk_lambda::operation::get_function_configuration::GetFunctionConfigurationOutput;
use aws_sdk_lambda::types::LastUpdateStatus;
use backon::{ExponentialBuilder, Retryable};
use tokio::time::Instant;

use crate::artifact::Artifact;
use crate::aws::Aws;
use crate::cfn::Poll;
use crate::error::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verified {
    Matches,
    /// The code differed and was updated.
    Updated,
}

pub async fn verify(
    aws: &Aws,
    function: &str,
    artifact: &Artifact,
    bucket: &str,
    key: &str,
    poll: Poll,
    timeout: std::time::Duration,
) -> Result<Verified> {
    let deadline = Instant::now() + timeout;
    let current = code_sha256(aws, function).await?;
    if current == artifact.code_sha256 {
        return Ok(Verified::Matches);
    }
    // Another update (a concurrent deploy, or the stack's own) holds the function:
    // ResourceConflictException until it finishes, so back off and try again.
    let update = || async {
        aws.lambda
            .update_function_code()
            .function_name(function)
            .s3_bucket(bucket)
            .s3_key(key)
            .send()
            .await
    };
    update
        .retry(
            ExponentialBuilder::default()
                .with_min_delay(poll.first)
                .with_max_delay(poll.max)
                .with_max_times(8)
                .with_jitter(),
        )
        .when(|e| {
            e.as_service_error()
                .is_some_and(|s| s.is_resource_conflict_exception())
        })
        .await
        .map_err(|e| Error::aws(format_args!("update the code of function {function}"), &e))?;
    wait_updated(aws, function, poll, deadline).await?;
    let now = code_sha256(aws, function).await?;
    if now != artifact.code_sha256 {
        return Err(Error::new(
            format!(
                "function {function} still runs other code after the update (CodeSha256 {now}, expected {})",
                artifact.code_sha256
            ),
            "another deploy may be running: run this one again when it has finished",
        ));
    }
    Ok(Verified::Updated)
}

async fn code_sha256(aws: &Aws, function: &str) -> Result<String> {
    let config = configuration(aws, function).await?;
    Ok(config.code_sha256().unwrap_or_default().to_owned())
}

async fn configuration(aws: &Aws, function: &str) -> Result<GetFunctionConfigurationOutput> {
    aws.lambda
        .get_function_configuration()
        .function_name(function)
        .send()
        .await
        .map_err(|e| Error::aws(format_args!("read function {function}"), &e))
}

async fn wait_updated(aws: &Aws, function: &str, poll: Poll, deadline: Instant) -> Result<()> {
    let mut interval = poll.first;
    loop {
        let config = configuration(aws, function).await?;
        match config.last_update_status() {
            Some(LastUpdateStatus::Successful) | None => return Ok(()),
            Some(LastUpdateStatus::Failed) => {
                return Err(Error::new(
                    format!(
                        "the code update of function {function} failed: {}",
                        config.last_update_status_reason().unwrap_or("no reason given")
                    ),
                    "fix what Lambda reports (often the artifact) and deploy again",
                ));
            }
            Some(_) => {}
        }
        if Instant::now() + interval > deadline {
            return Err(Error::new(
                format!(
                    "gave up waiting for the code update of function {function}: it is still in progress"
                ),
                "raise WAIT_TIMEOUT",
            ));
        }
        tokio::time::sleep(interval).await;
        interval = poll.next(interval);
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_lambda::Client;
    use aws_sdk_lambda::operation::get_function_configuration::GetFunctionConfigurationOutput;
    use aws_sdk_lambda::operation::update_function_code::{
        UpdateFunctionCodeError, UpdateFunctionCodeOutput,
    };
    use aws_sdk_lambda::types::error::ResourceConflictException;
    use aws_smithy_mocks::{Rule, mock};

    use std::time::Duration;

    use super::*;
    use crate::aws::mocked::aws;
    use crate::config::Architecture;

    fn artifact() -> Artifact {
        Artifact {
            zip: vec![1, 2, 3],
            architecture: Architecture::Arm64,
            sha256_hex: "ab".into(),
            code_sha256: "NEW=".into(),
        }
    }

    fn config(sha: &str, status: LastUpdateStatus) -> GetFunctionConfigurationOutput {
        GetFunctionConfigurationOutput::builder()
            .code_sha256(sha)
            .last_update_status(status)
            .build()
    }

    /// Verifies function "f" against [`artifact`], uploaded as s3://b/k, with Lambda
    /// answering from `configs` and `updates`.
    async fn verify_mocked(configs: &Rule, updates: &Rule) -> Result<Verified> {
        verify(
            &aws(&[], &[configs, updates]),
            "f",
            &artifact(),
            "b",
            "k",
            Poll::fast(),
            Duration::from_secs(30),
        )
        .await
    }

    #[tokio::test]
    async fn code_changed_out_of_band_is_updated_riding_out_conflicts_until_successful() {
        let configs = mock!(Client::get_function_configuration)
            .sequence()
            .output(|| config("OLD=", LastUpdateStatus::Successful))
            .output(|| config("NEW=", LastUpdateStatus::InProgress))
            .output(|| config("NEW=", LastUpdateStatus::Successful))
            .repeatedly()
            .build();
        let conflict = || {
            UpdateFunctionCodeError::ResourceConflictException(
                ResourceConflictException::builder()
                    .message("An update is in progress")
                    .build(),
            )
        };
        let updates = mock!(Client::update_function_code)
            .sequence()
            .error(conflict)
            .times(2)
            .output(|| UpdateFunctionCodeOutput::builder().build())
            .build();
        let verified = verify_mocked(&configs, &updates).await;
        assert_eq!(verified.unwrap(), Verified::Updated);
        assert_eq!(updates.num_calls(), 3);
    }

    #[tokio::test]
    async fn matching_code_is_left_alone() {
        let configs = mock!(Client::get_function_configuration)
            .then_output(|| config("NEW=", LastUpdateStatus::Successful));
        let updates =
            mock!(Client::update_function_code).then_output(|| UpdateFunctionCodeOutput::builder().build());
        assert_eq!(
            verify_mocked(&configs, &updates).await.unwrap(),
            Verified::Matches
        );
        assert_eq!(updates.num_calls(), 0);
    }

    #[tokio::test]
    async fn a_failed_code_update_reports_lambdas_reason() {
        let configs = mock!(Client::get_function_configuration)
            .sequence()
            .output(|| config("OLD=", LastUpdateStatus::Successful))
            .output(|| {
                GetFunctionConfigurationOutput::builder()
                    .last_update_status(LastUpdateStatus::Failed)
                    .last_update_status_reason("Unzipped size must be smaller than 262144000 bytes")
                    .build()
            })
            .build();
        let updates =
            mock!(Client::update_function_code).then_output(|| UpdateFunctionCodeOutput::builder().build());
        let err = verify_mocked(&configs, &updates).await.unwrap_err();
        assert!(
            err.cause.contains("failed: Unzipped size must be smaller"),
            "{err}"
        );
    }
}

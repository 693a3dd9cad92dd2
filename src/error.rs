//! The deployer's one error type: what happened, and what the user should do about it.
//!
//! Every failure a user can cause or meet carries its fix, chosen for its cause: an AWS
//! error's fix follows the error's code (a missing permission, expired credentials,
//! throttling, a network problem), never a blanket "check the permissions".

use std::fmt;

use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use crate::aws;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    /// What happened, with AWS's own words in parentheses when AWS answered.
    pub cause: String,
    /// What to do about it.
    pub fix: String,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(cause: impl Into<String>, fix: impl Into<String>) -> Self {
        Self {
            cause: cause.into(),
            fix: fix.into(),
        }
    }

    /// An AWS call that failed: `doing` says what the deployer was doing ("describe stack
    /// s"), the fix follows the kind of error.
    pub fn aws<E>(doing: impl fmt::Display, err: &SdkError<E, HttpResponse>) -> Self
    where
        E: std::error::Error + ProvideErrorMetadata + 'static,
    {
        Self::new(
            format!("could not {doing} ({})", aws::describe(err)),
            fix_for(err),
        )
    }

    /// The same cause with another fix (the caller knows better than the error's code).
    pub fn with_fix(mut self, fix: impl Into<String>) -> Self {
        self.fix = fix.into();
        self
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.fix.is_empty() {
            f.write_str(&self.cause)
        } else {
            write!(f, "{}: {}", self.cause, self.fix)
        }
    }
}

impl std::error::Error for Error {}

/// The fix an AWS error calls for, from its code or, when AWS never answered, its kind.
pub fn fix_for<E>(err: &SdkError<E, HttpResponse>) -> String
where
    E: std::error::Error + ProvideErrorMetadata + 'static,
{
    let code = aws::error_code(err).unwrap_or_default();
    let message = aws::error_message(err).unwrap_or_default();
    match Kind::of(code, message, err.as_service_error().is_some()) {
        Kind::Denied => "the deploying role lacks this permission: compare it with docs/iam-policy.json (docs/iam-plan-policy.json for validate), whose resource names follow your stack, function, API and secret names".into(),
        Kind::Expired => "the credentials expired during the run: give the role session at least WAIT_TIMEOUT plus a few minutes (role-duration-seconds of aws-actions/configure-aws-credentials)".into(),
        Kind::Transient => "AWS was busy or failed for a moment and the SDK's five attempts did not get through: run again, and avoid parallel deploys in one account".into(),
        Kind::Unreachable => "AWS could not be reached: check AWS_REGION, the runner's network or proxy, and AWS_ENDPOINT_URL when you set one".into(),
        Kind::Other => "AWS refused the request for the reason in parentheses: fix what it names, then run again".into(),
    }
}

/// What kind of AWS error this is, as far as the user's fix goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Denied,
    Expired,
    /// Throttling, a 5xx or a timeout: trying again later helps.
    Transient,
    /// No answer at all (DNS, connection refused, a timeout before any answer).
    Unreachable,
    Other,
}

impl Kind {
    pub fn of(code: &str, message: &str, answered: bool) -> Self {
        match code {
            "AccessDenied" | "AccessDeniedException" | "UnauthorizedOperation" | "AuthorizationError" => {
                Self::Denied
            }
            _ if message.contains("is not authorized to perform") => Self::Denied,
            "ExpiredToken" | "ExpiredTokenException" | "RequestExpired" => Self::Expired,
            "Throttling"
            | "ThrottlingException"
            | "TooManyRequestsException"
            | "SlowDown"
            | "RequestLimitExceeded"
            | "ServiceUnavailable"
            | "InternalFailure"
            | "InternalError"
            | "RequestTimeout"
            | "RequestTimeoutException" => Self::Transient,
            _ if !answered => Self::Unreachable,
            _ => Self::Other,
        }
    }

    /// Whether a poll that failed this way should simply be tried again.
    pub fn of_sdk<E>(err: &SdkError<E, HttpResponse>) -> Self
    where
        E: ProvideErrorMetadata,
    {
        if let Some(status) = err.raw_response().map(|r| r.status().as_u16())
            && status >= 500
        {
            return Self::Transient;
        }
        match err {
            SdkError::TimeoutError(_) => Self::Transient,
            SdkError::DispatchFailure(d) if d.is_io() || d.is_timeout() => Self::Transient,
            _ => Self::of(
                aws::error_code(err).unwrap_or_default(),
                aws::error_message(err).unwrap_or_default(),
                err.as_service_error().is_some(),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fix_follows_the_kind_of_aws_error() {
        assert_eq!(Kind::of("AccessDenied", "", true), Kind::Denied);
        assert_eq!(
            Kind::of(
                "ValidationError",
                "User: x is not authorized to perform: cloudformation:CreateChangeSet",
                true
            ),
            Kind::Denied
        );
        assert_eq!(Kind::of("ExpiredToken", "", true), Kind::Expired);
        assert_eq!(Kind::of("Throttling", "Rate exceeded", true), Kind::Transient);
        assert_eq!(Kind::of("", "", false), Kind::Unreachable);
        assert_eq!(
            Kind::of("ValidationError", "Template format error", true),
            Kind::Other
        );
    }

    #[test]
    fn an_error_prints_its_cause_then_its_fix() {
        let e = Error::new("stack s is in DELETE_FAILED", "delete it by hand");
        assert_eq!(e.to_string(), "stack s is in DELETE_FAILED: delete it by hand");
    }
}

//! Prerequisites, checked before anything is created or uploaded: a region, working
//! credentials, a valid template whose parameters match ours, a function artifact for
//! the right architecture, and (deploy, authentication on) a client key. Every problem
//! is gathered and reported together.

use std::path::{Path, PathBuf};

use crate::artifact::{self, Artifact};
use crate::aws::{self, Aws};
use crate::cfn::stack::{self, StackInfo};
use crate::config::Config;
use crate::error::{Error, Kind, Result};
use crate::model_mappings::{self, BEDROCK_PARAMETER};
use crate::params;
use crate::template::{self, Template};

/// What a command needs beyond credentials.
#[derive(Debug, Clone, Copy)]
pub struct Needs {
    pub template: bool,
    pub artifact: bool,
}

impl Needs {
    /// destroy, setup-secrets, test: a region and working credentials.
    pub const CREDENTIALS: Self = Self {
        template: false,
        artifact: false,
    };
    /// deploy and validate: also the template and the function artifact.
    pub const STACK_CHANGE: Self = Self {
        template: true,
        artifact: true,
    };
}

pub struct Ready {
    pub aws: Aws,
    pub account: String,
    pub caller_arn: String,
    pub template: Option<Template>,
    pub artifact: Option<Artifact>,
    /// Whether the stack should set API Gateway's account-wide logging role: when the
    /// template asks, and the account has none (or this stack set it before).
    pub manage_api_gateway_account: Option<bool>,
    /// The Bedrock resources the function may invoke (`BedrockModelArns`), when the
    /// template asks: from MODEL_MAPPINGS, else what the stack has (the secret keeps its
    /// mappings then, so the grants stay as they were).
    pub bedrock_model_arns: Option<String>,
    /// What came from the action's image because the run named no file of its own
    /// ("function", "template").
    pub bundled: Vec<&'static str>,
}

#[derive(Debug, thiserror::Error)]
#[error("prerequisites are not met:\n  - {}", .problems.join("\n  - "))]
pub struct Unmet {
    pub problems: Vec<String>,
    /// The account, when credentials worked (for the report).
    pub account: Option<String>,
}

pub async fn check(config: &Config, needs: Needs) -> Result<Ready, Unmet> {
    let mut problems = Vec::new();
    let unmet = |problems: Vec<String>, account| Unmet { problems, account };

    let mut used_bundled = Vec::new();
    // Local checks first: they need no AWS and are the most common mistakes.
    let artifact = needs.artifact.then(|| {
        let file = LocalFile {
            configured: &config.function_artifact,
            bundled: config.surroundings.bundled_artifact.as_deref(),
            var: "FUNCTION_ARTIFACT",
            what: "function",
        };
        load_local(config, &file, &mut used_bundled, &mut problems, |path| {
            artifact::load(path, config.architecture)
        })
    });
    let loaded = needs.template.then(|| {
        let file = LocalFile {
            configured: &config.template_file,
            bundled: config.surroundings.bundled_template.as_deref(),
            var: "TEMPLATE_FILE",
            what: "template",
        };
        load_local(config, &file, &mut used_bundled, &mut problems, template::load)
    });
    let (artifact, loaded) = (artifact.flatten(), loaded.flatten());
    // The AWS SDK cannot take an empty endpoint (it stops the process): say so instead.
    if config.surroundings.aws_endpoint_url_empty {
        problems.push(
            "AWS_ENDPOINT_URL is set but empty: unset it to reach AWS itself, or set it to the endpoint to use (e.g. a local emulator's http://127.0.0.1:5055)".into(),
        );
        return Err(unmet(problems, None));
    }
    if let Some(region) = &config.aws_region
        && !looks_like_region(region)
    {
        problems.push(format!(
            "AWS_REGION={region} is not an AWS region name: use one like us-east-1 or eu-west-2"
        ));
        return Err(unmet(problems, None));
    }
    let Some(aws) = Aws::load(config.aws_region.as_deref()).await else {
        problems.push("no AWS region is set: set AWS_REGION (e.g. AWS_REGION=us-east-1) or the action's `aws-region` input".into());
        return Err(unmet(problems, None));
    };

    let (account, caller_arn) = match aws.sts.get_caller_identity().send().await {
        Ok(id) => (
            id.account().unwrap_or_default().to_owned(),
            id.arn().unwrap_or_default().to_owned(),
        ),
        Err(e) => {
            problems.push(credentials_problem(&e, &aws.region));
            return Err(unmet(problems, None));
        }
    };

    // Before anything is created: a deploy with authentication on must leave the proxy
    // a client key to accept (validate never reads the secret: the plan role cannot).
    if config.deployer_command == crate::config::Command::Deploy {
        problems.extend(crate::secret::auth_problem(&aws, config).await);
    } else if let Some(raw) = &config.client_api_keys {
        problems.extend(crate::client_keys::digests(raw.expose()).err());
    }

    let template = match loaded {
        Some(template) => match template::validate(&aws, &template).await {
            Ok(()) => Some(template),
            Err(e) => {
                problems.push(e.to_string());
                None
            }
        },
        None => None,
    };
    let mut manage_api_gateway_account = None;
    let mut bedrock_model_arns = None;
    if let Some(template) = &template {
        let existing = match stack::describe(&aws, &config.stack_name).await {
            Ok(found) => found,
            Err(e) => {
                problems.push(e.to_string());
                None
            }
        };
        // The user's word (PARAMETER_OVERRIDES) wins, and then the account is not read.
        if template.parameters.contains_key(MANAGE_ACCOUNT)
            && !config.parameter_overrides.contains_key(MANAGE_ACCOUNT)
        {
            match account_logging(&aws, existing.as_ref()).await {
                Ok(manage) => manage_api_gateway_account = Some(manage),
                Err(e) => problems.push(e.to_string()),
            }
        }
        bedrock_model_arns = (template.parameters.contains_key(BEDROCK_PARAMETER)
            && !config.parameter_overrides.contains_key(BEDROCK_PARAMETER))
        .then(|| bedrock_grant(config, existing.as_ref(), &aws.region, &account))
        .flatten();
        // Values do not matter here, only which parameters are passed.
        let placeholder = params::Inputs {
            secret_arn: "",
            bucket: "",
            key: "",
            architecture: artifact
                .as_ref()
                .map_or(crate::config::Architecture::Arm64, |a| a.architecture),
            manage_api_gateway_account,
            bedrock_model_arns: bedrock_model_arns.as_deref(),
        };
        let passed = params::build(config, &placeholder);
        problems.extend(template.check_parameters(&passed));
        let function = passed
            .get("LambdaFunctionName")
            .cloned()
            .unwrap_or_else(|| config.lambda_function_name.clone());
        if let Some(problem) =
            leftover_log_group(&aws, &config.stack_name, &function, existing.as_ref()).await
        {
            problems.push(problem);
        }
    }
    if problems.is_empty() {
        Ok(Ready {
            aws,
            account,
            caller_arn,
            template,
            artifact,
            manage_api_gateway_account,
            bedrock_model_arns,
            bundled: used_bundled,
        })
    } else {
        Err(unmet(problems, Some(account)))
    }
}

const MANAGE_ACCOUNT: &str = "ManageApiGatewayAccount";

/// `BedrockModelArns` for this deploy: the resources MODEL_MAPPINGS names; without
/// MODEL_MAPPINGS the secret's mappings stay as they are, and so does the stack's value.
/// None when there is nothing to grant: the parameter is left out and takes its default
/// (empty, no Bedrock), so a stack without Bedrock is never submitted a change.
fn bedrock_grant(
    config: &Config,
    existing: Option<&StackInfo>,
    region: &str,
    account: &str,
) -> Option<String> {
    let arns = match &config.model_mappings {
        Some(mappings) => {
            let models = model_mappings::bedrock_models(mappings);
            model_mappings::bedrock_arns(&models, model_mappings::partition(region), region, account)
                .join(",")
        }
        None => existing
            .and_then(|s| s.parameters.get(BEDROCK_PARAMETER))
            .cloned()?,
    };
    (!arns.is_empty()).then_some(arns)
}

/// API Gateway logs through one CloudWatch role per account and region. An account that
/// has one keeps it (another stack or person set it); a fresh account gets one from this
/// stack; a stack that set it before keeps managing it.
async fn account_logging(aws: &Aws, existing: Option<&StackInfo>) -> Result<bool> {
    if existing
        .and_then(|s| s.parameters.get(MANAGE_ACCOUNT))
        .is_some_and(|v| v == "true")
    {
        return Ok(true);
    }
    match aws.apigateway.get_account().send().await {
        Ok(account) => Ok(account.cloudwatch_role_arn().is_none_or(str::is_empty)),
        Err(e) => {
            let error = Error::aws("read API Gateway's account settings", &e);
            Err(if Kind::of_sdk(&e) == Kind::Denied {
                error.with_fix(format!(
                    "the deploying role needs apigateway:GET on arn:aws:apigateway:<region>::/account (docs/iam-policy.json), or set {MANAGE_ACCOUNT} in PARAMETER_OVERRIDES yourself"
                ))
            } else {
                error
            })
        }
    }
}

/// The function's log group, when it exists but is not the stack's: the stack creates
/// it (to give it a retention), so CloudFormation would fail half-way with "already
/// exists". Typically left by a deleted stack's function that logged once more.
async fn leftover_log_group(
    aws: &Aws,
    stack: &str,
    function: &str,
    existing: Option<&StackInfo>,
) -> Option<String> {
    let name = format!("/aws/lambda/{function}");
    if existing.and_then(|s| s.outputs.get("LogGroupName")) == Some(&name) {
        return None;
    }
    let found = aws
        .logs
        .describe_log_groups()
        .log_group_name_prefix(&name)
        .send()
        .await;
    match found {
        Ok(out)
            if out
                .log_groups()
                .iter()
                .any(|g| g.log_group_name() == Some(name.as_str())) =>
        {
            Some(format!(
                "log group {name} already exists outside stack {stack}, and the stack creates it: delete it (`aws logs delete-log-group --log-group-name {name}`) if its logs can go, import it into the stack (CloudFormation resource import), or set LAMBDA_FUNCTION_NAME to another name"
            ))
        }
        Ok(_) => None,
        Err(e) => Some(Error::aws(format_args!("look for a leftover log group {name}"), &e).to_string()),
    }
}

/// A file a command reads from the workspace, or from the action's image.
struct LocalFile<'a> {
    configured: &'a str,
    bundled: Option<&'a str>,
    /// The variable that names it.
    var: &'static str,
    /// What it is, for the report's note on bundled files.
    what: &'static str,
}

/// Loads `file` from where [`fallback`] says; a problem goes into `problems`.
fn load_local<T, E: ToString>(
    config: &Config,
    file: &LocalFile<'_>,
    used_bundled: &mut Vec<&'static str>,
    problems: &mut Vec<String>,
    load: impl FnOnce(&Path) -> Result<T, E>,
) -> Option<T> {
    let (path, bundled) = fallback(config, file.configured, file.bundled, file.var);
    if bundled {
        used_bundled.push(file.what);
    }
    load(&path).map_err(|e| problems.push(e.to_string())).ok()
}

/// The configured path, or the action image's bundled file when the run did not name
/// one. Whether the workspace holds a file at the default path does not matter: a
/// consumer repository's own `template.yaml` (a SAM app at its root, say) is not ours to
/// deploy unless `template-file` says so.
fn fallback(config: &Config, configured: &str, bundled: Option<&str>, var: &str) -> (PathBuf, bool) {
    let path = PathBuf::from(configured);
    if !config.given.contains(var)
        && let Some(bundled) = bundled
        && Path::new(bundled).exists()
    {
        return (PathBuf::from(bundled), true);
    }
    (path, false)
}

fn looks_like_region(region: &str) -> bool {
    // e.g. us-east-1, ap-southeast-3, us-gov-west-1, eu-central-2
    let parts: Vec<&str> = region.split('-').collect();
    parts.len() >= 3
        && parts[0].len() == 2
        && parts[..parts.len() - 1]
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_lowercase()))
        && parts[parts.len() - 1].chars().all(|c| c.is_ascii_digit())
        && !parts[parts.len() - 1].is_empty()
}

fn credentials_problem<E>(
    err: &aws_smithy_runtime_api::client::result::SdkError<
        E,
        aws_smithy_runtime_api::client::orchestrator::HttpResponse,
    >,
    region: &str,
) -> String
where
    E: std::error::Error + aws_smithy_types::error::metadata::ProvideErrorMetadata + 'static,
{
    use aws_smithy_runtime_api::client::result::SdkError;
    let cause = aws::describe(err);
    match err {
        SdkError::ServiceError(_) => format!(
            "AWS refused the credentials ({}): check that they are current and belong to the intended account; in GitHub Actions, check the role ARN and trust policy of aws-actions/configure-aws-credentials",
            aws::error_code(err).unwrap_or("error")
        ),
        // A connector error that is neither I/O nor a timeout is the credential chain
        // finding nothing.
        SdkError::DispatchFailure(d) if d.is_io() || d.is_timeout() => format!(
            "AWS STS in region {region} could not be reached ({cause}): check AWS_REGION and the network (and AWS_ENDPOINT_URL if you set it)"
        ),
        SdkError::TimeoutError(_) => format!(
            "AWS STS in region {region} could not be reached ({cause}): check AWS_REGION and the network (and AWS_ENDPOINT_URL if you set it)"
        ),
        _ => format!(
            "no AWS credentials were found ({cause}): in GitHub Actions use aws-actions/configure-aws-credentials (OIDC); locally set AWS_PROFILE or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
        ),
    }
}

/// An account's AWS and nothing loaded, for tests of what commands do with it.
#[cfg(test)]
impl Ready {
    pub fn of(aws: Aws, account: &str) -> Self {
        Self {
            aws,
            account: account.to_owned(),
            caller_arn: String::new(),
            template: None,
            artifact: None,
            manage_api_gateway_account: None,
            bedrock_model_arns: None,
            bundled: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn region_names_are_recognised_and_typos_are_not() {
        for ok in ["us-east-1", "ap-southeast-3", "us-gov-west-1", "eu-central-2"] {
            assert!(looks_like_region(ok), "{ok}");
        }
        for bad in ["us-east", "US-EAST-1", "useast1", "eu_west_1", "us-east-1a", ""] {
            assert!(!looks_like_region(bad), "{bad}");
        }
    }
}

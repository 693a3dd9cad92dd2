//! usage: what each client key used this month and today, against its limits, read from
//! the stack's usage table (the `UsageTableName` output) for the clients the stack's
//! secret lists. Runs with the deploy role: the limits are in the secret, which the plan
//! role may not read (docs/iam-policy.json allows `dynamodb:GetItem` on the table, and
//! nothing else of its items).

use aws_sdk_dynamodb::operation::get_item::GetItemError;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::date_time::Format;

use super::Context;
use crate::aws::Aws;
use crate::cfn::stack;
use crate::client_keys;
use crate::error::{Error, Kind, Result};
use crate::prereq::Needs;
use crate::report::usage::{Row, Usage, Used};
use crate::report::{Outcome, Status};
use crate::secret;

pub(super) async fn run(ctx: &mut Context) -> Result<()> {
    let ready = ctx.prerequisites(Needs::CREDENTIALS).await?;
    let started = ctx.begin("Usage");
    let read = read(ctx, &ready.aws).await;
    let usage = ctx.end("usage", started, read)?;
    ctx.ui
        .step(&format!("{} client(s) in {}", usage.rows.len(), usage.month));
    ctx.report.usage = Some(usage);
    ctx.report.status = Some(Status::Succeeded);
    ctx.report.outcome = Some(Outcome::UsageRead);
    Ok(())
}

async fn read(ctx: &mut Context, aws: &Aws) -> Result<Usage> {
    let name = ctx.config.stack_name.clone();
    let Some(info) = stack::describe(aws, &name).await? else {
        return Err(Error::new(
            format!(
                "there is no stack {name} in {}, so there is no usage to read",
                aws.region
            ),
            "deploy it first (DEPLOYER_COMMAND=deploy), or set STACK_NAME (and AWS_REGION) to the stack that serves the proxy",
        ));
    };
    ctx.report.stack_status = Some(info.status.as_str().to_owned());
    ctx.report.stack_id = Some(info.id.clone());
    let Some(table) = info.outputs.get("UsageTableName").cloned() else {
        return Err(Error::new(
            format!(
                "stack {name} has no usage table (no UsageTableName output): it was deployed by a version without client limits"
            ),
            "deploy this version (DEPLOYER_COMMAND=deploy), which adds the table, then run usage again",
        ));
    };
    // The secret the function reads: the stack's parameter, else the configured one.
    let secret_id = info
        .parameters
        .get("OpenAIApiKeySecretArn")
        .filter(|arn| !arn.is_empty())
        .cloned()
        .unwrap_or_else(|| secret::id(&ctx.config));
    let clients = client_keys::listed(&secret::read(aws, &secret_id).await?);
    // Today in UTC, as the function names its windows (`YYYY-MM`, `YYYY-MM-DD`).
    let now = aws_smithy_types::DateTime::from(std::time::SystemTime::now())
        .fmt(Format::DateTime)
        .unwrap_or_default();
    let (month, day) = (now[..7].to_owned(), now[..10].to_owned());
    let missing = missing_table_fix(&name);
    let mut rows = Vec::with_capacity(clients.len());
    for client in clients {
        let used = match &client.name {
            Some(name) => item(aws, &table, name, &month, &day, &missing)
                .await?
                .or((!client.limits.is_empty()).then(Used::default)),
            None => None,
        };
        rows.push(Row {
            label: client.label,
            limits: client.limits,
            used,
        });
    }
    Ok(Usage {
        month,
        day,
        table,
        rows,
    })
}

/// What to do when the table the stack names is gone.
fn missing_table_fix(stack: &str) -> String {
    format!(
        "the stack {stack} names a usage table that does not exist (deleted by hand?): deploy again (DEPLOYER_COMMAND=deploy) so CloudFormation puts it back; the counts start again"
    )
}

/// A failed read, with the fix its cause calls for: a missing table is deployed again,
/// a denied read names the statement the role lacks.
fn failure(e: &SdkError<GetItemError, HttpResponse>, client: &str, table: &str, missing_fix: &str) -> Error {
    let error = Error::aws(
        format_args!("read usage of client {client} from table {table}"),
        e,
    );
    if matches!(
        e.as_service_error(),
        Some(GetItemError::ResourceNotFoundException(_))
    ) {
        error.with_fix(missing_fix)
    } else if Kind::of_sdk(e) == Kind::Denied {
        error.with_fix(format!(
            "usage runs with the deploy role, which needs dynamodb:GetItem on the table {table} (docs/iam-policy.json, statement UsageReadsTheUsageTable; the table is named <LambdaFunctionName>-usage)"
        ))
    } else {
        error
    }
}

/// `client`'s item for `month`, as far as it counts the current windows; `None` when the
/// client has none this month.
async fn item(
    aws: &Aws,
    table: &str,
    client: &str,
    month: &str,
    day: &str,
    missing_fix: &str,
) -> Result<Option<Used>> {
    let out = aws
        .dynamodb
        .get_item()
        .table_name(table)
        .key("pk", AttributeValue::S(format!("{client}#{month}")))
        .consistent_read(true)
        .send()
        .await
        .map_err(|e| failure(&e, client, table, missing_fix))?;
    let Some(item) = out.item() else {
        return Ok(None);
    };
    let n = |name: &str| {
        item.get(name)
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse::<i64>().ok())
            .map_or(0, |n| u64::try_from(n).unwrap_or(0))
    };
    let today = item.get("day").and_then(|v| v.as_s().ok()).map(String::as_str) == Some(day);
    Ok(Some(Used {
        month_requests: n("month_requests"),
        month_tokens: n("month_tokens"),
        // The item's day counter is another day's when no request came today.
        day_usd: if today { n("day_usd") } else { 0 },
        month_usd: n("month_usd"),
    }))
}

#[cfg(test)]
mod tests {
    use aws_sdk_dynamodb::types::error::ResourceNotFoundException;
    use aws_smithy_types::body::SdkBody;
    use aws_smithy_types::error::ErrorMetadata;

    use super::*;

    fn answered(status: u16, error: GetItemError) -> SdkError<GetItemError, HttpResponse> {
        let response = HttpResponse::new(status.try_into().unwrap(), SdkBody::empty());
        SdkError::service_error(error, response)
    }

    /// What the local emulator cannot produce (it enforces no IAM), as DynamoDB answers it.
    #[test]
    fn a_denied_read_names_the_statement_and_a_missing_table_says_deploy_again() {
        let denied = answered(
            400,
            GetItemError::generic(
                ErrorMetadata::builder()
                    .code("AccessDeniedException")
                    .message("User: arn:aws:sts::123456789012:assumed-role/deploy/1 is not authorized to perform: dynamodb:GetItem")
                    .build(),
            ),
        );
        let err = failure(&denied, "web-app", "proxy-usage", "unused");
        assert!(
            err.cause.starts_with(
                "could not read usage of client web-app from table proxy-usage (AccessDeniedException: User:"
            ),
            "{err}"
        );
        assert!(err.fix.contains("statement UsageReadsTheUsageTable"), "{err}");
        let missing = answered(
            400,
            GetItemError::ResourceNotFoundException(
                ResourceNotFoundException::builder()
                    .message("Requested resource not found")
                    .build(),
            ),
        );
        let err = failure(&missing, "web-app", "proxy-usage", &missing_table_fix("s"));
        assert!(
            err.fix.contains("deploy again (DEPLOYER_COMMAND=deploy)"),
            "{err}"
        );
        let throttled = answered(
            400,
            GetItemError::generic(ErrorMetadata::builder().code("ThrottlingException").build()),
        );
        assert!(failure(&throttled, "a", "t", "unused").fix.contains("run again"));
    }
}

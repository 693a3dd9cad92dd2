//! docs/runbook.md and docs/api.md against template.yaml and docs/openapi.yaml.
//!
//! - every alarm of the template has its section in the runbook, whose heading states
//!   the alarm's threshold and period and whose text names its metric;
//! - the runbook names every log group, the dashboard and the EMF namespace the
//!   template sets up, and the settings its procedures depend on;
//! - docs/api.md lists every path and method of docs/openapi.yaml, and every error
//!   code it documents is one the proxy or API Gateway really answers with (see
//!   tests/docs_troubleshooting.rs for those).

use std::fs;
use std::path::Path;

use serde_json::Value;

fn read(relative: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(relative);
    fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[derive(Debug)]
struct Alarm {
    /// What follows `${AWS::StackName}` in the name, e.g. `-lambda-errors`.
    suffix: String,
    namespace: String,
    metric: String,
    /// A number, or `!Ref <Parameter>` when the operator chooses it.
    threshold: String,
    period: u64,
    milliseconds: bool,
}

/// The template's alarms, read from its text (CloudFormation's tags keep it from being
/// plain YAML).
fn alarms(template: &str) -> Vec<Alarm> {
    let mut out = Vec::new();
    for block in template.split("Type: AWS::CloudWatch::Alarm").skip(1) {
        // The block ends where the next resource begins (two-space indent).
        let block: String = block
            .lines()
            .skip(1)
            .take_while(|l| l.starts_with("    ") || l.trim().is_empty() || l.trim_start().starts_with('#'))
            .collect::<Vec<_>>()
            .join("\n");
        let field = |name: &str| {
            block
                .lines()
                .find_map(|l| l.trim().strip_prefix(&format!("{name}: ")))
                .map(|v| v.trim().trim_matches('"').to_owned())
                .unwrap_or_else(|| panic!("alarm without {name}:\n{block}"))
        };
        let name = field("AlarmName");
        let suffix = name
            .strip_prefix("!Sub ${AWS::StackName}")
            .or_else(|| name.strip_prefix("!Sub \"${AWS::StackName}"))
            .unwrap_or_else(|| panic!("alarm name {name:?} is not ${{AWS::StackName}}-..."))
            .trim_matches('"')
            .to_owned();
        out.push(Alarm {
            suffix,
            namespace: field("Namespace"),
            metric: field("MetricName"),
            threshold: field("Threshold"),
            period: field("Period").parse().expect("numeric Period"),
            milliseconds: block.lines().any(|l| l.trim() == "Unit: Milliseconds"),
        });
    }
    out
}

/// The runbook's section of one alarm: from its `###` heading to the next heading of
/// that level or above.
fn alarm_section<'a>(runbook: &'a str, suffix: &str) -> Option<(&'a str, &'a str)> {
    let marker = format!("### `<stack>{suffix}`");
    let start = runbook.find(&marker)?;
    let rest = &runbook[start..];
    let heading_end = rest.find('\n').unwrap_or(rest.len());
    let body_end = rest[heading_end..]
        .find("\n## ")
        .into_iter()
        .chain(rest[heading_end..].find("\n### "))
        .min()
        .map_or(rest.len(), |i| heading_end + i);
    Some((&rest[..heading_end], &rest[heading_end..body_end]))
}

#[test]
fn every_alarm_has_its_section_in_the_runbook() {
    let template = read("template.yaml");
    let runbook = read("docs/runbook.md");
    let alarms = alarms(&template);
    assert!(
        alarms.len() >= 6,
        "found only {} alarms in template.yaml",
        alarms.len()
    );
    let mut problems = Vec::new();
    for alarm in &alarms {
        let Some((heading, body)) = alarm_section(&runbook, &alarm.suffix) else {
            problems.push(format!("no section \"### `<stack>{}`: ...\"", alarm.suffix));
            continue;
        };
        let threshold = match (
            alarm.threshold.parse::<u64>(),
            alarm.threshold.strip_prefix("!Ref "),
        ) {
            (Ok(ms), _) if alarm.milliseconds && ms % 1000 == 0 => format!("{} seconds", ms / 1000),
            (Ok(n), _) => format!("{n} or more"),
            (Err(_), Some(parameter)) => format!("`{parameter}`"),
            (Err(_), None) => panic!(
                "alarm {}: Threshold {:?} is neither a number nor a !Ref",
                alarm.suffix, alarm.threshold
            ),
        };
        let period = match alarm.period / 60 {
            1 => "1 minute".to_owned(),
            minutes => format!("{minutes} minutes"),
        };
        for (what, needle) in [("threshold", &threshold), ("period", &period)] {
            if !heading.contains(needle.as_str()) {
                problems.push(format!("{heading}: the {what} should read {needle:?}"));
            }
        }
        for needle in [&alarm.metric, &alarm.namespace] {
            if !body.contains(&format!("`{needle}`"))
                && !body.contains(&format!("`{} {}`", alarm.namespace, alarm.metric))
            {
                problems.push(format!("{heading}: does not name `{needle}`"));
            }
        }
        for part in ["**Meaning**", "**First actions**"] {
            if !body.contains(part) {
                problems.push(format!("{heading}: no {part}"));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "docs/runbook.md and the template's alarms:\n  {}",
        problems.join("\n  ")
    );
}

#[test]
fn the_runbook_names_what_the_template_sets_up() {
    let template = read("template.yaml");
    let runbook = read("docs/runbook.md");
    // The log groups, by the names the template gives them.
    for (pattern, shown) in [
        ("/aws/lambda/${LambdaFunctionName}", "/aws/lambda/<function>"),
        (
            "/aws/apigateway/${ApiGatewayName}/${Stage}/access",
            "/aws/apigateway/<api>/<stage>/access",
        ),
        (
            "API-Gateway-Execution-Logs_${Api}/${Stage}",
            "API-Gateway-Execution-Logs_<api id>/<stage>",
        ),
    ] {
        assert!(
            template.contains(pattern),
            "template.yaml no longer names a log group {pattern}"
        );
        assert!(
            runbook.contains(shown),
            "docs/runbook.md does not show the log group {shown}"
        );
    }
    let outputs = template
        .split("\nOutputs:")
        .nth(1)
        .expect("template.yaml has Outputs");
    for output in [
        "ApiUrl",
        "DashboardUrl",
        "LogGroupName",
        "AccessLogGroupName",
        "ExecutionLogGroupName",
        "AlarmTopicArn",
    ] {
        assert!(
            outputs.contains(&format!("\n  {output}:")),
            "template.yaml has no output {output}"
        );
        assert!(
            runbook.contains(&format!("`{output}`")),
            "docs/runbook.md does not name the output `{output}`"
        );
    }
    for needle in [
        "`OpenAILambdaProxy`",
        "`SECRET_CACHE_TTL_SECONDS`",
        "`SecretCacheTtlSeconds`",
        "`MODEL_MAPPINGS`",
        "`client_api_keys`",
        "`ENABLE_AUTHENTICATION=true`",
        "`DEPLOYER_COMMAND=destroy`",
        "`DESTROY_SECRET=true`",
        "`DESTROY_ARTIFACTS=true`",
        "`TERMINATION_PROTECTION=true`",
        "sha256sum",
    ] {
        assert!(
            runbook.contains(needle),
            "docs/runbook.md does not mention {needle}"
        );
    }
    // The settings the procedures rely on still exist.
    for parameter in [
        "SecretCacheTtlSeconds:",
        "ReservedConcurrency:",
        "ThrottlingRateLimit:",
        "ManageApiGatewayAccount:",
    ] {
        assert!(
            template.contains(&format!("\n  {parameter}")),
            "template.yaml has no parameter {parameter}"
        );
    }
    assert!(
        template.contains("SECRET_CACHE_TTL_SECONDS: !Ref SecretCacheTtlSeconds"),
        "the function no longer gets SECRET_CACHE_TTL_SECONDS from SecretCacheTtlSeconds"
    );
}

/// The text under `heading` (a `## ` heading) up to the next one.
fn section<'a>(page: &'a str, heading: &str) -> &'a str {
    page.split(heading)
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .unwrap_or_else(|| panic!("no section {heading:?}"))
}

#[test]
fn the_api_page_lists_every_route_of_the_openapi_document() {
    let openapi: Value =
        serde_saphyr::from_str(&read("docs/openapi.yaml")).expect("docs/openapi.yaml is YAML");
    let api = read("docs/api.md");
    let routes = section(&api, "## Routes");
    let paths = openapi["paths"].as_object().expect("openapi.yaml has paths");
    let mut missing = Vec::new();
    for (path, item) in paths {
        for method in item.as_object().into_iter().flat_map(|m| m.keys()) {
            if !["get", "post", "put", "patch", "delete"].contains(&method.as_str()) {
                continue;
            }
            let row = format!("| `{}` | `{path}` |", method.to_ascii_uppercase());
            if !routes.contains(&row) {
                missing.push(row);
            }
        }
    }
    assert!(missing.is_empty(), "docs/api.md's route table lacks {missing:?}");
    assert!(
        api.contains("](openapi.yaml)"),
        "docs/api.md links the OpenAPI document"
    );
}

#[test]
fn the_api_pages_error_codes_are_the_ones_openapi_documents() {
    let openapi = read("docs/openapi.yaml");
    let api = read("docs/api.md");
    let table = section(&api, "## Errors");
    let template = read("template.yaml");
    for row in table
        .lines()
        .filter(|l| l.starts_with("| 4") || l.starts_with("| 5"))
    {
        let codes = row.split('|').nth(2).unwrap_or_default();
        for code in codes.split('`').skip(1).step_by(2) {
            let known = openapi.contains(code) || template.contains(&format!("\"code\":\"{code}\""));
            assert!(
                known,
                "docs/api.md's error table names `{code}`, which neither openapi.yaml nor template.yaml has"
            );
        }
    }
}

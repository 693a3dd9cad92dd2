//! docs/iam-policy.json, the deploying role's policy, against what needs it:
//! - every AWS SDK call in src/ (`aws.<client>.<operation>(`) is an allowed IAM action;
//! - every resource type in template.yaml has the actions CloudFormation's handlers use to
//!   create, update and delete it (CloudFormation acts with the deployer's credentials);
//! - no action is a wildcard.
//!
//! A new SDK call or resource type fails here until the policy (and, for a resource type,
//! the table below) says what it needs. CloudFormation's handler permissions for a type are
//! in its resource schema (`handlers`), e.g. in cfn-lint's bundled schemas.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;

const POLICY: &str = "docs/iam-policy.json";

/// The deployer's SDK clients (src/aws.rs `Aws` fields) and their IAM service prefixes.
const CLIENTS: &[(&str, &str)] = &[
    ("apigateway", "apigateway"),
    ("cloudformation", "cloudformation"),
    ("cloudwatch", "cloudwatch"),
    ("lambda", "lambda"),
    ("logs", "logs"),
    ("s3", "s3"),
    ("secrets", "secretsmanager"),
    ("sts", "sts"),
];

/// SDK operations whose IAM action is not the operation's own name.
const ACTION_OF: &[(&str, &[&str])] = &[
    // API Gateway's IAM actions are HTTP verbs on resource paths.
    ("apigateway.get_account", &["apigateway:GET"]),
    ("s3.head_bucket", &["s3:ListBucket"]),
    ("s3.head_object", &["s3:GetObject"]),
    ("s3.list_objects_v2", &["s3:ListBucket"]),
    ("s3.list_object_versions", &["s3:ListBucketVersions"]),
    (
        "s3.delete_objects",
        &["s3:DeleteObject", "s3:DeleteObjectVersion"],
    ),
    ("s3.put_bucket_encryption", &["s3:PutEncryptionConfiguration"]),
    ("s3.get_bucket_encryption", &["s3:GetEncryptionConfiguration"]),
    (
        "s3.put_bucket_lifecycle_configuration",
        &["s3:PutLifecycleConfiguration"],
    ),
    ("s3.put_public_access_block", &["s3:PutBucketPublicAccessBlock"]),
];

/// What CloudFormation needs per resource type of template.yaml (a representative subset
/// of each type's create/update/delete handler permissions; the policy holds the rest).
const RESOURCE_TYPES: &[(&str, &[&str])] = &[
    (
        "AWS::ApiGateway::Account",
        &["apigateway:GET", "apigateway:PATCH", "iam:PassRole"],
    ),
    (
        "AWS::ApiGateway::Deployment",
        &["apigateway:POST", "apigateway:PATCH", "apigateway:DELETE"],
    ),
    (
        "AWS::ApiGateway::GatewayResponse",
        &["apigateway:PUT", "apigateway:DELETE"],
    ),
    (
        "AWS::ApiGateway::Method",
        &["apigateway:PUT", "apigateway:PATCH", "apigateway:DELETE"],
    ),
    (
        "AWS::ApiGateway::Resource",
        &["apigateway:POST", "apigateway:PATCH", "apigateway:DELETE"],
    ),
    (
        "AWS::ApiGateway::RestApi",
        &[
            "apigateway:POST",
            "apigateway:PUT",
            "apigateway:PATCH",
            "apigateway:DELETE",
        ],
    ),
    (
        "AWS::ApiGateway::Stage",
        &["apigateway:POST", "apigateway:PATCH", "apigateway:DELETE"],
    ),
    (
        "AWS::CloudWatch::Alarm",
        &[
            "cloudwatch:PutMetricAlarm",
            "cloudwatch:DescribeAlarms",
            "cloudwatch:DeleteAlarms",
        ],
    ),
    (
        "AWS::CloudWatch::Dashboard",
        &[
            "cloudwatch:PutDashboard",
            "cloudwatch:GetDashboard",
            "cloudwatch:DeleteDashboards",
        ],
    ),
    (
        "AWS::DynamoDB::Table",
        &[
            "dynamodb:CreateTable",
            "dynamodb:DescribeTable",
            "dynamodb:UpdateTimeToLive",
            "dynamodb:UpdateContinuousBackups",
            "dynamodb:UpdateTable",
            "dynamodb:DeleteTable",
        ],
    ),
    (
        "AWS::IAM::Role",
        &[
            "iam:CreateRole",
            "iam:GetRole",
            "iam:PutRolePolicy",
            "iam:AttachRolePolicy",
            "iam:DeleteRole",
        ],
    ),
    (
        "AWS::KMS::Key",
        &[
            "kms:CreateKey",
            "kms:DescribeKey",
            "kms:PutKeyPolicy",
            "kms:EnableKeyRotation",
            "kms:ScheduleKeyDeletion",
        ],
    ),
    (
        "AWS::Lambda::Function",
        &[
            "lambda:CreateFunction",
            "lambda:GetFunction",
            "lambda:UpdateFunctionConfiguration",
            "lambda:DeleteFunction",
            "iam:PassRole",
            "s3:GetObject",
        ],
    ),
    (
        "AWS::Lambda::Permission",
        &["lambda:AddPermission", "lambda:RemovePermission"],
    ),
    (
        "AWS::Logs::LogGroup",
        &[
            "logs:CreateLogGroup",
            "logs:PutRetentionPolicy",
            "logs:DescribeLogGroups",
            "logs:DeleteLogGroup",
        ],
    ),
    (
        "AWS::SNS::Subscription",
        &[
            "sns:Subscribe",
            "sns:GetSubscriptionAttributes",
            "sns:Unsubscribe",
        ],
    ),
    (
        "AWS::SNS::Topic",
        &[
            "sns:CreateTopic",
            "sns:GetTopicAttributes",
            "sns:SetTopicAttributes",
            "sns:DeleteTopic",
        ],
    ),
    ("AWS::SNS::TopicPolicy", &["sns:SetTopicAttributes"]),
];

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every action of the policy's Allow statements.
fn allowed() -> Vec<String> {
    let policy: Value = serde_json::from_str(&read(&root().join(POLICY))).expect("valid JSON");
    let statements = policy["Statement"].as_array().expect("Statement is a list");
    let mut actions = Vec::new();
    for statement in statements {
        assert_eq!(statement["Effect"], "Allow", "{POLICY}: only Allow statements");
        match &statement["Action"] {
            Value::String(a) => actions.push(a.clone()),
            Value::Array(list) => actions.extend(list.iter().map(|a| a.as_str().unwrap().to_owned())),
            other => panic!("{POLICY}: Action is {other}"),
        }
    }
    actions
}

fn allows(allowed: &[String], action: &str) -> bool {
    allowed.iter().any(|a| a.eq_ignore_ascii_case(action))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `(client, operation)` for every `.client.operation(` in `text`, whitespace allowed
/// around the second dot (rustfmt breaks long call chains there).
fn sdk_calls(text: &str) -> Vec<(&'static str, String)> {
    let mut calls = Vec::new();
    for (client, _) in CLIENTS {
        let needle = format!(".{client}");
        for (at, _) in text.match_indices(&needle) {
            let rest = &text[at + needle.len()..];
            let Some(rest) = rest.trim_start().strip_prefix('.') else {
                continue;
            };
            let rest = rest.trim_start();
            let op: String = rest
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                .collect();
            if !op.is_empty() && rest[op.len()..].starts_with('(') {
                calls.push((*client, op));
            }
        }
    }
    calls
}

fn pascal_case(snake: &str) -> String {
    snake
        .split('_')
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect()
}

fn iam_actions(client: &str, op: &str) -> Vec<String> {
    let key = format!("{client}.{op}");
    if let Some((_, actions)) = ACTION_OF.iter().find(|(k, _)| *k == key) {
        return actions.iter().map(|a| (*a).to_owned()).collect();
    }
    let service = CLIENTS.iter().find(|(c, _)| *c == client).unwrap().1;
    vec![format!("{service}:{}", pascal_case(op))]
}

#[test]
fn every_sdk_call_of_the_deployer_is_allowed() {
    let allowed = allowed();
    let mut files = Vec::new();
    rust_files(&root().join("src"), &mut files);
    let mut seen = BTreeSet::new();
    let mut missing = BTreeSet::new();
    for file in &files {
        for (client, op) in sdk_calls(&read(file)) {
            for action in iam_actions(client, &op) {
                seen.insert(action.clone());
                if !allows(&allowed, &action) {
                    let name = file.strip_prefix(root()).unwrap().display().to_string();
                    missing.insert(format!("{action} (`{client}.{op}` in {name})"));
                }
            }
        }
    }
    // The clients live in src/aws.rs; once it exists, a scan that finds nothing is broken.
    assert!(
        !root().join("src/aws.rs").exists() || seen.contains("sts:GetCallerIdentity"),
        "the scan found no SDK calls in src/: has the `aws.<client>` shape changed? ({seen:?})"
    );
    assert!(
        missing.is_empty(),
        "{POLICY} does not allow what the deployer calls:\n  {}",
        missing.into_iter().collect::<Vec<_>>().join("\n  ")
    );
}

#[test]
fn every_resource_type_of_the_template_can_be_deployed() {
    let allowed = allowed();
    let template = read(&root().join("template.yaml"));
    let types: BTreeSet<&str> = template
        .lines()
        .filter_map(|l| l.trim().strip_prefix("Type: "))
        .filter(|t| t.starts_with("AWS::"))
        .map(|t| t.trim_matches(['"', '\'']))
        .collect();
    assert!(
        types.contains("AWS::Lambda::Function"),
        "no resource types found in template.yaml"
    );
    let mut problems = Vec::new();
    for t in types {
        let Some((_, needs)) = RESOURCE_TYPES.iter().find(|(name, _)| *name == t) else {
            problems.push(format!(
                "{t}: unknown here; add its CloudFormation handler permissions to {POLICY} and a row to RESOURCE_TYPES"
            ));
            continue;
        };
        for action in needs.iter().filter(|a| !allows(&allowed, a)) {
            problems.push(format!("{t} needs {action}"));
        }
    }
    assert!(problems.is_empty(), "{POLICY}:\n  {}", problems.join("\n  "));
}

#[test]
fn no_action_is_a_wildcard() {
    for action in allowed() {
        assert!(
            !action.contains('*'),
            "{POLICY}: `{action}` is a wildcard; name the actions"
        );
    }
}

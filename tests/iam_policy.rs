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

use iam_support::{iam_actions, pascal_case, sdk_calls};
use serde_json::Value;

mod iam_support;

const POLICY: &str = "docs/iam-policy.json";

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
            // With VpcSubnetIds: Lambda checks the subnets and security groups with the
            // caller's credentials (Lambda developer guide, "User permissions" for VPC
            // functions), and their network interfaces on delete.
            "ec2:DescribeSecurityGroups",
            "ec2:DescribeSubnets",
            "ec2:DescribeVpcs",
            "ec2:DescribeNetworkInterfaces",
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

fn allowed() -> Vec<String> {
    iam_support::allowed(POLICY)
}

fn allows(allowed: &[String], action: &str) -> bool {
    allowed.iter().any(|a| a.eq_ignore_ascii_case(action))
}

/// The deployer's Rust sources.
fn src_files() -> Vec<PathBuf> {
    let mut files = Vec::new();
    rust_files(&root().join("src"), &mut files);
    files
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

#[test]
fn every_sdk_call_of_the_deployer_is_allowed() {
    let allowed = allowed();
    let files = src_files();
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

fn statements() -> Vec<Value> {
    let policy: Value = serde_json::from_str(&read(&root().join(POLICY))).expect("valid JSON");
    policy["Statement"]
        .as_array()
        .expect("Statement is a list")
        .clone()
}

fn actions_of(statement: &Value) -> Vec<String> {
    match &statement["Action"] {
        Value::String(a) => vec![a.clone()],
        Value::Array(list) => list.iter().map(|a| a.as_str().unwrap().to_owned()).collect(),
        other => panic!("{POLICY}: Action is {other}"),
    }
}

/// The role may create the stack's alarm key, but no other KMS action may reach a key
/// that another stack or person owns: each is limited to keys carrying this stack's
/// `aws:cloudformation:stack-name` tag, which CloudFormation sets and nobody else can
/// (tags with the `aws:` prefix are reserved), or, for tagging at creation, to requests
/// that carry it.
#[test]
fn kms_actions_reach_only_the_stacks_own_keys() {
    let mut problems = Vec::new();
    for statement in statements() {
        let kms: Vec<String> = actions_of(&statement)
            .into_iter()
            .filter(|a| a.starts_with("kms:") && a != "kms:CreateKey")
            .collect();
        if kms.is_empty() {
            continue;
        }
        let condition = statement["Condition"]["StringLike"].as_object();
        let scoped = condition.is_some_and(|c| {
            c.keys().any(|k| {
                k == "aws:ResourceTag/aws:cloudformation:stack-name"
                    || k == "aws:RequestTag/aws:cloudformation:stack-name"
            }) && c
                .values()
                .all(|v| v.as_str().is_some_and(|v| v.starts_with("openai-lambda-proxy")))
        });
        if !scoped {
            problems.push(format!("{}: {kms:?}", statement["Sid"]));
        }
    }
    assert!(
        problems.is_empty(),
        "{POLICY}: KMS actions not limited to the stack's own keys (by its aws:cloudformation:stack-name tag):\n  {}",
        problems.join("\n  ")
    );
}

/// Every `aws cloudformation <command>` the deployer tells the user to run (in a fix or
/// the report) is one the deploy role may run.
#[test]
fn every_cloudformation_command_the_deployer_advises_is_allowed() {
    let allowed = allowed();
    let files = src_files();
    let mut advised = BTreeSet::new();
    for file in &files {
        let text = read(file);
        for (at, _) in text.match_indices("aws cloudformation ") {
            let command: String = text[at + "aws cloudformation ".len()..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '-')
                .collect();
            advised.insert(format!(
                "cloudformation:{}",
                pascal_case(&command.replace('-', "_"))
            ));
        }
    }
    assert!(
        advised.contains("cloudformation:ContinueUpdateRollback"),
        "the scan found the advice: {advised:?}"
    );
    let missing: Vec<&String> = advised.iter().filter(|a| !allows(&allowed, a)).collect();
    assert!(
        missing.is_empty(),
        "{POLICY}: the deployer advises commands the deploy role may not run: {missing:?}"
    );
}

/// The deployer creates change sets with the stack's tags: CloudFormation authorizes
/// those tags as `cloudformation:TagResource` in the creating call (condition key
/// `cloudformation:CreateAction`). The role may tag its own stacks that way, and in no
/// other way.
#[test]
fn the_role_tags_only_the_stacks_it_creates() {
    let tagging: Vec<Value> = statements()
        .into_iter()
        .filter(|s| actions_of(s).iter().any(|a| a == "cloudformation:TagResource"))
        .collect();
    assert_eq!(
        tagging.len(),
        1,
        "{POLICY}: one statement grants cloudformation:TagResource"
    );
    let statement = &tagging[0];
    assert_eq!(
        statement["Condition"]["StringEquals"]["cloudformation:CreateAction"],
        serde_json::json!(["CreateChangeSet", "CreateStack"]),
        "{POLICY}: cloudformation:TagResource only inside the creating call"
    );
    assert_eq!(
        statement["Resource"], "arn:aws:cloudformation:*:*:stack/openai-lambda-proxy*/*",
        "{POLICY}: cloudformation:TagResource only on the stack's own ARNs"
    );
}

/// `usage` runs with this role and reads one item per client: the role may read the
/// usage table's items (GetItem, on the stack's table only) and never write, query or
/// scan them; the function's own role does the counting.
#[test]
fn the_role_reads_usage_items_and_writes_none() {
    const ITEM_ACTIONS: &[&str] = &[
        "dynamodb:GetItem",
        "dynamodb:BatchGetItem",
        "dynamodb:Query",
        "dynamodb:Scan",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:DeleteItem",
        "dynamodb:BatchWriteItem",
        "dynamodb:PartiQLSelect",
        "dynamodb:PartiQLUpdate",
    ];
    let granting: Vec<(Vec<String>, Value)> = statements()
        .into_iter()
        .map(|s| {
            let items: Vec<String> = actions_of(&s)
                .into_iter()
                .filter(|a| ITEM_ACTIONS.iter().any(|i| i.eq_ignore_ascii_case(a)))
                .collect();
            (items, s["Resource"].clone())
        })
        .filter(|(items, _)| !items.is_empty())
        .collect();
    assert_eq!(
        granting,
        [(
            vec!["dynamodb:GetItem".to_owned()],
            Value::from("arn:aws:dynamodb:*:*:table/openai-lambda-proxy*")
        )],
        "{POLICY}: item actions on the usage table"
    );
}

//! What the IAM policy tests share: the deployer's SDK calls as IAM actions, and the
//! actions a policy file allows.
#![allow(dead_code)] // each test binary uses its own subset

use std::path::Path;

use serde_json::Value;

/// The deployer's SDK clients (src/aws.rs `Aws` fields) and their IAM service prefixes.
pub const CLIENTS: &[(&str, &str)] = &[
    ("apigateway", "apigateway"),
    ("cloudformation", "cloudformation"),
    ("cloudwatch", "cloudwatch"),
    ("dynamodb", "dynamodb"),
    ("lambda", "lambda"),
    ("logs", "logs"),
    ("s3", "s3"),
    ("secrets", "secretsmanager"),
    ("sts", "sts"),
];

/// SDK operations whose IAM action is not the operation's own name.
pub const ACTION_OF: &[(&str, &[&str])] = &[
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

/// `(client, operation)` for every `.client.operation(` in `text`, whitespace allowed
/// around the second dot (rustfmt breaks long call chains there).
pub fn sdk_calls(text: &str) -> Vec<(&'static str, String)> {
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

pub fn pascal_case(snake: &str) -> String {
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

pub fn iam_actions(client: &str, op: &str) -> Vec<String> {
    let key = format!("{client}.{op}");
    if let Some((_, actions)) = ACTION_OF.iter().find(|(k, _)| *k == key) {
        return actions.iter().map(|a| (*a).to_owned()).collect();
    }
    let service = CLIENTS.iter().find(|(c, _)| *c == client).unwrap().1;
    vec![format!("{service}:{}", pascal_case(op))]
}

/// Every action of `policy`'s Allow statements (a path from the repository's root).
pub fn allowed(policy: &str) -> Vec<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(policy);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{policy}: {e}"));
    let policy_json: Value = serde_json::from_str(&text).expect("valid JSON");
    let statements = policy_json["Statement"].as_array().expect("Statement is a list");
    let mut actions = Vec::new();
    for statement in statements {
        assert_eq!(statement["Effect"], "Allow", "{policy}: only Allow statements");
        match &statement["Action"] {
            Value::String(a) => actions.push(a.clone()),
            Value::Array(list) => actions.extend(list.iter().map(|a| a.as_str().unwrap().to_owned())),
            other => panic!("{policy}: Action is {other}"),
        }
    }
    actions
}

//! docs/iam-plan-policy.json, the pull-request plan role's policy, against the `validate`
//! path: every AWS SDK call `validate` makes is allowed, every allowed action is one of
//! those calls (nothing more), and nothing that changes the account is in it: no
//! ExecuteChangeSet, DeleteStack, PassRole, and no secret value read or written.
//!
//! The validate path is the functions below; a new call in one of them fails here until
//! the policy says so. (validate's clean-up of the empty stack a first CREATE change set
//! leaves goes through `stack::delete_stack`, whose refusal validate ignores: the plan
//! role may not delete stacks.)

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

use serde_json::Value;

const POLICY: &str = "docs/iam-plan-policy.json";

/// `(file, function)`: what `DEPLOYER_COMMAND=validate` runs that talks to AWS.
const VALIDATE_PATH: &[(&str, &str)] = &[
    ("src/prereq.rs", "check"),
    ("src/template.rs", "validate"),
    ("src/run.rs", "validate"),
    ("src/run.rs", "secret_arn_for_validation"),
    ("src/run.rs", "change_set"),
    ("src/stack.rs", "describe"),
    ("src/stack.rs", "create_change_set"),
    ("src/stack.rs", "all_changes"),
    ("src/stack.rs", "delete_change_set"),
];

/// The deployer's SDK clients (src/aws.rs) and their IAM service prefixes.
const CLIENTS: &[(&str, &str)] = &[
    ("apigateway", "apigateway"),
    ("cloudformation", "cloudformation"),
    ("lambda", "lambda"),
    ("s3", "s3"),
    ("secrets", "secretsmanager"),
    ("sts", "sts"),
];

/// Never in a plan role: each changes the account or reveals a secret.
const FORBIDDEN: &[&str] = &[
    "cloudformation:ExecuteChangeSet",
    "cloudformation:DeleteStack",
    "cloudformation:UpdateStack",
    "cloudformation:CreateStack",
    "iam:PassRole",
    "secretsmanager:GetSecretValue",
    "secretsmanager:PutSecretValue",
    "secretsmanager:CreateSecret",
    "s3:PutObject",
    "lambda:UpdateFunctionCode",
];

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &str) -> String {
    fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn allowed() -> BTreeSet<String> {
    let policy: Value = serde_json::from_str(&read(POLICY)).expect("valid JSON");
    let mut actions = BTreeSet::new();
    for statement in policy["Statement"].as_array().expect("Statement is a list") {
        assert_eq!(statement["Effect"], "Allow", "{POLICY}: only Allow statements");
        match &statement["Action"] {
            Value::String(a) => {
                actions.insert(a.clone());
            }
            Value::Array(list) => actions.extend(list.iter().map(|a| a.as_str().unwrap().to_owned())),
            other => panic!("{POLICY}: Action is {other}"),
        }
    }
    actions
}

/// The text of `fn name` in `source`: from its signature to its matching closing brace.
fn function_body<'a>(source: &'a str, file: &str, name: &str) -> &'a str {
    let start = [format!("fn {name}("), format!("fn {name}<")]
        .iter()
        .find_map(|s| source.find(s.as_str()))
        .unwrap_or_else(|| panic!("{file} has no `fn {name}`: update VALIDATE_PATH"));
    let open = start + source[start..].find('{').expect("a body");
    let mut depth = 0;
    for (i, c) in source[open..].char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return &source[start..open + i + 1];
                }
            }
            _ => {}
        }
    }
    panic!("{file}: `fn {name}` has no closing brace")
}

/// IAM actions of every `.client.operation(` in `text` (rustfmt may break the chain
/// before the second dot).
fn actions_called(text: &str) -> BTreeSet<String> {
    let mut actions = BTreeSet::new();
    for (client, service) in CLIENTS {
        let needle = format!(".{client}");
        for (at, _) in text.match_indices(&needle) {
            let Some(rest) = text[at + needle.len()..].trim_start().strip_prefix('.') else {
                continue;
            };
            let rest = rest.trim_start();
            let op: String = rest
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                .collect();
            if !op.is_empty() && rest[op.len()..].starts_with('(') {
                let pascal: String = op
                    .split('_')
                    .map(|w| w[..1].to_ascii_uppercase() + &w[1..])
                    .collect();
                actions.insert(format!("{service}:{pascal}"));
            }
        }
    }
    actions
}

fn validate_calls() -> BTreeSet<String> {
    let mut calls = BTreeSet::new();
    for (file, name) in VALIDATE_PATH {
        calls.extend(actions_called(function_body(&read(file), file, name)));
    }
    calls
}

#[test]
fn every_sdk_call_of_validate_is_allowed_and_nothing_else_is() {
    let allowed = allowed();
    let calls = validate_calls();
    assert!(
        calls.contains("sts:GetCallerIdentity") && calls.contains("cloudformation:CreateChangeSet"),
        "the scan of the validate path found too little ({calls:?}): has the code moved?"
    );
    let missing: Vec<&String> = calls.iter().filter(|c| !allowed.contains(*c)).collect();
    assert!(
        missing.is_empty(),
        "{POLICY} does not allow what validate calls: {missing:?}"
    );
    let unused: Vec<&String> = allowed.iter().filter(|a| !calls.contains(*a)).collect();
    assert!(
        unused.is_empty(),
        "{POLICY} allows what validate never calls (a plan role gets nothing more): {unused:?}"
    );
}

#[test]
fn the_plan_policy_can_change_nothing_and_read_no_secret() {
    let allowed = allowed();
    for action in FORBIDDEN {
        assert!(!allowed.contains(*action), "{POLICY} allows {action}");
    }
    assert!(
        allowed.iter().all(|a| !a.contains('*')),
        "{POLICY}: no wildcard actions"
    );
}

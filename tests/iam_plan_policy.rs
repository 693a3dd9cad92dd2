//! docs/iam-plan-policy.json, the pull-request plan role's policy, against the `validate`
//! path: every AWS SDK call `validate` makes is allowed, every allowed action is one of
//! those calls (nothing more), and nothing that changes the account is in it: no
//! ExecuteChangeSet, DeleteStack, PassRole, and no secret value read or written.
//!
//! The validate path is the functions below; a new call in one of them fails here until
//! the policy says so. (validate's clean-up of the empty stack a first CREATE change set
//! leaves goes through `cfn::stack::delete`, whose refusal validate notes and ignores:
//! the plan role may not delete stacks. A template over CloudFormation's inline limit is
//! uploaded to the artifact bucket: the policy allows s3:PutObject on template keys only.)

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

use iam_support::{iam_actions, sdk_calls};
use serde_json::Value;

mod iam_support;

const POLICY: &str = "docs/iam-plan-policy.json";

/// `(file, function)`: what `DEPLOYER_COMMAND=validate` runs that talks to AWS.
const VALIDATE_PATH: &[(&str, &str)] = &[
    ("src/prereq.rs", "check"),
    ("src/prereq.rs", "account_logging"),
    ("src/prereq.rs", "leftover_log_group"),
    ("src/template/mod.rs", "validate"),
    ("src/commands/validate.rs", "run"),
    ("src/commands/validate.rs", "change_set_phase"),
    ("src/commands/validate.rs", "secret_arn_for_validation"),
    ("src/commands/mod.rs", "store_template"),
    ("src/s3.rs", "find"),
    ("src/s3.rs", "put"),
    ("src/cfn/stack.rs", "describe"),
    ("src/cfn/change_set.rs", "create"),
    ("src/cfn/change_set.rs", "all_changes"),
    ("src/cfn/change_set.rs", "failed_validations"),
    ("src/cfn/change_set.rs", "delete"),
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
    "secretsmanager:UpdateSecretVersionStage",
    "secretsmanager:CreateSecret",
    "lambda:UpdateFunctionCode",
];

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &str) -> String {
    fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn allowed() -> BTreeSet<String> {
    iam_support::allowed(POLICY).into_iter().collect()
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

/// IAM actions of every SDK call in `text`.
fn actions_called(text: &str) -> BTreeSet<String> {
    sdk_calls(text)
        .into_iter()
        .flat_map(|(client, op)| iam_actions(client, &op))
        .collect()
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
    // Writing objects only where validate puts a prepared template, never the code.
    let policy: Value = serde_json::from_str(&read(POLICY)).unwrap();
    for statement in policy["Statement"].as_array().unwrap() {
        let actions = statement["Action"].to_string();
        if actions.contains("s3:PutObject") {
            let resources: Vec<&str> = match &statement["Resource"] {
                Value::String(r) => vec![r.as_str()],
                Value::Array(list) => list.iter().filter_map(Value::as_str).collect(),
                other => panic!("{POLICY}: Resource is {other}"),
            };
            assert!(
                resources.iter().all(|r| r.ends_with("/*/template/*")),
                "{POLICY}: s3:PutObject beyond the prepared templates: {resources:?}"
            );
            assert_eq!(
                statement["Action"],
                Value::from(vec!["s3:PutObject"]),
                "{POLICY}: PutObject in its own statement"
            );
        }
    }
}

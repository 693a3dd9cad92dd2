//! `DEPLOYER_COMMAND=usage` against a stack deployed on the local AWS emulator: the
//! stack's usage table (moto's DynamoDB) holds what the function counted, and the
//! deployer reports it per client with the budget its limits leave, in the job summary
//! and on stdout. Also the deploy report's Clients table, and the errors a user meets.

mod assertions;
mod deploy_support;

use assertions::contains_all;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_smithy_types::date_time::Format;
use deploy_support::{Case, KEY, aws, input, run, stack_info};

const WEB_KEY: &str = "web-app-key-0123456789abcdef";
const BATCH_KEY: &str = "batch-key-0123456789abcdefgh";
const PLAIN_KEY: &str = "plain-key-0123456789abcdefgh";

/// `YYYY-MM` and `YYYY-MM-DD` now, in UTC.
fn windows() -> (String, String) {
    let now = aws_smithy_types::DateTime::from(std::time::SystemTime::now())
        .fmt(Format::DateTime)
        .unwrap();
    (now[..7].to_owned(), now[..10].to_owned())
}

#[tokio::test]
async fn usage_reports_each_clients_month_and_the_budget_its_limits_leave() {
    let case = Case::new("usage");
    let keys = format!(
        "web-app={WEB_KEY};usd_per_day=5;usd_per_month=50;requests_per_minute=60\n\
         batch={BATCH_KEY};tokens_per_minute=1000\n{PLAIN_KEY}"
    );
    let mut deploy = case.deploy(&case.bootstrap("bootstrap", 62, "usage"));
    deploy.env("CLIENT_API_KEYS", &keys);
    let deployed = run(deploy).await;
    assert!(deployed.ok, "{}", deployed.text);

    // Nothing counted yet: the stack's table is there, the clients have no items.
    let summary = case.dir.path().join("summary.md");
    let mut usage = case.deployer("usage");
    usage.env("GITHUB_STEP_SUMMARY", &summary);
    let first = run(usage).await;
    assert!(first.ok, "{}", first.text);
    first.says("| web-app | 0 | 0 | $0.00 | $0.00 | $5.00 | $50.00 |");

    // What the function would have counted (function/src/spend/ledger.rs), yesterday's
    // day counter included for batch: it does not count today.
    let info = stack_info(&case.stack).await;
    let table = info.outputs["UsageTableName"].clone();
    assert_eq!(table, format!("{}-usage", case.stack));
    let (month, day) = windows();
    let db = aws().await.dynamodb;
    let n = |v: u64| AttributeValue::N(v.to_string());
    for (client, item_day, requests, tokens, day_usd, month_usd) in [
        ("web-app", day.as_str(), 12, 3456, 1_250_000, 12_340_000),
        ("batch", "2000-01-01", 7, 900, 40_000, 70_000),
    ] {
        db.put_item()
            .table_name(&table)
            .item("pk", AttributeValue::S(format!("{client}#{month}")))
            .item("day", AttributeValue::S(item_day.to_owned()))
            .item("minute", n(1))
            .item("requests", n(1))
            .item("tokens", n(10))
            .item("day_usd", n(day_usd))
            .item("month_usd", n(month_usd))
            .item("month_requests", n(requests))
            .item("month_tokens", n(tokens))
            .item("expires_at", n(4_000_000_000))
            .send()
            .await
            .unwrap();
    }
    let mut usage = case.deployer("usage");
    usage.env("GITHUB_STEP_SUMMARY", &summary);
    let out = run(usage).await;
    assert!(out.ok, "{}", out.text);
    let summary = std::fs::read_to_string(&summary).unwrap();
    for text in [&out.text, &summary] {
        contains_all(
            text,
            &[
                &format!("### Usage in {month} (UTC; today {day})"),
                "| web-app | 12 | 3456 | $1.25 | $12.34 | $3.75 | $37.66 |",
                "| batch | 7 | 900 | $0.00 | $0.07 | no limit | no limit |",
                "| key 3 | not counted (no limits) |",
            ],
        );
        for key in [WEB_KEY, BATCH_KEY, PLAIN_KEY] {
            assert!(!text.contains(key), "a key in the output:\n{text}");
        }
    }

    // The table deleted by hand: the fix is to deploy again.
    db.delete_table().table_name(&table).send().await.unwrap();
    let gone = run(case.deployer("usage")).await;
    assert_eq!(gone.code, Some(1), "{}", gone.text);
    gone.says(&format!(
        "could not read usage of client web-app from table {table}"
    ));
    gone.says("deploy again (DEPLOYER_COMMAND=deploy) so CloudFormation puts it back");
}

#[tokio::test]
async fn usage_of_a_stack_that_is_not_deployed_says_to_deploy_it() {
    let case = Case::new("nousage");
    let out = run(case.deployer("usage")).await;
    assert_eq!(out.code, Some(1), "{}", out.text);
    out.says(&format!(
        "there is no stack {} in us-east-1, so there is no usage to read",
        case.stack
    ));
    out.says("deploy it first (DEPLOYER_COMMAND=deploy)");
}

#[tokio::test]
async fn the_deploy_report_lists_each_client_with_its_limits_and_only_keys_are_masked() {
    let case = Case::new("clients");
    let summary = case.dir.path().join("summary.md");
    // As a container action runs it: inputs, GITHUB_ACTIONS=true, a job summary.
    let mut deploy = case.action("deploy");
    deploy
        .env(
            input("FUNCTION_ARTIFACT"),
            case.bootstrap("bootstrap", 62, "clients"),
        )
        .env(input("OPENAI_API_KEY"), KEY)
        .env(
            input("CLIENT_API_KEYS"),
            format!("web-app={WEB_KEY};usd_per_month=50;requests_per_minute=60\n{PLAIN_KEY}"),
        )
        .env("GITHUB_STEP_SUMMARY", &summary);
    let out = run(deploy).await;
    assert!(out.ok, "{}", out.text);
    let masks: Vec<&str> = out
        .text
        .lines()
        .filter(|l| l.starts_with("::add-mask::"))
        .collect();
    for key in [WEB_KEY, PLAIN_KEY] {
        assert!(
            masks.contains(&format!("::add-mask::{key}").as_str()),
            "{masks:?}"
        );
    }
    assert!(
        masks
            .iter()
            .all(|m| !m.contains("usd_per_month") && !m.contains("web-app=")),
        "names and limits stay readable: {masks:?}"
    );
    let report = std::fs::read_to_string(summary).unwrap();
    assert!(
        report.contains("| web-app | 60 | — | — | $50.00 |\n| key 2 | — | — | — | — |"),
        "{report}"
    );
    assert!(
        !report.contains(WEB_KEY) && !report.contains(PLAIN_KEY),
        "{report}"
    );
}

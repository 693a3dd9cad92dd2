//! Authentication is on by default: client keys from CLIENT_API_KEYS reach the secret as
//! SHA-256 digests, a deploy with no client key anywhere stops before creating anything,
//! and turning authentication off is warned about. The built deployer against the local
//! AWS emulator (`make test`).

mod deploy_support;

use assert_cmd::Command;
use deploy_support::blocking::{self, aws, put_secret, secret, stack_exists};
use deploy_support::{Case, input};
use sha2::Digest;

const KEY: &str = "sk-test-client-keys-0123456789";
const WEB_KEY: &str = "web-app-key-0123456789abcdef";
const CLI_KEY: &str = "cli-key-0123456789abcdefgh";

fn sha256(text: &str) -> String {
    sha2::Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The deployer as a user runs it: authentication left at its default (on), unlike the
/// shared cases, which turn it off.
fn deployer(case: &Case, command: &str) -> Command {
    let mut cmd = case.deployer(command);
    cmd.env_remove("ENABLE_AUTHENTICATION")
        .env("FUNCTION_ARTIFACT", case.bootstrap("bootstrap", 62, "keys"));
    cmd
}

fn output(cmd: &mut Command) -> (Option<i32>, String) {
    let out = blocking::output(cmd);
    (out.code, out.text)
}

#[test]
fn a_deploy_with_authentication_on_and_no_client_key_stops_before_creating_anything() {
    let case = Case::new("nokey");
    let aws = aws();
    let (code, text) = output(deployer(&case, "deploy").env("OPENAI_API_KEY", KEY));
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("no client API key is configured"), "{text}");
    assert!(text.contains("CLIENT_API_KEYS"), "{text}");
    assert!(text.contains("ENABLE_AUTHENTICATION=false"), "{text}");
    assert!(
        secret(&aws, &format!("{}/config", case.stack)).is_none(),
        "the secret was created"
    );
    assert!(!stack_exists(&aws, &case.stack), "a stack was created");
}

#[test]
fn client_keys_are_stored_as_digests_next_to_those_set_by_hand_and_never_printed() {
    let case = Case::new("keys");
    let aws = aws();
    let id = format!("{}/config", case.stack);
    let (code, text) = output(deployer(&case, "setup-secrets").env("OPENAI_API_KEY", KEY));
    assert_eq!(code, Some(0), "{text}");

    // A key an operator listed by hand (docs/runbook.md) stays.
    let mut value = secret(&aws, &id).unwrap();
    let by_hand = sha256("set-by-hand-0123456789");
    value["client_api_keys"] = serde_json::json!([by_hand]);
    put_secret(&aws, &id, &value);

    let keys = format!("web-app={WEB_KEY}\n{CLI_KEY}\n");
    // As a container action passes it: inputs only, authentication at its default (on).
    let (code, text) = output(
        case.action("deploy")
            .env_remove(input("ENABLE_AUTHENTICATION"))
            .env(
                input("FUNCTION_ARTIFACT"),
                case.bootstrap("bootstrap", 62, "keys"),
            )
            .env(input("CLIENT_API_KEYS"), &keys),
    );
    assert_eq!(code, Some(0), "{text}");
    let stored = secret(&aws, &id).unwrap();
    assert_eq!(
        stored["client_api_keys"],
        serde_json::json!([
            by_hand,
            {"name": "web-app", "sha256": sha256(WEB_KEY)},
            sha256(CLI_KEY),
        ])
    );
    // Masked before anything else prints, and never printed otherwise.
    for key in [WEB_KEY, CLI_KEY] {
        let mask = format!("::add-mask::{key}");
        assert!(text.contains(&mask), "{key} not masked:\n{text}");
        for line in text.lines().filter(|l| l.contains(key)) {
            assert!(line.starts_with("::add-mask::"), "{key} printed: {line}");
        }
    }
    assert!(!stored.to_string().contains(WEB_KEY));

    // The keys now in the secret satisfy a later deploy that passes none. It still
    // writes the timeouts when the secret's differ (LAMBDA_TIMEOUT is the function's
    // too), into the settings there: one set by hand stays.
    let mut value = secret(&aws, &id).unwrap();
    value["timeout_settings"]["lambda_timeout"] = 100.into();
    value["timeout_settings"]["stream_idle_timeout"] = 900.into();
    put_secret(&aws, &id, &value);
    let (code, text) = output(deployer(&case, "deploy").env("LAMBDA_TIMEOUT", "600"));
    assert_eq!(code, Some(0), "{text}");
    assert!(!text.contains("authentication is off"), "{text}");
    let settings = &secret(&aws, &id).unwrap()["timeout_settings"];
    assert_eq!(
        (&settings["lambda_timeout"], &settings["stream_idle_timeout"]),
        (&600.into(), &900.into()),
        "{settings}"
    );
}

#[test]
fn authentication_turned_off_is_reported_as_a_warning() {
    let case = Case::new("authoff");
    let report = case.dir.path().join("report.md");
    let (code, text) = output(
        deployer(&case, "validate")
            .env("ENABLE_AUTHENTICATION", "false")
            .env("REPORT_FILE", &report),
    );
    assert_eq!(code, Some(0), "{text}");
    let report = std::fs::read_to_string(report).unwrap();
    assert!(
        report.contains("anyone with the API's URL can call it and spend your OpenAI key"),
        "{report}"
    );
}

#[test]
fn a_malformed_client_key_is_refused_by_line_without_echoing_it() {
    let case = Case::new("badkey");
    let (code, text) =
        output(deployer(&case, "validate").env("CLIENT_API_KEYS", "good-key-0123456789abc\nweb=tiny"));
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("CLIENT_API_KEYS line 2"), "{text}");
    assert!(!text.contains("tiny"), "{text}");
}

/// A secret named by OPENAI_API_KEY_SECRET_ARN is the operator's: a deploy that is given
/// nothing to write leaves it as it is, timeouts included (the deployer's own secret
/// takes the inputs' timeouts).
#[test]
fn a_secret_named_by_its_arn_is_left_as_it_is_when_nothing_is_given() {
    let case = Case::new("byarn");
    let aws = aws();
    let value = serde_json::json!({
        "openai_api_key": KEY,
        "model_mappings": {"amazon.nova-lite-v1:0": "gpt-4o-mini"},
        "client_api_keys": [sha256(WEB_KEY)],
        "timeout_settings": {"openai_api_timeout": 60},
    });
    let created = blocking::runtime().block_on(
        aws.secrets
            .create_secret()
            .name(format!("{}-by-hand", case.stack))
            .secret_string(value.to_string())
            .send(),
    );
    let arn = created.unwrap().arn().unwrap().to_owned();
    let (code, text) = output(deployer(&case, "deploy").env("OPENAI_API_KEY_SECRET_ARN", &arn));
    assert_eq!(code, Some(0), "{text}");
    assert_eq!(secret(&aws, &arn), Some(value));
}

/// A deploy that fails after writing the secret but before its stack changed (here: an
/// artifact bucket that does not exist) puts the secret back to its version before.
#[test]
fn a_deploy_that_fails_before_the_stack_changed_puts_the_secret_back() {
    let case = Case::new("putback");
    let aws = aws();
    let id = format!("{}/config", case.stack);
    let first = output(
        deployer(&case, "deploy")
            .env("OPENAI_API_KEY", KEY)
            .env("CLIENT_API_KEYS", format!("web-app={WEB_KEY}")),
    );
    assert_eq!(first.0, Some(0), "{}", first.1);
    let before = secret(&aws, &id).unwrap();
    let (code, text) = output(
        deployer(&case, "deploy")
            .env("OPENAI_API_TIMEOUT", "45")
            .env("ARTIFACT_BUCKET", format!("{}-missing", case.stack)),
    );
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("does not exist"), "{text}");
    assert!(text.contains("put back to its version before this run"), "{text}");
    assert_eq!(secret(&aws, &id), Some(before));
}

//! The contract between the two crates: the secret the deployer writes is one the
//! function reads, field for field. The deployer's `secret::desired` feeds the function's
//! own configuration parser; no AWS involved.

use std::time::Duration;

use openai_proxy_deployer::config::Config;
use openai_proxy_deployer::secret;
use openai_proxy_function::config::{
    DEFAULT_OPENAI_BASE_URL, Limits, ModelRoute, Provider, ProxyConfig, default_mappings,
};
use sha2::Digest;

const OPENAI_KEY: &str = "sk-contract-0123456789abcdef";

fn config(pairs: &[(&str, &str)]) -> Config {
    Config::from_vars(pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))).unwrap()
}

/// What the function makes of the secret the deployer would write for `pairs`.
fn read_back(existing: Option<&serde_json::Value>, pairs: &[(&str, &str)]) -> ProxyConfig {
    let written = secret::desired(existing, &config(pairs)).unwrap();
    ProxyConfig::from_json(&written.to_string(), DEFAULT_OPENAI_BASE_URL)
        .unwrap_or_else(|e| panic!("the function refuses the deployer's secret: {e}\n{written}"))
}

#[test]
fn a_new_secret_is_read_by_the_function_with_the_functions_own_default_mappings() {
    let read = read_back(None, &[("OPENAI_API_KEY", OPENAI_KEY)]);
    assert_eq!(read.openai_api_key.expose(), OPENAI_KEY);
    // One list of defaults: what a new secret gets is what the function serves from
    // OPENAI_API_KEY alone, embeddings included.
    assert_eq!(read.model_mappings, default_mappings());
    assert_eq!(
        read.model_mappings["amazon.titan-embed-text-v2:0"],
        ModelRoute::openai("text-embedding-3-small")
    );
    assert_eq!(read.openai_base_url, DEFAULT_OPENAI_BASE_URL);
    assert!(read.client_api_keys.is_empty());
}

#[test]
fn mappings_timeouts_and_named_client_keys_reach_the_function_as_the_deployer_was_given_them() {
    let keys = "web-app=web-app-key-0123456789abcdef\ncli-key-0123456789abcdefgh";
    let read = read_back(
        None,
        &[
            ("OPENAI_API_KEY", OPENAI_KEY),
            (
                "MODEL_MAPPINGS",
                r#"{"my-model":"gpt-4o","amazon.nova-pro-v1:0":{"openai":"gpt-4o-mini","bedrock":"us.amazon.nova-pro-v1:0","primary":"bedrock"}}"#,
            ),
            ("CLIENT_API_KEYS", keys),
            ("OPENAI_API_TIMEOUT", "45"),
            ("SECRETS_MANAGER_TIMEOUT", "7"),
            ("LAMBDA_TIMEOUT", "120"),
        ],
    );
    assert_eq!(
        read.model_mappings.into_iter().collect::<Vec<_>>(),
        [
            (
                "amazon.nova-pro-v1:0".to_owned(),
                ModelRoute {
                    openai: Some("gpt-4o-mini".into()),
                    bedrock: Some("us.amazon.nova-pro-v1:0".into()),
                    primary: Provider::Bedrock,
                }
            ),
            ("my-model".to_owned(), ModelRoute::openai("gpt-4o")),
        ]
    );
    assert_eq!(read.timeouts.openai_api, Duration::from_secs(45));
    assert_eq!(read.timeouts.secrets_manager, Duration::from_secs(7));
    assert_eq!(read.timeouts.lambda, Duration::from_secs(120));
    let digest = |key: &str| -> [u8; 32] { sha2::Sha256::digest(key.as_bytes()).into() };
    let found: Vec<_> = read
        .client_api_keys
        .iter()
        .map(|k| (k.name.as_deref(), k.digest, k.models.is_none()))
        .collect();
    assert_eq!(
        found,
        [
            (Some("web-app"), digest("web-app-key-0123456789abcdef"), true),
            (None, digest("cli-key-0123456789abcdefgh"), true),
        ]
    );
}

#[test]
fn fields_set_by_hand_survive_a_deploy_and_still_parse() {
    let mut by_hand = secret::desired(None, &config(&[("OPENAI_API_KEY", OPENAI_KEY)])).unwrap();
    by_hand["openai_base_url"] = serde_json::json!("http://127.0.0.1:9/v1");
    by_hand["client_api_keys"] = serde_json::json!([
        {"name": "web-app", "sha256": "cd".repeat(32), "models": ["amazon.nova-lite-v1:0"]}
    ]);
    let read = read_back(
        Some(&by_hand),
        &[("CLIENT_API_KEYS", "web-app=rotated-key-0123456789")],
    );
    assert_eq!(read.openai_base_url, "http://127.0.0.1:9/v1");
    let [key] = read.client_api_keys.as_slice() else {
        panic!("{:?}", read.client_api_keys)
    };
    assert_eq!(key.name.as_deref(), Some("web-app"));
    assert_eq!(
        key.digest,
        <[u8; 32]>::from(sha2::Sha256::digest(b"rotated-key-0123456789"))
    );
    assert!(key.may_use("amazon.nova-lite-v1:0") && !key.may_use("amazon.nova-pro-v1:0"));
}

#[test]
fn limits_from_client_api_keys_reach_the_function_in_its_units() {
    let keys = "web-app=web-app-key-0123456789abcdef;usd_per_month=50;requests_per_minute=60\n\
                batch=batch-key-0123456789abcdef;tokens_per_minute=100000;usd_per_day=0.25";
    // The default mappings reach gpt-4o-mini and text-embedding-3-small: both have
    // built-in prices, so USD limits are enforceable.
    let read = read_back(None, &[("OPENAI_API_KEY", OPENAI_KEY), ("CLIENT_API_KEYS", keys)]);
    let limits: Vec<_> = read
        .client_api_keys
        .iter()
        .map(|k| (k.name.as_deref(), k.limits))
        .collect();
    assert_eq!(
        limits,
        [
            (
                Some("web-app"),
                Some(Limits {
                    requests_per_minute: Some(60),
                    tokens_per_minute: None,
                    usd_per_day: None,
                    usd_per_month: Some(50_000_000),
                })
            ),
            (
                Some("batch"),
                Some(Limits {
                    requests_per_minute: None,
                    tokens_per_minute: Some(100_000),
                    usd_per_day: Some(250_000),
                    usd_per_month: None,
                })
            ),
        ]
    );
}

#[test]
fn a_usd_limit_on_an_unpriced_model_is_refused_by_both_crates_and_the_deployer_refuses_first() {
    let pairs = [
        ("OPENAI_API_KEY", OPENAI_KEY),
        (
            "MODEL_MAPPINGS",
            r#"{"mine":"gpt-4o-mini","big":"gpt-9-unpriced"}"#,
        ),
        (
            "CLIENT_API_KEYS",
            "web-app=web-app-key-0123456789abcdef;usd_per_month=50",
        ),
    ];
    let err = secret::desired(None, &config(&pairs)).unwrap_err();
    assert!(err.cause.contains("which maps to gpt-9-unpriced"), "{err}");
    // The same secret, written anyway (by hand), is refused by the function at load.
    let without_limits = secret::desired(None, &config(&pairs[..2])).unwrap();
    let mut by_hand = without_limits.clone();
    by_hand["client_api_keys"] = serde_json::json!([
        {"name": "web-app", "sha256": "cd".repeat(32), "limits": {"usd_per_month": 50}}
    ]);
    let refused = ProxyConfig::from_json(&by_hand.to_string(), DEFAULT_OPENAI_BASE_URL).unwrap_err();
    assert!(refused.to_string().contains("gpt-9-unpriced"), "{refused}");
    assert!(secret::unpriced_usd_limit(&by_hand).is_err());
    // With the price in the secret both accept it.
    by_hand["prices"] =
        serde_json::json!({"gpt-9-unpriced": {"input_per_million": 1, "output_per_million": 2}});
    ProxyConfig::from_json(&by_hand.to_string(), DEFAULT_OPENAI_BASE_URL).unwrap();
    secret::unpriced_usd_limit(&by_hand).unwrap();
}

/// A USD limit needs a price for every model its key can reach, through either provider:
/// the deployer's check refuses exactly the secrets the function would refuse at load,
/// and lets through the ones it reads (prices of Bedrock profiles and ARNs are
/// their foundation model's).
#[test]
fn the_deployer_refuses_an_unpriced_usd_limit_exactly_when_the_function_would() {
    for (mapping, priced) in [
        (r#""gpt-4o-mini""#, true),
        (r#""gpt-9-unpriced""#, false),
        (
            r#"{"openai":"gpt-4o-mini","bedrock":"us.amazon.nova-lite-v1:0"}"#,
            true,
        ),
        (
            r#"{"openai":"gpt-4o-mini","bedrock":"anthropic.claude-unpriced-v1:0"}"#,
            false,
        ),
        (
            r#"{"bedrock":"arn:aws:bedrock:us-east-1::foundation-model/amazon.nova-pro-v1:0"}"#,
            true,
        ),
        (
            r#"{"bedrock":"arn:aws:bedrock:us-east-1:123456789012:inference-profile/eu.amazon.nova-micro-v1:0"}"#,
            true,
        ),
        (
            r#"{"bedrock":"arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/a1b2c3"}"#,
            false,
        ),
    ] {
        let mut secret = secret::desired(None, &config(&[("OPENAI_API_KEY", OPENAI_KEY)])).unwrap();
        secret["model_mappings"] =
            serde_json::json!({"m": serde_json::from_str::<serde_json::Value>(mapping).unwrap()});
        secret["client_api_keys"] = serde_json::json!([
            {"name": "web-app", "sha256": "cd".repeat(32), "limits": {"usd_per_month": 50}}
        ]);
        let deployer = secret::unpriced_usd_limit(&secret);
        let function = ProxyConfig::from_json(&secret.to_string(), DEFAULT_OPENAI_BASE_URL);
        assert_eq!(
            (deployer.is_ok(), function.is_ok()),
            (priced, priced),
            "{mapping}: deployer {:?}, function {:?}",
            deployer.err().map(|e| e.to_string()),
            function.err().map(|e| e.to_string())
        );
    }
}

/// What a deploy could leave in `client_api_keys` that the function refuses: the deployer
/// refuses it before writing, or (a rotation onto a digest listed by hand) writes one
/// entry per name.
#[test]
fn client_entries_the_function_would_refuse_are_never_written() {
    let by_hand = |entries: serde_json::Value| {
        let mut secret = secret::desired(None, &config(&[("OPENAI_API_KEY", OPENAI_KEY)])).unwrap();
        secret["client_api_keys"] = entries;
        secret
    };
    let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
    let d = |key: &str| hex(&sha2::Sha256::digest(key.as_bytes()));
    for (entries, pairs) in [
        (
            serde_json::json!([{"name": "n".repeat(65), "sha256": d("k")}]),
            vec![("OPENAI_API_KEY", OPENAI_KEY)],
        ),
        (
            serde_json::json!([{"name": "web", "sha256": d("k"), "models": ["amazon.nova-lite-v1:0"]}]),
            vec![("MODEL_MAPPINGS", r#"{"x":"gpt-4o-mini"}"#)],
        ),
    ] {
        let existing = by_hand(entries);
        let refused = secret::desired(Some(&existing), &config(&pairs)).unwrap_err();
        assert!(
            refused
                .cause
                .contains("the proxy would refuse its configuration, so the secret was not written"),
            "{refused}"
        );
        let mut would_be = existing.clone();
        if let Some((_, mappings)) = pairs.iter().find(|(k, _)| *k == "MODEL_MAPPINGS") {
            would_be["model_mappings"] = serde_json::from_str(mappings).unwrap();
        }
        assert!(ProxyConfig::from_json(&would_be.to_string(), DEFAULT_OPENAI_BASE_URL).is_err());
    }
    // Mappings kept from the secret (no MODEL_MAPPINGS) that the proxy now refuses.
    let mut mixed = by_hand(serde_json::json!([]));
    mixed["model_mappings"] = serde_json::json!({"e": {"openai": "text-embedding-3-small", "bedrock": "amazon.titan-embed-text-v2:0"}});
    let refused = secret::desired(Some(&mixed), &config(&[("OPENAI_API_KEY", OPENAI_KEY)])).unwrap_err();
    assert!(
        refused
            .cause
            .contains("the secret's model_mappings, kept as MODEL_MAPPINGS is not set"),
        "{refused}"
    );
    assert!(ProxyConfig::from_json(&mixed.to_string(), DEFAULT_OPENAI_BASE_URL).is_err());

    // A rotation onto a digest listed bare by hand: one `web`, with the new key only.
    let (old, new) = ("web-old-key-0123456789", "web-new-key-0123456789");
    let existing = by_hand(
        serde_json::json!([{"name": "web", "sha256": d(old), "models": ["amazon.nova-lite-v1:0"]}, d(new)]),
    );
    for (line, limited) in [
        (format!("web={new};usd_per_month=50"), true),
        (format!("web={new}"), false),
    ] {
        let read = read_back(Some(&existing), &[("CLIENT_API_KEYS", &line)]);
        let [web] = read.client_api_keys.as_slice() else {
            panic!("{limited}: {:?}", read.client_api_keys)
        };
        assert_eq!(web.name.as_deref(), Some("web"));
        assert_eq!(hex(&web.digest), d(new));
        assert_eq!(web.limits.is_some(), limited);
        assert!(!web.may_use("amazon.nova-pro-v1:0"), "its models stay");
    }
}

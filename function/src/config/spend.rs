//! The spend part of the configuration: a client key's `"limits"` and the secret's
//! `"prices"`, both parsed here so every check of them has one home.
//!
//! Money is held as whole micro-dollars ([`MicroUsd`]) and prices as micro-dollars per
//! million tokens: the ledger adds and compares integers, so a budget never drifts by
//! floating-point rounding, and 1e-6 USD is far below any single request's cost.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::{InvalidConfig, field};

/// Whole millionths of a US dollar.
pub type MicroUsd = u64;

const MICROS_PER_USD: f64 = 1_000_000.0;

/// Built-in prices for the upstream models of the default mappings, in the `"prices"`
/// shape. docs/api.md lists them and where they come from.
pub const DEFAULT_PRICES_JSON: &str = include_str!("default_prices.json");

/// The largest budget or price accepted, in USD: far above any real one, and small
/// enough that micro-dollar sums of a month stay well inside `u64`.
const MAX_USD: f64 = 1_000_000_000.0;

/// What a client key may use per minute, day and month. Every field is optional; a key
/// whose `limits` set none has no [`Limits`] at all and never touches the usage table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Limits {
    pub requests_per_minute: Option<u64>,
    pub tokens_per_minute: Option<u64>,
    pub usd_per_day: Option<MicroUsd>,
    pub usd_per_month: Option<MicroUsd>,
}

impl Limits {
    /// The USD fields set, by their secret name: each needs a price for every model the
    /// key can reach.
    pub fn usd_fields(&self) -> impl Iterator<Item = &'static str> {
        [
            ("usd_per_day", self.usd_per_day),
            ("usd_per_month", self.usd_per_month),
        ]
        .into_iter()
        .filter_map(|(name, value)| value.map(|_| name))
    }

    fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// The price of one upstream model, in micro-dollars per million tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Price {
    pub input_per_million: MicroUsd,
    pub output_per_million: MicroUsd,
}

impl Price {
    /// What `input` and `output` tokens cost, rounded up to the next micro-dollar so
    /// that many small requests never add up to less than they cost.
    pub fn cost(&self, input: u64, output: u64) -> MicroUsd {
        let pico = u128::from(input) * u128::from(self.input_per_million)
            + u128::from(output) * u128::from(self.output_per_million);
        u64::try_from(pico.div_ceil(1_000_000)).unwrap_or(u64::MAX)
    }
}

/// Upstream model id -> its price.
pub type Prices = BTreeMap<String, Price>;

/// The geographic prefixes of Bedrock's cross-region inference profiles.
const PROFILE_PREFIXES: &[&str] = &["us.", "eu.", "apac.", "us-gov.", "jp.", "au.", "ca.", "global."];

/// The price of `model`: its own entry, else the entry of the foundation model it names
/// or routes to, which AWS charges at the same price: a Bedrock ARN of a foundation
/// model or of a system inference profile (`arn:aws:bedrock:…:foundation-model/<id>`,
/// `…:inference-profile/<id>`), and a cross-region profile such as
/// `us.amazon.nova-lite-v1:0`. An application inference profile's ARN names no model:
/// it is priced by its own entry only.
pub fn price_of<'a>(prices: &'a Prices, model: &str) -> Option<&'a Price> {
    prices.get(model).or_else(|| {
        let id = match model.strip_prefix("arn:") {
            Some(arn) => [":foundation-model/", ":inference-profile/"]
                .iter()
                .find_map(|kind| Some(&arn[arn.find(kind)? + kind.len()..]))?,
            None => model,
        };
        let base = PROFILE_PREFIXES
            .iter()
            .find_map(|p| id.strip_prefix(p))
            .unwrap_or(id);
        prices.get(base)
    })
}

/// [`DEFAULT_PRICES_JSON`], parsed once.
pub fn default_prices() -> Prices {
    static PARSED: std::sync::OnceLock<Prices> = std::sync::OnceLock::new();
    PARSED
        .get_or_init(|| {
            // The file is part of the source, checked by the tests below: it parses.
            let doc: Option<Map<String, Value>> = serde_json::from_str(DEFAULT_PRICES_JSON).ok();
            doc.and_then(|doc| price_table(&doc, "default_prices.json").ok())
                .unwrap_or_default()
        })
        .clone()
}

/// The secret's `"prices"` over the built-in ones: the secret's price of a model wins.
pub(super) fn prices(value: Option<&Value>) -> Result<Prices, InvalidConfig> {
    let mut prices = default_prices();
    match value {
        None | Some(Value::Null) => {}
        Some(Value::Object(map)) => prices.extend(price_table(map, "prices")?),
        Some(_) => {
            return Err(field(
                "prices",
                "must be an object of upstream model id -> {\"input_per_million\": n, \"output_per_million\": n}",
            ));
        }
    }
    Ok(prices)
}

fn price_table(map: &Map<String, Value>, at: &str) -> Result<Prices, InvalidConfig> {
    map.iter()
        .map(|(model, entry)| {
            let at = format!("{at}.{model}");
            let Value::Object(entry) = entry else {
                return Err(field(
                    at,
                    "must be an object {\"input_per_million\": n, \"output_per_million\": n} (USD per million tokens)",
                ));
            };
            if let Some(unknown) = entry
                .keys()
                .find(|k| !["input_per_million", "output_per_million"].contains(&k.as_str()))
            {
                return Err(field(
                    format!("{at}.{unknown}"),
                    "is not a price field: use input_per_million and output_per_million",
                ));
            }
            let usd = |name: &str| match entry.get(name) {
                None | Some(Value::Null) => Err(field(format!("{at}.{name}"), "is missing")),
                Some(v) => micro_usd(v, true).ok_or_else(|| {
                    field(
                        format!("{at}.{name}"),
                        "must be a number of USD per million tokens, 0 or more (e.g. 0.15)",
                    )
                }),
            };
            let price = Price {
                input_per_million: usd("input_per_million")?,
                output_per_million: usd("output_per_million")?,
            };
            Ok((model.clone(), price))
        })
        .collect()
}

/// A client key's `"limits"`; `None` when it sets no limit.
pub(super) fn limits(
    value: Option<&Value>,
    at: &dyn Fn(&str) -> String,
) -> Result<Option<Limits>, InvalidConfig> {
    let map = match value {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Object(map)) => map,
        Some(_) => {
            return Err(field(
                at(".limits"),
                "must be an object such as {\"requests_per_minute\": 60, \"usd_per_month\": 50}",
            ));
        }
    };
    const FIELDS: [&str; 4] = [
        "requests_per_minute",
        "tokens_per_minute",
        "usd_per_day",
        "usd_per_month",
    ];
    if let Some(unknown) = map.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(field(
            at(&format!(".limits.{unknown}")),
            "is not a limit: use requests_per_minute, tokens_per_minute, usd_per_day and usd_per_month",
        ));
    }
    let count = |name: &str| match map.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v.as_u64().filter(|n| *n >= 1).map(Some).ok_or_else(|| {
            field(
                at(&format!(".limits.{name}")),
                "must be a whole number of at least 1",
            )
        }),
    };
    let usd = |name: &str| match map.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => micro_usd(v, false).map(Some).ok_or_else(|| {
            field(
                at(&format!(".limits.{name}")),
                "must be a number of USD of at least 0.000001 (e.g. 50)",
            )
        }),
    };
    let limits = Limits {
        requests_per_minute: count("requests_per_minute")?,
        tokens_per_minute: count("tokens_per_minute")?,
        usd_per_day: usd("usd_per_day")?,
        usd_per_month: usd("usd_per_month")?,
    };
    Ok((!limits.is_empty()).then_some(limits))
}

/// A USD amount as micro-dollars; `zero_ok` for prices (embeddings write no output).
fn micro_usd(value: &Value, zero_ok: bool) -> Option<MicroUsd> {
    let usd = value
        .as_f64()
        .filter(|usd| usd.is_finite() && (0.0..=MAX_USD).contains(usd))?;
    // Within MAX_USD the product fits u64 exactly enough; the cast cannot saturate.
    let micros = (usd * MICROS_PER_USD).round() as u64;
    (zero_ok || micros >= 1).then_some(micros)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_prices_file_prices_every_default_upstream_model() {
        let prices = default_prices();
        let parsed: Map<String, Value> = serde_json::from_str(DEFAULT_PRICES_JSON).unwrap();
        assert_eq!(
            prices.len(),
            parsed.len(),
            "every entry of default_prices.json parses"
        );
        for upstream in super::super::default_mappings()
            .values()
            .flat_map(|r| r.upstreams())
        {
            assert!(prices.contains_key(upstream), "{upstream} has no built-in price");
        }
        assert_eq!(
            prices["gpt-4o-mini"],
            Price {
                input_per_million: 150_000,
                output_per_million: 600_000
            }
        );
    }

    #[test]
    fn an_inference_profile_is_priced_as_the_model_it_routes_to() {
        let prices = default_prices();
        assert_eq!(
            price_of(&prices, "us.amazon.nova-lite-v1:0"),
            prices.get("amazon.nova-lite-v1:0")
        );
        assert_eq!(
            price_of(&prices, "amazon.nova-pro-v1:0")
                .unwrap()
                .output_per_million,
            3_200_000
        );
        assert_eq!(price_of(&prices, "us.gpt-9"), None);
    }

    #[test]
    fn a_bedrock_arn_is_priced_as_the_foundation_model_it_names() {
        let prices = default_prices();
        let nova = prices.get("amazon.nova-lite-v1:0");
        for arn in [
            "arn:aws:bedrock:us-east-1::foundation-model/amazon.nova-lite-v1:0",
            "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.amazon.nova-lite-v1:0",
        ] {
            assert_eq!(price_of(&prices, arn), nova, "{arn}");
        }
        let app = "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/a1b2c3";
        assert_eq!(price_of(&prices, app), None);
    }

    #[test]
    fn costs_round_up_to_the_next_micro_dollar() {
        let price = Price {
            input_per_million: 150_000,
            output_per_million: 600_000,
        };
        assert_eq!(price.cost(1_000_000, 0), 150_000);
        assert_eq!(price.cost(0, 1_000_000), 600_000);
        // 10 input tokens cost 1.5 micro-dollars: charged 2.
        assert_eq!(price.cost(10, 0), 2);
        assert_eq!(price.cost(0, 0), 0);
        let dear = Price {
            input_per_million: 1_000_000,
            output_per_million: 1_000_000,
        };
        assert_eq!(dear.cost(u64::MAX, u64::MAX), u64::MAX, "saturates, never wraps");
    }
}

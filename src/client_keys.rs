//! `CLIENT_API_KEYS`, the one home of its grammar. One client key per line (blank lines
//! skipped, each line trimmed):
//!
//! ```text
//! [name=]key[;limit=value]...
//! ```
//!
//! - `name=key` names a key when `name` is letters, digits, `.`, `_`, `-`, `:` or `@`
//!   (the function's names, at most 64 characters); any other text before the first `=`
//!   belongs to the key, and so does an `=` followed by nothing but `=` (a base64 key's
//!   padding, as in `QUJD...WVo=`).
//! - Limits are the trailing `;limit=value` parts whose `limit` is written like a limit
//!   name (lowercase letters, digits and `_`): read from the end of the line, each such
//!   part is a limit, and the first part from the end that is not ends them. A key that
//!   itself ends in `;word=...` is therefore refused (as an unknown limit), never misread
//!   as a shorter key; keys from `openssl rand -hex 32` or base64 have no `;`.
//! - The limits are the function's (`client_api_keys[].limits` in the secret):
//!   `requests_per_minute` and `tokens_per_minute` (whole numbers of at least 1),
//!   `usd_per_day` and `usd_per_month` (USD, e.g. `50` or `0.25`). Only a named key may
//!   have limits: the usage table counts by name.
//!
//! The configuration takes the endpoint tests' key from it, the secret stores its
//! digests and limits, and the runner is told to mask its keys: all three read it here.
//! Errors name the line and the limit, never the key.

use std::fmt::Write as _;

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

/// Shorter keys are guessable; the function compares digests, so length is all we check.
pub const MIN_LEN: usize = 16;

/// The limits a client key may carry, by the names the secret gives them.
pub const LIMIT_NAMES: [&str; 4] = [
    "requests_per_minute",
    "tokens_per_minute",
    "usd_per_day",
    "usd_per_month",
];

/// The largest budget accepted, in USD: the function's own bound.
const MAX_USD: u64 = 1_000_000_000;

/// A client key's limits. USD amounts are whole micro-dollars, as the function and its
/// usage table hold them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Limits {
    pub requests_per_minute: Option<u64>,
    pub tokens_per_minute: Option<u64>,
    pub usd_per_day: Option<u64>,
    pub usd_per_month: Option<u64>,
}

impl Limits {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// The secret's `"limits"` object.
    pub fn to_json(&self) -> Value {
        let mut map = Map::new();
        for (name, value) in [
            ("requests_per_minute", self.requests_per_minute.map(Value::from)),
            ("tokens_per_minute", self.tokens_per_minute.map(Value::from)),
            ("usd_per_day", self.usd_per_day.map(usd_json)),
            ("usd_per_month", self.usd_per_month.map(usd_json)),
        ] {
            if let Some(value) = value {
                map.insert(name.into(), value);
            }
        }
        Value::Object(map)
    }

    /// A secret entry's `"limits"` as far as it reads (the function checks it fully).
    pub fn from_json(value: Option<&Value>) -> Self {
        let get = |name: &str| value.and_then(|v| v.get(name));
        let count = |name: &str| get(name).and_then(Value::as_u64);
        let usd = |name: &str| {
            get(name)
                .and_then(Value::as_f64)
                .filter(|usd| usd.is_finite() && *usd >= 0.0)
                // Within MAX_USD the cast cannot saturate.
                .map(|usd| (usd * 1_000_000.0).round() as u64)
        };
        Self {
            requests_per_minute: count("requests_per_minute"),
            tokens_per_minute: count("tokens_per_minute"),
            usd_per_day: usd("usd_per_day"),
            usd_per_month: usd("usd_per_month"),
        }
    }

    /// The USD limits set, by name: each needs a price for every model the key reaches.
    pub fn usd_names(&self) -> impl Iterator<Item = &'static str> {
        [
            ("usd_per_day", self.usd_per_day),
            ("usd_per_month", self.usd_per_month),
        ]
        .into_iter()
        .filter_map(|(name, value)| value.map(|_| name))
    }
}

/// Micro-dollars as the secret's JSON number of USD.
fn usd_json(micros: u64) -> Value {
    if micros.is_multiple_of(1_000_000) {
        Value::from(micros / 1_000_000)
    } else {
        // Exact enough: the function rounds back to whole micro-dollars.
        json!(micros as f64 / 1_000_000.0)
    }
}

/// Micro-dollars for people: `$50.00`, or to the micro-dollar when not whole cents.
pub fn usd(micros: u64) -> String {
    let mut text = format!("${}.", micros / 1_000_000);
    if micros.is_multiple_of(10_000) {
        let _ = write!(text, "{:02}", micros % 1_000_000 / 10_000);
    } else {
        let _ = write!(text, "{:06}", micros % 1_000_000);
    }
    text
}

/// A client as the secret lists it (`client_api_keys`), for the report and `usage`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// Its name, or `key N` (its place in the list, from 1) for a bare digest: never the
    /// key or its digest.
    pub label: String,
    /// The name the usage table counts it by; `None` for a bare digest, which can have
    /// no limits and is never counted.
    pub name: Option<String>,
    pub limits: Limits,
}

/// The clients of a secret's JSON, in its order.
pub fn listed(secret: &Value) -> Vec<Listed> {
    let entries = secret.get("client_api_keys").and_then(Value::as_array);
    entries
        .into_iter()
        .flatten()
        .enumerate()
        .map(|(i, entry)| {
            let name = entry.get("name").and_then(Value::as_str).map(str::to_owned);
            Listed {
                label: name.clone().unwrap_or_else(|| format!("key {}", i + 1)),
                name,
                limits: Limits::from_json(entry.get("limits")),
            }
        })
        .collect()
}

/// One non-blank line, trimmed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Line<'a> {
    /// The whole line as written (`name=key;limit=value`, or the key).
    pub text: &'a str,
    pub name: Option<&'a str>,
    pub key: &'a str,
    /// The trailing `;limit=value` parts, unchecked (`""` when none).
    pub limits: &'a str,
}

/// A key as the secret stores it: its SHA-256 hex digest, its name when it has one, and
/// its limits. The key itself is dropped here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientKey {
    pub name: Option<String>,
    pub sha256: String,
    pub limits: Limits,
}

/// The lines of `raw`, unchecked: enough to mask them or pick the first.
pub fn lines(raw: &str) -> impl Iterator<Item = Line<'_>> {
    raw.lines().map(str::trim).filter(|l| !l.is_empty()).map(|text| {
        let (named, limits) = split_limits(text);
        let (name, key) = match named.split_once('=') {
            Some((name, key)) if is_name(name) && !key.bytes().all(|b| b == b'=') => (Some(name), key),
            _ => (None, named),
        };
        Line {
            text,
            name,
            key,
            limits,
        }
    })
}

/// `text` as `[name=]key` and its trailing limit parts (with their leading `;`).
fn split_limits(text: &str) -> (&str, &str) {
    let mut end = text.len();
    while let Some(at) = text[..end].rfind(';') {
        let part = &text[at + 1..end];
        let limit_shaped = part
            .split_once('=')
            .is_some_and(|(name, _)| is_limit_shaped(name));
        if !limit_shaped {
            break;
        }
        end = at;
    }
    (&text[..end], &text[end..])
}

fn is_limit_shaped(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// The first key (without its name and limits), for the endpoint tests.
pub fn first_key(raw: &str) -> Option<&str> {
    lines(raw).next().map(|line| line.key)
}

/// The keys, checked and digested, with their limits. A problem names the line and the
/// limit, never the key.
pub fn digests(raw: &str) -> Result<Vec<ClientKey>, String> {
    let keys = raw
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .zip(lines(raw))
        .map(|((i, _), line)| {
            let n = i + 1;
            if let Some(name) = line.name
                && name.len() > MAX_NAME_LEN
            {
                return Err(format!(
                    "CLIENT_API_KEYS line {n}: a client name is at most {MAX_NAME_LEN} characters (it becomes a log field and a metric dimension): shorten it"
                ));
            }
            if line.key.len() < MIN_LEN || !line.key.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(format!(
                    "CLIENT_API_KEYS line {n}: a client key must be at least {MIN_LEN} printable characters without spaces (e.g. the output of `openssl rand -hex 32`, or `name=<key>` to name it)"
                ));
            }
            let limits = parse_limits(line.limits, n)?;
            if !limits.is_empty() && line.name.is_none() {
                return Err(format!(
                    "CLIENT_API_KEYS line {n}: limits need a named key, since the proxy counts usage by name: write `name=<key>;<limits>`, e.g. `web-app=<key>;usd_per_month=50` (a name is up to 64 letters, digits, `.`, `_`, `-`, `:` or `@`)"
                ));
            }
            Ok((n, ClientKey {
                name: line.name.map(str::to_owned),
                sha256: sha256_hex(line.key),
                limits,
            }))
        })
        .collect::<Result<Vec<_>, String>>()?;
    // One name, one key; one key, one client: a second line would silently win.
    for (j, (n, key)) in keys.iter().enumerate() {
        for (m, earlier) in &keys[..j] {
            if earlier.sha256 == key.sha256 {
                return Err(format!(
                    "CLIENT_API_KEYS line {n}: the same key as line {m}: give each client its own key"
                ));
            }
            if key.name.is_some() && earlier.name == key.name {
                return Err(format!(
                    "CLIENT_API_KEYS lines {m} and {n} name the same client: give each client one line (a rotated key replaces the old one's line)"
                ));
            }
        }
    }
    Ok(keys.into_iter().map(|(_, key)| key).collect())
}

/// The `;limit=value` parts of a line (already limit-shaped by [`split_limits`]).
fn parse_limits(parts: &str, n: usize) -> Result<Limits, String> {
    let mut limits = Limits::default();
    for part in parts.split(';').filter(|p| !p.is_empty()) {
        let (name, value) = part.split_once('=').unwrap_or((part, ""));
        let known = LIMIT_NAMES.join(", ");
        let Some(name) = LIMIT_NAMES.iter().copied().find(|known| *known == name) else {
            // The unknown name is not shown: it could be the end of a key.
            return Err(format!(
                "CLIENT_API_KEYS line {n}: a `;name=value` part at the end of the line names no limit; the limits are {known} (e.g. `web-app=<key>;usd_per_month=50`). A key may not end in `;word=...`"
            ));
        };
        let parsed = match name {
            "requests_per_minute" | "tokens_per_minute" => value
                .parse::<u64>()
                .ok()
                .filter(|n| *n >= 1 && value.bytes().all(|b| b.is_ascii_digit())),
            _ => micro_usd(value),
        };
        let Some(parsed) = parsed else {
            let wanted = if name.starts_with("usd_") {
                format!(
                    "a number of USD from 0.000001 to {MAX_USD}, digits and at most one `.` (e.g. {name}=50 or {name}=0.25)"
                )
            } else {
                format!("a whole number of at least 1 (e.g. {name}=60)")
            };
            return Err(format!("CLIENT_API_KEYS line {n}: limit {name} must be {wanted}"));
        };
        let slot = match name {
            "requests_per_minute" => &mut limits.requests_per_minute,
            "tokens_per_minute" => &mut limits.tokens_per_minute,
            "usd_per_day" => &mut limits.usd_per_day,
            _ => &mut limits.usd_per_month,
        };
        if slot.replace(parsed).is_some() {
            return Err(format!(
                "CLIENT_API_KEYS line {n}: limit {name} is set twice: keep one"
            ));
        }
    }
    Ok(limits)
}

/// `50`, `0.25`: whole micro-dollars, at least one, at most [`MAX_USD`].
fn micro_usd(text: &str) -> Option<u64> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || !digits(whole) || !digits(fraction) || text.ends_with('.') || fraction.len() > 6 {
        return None;
    }
    let whole: u64 = whole.parse().ok().filter(|w| *w <= MAX_USD)?;
    let fraction: u64 = format!("{fraction:0<6}").parse().ok()?;
    let micros = whole * 1_000_000 + fraction;
    (1..=MAX_USD * 1_000_000).contains(&micros).then_some(micros)
}

fn sha256_hex(key: &str) -> String {
    Sha256::digest(key.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The longest client name the function takes (a log field, a metric dimension value).
pub const MAX_NAME_LEN: usize = 64;

/// Written like a client name: the function's characters (its length is checked apart,
/// so that a name too long is refused rather than read as part of the key).
pub fn is_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b':' | b'@'))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "0123456789abcdef0123";

    fn key(name: Option<&str>, key: &str, limits: Limits) -> ClientKey {
        ClientKey {
            name: name.map(str::to_owned),
            sha256: sha256_hex(key),
            limits,
        }
    }

    #[test]
    fn keys_are_digested_one_per_line_and_name_equals_key_names_one() {
        let keys =
            digests("web-app=0123456789abcdef0123\n\n  plain-key-0123456789  \nab+c/d0123456789xyz==\n")
                .unwrap();
        assert_eq!(
            keys,
            [
                key(Some("web-app"), KEY, Limits::default()),
                key(None, "plain-key-0123456789", Limits::default()),
                // Not a name before the first `=`: the whole line is the key.
                key(None, "ab+c/d0123456789xyz==", Limits::default()),
            ]
        );
        let err = digests("fine-key-0123456789\n\nweb=short").unwrap_err();
        assert!(
            err.starts_with("CLIENT_API_KEYS line 3: a client key must be at least 16"),
            "{err}"
        );
        assert!(!err.contains("short"), "{err}");
        assert_eq!(
            first_key("\n web-app=0123456789abcdef0123;usd_per_day=5\nother-key-0123456789"),
            Some(KEY)
        );
    }

    /// `openssl rand -base64 32` ends in `=`; about a quarter of its keys hold no `+` or
    /// `/`, and so look like `name=` with an empty key.
    #[test]
    fn a_base64_keys_padding_is_part_of_the_key_and_names_take_the_functions_characters() {
        let padded = "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo=";
        let named = format!("web={padded}");
        let twice = "QUJDREVGR0hJSktMTU5PUFFSU1RVVlc==";
        for (text, name, secret) in [
            (padded, None, padded),
            (twice, None, twice),
            (&named, Some("web"), padded),
        ] {
            let found = digests(text).unwrap();
            assert_eq!(found, [key(name, secret, Limits::default())], "{text}");
        }
        let [key] = digests(&format!("alice@corp:ops={KEY}"))
            .unwrap()
            .try_into()
            .unwrap();
        assert_eq!(key.name.as_deref(), Some("alice@corp:ops"));
    }

    #[test]
    fn trailing_limit_parts_set_limits_in_micro_dollars() {
        let keys = digests(&format!(
            "web-app={KEY};usd_per_month=50;requests_per_minute=60\nbatch={KEY}x;tokens_per_minute=100000;usd_per_day=0.25"
        ))
        .unwrap();
        assert_eq!(
            keys[0].limits,
            Limits {
                requests_per_minute: Some(60),
                usd_per_month: Some(50_000_000),
                ..Limits::default()
            }
        );
        assert_eq!(
            keys[0].sha256,
            sha256_hex(KEY),
            "the limits are not part of the key"
        );
        assert_eq!(
            keys[1].limits,
            Limits {
                tokens_per_minute: Some(100_000),
                usd_per_day: Some(250_000),
                ..Limits::default()
            }
        );
        assert_eq!(
            keys[1].limits.to_json(),
            json!({"tokens_per_minute": 100000, "usd_per_day": 0.25})
        );
        assert_eq!(
            keys[0].limits.to_json(),
            json!({"requests_per_minute": 60, "usd_per_month": 50})
        );
        assert_eq!(Limits::from_json(Some(&keys[1].limits.to_json())), keys[1].limits);
    }

    #[test]
    fn a_semicolon_inside_a_key_is_part_of_the_key() {
        // Not `;word=`: the key's own. Only trailing limit-shaped parts are limits.
        let text = "web-app=abc;DEF=0123456789abcdef;x;usd_per_day=1";
        let line = lines(text).next().unwrap();
        assert_eq!(line.key, "abc;DEF=0123456789abcdef;x");
        assert_eq!(line.limits, ";usd_per_day=1");
        assert_eq!(
            digests(text).unwrap()[0].sha256,
            sha256_hex("abc;DEF=0123456789abcdef;x")
        );
    }

    #[test]
    fn each_limit_error_names_the_line_and_the_limit_never_the_key() {
        let cases = [
            (
                format!("web-app={KEY};usd_per_mnth=50"),
                "CLIENT_API_KEYS line 1: a `;name=value` part at the end of the line names no limit; the limits are requests_per_minute, tokens_per_minute, usd_per_day, usd_per_month",
            ),
            (
                format!("a={KEY}1\nweb-app={KEY};usd_per_day=lots"),
                "CLIENT_API_KEYS line 2: limit usd_per_day must be a number of USD from 0.000001",
            ),
            (
                format!("web-app={KEY};usd_per_month=-5"),
                "CLIENT_API_KEYS line 1: limit usd_per_month must be a number of USD",
            ),
            (
                format!("web-app={KEY};usd_per_month=0"),
                "CLIENT_API_KEYS line 1: limit usd_per_month must be a number of USD",
            ),
            (
                format!("web-app={KEY};requests_per_minute=1.5"),
                "CLIENT_API_KEYS line 1: limit requests_per_minute must be a whole number of at least 1",
            ),
            (
                format!("web-app={KEY};tokens_per_minute=0"),
                "CLIENT_API_KEYS line 1: limit tokens_per_minute must be a whole number of at least 1",
            ),
            (
                format!("web-app={KEY};usd_per_day=5;usd_per_day=6"),
                "CLIENT_API_KEYS line 1: limit usd_per_day is set twice",
            ),
            (
                format!("{KEY};usd_per_day=5"),
                "CLIENT_API_KEYS line 1: limits need a named key",
            ),
            (
                format!("{}={KEY}", "n".repeat(65)),
                "CLIENT_API_KEYS line 1: a client name is at most 64 characters",
            ),
            (
                format!("web={KEY}\nweb={KEY}9"),
                "CLIENT_API_KEYS lines 1 and 2 name the same client",
            ),
            (
                format!("a={KEY}\n\nb={KEY};usd_per_month=5"),
                "CLIENT_API_KEYS line 3: the same key as line 1",
            ),
        ];
        for (text, expected) in cases {
            let err = digests(&text).unwrap_err();
            assert!(err.starts_with(expected), "{text}: {err}");
            assert!(!err.contains(KEY), "{err}");
            assert!(
                !err.contains("mnth"),
                "an unknown name may be the key's end: {err}"
            );
        }
    }

    #[test]
    fn listed_clients_are_named_or_numbered_never_by_digest() {
        let secret = json!({"client_api_keys": [
            "ab".repeat(32),
            {"name": "web-app", "sha256": "cd".repeat(32), "limits": {"usd_per_month": 50}},
        ]});
        let clients = listed(&secret);
        assert_eq!(clients[0].label, "key 1");
        assert_eq!(
            (clients[0].name.as_deref(), clients[0].limits.is_empty()),
            (None, true)
        );
        assert_eq!(clients[1].label, "web-app");
        assert_eq!(clients[1].limits.usd_per_month, Some(50_000_000));
        assert!(listed(&json!({})).is_empty());
    }

    #[test]
    fn usd_reads_as_people_write_money() {
        assert_eq!(usd(50_000_000), "$50.00");
        assert_eq!(usd(250_000), "$0.25");
        assert_eq!(usd(1_234_567), "$1.234567");
        assert_eq!(micro_usd("0.000001"), Some(1));
        assert_eq!(micro_usd("0.0000001"), None);
        assert_eq!(micro_usd("1e3"), None);
        assert_eq!(micro_usd("5."), None);
    }

    #[test]
    fn a_line_gives_its_whole_text_and_its_key_to_mask() {
        let found: Vec<_> =
            lines(" web-app=0123456789abcdef0123;usd_per_day=5 \nab+c/d0123456789xyz==").collect();
        assert_eq!(
            found,
            [
                Line {
                    text: "web-app=0123456789abcdef0123;usd_per_day=5",
                    name: Some("web-app"),
                    key: "0123456789abcdef0123",
                    limits: ";usd_per_day=5",
                },
                Line {
                    text: "ab+c/d0123456789xyz==",
                    name: None,
                    key: "ab+c/d0123456789xyz==",
                    limits: "",
                },
            ]
        );
    }
}

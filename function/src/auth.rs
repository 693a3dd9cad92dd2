//! Client authentication: `Authorization: Bearer <key>` (what OpenAI SDKs send) or
//! `x-api-key: <key>`, checked against SHA-256 digests in constant time.

use http::HeaderMap;
use sha2::{Digest, Sha256};
use subtle::{ConditionallySelectable, ConstantTimeEq};

use std::sync::Arc;

use crate::config::{ClientKey, ProxyConfig};

/// The authenticated client of a request, put into its extensions by the
/// authentication layer (absent when authentication is off: every model is allowed).
#[derive(Clone)]
pub struct Client {
    config: Arc<ProxyConfig>,
    index: usize,
}

impl Client {
    pub fn key(&self) -> &ClientKey {
        &self.config.client_api_keys[self.index]
    }
}

/// Whether the request's client (if authentication named one) may use `model`.
pub fn may_use(client: Option<&Client>, model: &str) -> bool {
    client.is_none_or(|c| c.key().may_use(model))
}

/// The client whose key `key` is, from `config`'s keys.
pub fn client(key: &str, config: &Arc<ProxyConfig>) -> Option<Client> {
    let found = authorise(key, &config.client_api_keys)?;
    let index = config
        .client_api_keys
        .iter()
        .position(|k| std::ptr::eq(k, found))?;
    Some(Client {
        config: config.clone(),
        index,
    })
}

/// The key the client presented, if any.
pub fn presented_key(headers: &HeaderMap) -> Option<&str> {
    let bearer = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            // The scheme is case-insensitive (RFC 9110, 11.1): `BEARER` is `Bearer`.
            let (scheme, key) = v.trim_start().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then_some(key)
        })
        .map(str::trim);
    bearer
        .or_else(|| {
            headers
                .get("x-api-key")
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
        })
        .filter(|k| !k.is_empty())
}

/// The configured key `key` hashes to, if any. Every digest is compared, in constant
/// time, and the match is selected without branching, so timing tells nothing about
/// which (or whether a prefix) matched.
pub fn authorise<'a>(key: &str, keys: &'a [ClientKey]) -> Option<&'a ClientKey> {
    let hash: [u8; 32] = Sha256::digest(key.as_bytes()).into();
    let mut found = subtle::Choice::from(0);
    let mut index = 0u64;
    for (i, candidate) in keys.iter().enumerate() {
        let matches = candidate.digest.ct_eq(&hash);
        index.conditional_assign(&(i as u64), matches);
        found |= matches;
    }
    bool::from(found).then(|| &keys[index as usize])
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn client(key: &str, name: &str) -> ClientKey {
        ClientKey {
            name: Some(name.to_owned()),
            digest: Sha256::digest(key.as_bytes()).into(),
            models: None,
            max_n: None,
            max_tokens: None,
            limits: None,
        }
    }

    #[test]
    fn bearer_and_x_api_key_are_both_accepted() {
        let mut headers = HeaderMap::new();
        headers.insert("authorization", HeaderValue::from_static("Bearer client-1"));
        assert_eq!(presented_key(&headers), Some("client-1"));
        for scheme in ["bearer", "BEARER", "bEaReR"] {
            let mut headers = HeaderMap::new();
            headers.insert(
                "authorization",
                HeaderValue::from_str(&format!("{scheme} client-3")).unwrap(),
            );
            assert_eq!(presented_key(&headers), Some("client-3"), "{scheme}");
        }
        let mut basic = HeaderMap::new();
        basic.insert("authorization", HeaderValue::from_static("Basic Y2xpZW50"));
        assert_eq!(presented_key(&basic), None);
        let mut headers = HeaderMap::new();
        headers.insert("x-api-key", HeaderValue::from_static("client-2"));
        assert_eq!(presented_key(&headers), Some("client-2"));
        assert_eq!(presented_key(&HeaderMap::new()), None);
    }

    #[test]
    fn only_a_key_whose_digest_is_listed_passes_and_is_told_apart() {
        let keys = [client("alpha", "a"), client("beta", "b"), client("gamma", "c")];
        let name = |key: &str| authorise(key, &keys).and_then(|k| k.name.as_deref());
        assert_eq!(
            (name("alpha"), name("beta"), name("gamma")),
            (Some("a"), Some("b"), Some("c"))
        );
        assert_eq!(name("delta"), None);
        assert_eq!(name("bet"), None);
        assert!(authorise("beta", &[]).is_none());
    }
}

//! Client authentication: `Authorization: Bearer <key>` (what OpenAI SDKs send) or
//! `x-api-key: <key>`, checked against SHA-256 digests in constant time.

use axum::http::HeaderMap;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The key the client presented, if any.
pub fn presented_key(headers: &HeaderMap) -> Option<&str> {
    let bearer = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
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

/// True when `key` hashes to one of `digests`. Every digest is compared, in constant
/// time, so timing tells nothing about which (or whether a prefix) matched.
pub fn is_authorised(key: &str, digests: &[[u8; 32]]) -> bool {
    let hash: [u8; 32] = Sha256::digest(key.as_bytes()).into();
    digests
        .iter()
        .fold(subtle::Choice::from(0), |found, d| found | d.ct_eq(&hash))
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn digest(key: &str) -> [u8; 32] {
        Sha256::digest(key.as_bytes()).into()
    }

    #[test]
    fn bearer_and_x_api_key_are_both_accepted() {
        let mut headers = HeaderMap::new();
        headers.insert("authorization", HeaderValue::from_static("Bearer client-1"));
        assert_eq!(presented_key(&headers), Some("client-1"));
        let mut headers = HeaderMap::new();
        headers.insert("x-api-key", HeaderValue::from_static("client-2"));
        assert_eq!(presented_key(&headers), Some("client-2"));
        assert_eq!(presented_key(&HeaderMap::new()), None);
    }

    #[test]
    fn only_a_key_whose_digest_is_listed_passes() {
        let digests = [digest("alpha"), digest("beta")];
        assert!(is_authorised("beta", &digests));
        assert!(!is_authorised("gamma", &digests));
        assert!(!is_authorised("bet", &digests));
        assert!(!is_authorised("beta", &[]));
    }
}

//! `CLIENT_API_KEYS`, the one home of its grammar: one client key per line (blank lines
//! skipped, each line trimmed), `name=key` naming one when `name` is letters, digits,
//! `.`, `_` or `-`; any other line is a key as it stands (base64 keys end in `=`).
//!
//! The configuration takes the endpoint tests' key from it, the secret stores its
//! digests, and the runner is told to mask its keys: all three read it here.

use sha2::{Digest, Sha256};

/// Shorter keys are guessable; the function compares digests, so length is all we check.
pub const MIN_LEN: usize = 16;

/// One non-blank line, trimmed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Line<'a> {
    /// The whole line as written (`name=key`, or the key).
    pub text: &'a str,
    pub name: Option<&'a str>,
    pub key: &'a str,
}

/// A key as the secret stores it: its SHA-256 hex digest, and its name when it has one.
/// The key itself is dropped here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientKey {
    pub name: Option<String>,
    pub sha256: String,
}

/// The lines of `raw`, unchecked: enough to mask them or pick the first.
pub fn lines(raw: &str) -> impl Iterator<Item = Line<'_>> {
    raw.lines().map(str::trim).filter(|l| !l.is_empty()).map(|text| {
        let (name, key) = match text.split_once('=') {
            Some((name, key)) if is_name(name) => (Some(name), key),
            _ => (None, text),
        };
        Line { text, name, key }
    })
}

/// The first key (without its name), for the endpoint tests.
pub fn first_key(raw: &str) -> Option<&str> {
    lines(raw).next().map(|line| line.key)
}

/// The keys, checked and digested. A problem names the line, never its text.
pub fn digests(raw: &str) -> Result<Vec<ClientKey>, String> {
    raw.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .zip(lines(raw))
        .map(|((i, _), line)| {
            if line.key.len() < MIN_LEN || !line.key.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(format!(
                    "CLIENT_API_KEYS line {}: a client key must be at least {MIN_LEN} printable characters without spaces (e.g. the output of `openssl rand -hex 32`, or `name=<key>` to name it)",
                    i + 1
                ));
            }
            Ok(ClientKey {
                name: line.name.map(str::to_owned),
                sha256: sha256_hex(line.key),
            })
        })
        .collect()
}

fn sha256_hex(key: &str) -> String {
    Sha256::digest(key.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn is_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_digested_one_per_line_and_name_equals_key_names_one() {
        let keys =
            digests("web-app=0123456789abcdef0123\n\n  plain-key-0123456789  \nab+c/d0123456789xyz==\n")
                .unwrap();
        assert_eq!(
            keys,
            [
                ClientKey {
                    name: Some("web-app".into()),
                    sha256: sha256_hex("0123456789abcdef0123")
                },
                ClientKey {
                    name: None,
                    sha256: sha256_hex("plain-key-0123456789")
                },
                // Not a name before the first `=`: the whole line is the key.
                ClientKey {
                    name: None,
                    sha256: sha256_hex("ab+c/d0123456789xyz==")
                },
            ]
        );
        let err = digests("fine-key-0123456789\n\nweb=short").unwrap_err();
        assert!(
            err.starts_with("CLIENT_API_KEYS line 3: a client key must be at least 16"),
            "{err}"
        );
        assert!(!err.contains("short"), "{err}");
        assert_eq!(
            first_key("\n web-app=0123456789abcdef0123\nother-key-0123456789"),
            Some("0123456789abcdef0123")
        );
    }

    #[test]
    fn a_line_gives_its_whole_text_and_its_key_to_mask() {
        let found: Vec<_> = lines(" web-app=0123456789abcdef0123 \nab+c/d0123456789xyz==").collect();
        assert_eq!(
            found,
            [
                Line {
                    text: "web-app=0123456789abcdef0123",
                    name: Some("web-app"),
                    key: "0123456789abcdef0123"
                },
                Line {
                    text: "ab+c/d0123456789xyz==",
                    name: None,
                    key: "ab+c/d0123456789xyz=="
                },
            ]
        );
    }
}

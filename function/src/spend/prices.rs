//! What a request may cost at most, before it is sent: the worst case the ledger
//! reserves, and the real cost once the usage is known.
//!
//! The input estimate is the request body's size in bytes. A text token is at least
//! one byte of UTF-8 and JSON only adds bytes (quotes, keys, escapes), so the estimate
//! is never below the real input of a text request. Images, audio and files are the
//! exception: a URL or file id of a few bytes can stand for thousands of tokens, which
//! the proxy cannot see; docs/api.md ("Limits and prices") documents that error.

use crate::config::{MicroUsd, Price};
use crate::observe::Usage;

/// The most output tokens a request may get when it names no limit, for models whose
/// maximum is not listed in [`output_cap`]: as large as any current model's, so the
/// reservation stays a worst case.
pub const DEFAULT_OUTPUT_CAP: u64 = 128_000;

/// Choices (`n`) beyond this are refused by OpenAI; the reservation never multiplies
/// by more.
const MAX_CHOICES: u64 = 128;

/// The most output tokens `model` writes per choice, from OpenAI's model pages (and
/// Bedrock's embedding models, which write none).
pub fn output_cap(model: &str) -> u64 {
    if crate::config::titan_version(model).is_some() {
        return 0;
    }
    const CAPS: [(&str, u64); 7] = [
        ("text-embedding-", 0),
        ("gpt-4o", 16_384),
        ("gpt-4.1", 32_768),
        ("gpt-3.5", 4_096),
        ("o1", 100_000),
        ("o3", 100_000),
        ("o4", 100_000),
    ];
    CAPS.iter()
        .find(|(prefix, _)| model.starts_with(prefix))
        .map_or(DEFAULT_OUTPUT_CAP, |(_, cap)| *cap)
}

/// Tokens a request uses or may use, and their cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Amount {
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// What they cost; 0 when the model has no price (then the key has no USD limit:
    /// the configuration refuses that combination).
    pub usd: MicroUsd,
}

impl Amount {
    pub fn new(input_tokens: u64, output_tokens: u64, price: Option<&Price>) -> Self {
        Self {
            input_tokens,
            output_tokens,
            usd: price.map_or(0, |p| p.cost(input_tokens, output_tokens)),
        }
    }

    pub fn tokens(&self) -> u64 {
        self.input_tokens.saturating_add(self.output_tokens)
    }
}

/// The worst case of a request: `body_len` bytes in, and `asked` output tokens per
/// choice (`max_tokens` and its kin) or the model's cap, times `choices`.
pub fn worst_case(
    body_len: usize,
    asked: Option<u64>,
    choices: Option<u64>,
    upstream_model: &str,
    price: Option<&Price>,
) -> Amount {
    let cap = output_cap(upstream_model);
    let per_choice = if cap == 0 { 0 } else { asked.unwrap_or(cap) };
    let choices = choices.unwrap_or(1).clamp(1, MAX_CHOICES);
    Amount::new(
        u64::try_from(body_len).unwrap_or(u64::MAX),
        per_choice.saturating_mul(choices),
        price,
    )
}

/// What the upstream reported using; `None` when the usage says nothing about input.
pub fn used(usage: &Usage, price: Option<&Price>) -> Option<Amount> {
    let input = usage.prompt_tokens.or(usage.input_tokens)?;
    let output = usage.completion_tokens.or(usage.output_tokens).unwrap_or(0);
    Some(Amount::new(input, output, price))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINI: Price = Price {
        input_per_million: 150_000,
        output_per_million: 600_000,
    };

    #[test]
    fn the_worst_case_is_the_body_in_and_the_asked_or_capped_output() {
        let asked = worst_case(1000, Some(200), None, "gpt-4o-mini", Some(&MINI));
        assert_eq!((asked.input_tokens, asked.output_tokens), (1000, 200));
        assert_eq!(asked.usd, MINI.cost(1000, 200));
        let capped = worst_case(1000, None, Some(3), "gpt-4o-mini", Some(&MINI));
        assert_eq!(
            capped.output_tokens,
            3 * 16_384,
            "every choice may write the model's maximum"
        );
        let unknown = worst_case(10, None, None, "new-model", None);
        assert_eq!((unknown.output_tokens, unknown.usd), (DEFAULT_OUTPUT_CAP, 0));
        for model in [
            "text-embedding-3-small",
            "amazon.titan-embed-text-v2:0",
            "amazon.titan-embed-text-v1",
        ] {
            let embedding = worst_case(10, None, None, model, None);
            assert_eq!(embedding.output_tokens, 0, "{model}: embeddings write no tokens");
        }
    }

    #[test]
    fn usage_of_both_dialects_is_read() {
        let chat = Usage {
            prompt_tokens: Some(12),
            completion_tokens: Some(5),
            ..Usage::default()
        };
        assert_eq!(used(&chat, Some(&MINI)), Some(Amount::new(12, 5, Some(&MINI))));
        let responses = Usage {
            input_tokens: Some(7),
            output_tokens: Some(3),
            ..Usage::default()
        };
        assert_eq!(used(&responses, None).map(|a| a.tokens()), Some(10));
        assert_eq!(used(&Usage::default(), None), None);
    }
}

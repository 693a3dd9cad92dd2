//! Assertions the integration tests share.
#![allow(dead_code)] // each test binary uses its own subset

/// `text` contains every one of `needles`; the assertion shows the whole text.
#[track_caller]
pub fn contains_all(text: &str, needles: &[&str]) {
    for needle in needles {
        assert!(text.contains(needle), "expected {needle:?} in:\n{text}");
    }
}

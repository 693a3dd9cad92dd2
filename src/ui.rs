//! What the deployer prints while it works. In GitHub Actions it speaks the runner's
//! workflow commands (`::group::`, `::error::`, `::add-mask::`); elsewhere it prints plain
//! `▹▹▹▹▹` lines, readable in any CI log or terminal.

use std::io::Write;

#[derive(Debug, Clone, Copy)]
pub struct Ui {
    github: bool,
}

impl Ui {
    /// `github`: inside GitHub Actions ([`crate::runner::Runner::actions`]).
    pub fn new(github: bool) -> Self {
        Self { github }
    }

    pub fn plain() -> Self {
        Self { github: false }
    }

    /// Tells the runner to hide `value` in every later log line. Only inside Actions:
    /// anywhere else the command itself would print the secret.
    pub fn mask(&self, value: &str) {
        if self.github && !value.is_empty() {
            self.line(&mask_command(value));
        }
    }

    pub fn phase(&self, title: &str) {
        self.line(&format!("▹▹▹▹▹ {title}"));
    }

    pub fn step(&self, message: &str) {
        self.line(&format!("      {message}"));
    }

    pub fn warn(&self, message: &str) {
        if self.github {
            self.line(&format!("::warning::{}", escape(message)));
        } else {
            self.line(&format!("warning: {message}"));
        }
    }

    /// A notice annotation on the run's page (a plain line elsewhere).
    pub fn notice(&self, message: &str) {
        if self.github {
            self.line(&format!("::notice::{}", escape(message)));
        } else {
            self.line(&format!("note: {message}"));
        }
    }

    /// An error annotation on the run's page; plain logs get the error in the report's
    /// short form instead, so it is printed once.
    pub fn annotate_error(&self, title: &str, message: &str) {
        if self.github {
            self.line(&format!("::error title={}::{}", escape(title), escape(message)));
        }
    }

    /// Opens a collapsible group in Actions; `end_group` closes it.
    pub fn group(&self, title: &str) {
        if self.github {
            self.line(&format!("::group::{title}"));
        } else {
            self.phase(title);
        }
    }

    pub fn end_group(&self) {
        if self.github {
            self.line("::endgroup::");
        }
    }

    fn line(&self, text: &str) {
        let mut out = std::io::stdout().lock();
        // A closed stdout (e.g. piped into `head`) must not stop a deploy half-way.
        let _ = writeln!(out, "{text}");
        let _ = out.flush();
    }
}

/// Workflow command data may not contain raw newlines or `%`.
/// The runner unescapes a command's value (`%25` is `%`): escaped, the value masked is
/// the one given, even when it holds `%`.
fn mask_command(value: &str) -> String {
    format!("::add-mask::{}", escape(value))
}

fn escape(text: &str) -> String {
    text.replace('%', "%25").replace('\r', "%0D").replace('\n', "%0A")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_masked_value_with_percent_signs_is_escaped_as_the_runner_unescapes_it() {
        assert_eq!(mask_command("k%25ey%\n"), "::add-mask::k%2525ey%25%0A");
    }
}

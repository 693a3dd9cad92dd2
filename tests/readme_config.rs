//! README's configuration table against the deployer's variable table.
//!
//! `VARIABLES` (src/config.rs) is what `--help` prints and what the deployer reads. The
//! README table between the two markers below is rendered from it: a variable added,
//! renamed, re-defaulted or re-described without the README (or the other way round)
//! fails here, and the failure prints the table to paste. A second test reads the
//! built binary's `--help`, so the README also matches what users actually see.
//! (tests/action_inputs.rs keeps action.yml and README's list of inputs in step.)

use std::fs;
use std::path::Path;

use assert_cmd::Command;
use openai_proxy_deployer::config::{Kind, VARIABLES, Variable};

const BEGIN: &str = "<!-- configuration table: rendered from VARIABLES in src/config.rs, checked by tests/readme_config.rs -->";
const END: &str = "<!-- end of configuration table -->";

fn readme() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md");
    fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The README's table, markers excluded.
fn readme_table(readme: &str) -> &str {
    let start = readme
        .find(BEGIN)
        .unwrap_or_else(|| panic!("README.md lacks the marker {BEGIN}"))
        + BEGIN.len();
    let len = readme[start..]
        .find(END)
        .unwrap_or_else(|| panic!("README.md lacks the marker {END}"));
    readme[start..start + len].trim()
}

/// Text as a Markdown table cell shows it: `|` would end the cell and `<` would start
/// an HTML tag (`<STACK_NAME>` would vanish on GitHub).
fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('<', "&lt;")
}

fn uncell(text: &str) -> String {
    text.replace("\\|", "|").replace("&lt;", "<")
}

fn allowed(var: &Variable) -> String {
    match var.kind {
        Kind::Text => "text".to_owned(),
        Kind::Secret => "secret".to_owned(),
        Kind::OneOf(values) => values
            .iter()
            .map(|v| format!("`{v}`"))
            .collect::<Vec<_>>()
            .join(", "),
        Kind::Bool => "`true`, `false`".to_owned(),
        Kind::JsonObject => "JSON object".to_owned(),
        Kind::Number(min, max) => format!("whole number, {min} to {max}"),
    }
}

fn render() -> String {
    let mut table = String::from("| variable | default | values | meaning |\n|---|---|---|---|\n");
    for var in VARIABLES {
        let default = var
            .default
            .map_or_else(|| "(none)".to_owned(), |d| format!("`{d}`"));
        table.push_str(&format!(
            "| `{}` | {} | {} | {} |\n",
            var.name,
            default,
            allowed(var),
            cell(var.meaning)
        ));
    }
    table.trim_end().to_owned()
}

#[test]
fn the_readme_table_is_the_variable_table() {
    let readme = readme();
    let expected = render();
    assert!(
        readme_table(&readme) == expected,
        "README.md's configuration table is out of step with VARIABLES in src/config.rs; \
         replace the lines between the markers with:\n\n{expected}\n"
    );
}

/// One row of `--help`: name, meaning, default.
fn help_rows(help: &str) -> Vec<(String, String, Option<String>)> {
    let list = help
        .split("All configuration comes from environment variables:")
        .nth(1)
        .expect("--help introduces the variable list");
    list.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let line = line.trim_start();
            let (name, rest) = line.split_once(' ').expect("NAME  meaning");
            let rest = rest.trim_start();
            let (meaning, default) = match rest.strip_suffix(']').and_then(|r| r.rsplit_once(" [default: ")) {
                Some((meaning, default)) => (meaning, Some(default.to_owned())),
                None => (rest, None),
            };
            (name.to_owned(), meaning.to_owned(), default)
        })
        .collect()
}

/// One row of the README table: name, meaning, default.
fn readme_rows(table: &str) -> Vec<(String, String, Option<String>)> {
    table
        .lines()
        .skip(2)
        .map(|row| {
            // Cells split on `|` not escaped as `\|`.
            let mut cells = Vec::new();
            let mut current = String::new();
            let mut chars = row.trim().trim_start_matches('|').chars().peekable();
            while let Some(c) = chars.next() {
                match c {
                    '\\' if chars.peek() == Some(&'|') => {
                        current.push_str("\\|");
                        chars.next();
                    }
                    '|' => cells.push(std::mem::take(&mut current).trim().to_owned()),
                    other => current.push(other),
                }
            }
            assert_eq!(cells.len(), 4, "README configuration row {row:?} has not 4 cells");
            let name = cells[0].trim_matches('`').to_owned();
            let default = (cells[1] != "(none)").then(|| cells[1].trim_matches('`').to_owned());
            (name, uncell(&cells[3]), default)
        })
        .collect()
}

#[test]
fn the_readme_table_says_what_help_prints() {
    let output = Command::cargo_bin("openai-proxy-deployer")
        .unwrap()
        .env_clear()
        .arg("--help")
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let help = String::from_utf8(output).expect("--help is UTF-8");
    let readme = readme();
    let from_help = help_rows(&help);
    let from_readme = readme_rows(readme_table(&readme));
    let names =
        |rows: &[(String, String, Option<String>)]| rows.iter().map(|r| r.0.clone()).collect::<Vec<_>>();
    assert_eq!(
        names(&from_readme),
        names(&from_help),
        "README's configuration table and --help list different variables (or in another order)"
    );
    for (readme_row, help_row) in from_readme.iter().zip(&from_help) {
        assert_eq!(
            readme_row, help_row,
            "README and --help disagree on {}",
            help_row.0
        );
    }
}

#[test]
fn the_readme_links_the_configuration_table_from_the_action_inputs() {
    let readme = readme();
    let inputs = readme
        .split("**Inputs** are the deployer's variables")
        .nth(1)
        .expect("README explains the action's inputs");
    let paragraph = inputs.split("\n\n").next().unwrap_or_default();
    assert!(
        paragraph.contains("(#configuration)"),
        "README's inputs paragraph should point to the configuration table (#configuration) for defaults and meanings"
    );
}

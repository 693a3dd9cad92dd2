//! README's inputs and outputs tables against their sources.
//!
//! `VARIABLES` (src/config.rs) is what `--help` prints and what the deployer reads. The
//! README's inputs table is rendered from it: a variable added, renamed, re-defaulted or
//! re-described without the README (or the other way round) fails here, and the failure
//! prints the table to paste. A second test reads the built binary's `--help`, so the
//! README also matches what users actually see. The outputs table is rendered from
//! action.yml's outputs the same way. (tests/action_inputs.rs keeps action.yml's inputs
//! in step with `VARIABLES`.)

use std::fs;
use std::path::Path;

use assert_cmd::Command;
use openai_proxy_deployer::config::{Kind, VARIABLES, Variable};
use serde_json::Value;

const INPUTS: (&str, &str) = (
    "<!-- inputs table: rendered from VARIABLES in src/config.rs, checked by tests/readme_config.rs -->",
    "<!-- end of inputs table -->",
);
const OUTPUTS: (&str, &str) = (
    "<!-- outputs table: rendered from action.yml, checked by tests/readme_config.rs -->",
    "<!-- end of outputs table -->",
);

fn readme() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md");
    fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The README's table between `markers`, markers excluded.
fn readme_table<'a>(readme: &'a str, (begin, end): (&str, &str)) -> &'a str {
    let start = readme
        .find(begin)
        .unwrap_or_else(|| panic!("README.md lacks the marker {begin}"))
        + begin.len();
    let len = readme[start..]
        .find(end)
        .unwrap_or_else(|| panic!("README.md lacks the marker {end}"));
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
    let mut table =
        String::from("| input | variable | default | values | meaning |\n|---|---|---|---|---|\n");
    for var in VARIABLES {
        let default = var
            .default
            .map_or_else(|| "(none)".to_owned(), |d| format!("`{d}`"));
        table.push_str(&format!(
            "| `{}` | `{}` | {} | {} | {} |\n",
            var.input_id(),
            var.name,
            default,
            allowed(var),
            cell(var.meaning)
        ));
    }
    table.trim_end().to_owned()
}

/// README's table between `markers` must be `expected`; the failure prints it to paste.
fn assert_rendered(markers: (&str, &str), expected: &str, source: &str) {
    let readme = readme();
    assert!(
        readme_table(&readme, markers) == expected,
        "README.md's table is out of step with {source}; \
         replace the lines between {} and {} with:\n\n{expected}\n",
        markers.0,
        markers.1
    );
}

#[test]
fn the_readme_inputs_table_is_the_variable_table() {
    assert_rendered(INPUTS, &render(), "VARIABLES in src/config.rs");
}

/// action.yml's outputs as README's table: name and description (folded to one line).
fn render_outputs() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("action.yml");
    let action: Value = serde_saphyr::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
    let mut table = String::from("| output | meaning |\n|---|---|\n");
    for (name, output) in action["outputs"].as_object().expect("action.yml has outputs") {
        let description = output["description"].as_str().unwrap_or_default();
        let description = description.split_whitespace().collect::<Vec<_>>().join(" ");
        table.push_str(&format!("| `{name}` | {} |\n", cell(&description)));
    }
    table.trim_end().to_owned()
}

#[test]
fn the_readme_outputs_table_is_the_actions_outputs() {
    assert_rendered(OUTPUTS, &render_outputs(), "action.yml's outputs");
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

/// One row of the README's inputs table: variable, meaning, default.
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
            assert_eq!(cells.len(), 5, "README inputs row {row:?} has not 5 cells");
            let name = cells[1].trim_matches('`').to_owned();
            let default = (cells[2] != "(none)").then(|| cells[2].trim_matches('`').to_owned());
            (name, uncell(&cells[4]), default)
        })
        .collect()
}

#[test]
fn help_lists_the_variables_exits_zero_and_the_readme_table_says_what_it_prints() {
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
    assert!(help.contains("DEPLOYER_COMMAND"), "{help}");
    assert!(help.contains("OPENAI_API_KEY_SECRET_ARN"), "{help}");
    let readme = readme();
    let from_help = help_rows(&help);
    let from_readme = readme_rows(readme_table(&readme, INPUTS));
    let names =
        |rows: &[(String, String, Option<String>)]| rows.iter().map(|r| r.0.clone()).collect::<Vec<_>>();
    assert_eq!(
        names(&from_readme),
        names(&from_help),
        "README's inputs table and --help list different variables (or in another order)"
    );
    for (readme_row, help_row) in from_readme.iter().zip(&from_help) {
        assert_eq!(
            readme_row, help_row,
            "README and --help disagree on {}",
            help_row.0
        );
    }
}

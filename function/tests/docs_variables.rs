//! docs/function.md's table of the function's environment variables is rendered from
//! `env::VARIABLES`, the one place the function reads them: a variable added, renamed,
//! re-defaulted or re-described without the page fails here, with the table to paste.

use openai_proxy_function::env::VARIABLES;

const BEGIN: &str = "<!-- variables table: rendered from VARIABLES in function/src/env.rs, checked by function/tests/docs_variables.rs -->";
const END: &str = "<!-- end of variables table -->";

fn render() -> String {
    let mut table = String::from("| variable | default | meaning |\n|---|---|---|\n");
    for var in VARIABLES {
        let default = var.default.map_or_else(String::new, |d| format!("`{d}`"));
        let meaning = var.meaning.replace('|', "\\|");
        table.push_str(&format!("| `{}` | {default} | {meaning} |\n", var.name));
    }
    table.trim_end().to_owned()
}

#[test]
fn the_pages_variables_table_is_the_functions_variable_table() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/function.md");
    let page = std::fs::read_to_string(&path).unwrap();
    let start = page
        .find(BEGIN)
        .expect("docs/function.md has the variables table's marker")
        + BEGIN.len();
    let len = page[start..]
        .find(END)
        .expect("docs/function.md ends the variables table");
    let expected = render();
    assert!(
        page[start..start + len].trim() == expected,
        "docs/function.md's variables table is out of step with VARIABLES in function/src/env.rs; \
         replace the lines between the markers with:\n\n{expected}\n"
    );
}

//! docs/troubleshooting.md against the code it explains.
//!
//! The page quotes messages in its `####` headings, as code spans, with `…` for the parts
//! that vary. These tests keep it true both ways:
//! - every quoted message still exists: the pieces between `…` occur, in order, in one
//!   string literal of the deployer (`src/`), or of the function (`function/src/`) or
//!   template.yaml for the proxy's part, so a reworded message fails here;
//! - every message of the deployer's checks (`COVERED` files) is on the page, so a new
//!   message without a documented cause and fix fails here;
//! - every AWS call whose failure the deployer reports as `could not … (…)` is listed in
//!   that message's section, and every call listed there still exists;
//! - every error `code` the proxy (or API Gateway, through template.yaml) can answer is
//!   on the page.

use std::fs;
use std::path::Path;

const DOC: &str = "docs/troubleshooting.md";
const DEPLOYER_SECTION: &str = "\n## Deployer errors\n";
const PROXY_SECTION: &str = "\n## The proxy's error responses\n";

/// Deployer sources whose every message (a literal of the form "what: fix", or an
/// `Error::new` cause) must be on the page. The commands and report/ui (presentation)
/// only have to keep the messages the page quotes.
const COVERED: &[&str] = &[
    "src/config.rs",
    "src/prereq.rs",
    "src/artifact.rs",
    "src/template/mod.rs",
    "src/template/parse.rs",
    "src/secret.rs",
    "src/s3.rs",
    "src/lambda_code.rs",
    "src/cfn/stack.rs",
    "src/cfn/change_set.rs",
    "src/cfn/wait.rs",
    "src/error.rs",
    "src/main.rs",
];

/// Literals of the covered files that look like messages but are not shown as errors.
const NOT_MESSAGES: &[&str] = &[
    // The secret's description in Secrets Manager.
    "openai-lambda-proxy configuration: OpenAI key, model mappings, timeouts",
];

/// The failure of any AWS call (`Error::aws` in src/error.rs): one section explains it,
/// with a table of the calls. Being that general, this quote documents no other message
/// that happens to start with "could not".
const AWS_CALL_QUOTE: &str = "could not … (…)";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn doc() -> String {
    read(&root().join(DOC))
}

/// The part of the page from `start` to the next `## ` heading.
fn section<'a>(doc: &'a str, start: &str) -> &'a str {
    let from = doc
        .find(start)
        .unwrap_or_else(|| panic!("{DOC} has no section {:?}", start.trim()))
        + start.len();
    let rest = &doc[from..];
    rest.find("\n## ").map_or(rest, |end| &rest[..end])
}

/// The code spans of the `####` headings of `text`, each with its heading line.
fn quoted(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for line in text.lines().filter(|l| l.starts_with("#### ")) {
        let mut spans = line.split('`');
        spans.next();
        while let (Some(span), Some(_)) = (spans.next(), spans.next()) {
            out.push((span.to_owned(), line.to_owned()));
        }
    }
    out
}

/// The source without comments and without its `#[cfg(test)]` module (tests may keep
/// an old message alive that the product no longer shows).
fn product_code(source: &str) -> String {
    let code = source.split("#[cfg(test)]").next().unwrap_or_default();
    code.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The string literals of Rust code, as written (escapes kept), with `\` line
/// continuations joined the way the compiler joins them.
fn literals(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = code.chars().peekable();
    let mut previous = ' ';
    while let Some(c) = chars.next() {
        // A char literal such as '"' is not the start of a string.
        if c == '"' && previous != '\'' {
            let mut literal = String::new();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => match chars.next() {
                        Some('\n') => {
                            while chars.peek().is_some_and(|c| c.is_whitespace()) {
                                chars.next();
                            }
                        }
                        Some(escaped) => {
                            literal.push('\\');
                            literal.push(escaped);
                        }
                        None => break,
                    },
                    '"' => break,
                    other => literal.push(other),
                }
            }
            out.push(literal);
            previous = '"';
        } else {
            previous = c;
        }
    }
    out
}

fn literals_of(dir: &Path) -> Vec<String> {
    let mut files: Vec<_> = walk(dir)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "rs"))
        .collect();
    files.sort();
    files
        .iter()
        .flat_map(|p| literals(&product_code(&read(p))))
        .collect()
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// `--help`'s text in src/config.rs: the `VARIABLES` table (each variable's meaning,
/// which README and action.yml also show) and `help()` (the usage lines). They describe
/// settings and are never shown as errors, though some read "x (default: y)"; this
/// cuts them out of the covered code. Panics when they cannot be found, so a rename
/// cannot silently make every literal of config.rs count as a message again.
fn without_help_text(file: &str, code: &str) -> String {
    if file != "src/config.rs" {
        return code.to_owned();
    }
    let cut = |code: &str, start: &str, end: &str| -> String {
        let from = code
            .find(start)
            .unwrap_or_else(|| panic!("{file}: no {start:?} (update without_help_text)"));
        let to = code[from..]
            .find(end)
            .unwrap_or_else(|| panic!("{file}: {start:?} does not end with {end:?}"))
            + from;
        format!("{}{}", &code[..from], &code[to..])
    };
    let code = cut(code, "pub const VARIABLES: &[Variable] = &[", "\n];");
    cut(&code, "pub fn help() -> String {", "\n}")
}

/// The literal that opens the arguments after each `marker` (directly, or as the format
/// string of `format!`/`format_args!`): an `Error::new` cause, an `Error::aws` doing.
fn first_arguments(code: &str, marker: &str) -> Vec<String> {
    code.match_indices(marker)
        .filter_map(|(i, _)| {
            let args = code[i + marker.len()..].trim_start();
            let args = ["format!(", "format_args!("]
                .iter()
                .find_map(|f| args.strip_prefix(f))
                .unwrap_or(args)
                .trim_start();
            if args.starts_with('"') {
                literals(args).into_iter().next()
            } else {
                None
            }
        })
        .collect()
}

/// How a message is quoted on the page: its placeholders (`{name}`, `{}`) as `…`.
fn as_quoted(literal: &str) -> String {
    let mut out = String::new();
    let mut rest = literal;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        out.push('…');
        rest = rest[open..]
            .find('}')
            .map_or("", |close| &rest[open + close + 1..]);
    }
    out.push_str(rest);
    out
}

/// The fixed pieces of a quoted message: the text between the `…` placeholders.
fn pieces(quote: &str) -> Vec<&str> {
    quote
        .split('…')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect()
}

/// Whether `text` holds every piece, in order, without overlap.
fn holds_in_order<S: AsRef<str>>(text: &str, pieces: &[S]) -> bool {
    let mut at = 0;
    for piece in pieces {
        let piece = piece.as_ref();
        match text[at..].find(piece) {
            Some(i) => at += i + piece.len(),
            None => return false,
        }
    }
    true
}

fn check_quotes_exist(section_start: &str, haystacks: &[String]) -> Vec<String> {
    let doc = doc();
    let mut missing = Vec::new();
    for (quote, heading) in quoted(section(&doc, section_start)) {
        let fixed = pieces(&quote);
        assert!(!fixed.is_empty(), "{DOC}: nothing but `…` quoted in {heading:?}");
        if !haystacks.iter().any(|h| holds_in_order(h, &fixed)) {
            missing.push(format!("`{quote}`  (in {heading:?})"));
        }
    }
    missing
}

#[test]
fn every_quoted_deployer_message_is_still_in_the_deployer() {
    let literals = literals_of(&root().join("src"));
    let missing = check_quotes_exist(DEPLOYER_SECTION, &literals);
    assert!(
        missing.is_empty(),
        "{DOC} quotes deployer messages that src/ no longer has (reworded or removed? \
         update the page):\n  {}",
        missing.join("\n  ")
    );
}

#[test]
fn every_quoted_proxy_message_is_still_in_the_function_or_the_template() {
    let mut haystacks = literals_of(&root().join("function/src"));
    haystacks.extend(read(&root().join("template.yaml")).lines().map(str::to_owned));
    let missing = check_quotes_exist(PROXY_SECTION, &haystacks);
    assert!(
        missing.is_empty(),
        "{DOC} quotes proxy messages that function/src and template.yaml no longer have \
         (reworded or removed? update the page):\n  {}",
        missing.join("\n  ")
    );
}

/// The longest fixed part of a literal, without the punctuation around placeholders.
fn longest_piece(literal: &str) -> &str {
    let mut best = "";
    let mut rest = literal;
    while !rest.is_empty() {
        let (piece, tail) = match rest.find('{') {
            Some(open) => {
                let close = rest[open..].find('}').map_or(rest.len(), |c| open + c + 1);
                (&rest[..open], &rest[close..])
            }
            None => (rest, ""),
        };
        let piece = piece.trim_matches(|c: char| c.is_whitespace() || "(:;,.".contains(c));
        if piece.len() > best.len() {
            best = piece;
        }
        rest = tail;
    }
    best
}

/// A literal of a covered file is a user-facing message when it reads "what: what to
/// do"; short literals are names, formats and separators. (`Error::new` causes, which
/// carry their fix beside them, are messages too: see [`messages_of`].)
fn is_message(literal: &str) -> bool {
    literal.len() >= 30 && literal.contains(": ") && !NOT_MESSAGES.contains(&literal)
}

/// The messages of a covered file: its "what: what to do" literals, and the cause of
/// each `Error::new` unless it is only placeholders (a cause composed of others, such
/// as `"{}; {cleanup}"`).
fn messages_of(file: &str) -> Vec<String> {
    let code = without_help_text(file, &product_code(&read(&root().join(file))));
    let mut messages: Vec<String> = literals(&code).into_iter().filter(|l| is_message(l)).collect();
    for cause in first_arguments(&code, "Error::new(") {
        if !longest_piece(&cause).is_empty() && !messages.contains(&cause) {
            messages.push(cause);
        }
    }
    messages
}

#[test]
fn every_message_of_the_deployers_checks_is_documented() {
    let doc = doc();
    let deployer = section(&doc, DEPLOYER_SECTION);
    let quotes: Vec<Vec<String>> = quoted(deployer)
        .iter()
        .filter(|(q, _)| q != AWS_CALL_QUOTE)
        .map(|(q, _)| pieces(q).into_iter().map(str::to_owned).collect())
        .collect();
    // Prose wraps lines: compare with single spaces.
    let flat = deployer.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut undocumented = Vec::new();
    let mut messages = 0;
    for file in COVERED {
        for literal in messages_of(file) {
            messages += 1;
            let quoted = quotes.iter().any(|q| holds_in_order(&literal, q));
            let piece = longest_piece(&literal);
            let mentioned = piece.len() >= 20 && flat.contains(piece);
            if !(quoted || mentioned) {
                undocumented.push(format!("{file}: \"{literal}\""));
            }
        }
    }
    // The covered files hold dozens of messages (about 60 when this was written, --help
    // text left out); far fewer means the extraction broke.
    assert!(messages >= 50, "only {messages} messages found in {COVERED:?}");
    assert!(
        undocumented.is_empty(),
        "{DOC} does not explain these deployer messages; add a `####` heading quoting \
         each (with … for the varying parts), its cause and its fix:\n  {}",
        undocumented.join("\n  ")
    );
}

/// The section of the `####` heading that quotes `quote`, up to the next heading.
fn heading_section<'a>(text: &'a str, quote: &str) -> &'a str {
    let heading = format!("#### `{quote}`");
    let from = text
        .find(&heading)
        .unwrap_or_else(|| panic!("{DOC}: no heading {heading:?}"))
        + heading.len();
    let rest = &text[from..];
    rest.find("\n#").map_or(rest, |end| &rest[..end])
}

#[test]
fn every_aws_call_the_deployer_makes_is_listed_under_could_not() {
    let mut calls: Vec<String> = walk(&root().join("src"))
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "rs"))
        .flat_map(|p| first_arguments(&product_code(&read(p)), "Error::aws("))
        .map(|doing| format!("could not {} (…)", as_quoted(&doing)))
        .collect();
    calls.sort();
    calls.dedup();
    // The deployer talks to CloudFormation, S3, Lambda and Secrets Manager: none found
    // means the extraction broke.
    assert!(
        calls.len() >= 15,
        "only {} Error::aws calls found: {calls:?}",
        calls.len()
    );
    let doc = doc();
    let section = heading_section(section(&doc, DEPLOYER_SECTION), AWS_CALL_QUOTE);
    let mut listed: Vec<String> = section
        .lines()
        .filter(|l| l.starts_with("| `"))
        .filter_map(|l| l.split('`').nth(1))
        .map(str::to_owned)
        .collect();
    listed.sort();
    let unlisted: Vec<&String> = calls.iter().filter(|c| !listed.contains(c)).collect();
    let gone: Vec<&String> = listed.iter().filter(|c| !calls.contains(c)).collect();
    assert!(
        unlisted.is_empty() && gone.is_empty(),
        "{DOC}: the table under `{AWS_CALL_QUOTE}` must list every AWS call of src/ (each \
         `Error::aws` doing), as `could not <doing, with … for placeholders> (…)` in its \
         first column.\n  not listed: {unlisted:?}\n  listed but not in src/: {gone:?}"
    );
}

/// The prerequisite checks report whole categories of problems; each must have its
/// place on the page, under its own heading.
#[test]
fn every_prerequisite_category_has_a_section() {
    let doc = doc();
    let deployer = section(&doc, DEPLOYER_SECTION);
    for heading in [
        "### Configuration",
        "### Prerequisites: the function artifact",
        "### Prerequisites: the template",
        "### Prerequisites: template parameters",
        "### Prerequisites: region and credentials",
        "### Secret",
        "### Artifact bucket and upload",
        "### Stack",
        "### Function code verification",
        "### Endpoint tests",
        "### Destroy",
    ] {
        assert!(
            deployer.lines().any(|l| l.starts_with(heading)),
            "{DOC}: no section {heading:?} under \"Deployer errors\""
        );
    }
    // Every variant of the artifact's error enum has its message quoted.
    let artifact = product_code(&read(&root().join("src/artifact.rs")));
    let variants = artifact.matches("#[error(").count();
    let quoted_variants = literals(&artifact)
        .iter()
        .filter(|l| {
            quoted(deployer)
                .iter()
                .any(|(q, _)| holds_in_order(l, &pieces(q)))
        })
        .count();
    assert!(
        variants >= 9 && quoted_variants >= variants,
        "{DOC}: {quoted_variants} of the {variants} artifact errors are quoted"
    );
}

/// The string literal that opens `text` (after whitespace), if one does.
fn leading_literal(text: &str) -> Option<&str> {
    let rest = text.trim_start().strip_prefix('"')?;
    rest.find('"').map(|end| &rest[..end])
}

fn is_code(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
}

/// The `code` values the proxy answers with, read from the function
/// (`.with_code("…")`, `ApiError::server(StatusCode::…, "…", …)`) and from
/// API Gateway's responses in template.yaml (`"code":"…"`).
fn proxy_codes() -> Vec<String> {
    let mut codes = Vec::new();
    for path in walk(&root().join("function/src")) {
        let code = product_code(&read(&path));
        for (i, marker) in code.match_indices("with_code(") {
            codes.extend(
                leading_literal(&code[i + marker.len()..])
                    .filter(|c| is_code(c))
                    .map(str::to_owned),
            );
        }
        for (i, marker) in code.match_indices("ApiError::server(") {
            let args = &code[i + marker.len()..];
            if let Some(comma) = args.find(',') {
                codes.extend(
                    leading_literal(&args[comma + 1..])
                        .filter(|c| is_code(c))
                        .map(str::to_owned),
                );
            }
        }
    }
    let template = read(&root().join("template.yaml"));
    for (i, marker) in template.match_indices("\"code\":") {
        codes.extend(
            leading_literal(&template[i + marker.len()..])
                .filter(|c| is_code(c))
                .map(str::to_owned),
        );
    }
    codes.sort();
    codes.dedup();
    codes
}

#[test]
fn every_error_code_of_the_proxy_is_explained() {
    let codes = proxy_codes();
    for expected in [
        "model_not_found",
        "configuration_unavailable",
        "rate_limit_exceeded",
    ] {
        assert!(
            codes.iter().any(|c| c == expected),
            "code extraction broke: {expected} not found in {codes:?}"
        );
    }
    let doc = doc();
    let proxy = section(&doc, PROXY_SECTION);
    let missing: Vec<&String> = codes
        .iter()
        .filter(|c| !proxy.contains(&format!("`{c}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "{DOC} does not explain the proxy's error codes {missing:?}"
    );
}

#[test]
fn the_extraction_helpers_do_what_the_tests_assume() {
    let code = "let a = \"x: {y} and\\\n        z\"; let c = '\"'; let b = \"q\\\"r\";";
    assert_eq!(literals(code), ["x: {y} andz", "q\\\"r"]);
    assert!(holds_in_order(
        "template {p} is {n} bytes; at most",
        &pieces("template … is … bytes; at most")
    ));
    assert!(!holds_in_order("bytes; template", &pieces("template … bytes")));
    assert_eq!(
        longest_piece("could not list s3://{bucket} ({})"),
        "could not list s3://"
    );
    assert_eq!(
        first_arguments(
            "Error::new(format!(\n  \"a {x}: b\"), \"fix\"); Error::new(cause, f); Error::aws(format_args!(\"list s3://{name}/{p}\"), &e)",
            "Error::new("
        ),
        ["a {x}: b"]
    );
    assert_eq!(as_quoted("list s3://{name}/{}"), "list s3://…/…");
    let config = "pub const VARIABLES: &[Variable] = &[\n  var!(\"A\", \"x (default: y): z\")\n];\nlet m = \"keep: this\";\npub fn help() -> String {\n  \"u: v\"\n}\n";
    assert_eq!(
        literals(&without_help_text("src/config.rs", config)),
        ["keep: this"]
    );
    assert_eq!(
        quoted("#### 404 `a`: `b … c`\ntext `d`\n"),
        [
            ("a".to_owned(), "#### 404 `a`: `b … c`".to_owned()),
            ("b … c".to_owned(), "#### 404 `a`: `b … c`".to_owned())
        ]
    );
}

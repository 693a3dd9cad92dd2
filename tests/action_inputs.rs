//! action.yml, the Dockerfile and the workflows against the deployer's variable table.
//!
//! `VARIABLES` (src/config.rs) is the single source of truth: every variable is an input
//! of the action under its kebab-case id (`Variable::input_id`), which the deployer reads
//! as the runner passes it (`INPUT_STACK-NAME`), so action.yml maps nothing in `runs.env`;
//! every input is documented with its default and its allowed values. A variable added to
//! the table without an input (or an input left behind by a removed variable) fails here.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use openai_proxy_deployer::config::{Kind, VARIABLES, Variable};
use serde_json::{Map, Value};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn yaml(path: &Path) -> Value {
    serde_saphyr::from_str(&read(path))
        .unwrap_or_else(|e| panic!("{} is not valid YAML: {e}", path.display()))
}

fn action() -> Value {
    yaml(&root().join("action.yml"))
}

fn object<'a>(value: &'a Value, key: &str) -> &'a Map<String, Value> {
    value
        .get(key)
        .and_then(Value::as_object)
        .unwrap_or_else(|| panic!("action.yml: `{key}` is missing or not a mapping"))
}

fn input_id(var: &Variable) -> String {
    var.input_id()
}

fn no_problems(what: &str, problems: &[String]) {
    assert!(problems.is_empty(), "{what}:\n  {}", problems.join("\n  "));
}

#[test]
fn every_variable_is_a_kebab_case_input_and_nothing_is_mapped_through_runs_env() {
    let action = action();
    let inputs = object(&action, "inputs");
    let mut problems: Vec<String> = VARIABLES
        .iter()
        .filter(|var| !inputs.contains_key(&input_id(var)))
        .map(|var| format!("{}: no input `{}`", var.name, input_id(var)))
        .collect();
    let ids: BTreeSet<String> = VARIABLES.iter().map(input_id).collect();
    for id in inputs.keys().filter(|id| !ids.contains(*id)) {
        problems.push(format!("input `{id}` is no deployer variable"));
    }
    for id in inputs
        .keys()
        .filter(|id| id.contains('_') || id.bytes().any(|b| b.is_ascii_uppercase()))
    {
        problems.push(format!("input `{id}` is not kebab-case"));
    }
    // runs.env loses to any job- or workflow-level variable of the same name, and the
    // deployer reads INPUT_* itself: a mapping there could only hide the input.
    if action["runs"].get("env").is_some() {
        problems.push("runs.env is set; the deployer reads the inputs (INPUT_*) itself".to_owned());
    }
    no_problems("action.yml is out of step with VARIABLES", &problems);
}

#[test]
fn the_readme_lists_every_input() {
    let readme = read(&root().join("README.md"));
    let section = readme
        .split("## Use the action from another repository")
        .nth(1)
        .expect("README has a section \"Use the action from another repository\"");
    let missing: Vec<String> = VARIABLES
        .iter()
        .map(input_id)
        .filter(|id| !section.contains(&format!("`{id}`")))
        .collect();
    assert!(missing.is_empty(), "README's input list lacks {missing:?}");
}

/// An omitted input must reach the deployer as an empty (= unset) variable so that the
/// deployer's own default applies and it can tell "not given" from "given".
#[test]
fn inputs_carry_no_default_and_are_optional() {
    let action = action();
    for (id, input) in object(&action, "inputs") {
        assert!(
            input.get("default").is_none(),
            "input `{id}` has a `default:`; document it in the description instead"
        );
        assert_ne!(
            input.get("required"),
            Some(&Value::Bool(true)),
            "input `{id}` is required"
        );
    }
}

#[test]
fn every_description_names_the_default_and_the_allowed_values() {
    let action = action();
    let inputs = object(&action, "inputs");
    let mut problems = Vec::new();
    for var in VARIABLES {
        let id = input_id(var);
        let Some(description) = inputs
            .get(&id)
            .and_then(|i| i.get("description"))
            .and_then(Value::as_str)
        else {
            problems.push(format!("input `{id}` has no description"));
            continue;
        };
        let default = match var.default {
            Some(d) => format!("Default: `{d}`"),
            None => "Default: none".to_owned(),
        };
        if !description.contains(&default) {
            problems.push(format!("input `{id}`: description lacks \"{default}\""));
        }
        match var.kind {
            Kind::OneOf(allowed) => {
                for value in allowed {
                    if !description.contains(&format!("`{value}`")) {
                        problems.push(format!("input `{id}`: description lacks `{value}`"));
                    }
                }
            }
            Kind::Number(min, max) if !description.contains(&format!("{min} to {max}")) => {
                problems.push(format!(
                    "input `{id}`: description lacks the range \"{min} to {max}\""
                ));
            }
            Kind::Bool if !(description.contains("`true`") || description.contains("`false`")) => {
                problems.push(format!(
                    "input `{id}`: description does not say what `true`/`false` does"
                ));
            }
            Kind::Secret if !description.contains("never printed") || !description.contains("secret") => {
                problems.push(format!(
                    "input `{id}`: description must say to pass it from a secret and that it is never printed"
                ));
            }
            _ => {}
        }
    }
    no_problems("action.yml descriptions", &problems);
}

/// `[workspace.package]`'s `key = "value"` from Cargo.toml.
fn workspace_field(key: &str) -> String {
    let manifest = read(&root().join("Cargo.toml"));
    let prefix = format!("{key} = \"");
    manifest
        .lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .and_then(|l| l.strip_suffix('"'))
        .unwrap_or_else(|| panic!("Cargo.toml has no `{key} = \"...\"`"))
        .to_owned()
}

#[test]
fn outputs_include_the_deploy_results_and_main_builds_the_dockerfile_the_release_pins() {
    let action = action();
    let outputs: BTreeSet<&str> = object(&action, "outputs").keys().map(String::as_str).collect();
    // What deploy workflows rely on; the deployer may write more (all declared here).
    for required in ["api-url", "function-name", "stack-status", "report-path"] {
        assert!(
            outputs.contains(required),
            "action.yml declares no output `{required}`"
        );
    }
    let runs = object(&action, "runs");
    assert_eq!(runs.get("using").and_then(Value::as_str), Some("docker"));
    assert!(
        runs.get("args").is_none() && runs.get("entrypoint").is_none(),
        "the image's ENTRYPOINT runs the deployer"
    );
    // On main (`uses: <owner>/openai-lambda-proxy@main`) the runner builds the
    // Dockerfile; each release tag's commit names the image that tag published instead.
    assert_eq!(
        runs.get("image").and_then(Value::as_str),
        Some("Dockerfile"),
        "action.yml on main must build the Dockerfile: a docker:// reference here is either a past release's or unreachable"
    );
    let text = read(&root().join("action.yml"));
    assert!(
        !text.contains(&"0".repeat(64)),
        "action.yml holds an all-zero digest, which no registry serves"
    );
    let release = read(&root().join(".github/workflows/release.yml"));
    assert!(
        release.contains(r#"sed -i "s|^  image: .*|  image: $REFERENCE|" action.yml"#),
        "release.yml no longer rewrites action.yml's `  image:` line"
    );
    // What it writes is the digest the registry just returned: 64 hex digits, never zero.
    assert!(
        release.contains(
            r#"[[ "$digest" =~ ^sha256:[0-9a-f]{64}$ && "$digest" != "sha256:$(printf '0%.0s' {1..64})" ]]"#
        ),
        "release.yml must refuse a digest that is not 64 hex digits or is all zeros before rewriting action.yml"
    );
    // buildx refuses image names with capitals; owners may have them.
    assert!(
        release.contains("${IMAGE,,}") && !release.contains("name=ghcr.io/${{ github.repository_owner }}"),
        "release.yml must lowercase the image name (owner) before buildx uses it"
    );
}

#[test]
fn the_image_bundles_the_stock_proxy_and_pins_its_bases() {
    let dockerfile = read(&root().join("Dockerfile"));
    for line in dockerfile.lines().filter(|l| l.starts_with("FROM ")) {
        let image = line.split_whitespace().nth(1).unwrap_or_default();
        // scratch is no image, ${BINARIES} a stage of this file.
        if image == "scratch" || image == "${BINARIES}" {
            continue;
        }
        assert!(
            image.contains("@sha256:") && image.len() > "@sha256:".len() + 64,
            "base image not pinned by digest: {line}"
        );
    }
    for needle in [
        "OPENAI_PROXY_BUNDLED_ARTIFACT=/opt/openai-lambda-proxy/bootstrap.zip",
        "OPENAI_PROXY_BUNDLED_TEMPLATE=/opt/openai-lambda-proxy/template.yaml",
        "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt",
        "ENTRYPOINT [\"/usr/local/bin/openai-proxy-deployer\"]",
    ] {
        assert!(dockerfile.contains(needle), "Dockerfile lacks {needle}");
    }
}

/// The Dockerfile's stages: (name, base, instructions).
fn stages(dockerfile: &str) -> Vec<(String, String, Vec<String>)> {
    let mut stages: Vec<(String, String, Vec<String>)> = Vec::new();
    for line in dockerfile
        .lines()
        .filter(|l| !l.starts_with('#') && !l.starts_with(' ') && !l.trim().is_empty())
    {
        let words: Vec<&str> = line.split_whitespace().collect();
        if words[0] == "FROM" {
            let name = if words.len() >= 4 { words[3] } else { "" };
            stages.push((name.to_owned(), words[1].to_owned(), Vec::new()));
        } else if let Some(stage) = stages.last_mut() {
            stage.2.push(words[0].to_owned());
        }
    }
    stages
}

/// What is tested is what ships: with BINARIES=dist (make image, the release) every
/// stage built is FROM scratch and runs nothing, so nothing is pulled or compiled; every
/// build uses the toolchain rust-toolchain.toml pins.
#[test]
fn the_dist_build_pulls_and_compiles_nothing_and_the_toolchain_is_pinned() {
    let dockerfile = read(&root().join("Dockerfile"));
    let stages = stages(&dockerfile);
    let names: Vec<&str> = stages.iter().map(|(n, _, _)| n.as_str()).collect();
    assert_eq!(names, ["source", "dist", "binaries", ""], "stages: {stages:?}");
    assert!(
        dockerfile.contains("ARG BINARIES=source\n"),
        "the default build (the runner's, for action.yml at main) must compile from the checkout"
    );
    for (name, base, instructions) in &stages[1..] {
        assert!(
            base == "scratch" || base == "${BINARIES}",
            "stage `{name}` is FROM {base}: the dist build must pull nothing"
        );
        assert!(
            !instructions.iter().any(|i| i == "RUN"),
            "stage `{name}` runs something: with BINARIES=dist the image only copies what CI built"
        );
    }
    for script in ["scripts/image.sh", ".github/workflows/release.yml"] {
        assert!(
            read(&root().join(script)).contains("BINARIES=dist"),
            "{script} must build the image from dist/ (BINARIES=dist)"
        );
    }

    let toolchain = read(&root().join("rust-toolchain.toml"));
    let channel = toolchain
        .lines()
        .find_map(|l| l.strip_prefix("channel = \""))
        .and_then(|l| l.strip_suffix('"'))
        .expect("rust-toolchain.toml: channel = \"X.Y.Z\"");
    let version = |v: &str| -> Vec<u32> { v.split('.').map(|n| n.parse().unwrap()).collect() };
    assert_eq!(
        version(channel).len(),
        3,
        "channel `{channel}` is no exact version"
    );
    let floor = workspace_field("rust-version");
    assert!(
        version(channel) >= version(&floor),
        "rust-toolchain.toml's {channel} is older than Cargo.toml's rust-version {floor}"
    );
    for needle in [
        r#"components = ["rustfmt", "clippy"]"#,
        r#"targets = ["aarch64-unknown-linux-gnu", "x86_64-unknown-linux-musl", "aarch64-unknown-linux-musl"]"#,
    ] {
        assert!(toolchain.contains(needle), "rust-toolchain.toml lacks {needle}");
    }

    let lock = read(&root().join("requirements.txt"));
    let tools = read(&root().join("requirements-docker.txt"));
    let mut pins = 0;
    for line in tools
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with(['#', ' ']))
    {
        let pin = line.trim_end_matches('\\').trim();
        pins += 1;
        assert!(
            lock.lines().any(|l| l.trim() == pin),
            "requirements-docker.txt: {pin} is not what requirements.txt pins"
        );
    }
    assert_eq!(pins, 2, "requirements-docker.txt: cargo-lambda and ziglang");
    assert_eq!(
        tools.matches("--hash=sha256:").count(),
        4,
        "requirements-docker.txt: a wheel hash per tool and platform"
    );
}

/// The build context is an allowlist: everything the Dockerfile copies (for each
/// platform) must be in it, and scripts/dist.sh must be what puts it in dist/.
#[test]
fn the_build_context_holds_what_the_dockerfile_copies() {
    let dockerfile = read(&root().join("Dockerfile"));
    let dockerignore = read(&root().join(".dockerignore"));
    let dist = read(&root().join("scripts/dist.sh"));
    let allowed: BTreeSet<&str> = dockerignore.lines().filter_map(|l| l.strip_prefix('!')).collect();
    let mut missing = Vec::new();
    // `COPY . .` (the source stage) and `COPY --from` take nothing named from the context.
    for line in dockerfile
        .lines()
        .filter(|l| l.starts_with("COPY ") && !l.contains("--from=") && !l.starts_with("COPY . "))
    {
        let words: Vec<&str> = line
            .split_whitespace()
            .skip(1)
            .filter(|w| !w.starts_with("--"))
            .collect();
        for source in &words[..words.len() - 1] {
            for arch in ["amd64", "arm64"] {
                let path = source.replace("${TARGETARCH}", arch);
                if !allowed.contains(path.as_str()) {
                    missing.push(path);
                }
            }
        }
    }
    assert!(missing.is_empty(), ".dockerignore leaves out {missing:?}");
    for needle in [
        "\"$root/dist/bootstrap.zip\"",
        "\"$root/dist/$arch/openai-proxy-deployer\"",
        "\"$root/dist/ca-certificates.crt\"",
    ] {
        assert!(dist.contains(needle), "scripts/dist.sh does not write {needle}");
    }
}

fn workflows() -> Vec<PathBuf> {
    let dir = root().join(".github/workflows");
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yml" || e == "yaml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no workflows in {}", dir.display());
    files
}

/// Every job of every workflow, named `<file>: jobs.<id>`, with its steps.
fn jobs() -> Vec<(String, Value, Vec<Value>)> {
    let mut out = Vec::new();
    for path in workflows() {
        let name = path.strip_prefix(root()).unwrap().display().to_string();
        let jobs = yaml(&path)
            .get("jobs")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        for (job_id, job) in jobs {
            let steps = job
                .get("steps")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            out.push((format!("{name}: jobs.{job_id}"), job, steps));
        }
    }
    out
}

/// zizmor and actionlint check these too; this keeps the two rules that matter most for
/// supply chain and injection true even where those tools are not installed.
#[test]
fn workflows_pin_actions_by_commit_and_expand_nothing_inside_run() {
    let mut problems = Vec::new();
    for path in workflows() {
        if yaml(&path).get("permissions").is_none() {
            let name = path.strip_prefix(root()).unwrap().display().to_string();
            problems.push(format!("{name}: no top-level `permissions:`"));
        }
    }
    for (job, _, steps) in jobs() {
        for (i, step) in steps.iter().enumerate() {
            let at = format!("{job}.steps[{i}]");
            if let Some(run) = step.get("run").and_then(Value::as_str)
                && run.contains("${{")
            {
                problems.push(format!(
                    "{at}: `${{{{ }}}}` inside `run:`; pass the value through `env:`"
                ));
            }
            if let Some(uses) = step.get("uses").and_then(Value::as_str) {
                let pinned = uses.starts_with("./")
                    || uses.starts_with("docker://") && uses.contains("@sha256:")
                    || uses
                        .split_once('@')
                        .is_some_and(|(_, r)| r.len() == 40 && r.bytes().all(|b| b.is_ascii_hexdigit()));
                if !pinned {
                    problems.push(format!("{at}: `{uses}` is not pinned to a full commit SHA"));
                }
            }
        }
    }
    no_problems("workflows", &problems);
}

/// Every job is bounded, and this repository's workflows run the code under test:
/// `uses: ./` would start the image action.yml names, the last release.
#[test]
fn workflow_jobs_have_timeouts_and_never_run_the_released_action() {
    let mut problems = Vec::new();
    for (job, definition, steps) in jobs() {
        if definition
            .get("timeout-minutes")
            .and_then(Value::as_u64)
            .is_none()
        {
            problems.push(format!("{job} has no timeout-minutes"));
        }
        for uses in steps
            .iter()
            .filter_map(|step| step.get("uses").and_then(Value::as_str))
        {
            if uses == "./" || uses.starts_with("docker://ghcr.io/") {
                problems.push(format!(
                    "{job} uses `{uses}`, the released image, not this commit's code"
                ));
            }
        }
    }
    no_problems("workflows", &problems);
}

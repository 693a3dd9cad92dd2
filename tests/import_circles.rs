//! The deployer's modules form no import circle: every question has one home, and a
//! module that needs another's answer never has that other module need it back (as
//! `commands::deploy` and `commands::guarded`, or `config` and `secret`, once did).
//!
//! A module is a file of src/ (`commands/deploy.rs` is `commands::deploy`, a `mod.rs`
//! its folder); it uses what its code names as `crate::…` or `super::…`, tests and
//! comments left out.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Module path -> its code without comments and tests.
fn modules() -> BTreeMap<String, String> {
    fn walk(dir: &Path, prefix: &[String], out: &mut BTreeMap<String, String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_stem().unwrap().to_string_lossy().into_owned();
            if path.is_dir() {
                walk(&path, &[prefix, &[name]].concat(), out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let parts = match name.as_str() {
                    "mod" | "lib" | "main" => prefix.to_vec(),
                    _ => [prefix, &[name]].concat(),
                };
                let text = std::fs::read_to_string(&path).unwrap();
                let code = text.split("#[cfg(test)]").next().unwrap_or_default();
                let code: String = code
                    .lines()
                    .map(|l| l.split("//").next().unwrap_or_default())
                    .collect::<Vec<_>>()
                    .join("\n");
                out.entry(parts.join("::")).or_default().push_str(&code);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"), &[], &mut out);
    out
}

/// The module paths `code` names after `prefix` (`crate::cfn::stack::describe` gives
/// `cfn::stack::describe`).
fn paths_after<'a>(code: &'a str, prefix: &'a str) -> impl Iterator<Item = String> + 'a {
    code.split(prefix).skip(1).map(|rest| {
        rest.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':')
            .collect::<String>()
            .trim_end_matches(':')
            .to_owned()
    })
}

/// Which modules each module uses.
fn graph(modules: &BTreeMap<String, String>) -> BTreeMap<&str, BTreeSet<&str>> {
    let resolve = |path: &str| -> Option<&str> {
        let segments: Vec<&str> = path.split("::").collect();
        (1..=segments.len())
            .rev()
            .map(|n| segments[..n].join("::"))
            .find_map(|candidate| modules.get_key_value(&candidate).map(|(k, _)| k.as_str()))
    };
    modules
        .iter()
        .map(|(module, code)| {
            let parent = module.rsplit_once("::").map_or("", |(p, _)| p);
            let crate_paths = paths_after(code, "crate::");
            let super_paths = paths_after(code, "super::").map(|p| {
                if parent.is_empty() {
                    p
                } else {
                    format!("{parent}::{p}")
                }
            });
            let used = crate_paths
                .chain(super_paths)
                .filter_map(|p| resolve(&p))
                // A module's own children and ancestors are not imports of it.
                .filter(|used| *used != module && !module.starts_with(&format!("{used}::")))
                .filter(|used| !used.starts_with(&format!("{module}::")))
                .collect();
            (module.as_str(), used)
        })
        .collect()
}

/// A circle through `start`, if any: the path back to it.
fn circle_through<'a>(graph: &BTreeMap<&'a str, BTreeSet<&'a str>>, start: &'a str) -> Option<Vec<&'a str>> {
    let mut stack = vec![(start, vec![start])];
    let mut seen = BTreeSet::new();
    while let Some((at, path)) = stack.pop() {
        for &next in &graph[at] {
            if next == start {
                return Some([path.clone(), vec![start]].concat());
            }
            if seen.insert(next) {
                stack.push((next, [path.clone(), vec![next]].concat()));
            }
        }
    }
    None
}

#[test]
fn no_module_of_the_deployer_uses_one_that_uses_it_back() {
    let modules = modules();
    assert!(
        modules.contains_key("commands::deploy") && modules.contains_key("config"),
        "src/ was read: {:?}",
        modules.keys()
    );
    let graph = graph(&modules);
    assert!(
        graph["commands::deploy"].contains("commands::stack_op") && graph["secret"].contains("config"),
        "the graph follows crate:: and super:: paths: {graph:#?}"
    );
    let circles: Vec<String> = graph
        .keys()
        .filter_map(|m| circle_through(&graph, m))
        .map(|c| c.join(" -> "))
        .collect();
    assert!(circles.is_empty(), "import circles:\n{}", circles.join("\n"));
}

//! The request's path reads top-down: every module of function/src uses only modules
//! declared after it in lib.rs, so there is no import circle to untangle when reading.

use std::path::Path;

const LIB: &str = include_str!("../src/lib.rs");

/// The `pub mod` names of lib.rs, in order.
fn declared() -> Vec<String> {
    LIB.lines()
        .filter_map(|l| l.strip_prefix("pub mod "))
        .map(|l| l.trim_end_matches(';').to_owned())
        .collect()
}

/// The `crate::<module>` names a module's source mentions (its file, or its folder).
fn mentioned(module: &str) -> Vec<String> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut text = String::new();
    let file = src.join(format!("{module}.rs"));
    if file.exists() {
        text = std::fs::read_to_string(file).unwrap();
    } else {
        for entry in std::fs::read_dir(src.join(module)).unwrap() {
            text.push_str(&std::fs::read_to_string(entry.unwrap().path()).unwrap());
        }
    }
    let mut out: Vec<String> = text
        .split("crate::")
        .skip(1)
        .map(|rest| {
            rest.chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect()
        })
        .filter(|name: &String| !name.is_empty())
        .collect();
    out.sort();
    out.dedup();
    out
}

#[test]
fn every_module_uses_only_modules_declared_after_it() {
    let order = declared();
    assert!(order.len() > 10, "lib.rs lists the modules: {order:?}");
    let mut upward = Vec::new();
    for (position, module) in order.iter().enumerate() {
        for used in mentioned(module) {
            match order.iter().position(|m| *m == used) {
                Some(at) if at > position => {}
                Some(_) => upward.push(format!("{module} uses {used}, declared before it")),
                None => {}
            }
        }
    }
    assert!(upward.is_empty(), "{upward:#?}");
}

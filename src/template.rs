//! The CloudFormation template: read from disk, validated by CloudFormation, and checked
//! against the parameters the deployer passes.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::aws::{self, Aws};

/// CloudFormation's limit for a template passed inline.
pub const MAX_INLINE_BYTES: usize = 51_200;

#[derive(Debug, Clone)]
pub struct Template {
    pub path: PathBuf,
    pub body: String,
    /// Declared parameters and their defaults, as CloudFormation read them.
    pub parameters: BTreeMap<String, Option<String>>,
}

/// Reads the template; the error says what to do.
pub fn read(path: &Path) -> Result<String, String> {
    let shown = path.display();
    let body = std::fs::read_to_string(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => {
            format!("template {shown} does not exist: set TEMPLATE_FILE to your CloudFormation template (default template.yaml at the repository root)")
        }
        _ => format!("template {shown} could not be read ({e}): check the path and its permissions"),
    })?;
    if body.trim().is_empty() {
        return Err(format!(
            "template {shown} is empty: set TEMPLATE_FILE to the proxy's template.yaml"
        ));
    }
    if body.len() > MAX_INLINE_BYTES {
        return Err(format!(
            "template {shown} is {} bytes; CloudFormation accepts at most {MAX_INLINE_BYTES} inline: shorten it (descriptions, dashboard body)",
            body.len()
        ));
    }
    Ok(body)
}

/// Asks CloudFormation to parse the template and list its parameters.
pub async fn validate(aws: &Aws, path: &Path, body: String) -> Result<Template, String> {
    let out = aws
        .cloudformation
        .validate_template()
        .template_body(&body)
        .send()
        .await
        .map_err(|e| {
            let detail = aws::error_message(&e)
                .map(str::to_owned)
                .unwrap_or_else(|| aws::describe(&e));
            format!(
                "template {} is not valid: {detail}: fix it (run `cfn-lint {}` for details)",
                path.display(),
                path.display()
            )
        })?;
    let parameters = out
        .parameters()
        .iter()
        .filter_map(|p| {
            Some((
                p.parameter_key()?.to_owned(),
                p.default_value().map(str::to_owned),
            ))
        })
        .collect();
    Ok(Template {
        path: path.to_owned(),
        body,
        parameters,
    })
}

impl Template {
    /// What is wrong between the parameters we pass and the ones the template declares.
    pub fn check_parameters(&self, passed: &BTreeMap<String, String>) -> Vec<String> {
        let shown = self.path.display();
        let mut problems: Vec<String> = passed
            .keys()
            .filter(|key| !self.parameters.contains_key(*key))
            .map(|key| {
                format!(
                    "template {shown} has no parameter {key}, which the deployer passes: use the proxy's template.yaml, add the parameter, or remove it from PARAMETER_OVERRIDES"
                )
            })
            .collect();
        let passed_keys: BTreeSet<&String> = passed.keys().collect();
        problems.extend(
            self.parameters
                .iter()
                .filter(|(key, default)| default.is_none() && !passed_keys.contains(key))
                .map(|(key, _)| {
                    format!("template parameter {key} has no default and no value: add it to PARAMETER_OVERRIDES, e.g. {{\"{key}\":\"...\"}}")
                }),
        );
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template(params: &[(&str, Option<&str>)]) -> Template {
        Template {
            path: "template.yaml".into(),
            body: String::new(),
            parameters: params
                .iter()
                .map(|(k, d)| ((*k).to_owned(), d.map(str::to_owned)))
                .collect(),
        }
    }

    #[test]
    fn the_proxys_template_fits_inline() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("template.yaml");
        let body = read(&path).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            body.len() <= MAX_INLINE_BYTES,
            "template.yaml is {} bytes, over CloudFormation's inline limit the deployer relies on",
            body.len()
        );
    }

    #[test]
    fn passed_parameters_missing_from_the_template_and_required_ones_unpassed_are_named() {
        let t = template(&[("Stage", Some("prod")), ("VpcId", None)]);
        let passed = BTreeMap::from([
            ("Stage".to_owned(), "dev".to_owned()),
            ("Typo".to_owned(), "x".to_owned()),
        ]);
        let problems = t.check_parameters(&passed);
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].contains("has no parameter Typo"), "{problems:?}");
        assert!(problems[1].contains("VpcId has no default"), "{problems:?}");
        let ok = BTreeMap::from([("VpcId".to_owned(), "vpc-1".to_owned())]);
        assert!(t.check_parameters(&ok).is_empty());
    }
}

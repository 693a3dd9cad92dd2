//! The CloudFormation template: read (YAML or JSON, CloudFormation's short-form tags
//! included) into JSON once, its parameters checked against what the deployer passes,
//! validated by CloudFormation, and prepared for a deploy ([`prepare`]).

mod parse;
pub mod prepare;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::aws::{self, Aws};
use crate::error::{Error, Result};

/// CloudFormation's limit for a template passed inline; larger ones go through S3.
pub const MAX_INLINE_BYTES: usize = 51_200;

#[derive(Debug, Clone)]
pub struct Template {
    pub path: PathBuf,
    /// The whole template as JSON.
    pub doc: Value,
    /// Declared parameters and their defaults.
    pub parameters: BTreeMap<String, Option<String>>,
}

/// Reads and parses the template; the error says what to do.
pub fn load(path: &Path) -> Result<Template> {
    let shown = path.display();
    let text = std::fs::read_to_string(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => {
            Error::new(
                format!("template {shown} does not exist"),
                "set TEMPLATE_FILE to your CloudFormation template (default template.yaml at the repository root)",
            )
        }
        _ => Error::new(
            format!("template {shown} could not be read ({e})"),
            "check the path and its permissions",
        ),
    })?;
    if text.trim().is_empty() {
        return Err(Error::new(
            format!("template {shown} is empty"),
            "set TEMPLATE_FILE to the proxy's template.yaml",
        ));
    }
    let doc = parse::to_json(&text).map_err(|e| {
        Error::new(
            format!("template {shown} is not valid YAML or JSON ({e})"),
            format!("fix it (run `cfn-lint {shown}` for details)"),
        )
    })?;
    if !doc.get("Resources").is_some_and(Value::is_object) {
        return Err(Error::new(
            format!("template {shown} has no Resources section"),
            "set TEMPLATE_FILE to the proxy's template.yaml",
        ));
    }
    let parameters = doc
        .get("Parameters")
        .and_then(Value::as_object)
        .map(|params| {
            params
                .iter()
                .map(|(name, slot)| (name.clone(), slot.get("Default").map(prepare::text)))
                .collect()
        })
        .unwrap_or_default();
    Ok(Template {
        path: path.to_owned(),
        doc,
        parameters,
    })
}

/// Asks CloudFormation to check the template. One over the inline limit is checked when
/// its change set is created, from S3 (nothing may be uploaded before the prerequisites
/// pass).
pub async fn validate(aws: &Aws, template: &Template) -> Result<()> {
    let body = template.doc.to_string();
    if body.len() > MAX_INLINE_BYTES {
        return Ok(());
    }
    let shown = template.path.display();
    aws.cloudformation
        .validate_template()
        .template_body(body)
        .send()
        .await
        .map(|_| ())
        .map_err(|e| {
            let error = Error::aws(format_args!("validate template {shown}"), &e);
            // Only CloudFormation's verdict on the template itself is the template's to fix;
            // a denied call, expired credentials or an outage keep their own fix.
            if aws::error_code(&e) == Some("ValidationError") {
                let detail = aws::error_message(&e).unwrap_or_default();
                Error::new(
                    format!("template {shown} is not valid: {detail}"),
                    format!("fix it (run `cfn-lint {shown}` for details)"),
                )
            } else {
                error
            }
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

    pub(crate) fn template(params: &[(&str, Option<&str>)]) -> Template {
        Template {
            path: "template.yaml".into(),
            doc: Value::Null,
            parameters: params
                .iter()
                .map(|(k, d)| ((*k).to_owned(), d.map(str::to_owned)))
                .collect(),
        }
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

    #[test]
    fn the_proxys_template_loads_with_its_parameters_and_defaults() {
        let t = load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("template.yaml")).unwrap();
        assert_eq!(t.parameters["Stage"].as_deref(), Some("prod"));
        assert_eq!(t.parameters["OpenAIApiKeySecretArn"], None);
        assert_eq!(t.parameters["MemorySize"].as_deref(), Some("512"));
    }
}

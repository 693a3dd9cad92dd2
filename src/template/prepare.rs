//! The template as the deployer hands it to CloudFormation: JSON, with every
//! `AWS::ApiGateway::Deployment` renamed after a hash of the API it snapshots.
//!
//! A deployment is a snapshot of a REST API (its resources, methods, integrations,
//! gateway responses, authorizers, models and validators) that a stage serves.
//! CloudFormation creates a deployment only when its resource is new, so a template
//! alone never redeploys a changed API. Like AWS SAM, the deployer gives the deployment
//! a logical id that ends in a hash of what it snapshots, resolved with this deploy's
//! parameter values: when the API changes, the id changes, CloudFormation creates a new
//! deployment, points the stage at it and deletes the old one in its cleanup, all inside
//! the stack operation (so a rollback restores the previous deployment too).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::artifact::hex;
use crate::template::Template;

/// What an API Gateway deployment snapshots.
const SNAPSHOT_TYPES: &[&str] = &[
    "AWS::ApiGateway::RestApi",
    "AWS::ApiGateway::Resource",
    "AWS::ApiGateway::Method",
    "AWS::ApiGateway::GatewayResponse",
    "AWS::ApiGateway::Authorizer",
    "AWS::ApiGateway::Model",
    "AWS::ApiGateway::RequestValidator",
];
const DEPLOYMENT: &str = "AWS::ApiGateway::Deployment";

#[derive(Debug, Clone)]
pub struct Prepared {
    /// The template as CloudFormation receives it.
    pub body: String,
    /// Hex SHA-256 of `body`: its S3 key's stem.
    pub sha256_hex: String,
    /// Deployment resources renamed: (logical id in the file, logical id deployed).
    pub renamed: Vec<(String, String)>,
}

/// A parameter value as CloudFormation takes it: text (lists joined by commas).
pub fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Array(items) => items.iter().map(text).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}

pub fn prepare(template: &Template, parameters: &BTreeMap<String, String>) -> Prepared {
    let mut doc = template.doc.clone();
    let hash = api_hash(&doc, &values(template, parameters));
    let deployments: Vec<String> = resources(&doc)
        .filter(|(_, r)| r.get("Type").and_then(Value::as_str) == Some(DEPLOYMENT))
        .map(|(id, _)| id.clone())
        .collect();
    let renamed: Vec<(String, String)> = deployments
        .into_iter()
        .map(|id| {
            let new = format!("{id}{}", &hash[..10]);
            (id, new)
        })
        .collect();
    for (old, new) in &renamed {
        rename(&mut doc, old, new);
    }
    let body = doc.to_string();
    Prepared {
        sha256_hex: hex(&Sha256::digest(body.as_bytes())),
        body,
        renamed,
    }
}

fn resources(doc: &Value) -> impl Iterator<Item = (&String, &Value)> {
    doc.get("Resources")
        .and_then(Value::as_object)
        .into_iter()
        .flat_map(|m| m.iter())
}

/// Every parameter's value for this deploy: what the deployer passes, else the default.
fn values(template: &Template, passed: &BTreeMap<String, String>) -> BTreeMap<String, Option<String>> {
    template
        .parameters
        .iter()
        .map(|(name, default)| {
            (
                name.clone(),
                passed.get(name).cloned().or_else(|| default.clone()),
            )
        })
        .collect()
}

/// A hash of everything the API's deployments snapshot: the definitions of its parts,
/// the values of the parameters they use (directly, through Conditions, or through the
/// names of resources they point at, such as the function whose ARN an integration
/// calls), and the types of the other resources they point at.
pub fn api_hash(doc: &Value, values: &BTreeMap<String, Option<String>>) -> String {
    let empty = serde_json::Map::new();
    let all = doc.get("Resources").and_then(Value::as_object).unwrap_or(&empty);
    let conditions = doc.get("Conditions").and_then(Value::as_object).unwrap_or(&empty);
    let api: BTreeMap<&String, &Value> = all
        .iter()
        .filter(|(_, r)| {
            r.get("Type")
                .and_then(Value::as_str)
                .is_some_and(|t| SNAPSHOT_TYPES.contains(&t))
        })
        .collect();

    let mut names = BTreeSet::new();
    for def in api.values() {
        referenced(def, &mut names);
    }
    // Follow names until nothing new appears: Conditions to their parameters, other
    // resources to what their names (and so their ARNs) are made of.
    let mut done = BTreeSet::new();
    let mut outside = BTreeMap::new();
    while let Some(name) = names.iter().find(|n| !done.contains(*n)).cloned() {
        done.insert(name.clone());
        if let Some(condition) = conditions.get(&name) {
            referenced(condition, &mut names);
        } else if let Some(resource) = all.get(&name).filter(|_| !api.contains_key(&name)) {
            let naming: BTreeMap<&String, &Value> = resource
                .get("Properties")
                .and_then(Value::as_object)
                .into_iter()
                .flat_map(|p| p.iter())
                .filter(|(key, _)| key.ends_with("Name"))
                .collect();
            for value in naming.values() {
                referenced(value, &mut names);
            }
            outside.insert(
                name.clone(),
                json!({"Type": resource.get("Type"), "Names": naming}),
            );
        }
    }
    let used: BTreeMap<&String, &Option<String>> =
        values.iter().filter(|(name, _)| done.contains(*name)).collect();
    let snapshot = json!({"api": api, "parameters": used, "conditions": conditions
        .iter()
        .filter(|(name, _)| done.contains(*name))
        .collect::<BTreeMap<_, _>>(), "outside": outside});
    hex(&Sha256::digest(snapshot.to_string().as_bytes()))
}

/// The logical names (parameters, resources, conditions) `value` refers to.
fn referenced(value: &Value, names: &mut BTreeSet<String>) {
    match value {
        Value::Object(map) => {
            for (key, inner) in map {
                match (key.as_str(), inner) {
                    ("Ref" | "Condition", Value::String(name)) => {
                        names.insert(name.clone());
                    }
                    ("Fn::GetAtt", Value::Array(parts)) => {
                        if let Some(Value::String(name)) = parts.first() {
                            names.insert(name.clone());
                        }
                    }
                    ("Fn::If", Value::Array(parts)) => {
                        if let Some(Value::String(condition)) = parts.first() {
                            names.insert(condition.clone());
                        }
                        parts[1..].iter().for_each(|p| referenced(p, names));
                    }
                    ("Fn::Sub", Value::String(text)) => sub_names(text, names),
                    ("Fn::Sub", Value::Array(parts)) => {
                        if let Some(Value::String(text)) = parts.first() {
                            sub_names(text, names);
                        }
                        parts[1..].iter().for_each(|p| referenced(p, names));
                    }
                    _ => referenced(inner, names),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|i| referenced(i, names)),
        _ => {}
    }
}

/// `${Name}` and `${Name.Attribute}` of an `Fn::Sub` string (`${!Literal}` is none).
fn sub_names(text: &str, names: &mut BTreeSet<String>) {
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else { break };
        let name = &after[..end];
        if !name.starts_with('!') {
            names.insert(name.split('.').next().unwrap_or(name).to_owned());
        }
        rest = &after[end + 1..];
    }
}

/// Renames resource `old` to `new`, with every reference to it.
fn rename(doc: &mut Value, old: &str, new: &str) {
    if let Some(resources) = doc.get_mut("Resources").and_then(Value::as_object_mut)
        && let Some(def) = resources.remove(old)
    {
        resources.insert(new.to_owned(), def);
    }
    replace_refs(doc, old, new);
}

fn replace_refs(value: &mut Value, old: &str, new: &str) {
    match value {
        Value::Object(map) => {
            for (key, inner) in map.iter_mut() {
                match (key.as_str(), &mut *inner) {
                    ("Ref", Value::String(name)) if name == old => *name = new.to_owned(),
                    ("Fn::GetAtt", Value::Array(parts)) => {
                        if let Some(Value::String(name)) = parts.first_mut()
                            && name == old
                        {
                            *name = new.to_owned();
                        }
                    }
                    ("DependsOn", Value::String(name)) if name == old => *name = new.to_owned(),
                    ("DependsOn", Value::Array(names)) => {
                        for name in names.iter_mut() {
                            if name.as_str() == Some(old) {
                                *name = Value::String(new.to_owned());
                            }
                        }
                    }
                    ("Fn::Sub", Value::String(text)) => *text = sub_rename(text, old, new),
                    ("Fn::Sub", Value::Array(parts)) => {
                        if let Some(Value::String(text)) = parts.first_mut() {
                            *text = sub_rename(text, old, new);
                        }
                        parts[1..].iter_mut().for_each(|p| replace_refs(p, old, new));
                    }
                    _ => replace_refs(inner, old, new),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|i| replace_refs(i, old, new)),
        _ => {}
    }
}

fn sub_rename(text: &str, old: &str, new: &str) -> String {
    text.replace(&format!("${{{old}}}"), &format!("${{{new}}}"))
        .replace(&format!("${{{old}."), &format!("${{{new}."))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::template::load;

    fn proxy_template() -> Template {
        load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("template.yaml")).unwrap()
    }

    fn params(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn deployed_ids(prepared: &Prepared) -> Vec<String> {
        prepared.renamed.iter().map(|(_, new)| new.clone()).collect()
    }

    #[test]
    fn the_deployment_id_changes_exactly_when_the_api_does() {
        let t = proxy_template();
        let base = params(&[("LambdaFunctionName", "f"), ("CodeS3Key", "a.zip")]);
        let first = prepare(&t, &base);
        assert!(!first.renamed.is_empty(), "the proxy's template has a deployment");

        // Code, memory and log level are not part of the API.
        let same = prepare(
            &t,
            &params(&[
                ("LambdaFunctionName", "f"),
                ("CodeS3Key", "b.zip"),
                ("MemorySize", "1024"),
                ("LogLevel", "DEBUG"),
            ]),
        );
        assert_eq!(deployed_ids(&first), deployed_ids(&same));

        // A renamed function changes every integration's URI; a new timeout changes the
        // streaming integrations; CORS origins change the gateway responses.
        for changed in [
            params(&[("LambdaFunctionName", "g"), ("CodeS3Key", "a.zip")]),
            params(&[
                ("LambdaFunctionName", "f"),
                ("CodeS3Key", "a.zip"),
                ("LambdaTimeout", "600"),
            ]),
            params(&[
                ("LambdaFunctionName", "f"),
                ("CodeS3Key", "a.zip"),
                ("CorsAllowedOrigins", "https://app.example.com"),
            ]),
        ] {
            let other = prepare(&t, &changed);
            assert_ne!(deployed_ids(&first), deployed_ids(&other), "{changed:?}");
        }
    }

    #[test]
    fn every_reference_to_a_renamed_deployment_follows_it() {
        let t = Template {
            path: "t.json".into(),
            doc: json!({
                "Resources": {
                    "Api": {"Type": "AWS::ApiGateway::RestApi", "Properties": {"Name": {"Ref": "Name"}}},
                    "Dep": {"Type": "AWS::ApiGateway::Deployment", "Properties": {"RestApiId": {"Ref": "Api"}}},
                    "Stage": {"Type": "AWS::ApiGateway::Stage", "DependsOn": ["Dep"],
                              "Properties": {"DeploymentId": {"Ref": "Dep"},
                                             "Description": {"Fn::Sub": "${Dep} ${Dep.Id} ${Depot}"}}}
                },
                "Outputs": {"D": {"Value": {"Fn::GetAtt": ["Dep", "DeploymentId"]}}}
            }),
            parameters: BTreeMap::from([("Name".to_owned(), Some("a".to_owned()))]),
        };
        let prepared = prepare(&t, &BTreeMap::new());
        let new = &prepared.renamed[0].1;
        let doc: Value = serde_json::from_str(&prepared.body).unwrap();
        assert!(doc["Resources"].get("Dep").is_none());
        assert!(doc["Resources"].get(new).is_some());
        let stage = &doc["Resources"]["Stage"];
        assert_eq!(stage["DependsOn"][0], json!(new));
        assert_eq!(stage["Properties"]["DeploymentId"]["Ref"], json!(new));
        assert_eq!(
            stage["Properties"]["Description"]["Fn::Sub"],
            json!(format!("${{{new}}} ${{{new}.Id}} ${{Depot}}"))
        );
        assert_eq!(doc["Outputs"]["D"]["Value"]["Fn::GetAtt"][0], json!(new));
        // The API's name is a parameter it uses: another name, another deployment.
        let other = prepare(&t, &params(&[("Name", "b")]));
        assert_ne!(other.renamed[0].1, *new);
    }
}

//! API Gateway serves a REST API's routes as they were at its stage's last deployment.
//! The template creates a deployment only when the response mode switches, so an update
//! that changes a method (a renamed function, a new Lambda timeout in STREAM mode) would
//! not be served until the next one: the deployer deploys the stage itself then.

use crate::aws::{self, Aws};
use crate::stack::ResourceChange;

/// Whether these changes alter routes the stage would not serve until redeployed: a
/// method or resource changed, and no deployment resource came with them.
pub fn needs_redeploy(changes: &[ResourceChange]) -> bool {
    let routes_changed = changes.iter().any(|c| {
        matches!(
            c.resource_type.as_str(),
            "AWS::ApiGateway::Method" | "AWS::ApiGateway::Resource"
        )
    });
    let deployed = changes
        .iter()
        .any(|c| c.resource_type == "AWS::ApiGateway::Deployment" && c.action == "Add");
    routes_changed && !deployed
}

/// Deploys the current routes to `stage`; returns the new deployment's id.
pub async fn redeploy(aws: &Aws, rest_api_id: &str, stage: &str) -> Result<String, String> {
    let out = aws
        .apigateway
        .create_deployment()
        .rest_api_id(rest_api_id)
        .stage_name(stage)
        .description("routes changed by openai-proxy-deployer")
        .send()
        .await
        .map_err(|e| {
            format!(
                "could not deploy the changed routes of API {rest_api_id} to stage {stage} ({}): the deploying role needs apigateway:POST on /restapis/*/deployments; until then the stage serves the previous routes",
                aws::describe(&e)
            )
        })?;
    Ok(out.id().unwrap_or_default().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(action: &str, resource_type: &str) -> ResourceChange {
        ResourceChange {
            action: action.into(),
            logical_id: "X".into(),
            resource_type: resource_type.into(),
            replacement: None,
        }
    }

    #[test]
    fn changed_routes_without_a_new_deployment_need_one() {
        assert!(needs_redeploy(&[change("Modify", "AWS::ApiGateway::Method")]));
        assert!(needs_redeploy(&[
            change("Add", "AWS::ApiGateway::Resource"),
            change("Modify", "AWS::Lambda::Function")
        ]));
        assert!(!needs_redeploy(&[
            change("Modify", "AWS::ApiGateway::Method"),
            change("Add", "AWS::ApiGateway::Deployment")
        ]));
        assert!(!needs_redeploy(&[
            change("Modify", "AWS::Lambda::Function"),
            change("Modify", "AWS::ApiGateway::Stage")
        ]));
    }
}

//! setup-secrets: creates or updates the proxy's secret, and nothing else.

use super::Context;
use crate::error::{Error, Result};
use crate::prereq::Needs;
use crate::report::{Outcome, Status};

pub(super) async fn run(ctx: &mut Context) -> Result<()> {
    let ready = ctx.prerequisites(Needs::CREDENTIALS).await?;
    let config = &ctx.config;
    if config.openai_api_key.is_none() && config.model_mappings.is_none() && config.client_api_keys.is_none()
    {
        return Err(Error::new(
            "setup-secrets has nothing to write",
            "set OPENAI_API_KEY, MODEL_MAPPINGS or CLIENT_API_KEYS (a new secret needs OPENAI_API_KEY)",
        ));
    }
    ctx.secret_phase(&ready).await?;
    ctx.report.status = Some(Status::Succeeded);
    ctx.report.outcome = Some(Outcome::SecretReady);
    Ok(())
}

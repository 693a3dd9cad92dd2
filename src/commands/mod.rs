//! The commands, one file each, as sequences of phases over a shared [`Context`]. Each
//! phase is timed into the report; the first that fails ends the run, and the report
//! says what it left behind.

mod deploy;
mod destroy;
mod guarded;
mod setup_secrets;
mod stack_op;
mod test;
mod usage;
mod validate;

use std::collections::BTreeMap;

use tokio::time::Instant;

use crate::artifact::Artifact;
use crate::aws::Aws;
use crate::cfn::classify::Settled;
use crate::cfn::events::Operation;
use crate::cfn::wait::Wait;
use aws_sdk_cloudformation::types::StackStatus;

use crate::cfn::{self, Poll, request_token};
use crate::client_keys;
use crate::config::{Command, Config};
use crate::error::{Error, Result};
use crate::params;
use crate::prereq::{self, Needs, Ready};
use crate::report::{Outcome, Phase, Report, Status};
use crate::runner::Runner;
use crate::s3::{self, Bucket};
use crate::secret;
use crate::template::prepare::{self, Prepared};
use crate::ui::Ui;

/// What every command works with.
pub struct Context {
    pub config: Config,
    pub ui: Ui,
    pub poll: Poll,
    pub report: Report,
    /// This run's update of the secret, until the stack serves with it.
    secret_undo: Option<secret::Undo>,
    /// Whether the stack's change set was executed (the new version may serve).
    change_executed: bool,
}

impl Context {
    pub fn new(config: Config, runner: &Runner) -> Self {
        let report = Report {
            command: config.deployer_command.as_str().to_owned(),
            stack: config.stack_name.clone(),
            region: config.aws_region.clone(),
            repository: runner.repository.clone(),
            commit: runner.commit.clone(),
            ..Report::default()
        };
        Self {
            config,
            ui: Ui::new(runner.actions),
            poll: Poll::default(),
            report,
            secret_undo: None,
            change_executed: false,
        }
    }

    /// How long one wait may take: `WAIT_TIMEOUT`, counted from each wait's start.
    pub fn wait_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.config.wait_timeout)
    }

    /// Starts a phase: its title in the log, its clock.
    fn begin(&self, title: &str) -> Instant {
        self.ui.phase(title);
        Instant::now()
    }

    /// Ends a phase started with [`Self::begin`]: its time and result go into the report.
    fn end<T>(&mut self, name: &'static str, started: Instant, result: Result<T>) -> Result<T> {
        self.report.phases.push(Phase {
            name,
            seconds: started.elapsed().as_secs_f64(),
            ok: result.is_ok(),
        });
        result
    }

    async fn prerequisites(&mut self, needs: Needs) -> Result<Ready> {
        let started = self.begin("Checking prerequisites");
        let checked = prereq::check(&self.config, needs).await;
        let result = match checked {
            Ok(ready) => {
                self.report.account = Some(ready.account.clone());
                self.report.region = Some(ready.aws.region.clone());
                self.ui
                    .step(&format!("account {} as {}", ready.account, ready.caller_arn));
                if !ready.bundled.is_empty() {
                    let what = ready.bundled.join(" and ");
                    announce_bundled(&self.ui, &what);
                    self.report.bundled = Some(format!(
                        "{what} of openai-proxy-deployer {} (no template-file / function-artifact given)",
                        env!("CARGO_PKG_VERSION")
                    ));
                }
                if let Some(a) = &ready.artifact {
                    self.ui.step(&format!(
                        "artifact: {} bytes for {}",
                        a.zip.len(),
                        a.architecture.as_str()
                    ));
                }
                Ok(ready)
            }
            Err(unmet) => {
                self.report.account = unmet.account.clone();
                self.report.outcome = Some(Outcome::PrerequisitesUnmet(unmet.problems.len()));
                Err(Error::new(
                    unmet.to_string(),
                    "each line above names its fix; nothing was created or uploaded",
                ))
            }
        };
        self.end("prerequisites", started, result)
    }

    /// deploy and validate: the checked artifact is moved out of `Ready`, not copied.
    async fn prerequisites_for_change(&mut self) -> Result<(Ready, Artifact)> {
        let mut ready = self.prerequisites(Needs::STACK_CHANGE).await?;
        let artifact = ready
            .artifact
            .take()
            .expect("Needs::STACK_CHANGE loads the artifact");
        Ok((ready, artifact))
    }

    async fn secret_phase(&mut self, ready: &Ready) -> Result<String> {
        let started = self.begin("Secret");
        let outcome = secret::apply(&ready.aws, &self.config).await;
        let outcome = self.end("secret", started, outcome)?;
        self.ui
            .step(&format!("{}: {}", outcome.arn, outcome.action.as_str()));
        self.report.secret = Some((outcome.arn.clone(), outcome.action));
        self.report.clients = outcome.clients;
        self.secret_undo = outcome.undo;
        Ok(outcome.arn)
    }

    /// `result`, and on failure the secret put back to its version before this run while
    /// the stack is at its previous version: before the change executed, or once it is
    /// rolled back (`UPDATE_ROLLBACK_COMPLETE`). The function then reads what it read
    /// before (an older function may not read fields the new secret has). An update still
    /// running, or one that completed, keeps the new secret.
    async fn secret_back_on_failure<T>(&mut self, ready: &Ready, result: Result<T>) -> Result<T> {
        if result.is_err() && self.secret_undo.is_some() {
            let back = !self.change_executed
                || cfn::stack::describe(&ready.aws, &self.config.stack_name)
                    .await
                    .ok()
                    .flatten()
                    .is_some_and(|info| info.status == StackStatus::UpdateRollbackComplete);
            if back {
                self.put_secret_back(ready).await;
            }
        }
        result
    }

    /// Makes the secret's version before this run current again, once.
    pub(super) async fn put_secret_back(&mut self, ready: &Ready) {
        let Some(undo) = self.secret_undo.take() else {
            return;
        };
        match secret::restore(&ready.aws, &undo).await {
            Ok(()) => {
                self.ui
                    .step(&format!("{}: {}", undo.arn, secret::Action::Restored.as_str()));
                self.report.secret = Some((undo.arn, secret::Action::Restored));
            }
            Err(e) => self
                .report
                .notes
                .push(format!("the secret {} keeps this run's version: {e}", undo.arn)),
        }
    }

    /// The stack's change is executing: from now on only a rollback puts the secret back.
    fn change_executing(&mut self) {
        self.change_executed = true;
    }

    /// The new version serves with this run's secret: a later failure keeps it.
    fn secret_kept(&mut self) {
        self.secret_undo = None;
    }

    /// The configured artifact bucket or the default one's name, for this account.
    fn bucket_name(&self, ready: &Ready) -> String {
        self.config
            .artifact_bucket
            .clone()
            .unwrap_or_else(|| s3::default_name(&ready.account, &ready.aws.region))
    }

    /// What a deploy submits to CloudFormation, and so what validate plans with: the
    /// code's key, the parameters and the prepared template. One function, so a plan
    /// is exactly the deploy it stands for.
    fn submission(&self, ready: &Ready, artifact: &Artifact, secret_arn: &str, bucket: &str) -> Submission {
        let code_key = s3::function_key(&self.config.stack_name, &artifact.sha256_hex);
        let parameters = params::build(
            &self.config,
            &params::Inputs {
                secret_arn,
                bucket,
                key: &code_key,
                architecture: artifact.architecture,
                manage_api_gateway_account: ready.manage_api_gateway_account,
                bedrock_model_arns: ready.bedrock_model_arns.as_deref(),
            },
        );
        let template = ready
            .template
            .as_ref()
            .expect("Needs::STACK_CHANGE loads the template");
        let template = prepare::prepare(template, &parameters);
        Submission {
            code_key,
            parameters,
            template,
        }
    }

    async fn find_bucket(&self, ready: &Ready) -> Result<Option<Bucket>> {
        s3::find(&ready.aws, self.config.artifact_bucket.as_deref(), &ready.account).await
    }

    /// Waits for `op` on `stack` to end, its events (into the report) inside a log group.
    async fn wait(&mut self, aws: &Aws, stack: &str, op: &mut Operation, title: &str) -> Result<Settled> {
        self.ui.group(title);
        let settled = Wait {
            aws,
            stack,
            poll: self.poll,
            timeout: self.wait_timeout(),
            ui: &self.ui,
        }
        .until_settled(op, &mut self.report.events)
        .await;
        self.ui.end_group();
        settled
    }

    /// Deletes `stack` (a name or id) and waits for the deletion to end.
    async fn delete_stack(&mut self, aws: &Aws, stack: &str, title: &str) -> Result<Settled> {
        let token = request_token();
        let mut op = Operation::begin(aws, stack, &token).await?;
        cfn::stack::delete(aws, stack, &token).await?;
        self.wait(aws, stack, &mut op, title).await
    }
}

/// See [`Context::submission`].
struct Submission {
    code_key: String,
    parameters: BTreeMap<String, String>,
    template: Prepared,
}

/// Stores the prepared template under its content hash in `bucket`; its TemplateURL.
async fn store_template(aws: &Aws, bucket: &Bucket, stack: &str, prepared: &Prepared) -> Result<String> {
    let key = s3::template_key(stack, &prepared.sha256_hex);
    s3::put(aws, bucket, &key, prepared.body.as_bytes(), "application/json").await?;
    Ok(s3::url(aws, &bucket.name, &key))
}

/// Says that the action's bundled stock files are deployed, where people look.
fn announce_bundled(ui: &Ui, what: &str) {
    ui.notice(&format!(
        "deploying the stock {what} bundled with openai-proxy-deployer {}: to deploy your own, give the input template-file / function-artifact",
        env!("CARGO_PKG_VERSION")
    ));
}

/// Runs the configured command; the report holds the outcome.
pub async fn run(ctx: &mut Context) {
    // Before anything else can print: the runner hides these from every later line.
    if let Some(key) = &ctx.config.openai_api_key {
        ctx.ui.mask(key.expose());
    }
    if let Some(key) = &ctx.config.test_client_api_key {
        ctx.ui.mask(key.expose());
    }
    if let Some(keys) = &ctx.config.client_api_keys {
        for line in client_keys::lines(keys.expose()) {
            // The key alone: its name and limits are shown in the report. A named key too
            // short to be valid is refused later, and masking it would blot out common words.
            if line.name.is_none() || line.key.len() >= client_keys::MIN_LEN {
                ctx.ui.mask(line.key);
            }
        }
    }
    if !ctx.config.enable_authentication
        && matches!(ctx.config.deployer_command, Command::Deploy | Command::Validate)
    {
        let warning = "authentication is off (ENABLE_AUTHENTICATION=false): anyone with the API's URL can call it and spend your OpenAI key; set client keys (CLIENT_API_KEYS) and turn it on";
        ctx.ui.warn(warning);
        ctx.report.notes.push(format!("⚠️ {warning}"));
    }
    let result = match ctx.config.deployer_command {
        Command::Deploy => deploy::run(ctx).await,
        Command::Validate => validate::run(ctx).await,
        Command::Destroy => destroy::run(ctx).await,
        Command::SetupSecrets => setup_secrets::run(ctx).await,
        Command::Test => test::run(ctx).await,
        Command::Usage => usage::run(ctx).await,
    };
    if let Err(failed) = result {
        ctx.report.status = Some(Status::Failed);
        ctx.ui
            .annotate_error(&format!("{} failed", ctx.report.command), &failed.cause);
        ctx.report.error = Some(failed.cause);
        ctx.report.fix = Some(failed.fix).filter(|f| !f.is_empty());
        note_what_stays(&mut ctx.report);
    }
}

/// After a failure, says what earlier phases left in place, and that it is safe.
fn note_what_stays(report: &mut Report) {
    if let Some((arn, secret::Action::Restored)) = &report.secret {
        report.notes.push(format!(
            "the secret {arn} was put back to its version before this run, which the stack reads"
        ));
    }
    if let Some((arn, action)) = &report.secret
        && matches!(action, secret::Action::Created | secret::Action::Updated)
    {
        report.notes.push(format!(
            "the secret {arn} was {} and stays: the next run reuses it",
            if *action == secret::Action::Created {
                "created"
            } else {
                "updated"
            }
        ));
    }
    if let Some(upload) = &report.upload
        && upload.uploaded
    {
        report.notes.push(format!(
            "the artifact s3://{}/{} stays: its key is its content hash, so the next run reuses it",
            upload.bucket, upload.key
        ));
    }
}

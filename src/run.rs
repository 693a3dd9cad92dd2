//! The commands, as sequences of phases. Each phase is timed into the report; the first
//! that fails ends the run, and the report says what it left behind.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_cloudformation::types::ChangeSetType;
use aws_smithy_types::DateTime;
use tokio::time::Instant;

use crate::api;
use crate::artifact::Artifact;
use crate::bucket;
use crate::code::{self, Verified};
use crate::config::{Command, Config};
use crate::endpoint;
use crate::params;
use crate::prereq::{self, Needs, Ready};
use crate::publish::env_nonempty;
use crate::report::{Phase, Report, Status, Upload};
use crate::secret;
use crate::stack::{self, Plan, Poll, Prepared, Settled};
use crate::ui::Ui;

/// A phase's failure: what happened (cause) and, when known, what to do.
#[derive(Debug)]
pub struct Failed {
    pub message: String,
    pub fix: Option<String>,
}

impl From<String> for Failed {
    fn from(message: String) -> Self {
        Self { message, fix: None }
    }
}

pub struct Run {
    pub config: Config,
    pub ui: Ui,
    pub poll: Poll,
    pub report: Report,
    deadline: Instant,
}

const TAG_REPOSITORY: &str = "openai-lambda-proxy:repository";
const TAG_COMMIT: &str = "openai-lambda-proxy:commit";

impl Run {
    pub fn new(config: Config, ui: Ui) -> Self {
        let report = Report {
            command: command_name(config.deployer_command).to_owned(),
            stack: config.stack_name.clone(),
            region: config.aws_region.clone(),
            repository: env_nonempty("GITHUB_REPOSITORY"),
            commit: env_nonempty("GITHUB_SHA"),
            ..Report::default()
        };
        let deadline = Instant::now() + Duration::from_secs(config.wait_timeout);
        Self {
            config,
            ui,
            poll: Poll::default(),
            report,
            deadline,
        }
    }

    /// Runs the configured command; the report holds the outcome.
    pub async fn execute(&mut self) {
        // Before anything else can print: the runner hides these from every later line.
        if let Some(key) = &self.config.openai_api_key {
            self.ui.mask(key.expose());
        }
        if let Some(key) = &self.config.test_client_api_key {
            self.ui.mask(key.expose());
        }
        if let Some(keys) = &self.config.client_api_keys {
            for key in keys.expose().lines().map(str::trim).filter(|k| !k.is_empty()) {
                self.ui.mask(key);
                // `name=key`: the key alone may be printed elsewhere (never by us).
                if let Some((_, named)) = key.split_once('=')
                    && named.len() >= 16
                {
                    self.ui.mask(named);
                }
            }
        }
        if !self.config.enable_authentication
            && matches!(self.config.deployer_command, Command::Deploy | Command::Validate)
        {
            let warning = "authentication is off (ENABLE_AUTHENTICATION=false): anyone with the API's URL can call it and spend your OpenAI key; set client keys (CLIENT_API_KEYS) and turn it on";
            self.ui.warn(warning);
            self.report.notes.push(format!("⚠️ {warning}"));
        }
        let result = match self.config.deployer_command {
            Command::Deploy => self.deploy().await,
            Command::Validate => self.validate().await,
            Command::Destroy => self.destroy().await,
            Command::SetupSecrets => self.setup_secrets().await,
            Command::Test => self.test().await,
        };
        if let Err(failed) = result {
            self.report.status = Some(Status::Failed);
            if self.report.headline.is_empty() {
                self.report.headline = "failed".into();
            }
            self.ui
                .annotate_error(&format!("{} failed", self.report.command), &failed.message);
            self.report.error = Some(failed.message);
            self.report.fix = failed.fix;
            self.note_what_stays();
        }
    }

    /// After a failure, says what earlier phases left in place, and that it is safe.
    fn note_what_stays(&mut self) {
        if let Some((arn, action)) = &self.report.secret
            && matches!(action.as_str(), "created" | "updated (new version)")
        {
            self.report.notes.push(format!(
                "the secret {arn} was {} and stays: the next run reuses it",
                action.split(' ').next().unwrap_or("written")
            ));
        }
        if let Some(upload) = &self.report.upload
            && upload.uploaded
        {
            self.report.notes.push(format!(
                "the artifact s3://{}/{} stays: its key is its content hash, so the next run reuses it",
                upload.bucket, upload.key
            ));
        }
    }

    fn record(&mut self, name: &'static str, started: Instant, ok: bool) {
        self.report.phases.push(Phase {
            name,
            seconds: started.elapsed().as_secs_f64(),
            ok,
        });
    }

    async fn prerequisites(&mut self, needs: Needs) -> Result<Ready, Failed> {
        self.ui.phase("Checking prerequisites");
        let started = Instant::now();
        let checked = prereq::check(&self.config, needs).await;
        self.record("prerequisites", started, checked.is_ok());
        match checked {
            Ok(ready) => {
                self.report.account = Some(ready.account.clone());
                self.report.region = Some(ready.aws.region.clone());
                self.ui
                    .step(&format!("account {} as {}", ready.account, ready.caller_arn));
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
                self.report.headline = format!("{} prerequisite(s) not met", unmet.problems.len());
                Err(Failed {
                    message: unmet.to_string(),
                    fix: Some("each line above names its fix; nothing was created or uploaded".into()),
                })
            }
        }
    }

    /// deploy and validate: the checked artifact is moved out of `Ready`, not copied.
    async fn prerequisites_for_change(&mut self) -> Result<(Ready, Artifact), Failed> {
        let mut ready = self.prerequisites(Needs::STACK_CHANGE).await?;
        let artifact = ready
            .artifact
            .take()
            .expect("Needs::STACK_CHANGE loads the artifact");
        Ok((ready, artifact))
    }

    async fn secret_phase(&mut self, ready: &Ready) -> Result<String, Failed> {
        self.ui.phase("Secret");
        let started = Instant::now();
        let outcome = secret::apply(&ready.aws, &self.config).await;
        self.record("secret", started, outcome.is_ok());
        let outcome = outcome?;
        let action = match outcome.action {
            secret::Action::Created => "created",
            secret::Action::Updated => "updated (new version)",
            secret::Action::Unchanged => "unchanged (no new version)",
            secret::Action::Existing => "used as is",
        };
        self.ui.step(&format!("{}: {action}", outcome.arn));
        self.report.secret = Some((outcome.arn.clone(), action.to_owned()));
        Ok(outcome.arn)
    }

    async fn setup_secrets(&mut self) -> Result<(), Failed> {
        let ready = self.prerequisites(Needs::CREDENTIALS).await?;
        if self.config.openai_api_key.is_none() && self.config.model_mappings.is_none() {
            return Err(Failed {
                message: "setup-secrets has nothing to write".into(),
                fix: Some("set OPENAI_API_KEY (and optionally MODEL_MAPPINGS)".into()),
            });
        }
        self.secret_phase(&ready).await?;
        self.report.status = Some(Status::Succeeded);
        self.report.headline = "secret ready".into();
        Ok(())
    }

    async fn upload_phase(&mut self, ready: &Ready, artifact: &Artifact) -> Result<(String, String), Failed> {
        self.ui.phase("Uploading the function");
        let started = Instant::now();
        let result = async {
            let bucket = bucket::ensure(&ready.aws, self.config.artifact_bucket.as_deref(), &ready.account).await?;
            if bucket.created {
                self.ui.step(&format!("created artifact bucket {} (encrypted, private, versioned, TLS only over HTTPS endpoints)", bucket.name));
            }
            let uploaded = bucket::upload(&ready.aws, &bucket.name, artifact).await?;
            Ok::<_, String>((bucket.name, uploaded))
        }
        .await;
        self.record("upload", started, result.is_ok());
        let (bucket_name, uploaded) = result?;
        let key = bucket::key(artifact);
        self.ui.step(&format!(
            "s3://{bucket_name}/{key}: {}",
            if uploaded {
                "uploaded"
            } else {
                "already there, not uploaded again"
            }
        ));
        self.report.upload = Some(Upload {
            bucket: bucket_name.clone(),
            key: key.clone(),
            bytes: artifact.zip.len(),
            uploaded,
            architecture: artifact.architecture.as_str(),
        });
        Ok((bucket_name, key))
    }

    /// Waits out another operation, recreates a failed first create, or refuses a stuck
    /// stack; returns the change set type to use.
    async fn settle_before_change(
        &mut self,
        ready: &Ready,
    ) -> Result<(ChangeSetType, Option<stack::StackInfo>), Failed> {
        let stack = self.config.stack_name.clone();
        loop {
            let found = stack::describe(&ready.aws, &stack).await?;
            match stack::plan(found.as_ref()) {
                Plan::Create => return Ok((ChangeSetType::Create, found)),
                Plan::Update => return Ok((ChangeSetType::Update, found)),
                Plan::Stuck(status) => {
                    self.report.stack_status = Some(status.clone());
                    return Err(Failed {
                        message: format!("stack {stack} is in {status} and cannot be updated"),
                        fix: Some(stack::stuck_fix(&status)),
                    });
                }
                Plan::WaitForOther(status) => {
                    self.ui.group(&format!(
                        "Stack {stack} is busy ({status}): waiting for it to finish"
                    ));
                    let settled = self.wait_stack(ready, &stack).await;
                    self.ui.end_group();
                    if let Settled::TimedOut(status) = settled? {
                        return Err(self.timed_out(&status));
                    }
                }
                Plan::RecreateAfterFailedCreate => {
                    self.ui.warn(&format!(
                        "stack {stack} is in ROLLBACK_COMPLETE (its first create failed): deleting it to create it again"
                    ));
                    self.report
                        .notes
                        .push("the stack was in ROLLBACK_COMPLETE and was deleted and recreated".into());
                    stack::delete_stack(&ready.aws, &stack).await?;
                    self.ui.group(&format!("Deleting stack {stack}"));
                    let settled = self.wait_stack(ready, &stack).await;
                    self.ui.end_group();
                    match settled? {
                        Settled::Gone => {}
                        Settled::TimedOut(status) => return Err(self.timed_out(&status)),
                        Settled::Failed(status) | Settled::Succeeded(status) => {
                            return Err(Failed {
                                message: format!("deleting the failed stack {stack} ended in {status}"),
                                fix: Some(stack::stuck_fix(&status)),
                            });
                        }
                    }
                }
            }
        }
    }

    async fn wait_stack(&mut self, ready: &Ready, stack: &str) -> Result<Settled, String> {
        let since = DateTime::from(std::time::SystemTime::now() - Duration::from_secs(5));
        stack::wait(
            &ready.aws,
            stack,
            since,
            self.poll,
            self.deadline,
            &self.ui,
            &mut self.report.events,
        )
        .await
    }

    fn timed_out(&self, status: &str) -> Failed {
        Failed {
            message: format!(
                "gave up after WAIT_TIMEOUT={} s while stack {} was {status}",
                self.config.wait_timeout, self.config.stack_name
            ),
            fix: Some("the operation goes on in CloudFormation: watch it in the console, and raise WAIT_TIMEOUT if your stack needs longer".into()),
        }
    }

    fn tags(
        &self,
        previous: Option<&stack::StackInfo>,
    ) -> (BTreeMap<String, String>, Option<BTreeMap<String, String>>) {
        let mut tags = BTreeMap::from([("managed-by".to_owned(), "openai-proxy-deployer".to_owned())]);
        if let Some(repo) = &self.report.repository {
            tags.insert(TAG_REPOSITORY.into(), repo.clone());
        }
        if let Some(commit) = &self.report.commit {
            tags.insert(TAG_COMMIT.into(), commit.clone());
        }
        // Tags reach every resource, so a new commit alone would make every deploy an
        // update. Try the stack's current commit tag first: only a real change then
        // carries the new commit.
        let unchanged = previous.and_then(|info| {
            let old = info.tags.get(TAG_COMMIT)?;
            (Some(old) != tags.get(TAG_COMMIT)).then(|| {
                let mut t = tags.clone();
                t.insert(TAG_COMMIT.into(), old.clone());
                t
            })
        });
        (tags, unchanged)
    }

    async fn change_set(
        &mut self,
        ready: &Ready,
        kind: ChangeSetType,
        previous: Option<&stack::StackInfo>,
        parameters: &BTreeMap<String, String>,
    ) -> Result<Prepared, Failed> {
        let template = ready
            .template
            .as_ref()
            .expect("deploy and validate load the template");
        let (tags, old_commit_tags) = self.tags(previous);
        // Unique even for runs in the same second: the emulator looks change sets up by
        // name across stacks.
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let name = format!(
            "openai-proxy-{}-{}-{:09}",
            self.report.command,
            now.as_secs(),
            now.subsec_nanos()
        );
        let mut request = stack::Request {
            stack: &self.config.stack_name,
            kind,
            template_body: &template.body,
            parameters,
            tags: &tags,
            name: &name,
        };
        if let Some(old) = &old_commit_tags {
            request.tags = old;
            match stack::create_change_set(&ready.aws, &request, self.poll, self.deadline).await? {
                Prepared::NoChanges => return Ok(Prepared::NoChanges),
                Prepared::Ready(cs) => {
                    stack::delete_change_set(&ready.aws, &self.config.stack_name, &cs.name).await
                }
            }
            request.tags = &tags;
        }
        Ok(stack::create_change_set(&ready.aws, &request, self.poll, self.deadline).await?)
    }

    fn describe_changes(&mut self, cs: &stack::ChangeSet) {
        let summary = stack::summarize(&cs.changes);
        self.ui.step(&format!(
            "{} to add, {} to modify, {} to remove",
            summary.adds, summary.modifies, summary.removes
        ));
        for c in &cs.changes {
            self.ui.step(&format!(
                "  {:<7} {:<40} {}{}",
                c.action,
                c.logical_id,
                c.resource_type,
                match c.replacement.as_deref() {
                    Some("True") => "  (replaced)",
                    Some("Conditional") => "  (may be replaced)",
                    _ => "",
                }
            ));
        }
        if !summary.replacements.is_empty() {
            self.ui.warn(&format!(
                "this change replaces {}: the replaced resources get new physical ids",
                summary.replacements.join(", ")
            ));
        }
        self.report.changes = Some((summary, cs.changes.clone()));
    }

    async fn deploy(&mut self) -> Result<(), Failed> {
        let (ready, artifact) = self.prerequisites_for_change().await?;
        let secret_arn = self.secret_phase(&ready).await?;
        let (bucket_name, key) = self.upload_phase(&ready, &artifact).await?;

        self.ui.phase(&format!("Stack {}", self.config.stack_name));
        let started = Instant::now();
        let result = self
            .deploy_stack(&ready, &artifact, &secret_arn, &bucket_name, &key)
            .await;
        self.record("stack", started, result.is_ok());
        let no_changes = result?;

        if let Some(function) = self.report.outputs.get("FunctionName").cloned() {
            self.ui.phase("Verifying the function code");
            let started = Instant::now();
            let verified = code::verify(
                &ready.aws,
                &function,
                &artifact,
                &bucket_name,
                &key,
                self.poll,
                self.deadline,
            )
            .await;
            self.record("function code", started, verified.is_ok());
            match verified? {
                Verified::Matches => self.ui.step("the function runs the uploaded artifact"),
                Verified::Updated => {
                    self.ui.warn("the function's code had been changed outside this deployer; it was updated to the artifact");
                    self.report
                        .notes
                        .push("the function's code had been changed out of band and was updated".into());
                }
            }
        }
        self.report.status = Some(if no_changes {
            Status::NoChanges
        } else {
            Status::Succeeded
        });
        self.report.headline = if no_changes {
            "no changes: the stack is up to date".into()
        } else {
            "deployed".into()
        };
        let expected = match endpoint::mapped_ids(self.config.model_mappings.as_deref()) {
            Some(ids) => ids,
            None => endpoint::secret_model_ids(&ready.aws, &secret_arn).await,
        };
        // For the report's client snippet, whether or not the tests run.
        self.report.model = expected.first().cloned();
        self.report.auth = Some(self.config.enable_authentication);
        if !self.config.run_endpoint_tests {
            self.report
                .notes
                .push("endpoint tests not run (RUN_ENDPOINT_TESTS=false)".into());
            return Ok(());
        }
        let base = self.endpoint_target()?;
        // The origins the deployed stack allows (the parameter may come from an earlier deploy).
        let cors = stack::describe(&ready.aws, &self.config.stack_name)
            .await
            .ok()
            .flatten()
            .and_then(|info| info.parameters.get("CorsAllowedOrigins").cloned());
        let tested = self.endpoint_phase(&base, expected, cors.as_deref()).await;
        if tested.is_err() {
            self.report.headline = format!("{}, but the endpoint tests failed", self.report.headline);
        }
        tested
    }

    /// DEPLOYER_COMMAND=test: the endpoint tests against API_BASE_URL, or else the
    /// stack's `ApiUrl` (read with credentials; no template or artifact needed).
    async fn test(&mut self) -> Result<(), Failed> {
        let mut cors =
            endpoint::parameter_override(self.config.parameter_overrides.as_deref(), "CorsAllowedOrigins");
        if self.config.api_base_url.is_some() {
            // No stack is consulted: the report names only the target.
            self.report.stack.clear();
            self.report.region = None;
        } else {
            let ready = self.prerequisites(Needs::CREDENTIALS).await?;
            let stack = self.config.stack_name.clone();
            let Some(info) = stack::describe(&ready.aws, &stack).await? else {
                return Err(Failed {
                    message: format!("there is no stack {stack} in {}", ready.aws.region),
                    fix: Some(
                        "deploy it first (DEPLOYER_COMMAND=deploy), or set API_BASE_URL to the proxy to test"
                            .into(),
                    ),
                });
            };
            self.report.stack_status = Some(info.status.clone());
            self.report.outputs = info.outputs;
            if let Some(deployed) = info.parameters.get("CorsAllowedOrigins") {
                cors = Some(deployed.clone());
            }
        }
        let base = self.endpoint_target()?;
        let expected = endpoint::mapped_ids(self.config.model_mappings.as_deref()).unwrap_or_default();
        self.endpoint_phase(&base, expected, cors.as_deref()).await?;
        self.report.status = Some(Status::Succeeded);
        self.report.headline = "the proxy answers as it should".into();
        Ok(())
    }

    /// API_BASE_URL, else the stack's `ApiUrl` output.
    fn endpoint_target(&self) -> Result<String, Failed> {
        self.config
            .api_base_url
            .clone()
            .or_else(|| self.report.outputs.get("ApiUrl").cloned())
            .ok_or_else(|| Failed {
                message: format!("stack {} has no ApiUrl output to test", self.config.stack_name),
                fix: Some("set API_BASE_URL to the proxy's base URL (with its stage, without /v1), or RUN_ENDPOINT_TESTS=false".into()),
            })
    }

    /// `cors`: the stack's `CorsAllowedOrigins`, when known.
    async fn endpoint_phase(
        &mut self,
        base: &str,
        expected_models: Vec<String>,
        cors: Option<&str>,
    ) -> Result<(), Failed> {
        self.ui.phase(&format!("Endpoint tests: {base}"));
        let started = Instant::now();
        let mut plan = endpoint::Plan::new(base);
        plan.expected_models = expected_models;
        plan.chat = self.config.test_chat_completion;
        plan.auth = self.config.enable_authentication;
        plan.client_key = self
            .config
            .test_client_api_key
            .as_ref()
            .map(|key| key.expose().to_owned());
        plan.perf_requests = usize::try_from(self.config.perf_requests).unwrap_or(usize::MAX);
        plan.origin = endpoint::browser_origin(cors);
        let results = endpoint::run(&plan, &self.ui).await;
        self.record("endpoint tests", started, results.passed());
        let outcome = if results.passed() {
            self.ui.step(&format!("endpoint tests: {}", results.summary()));
            Ok(())
        } else {
            let first = results
                .failures()
                .next()
                .map(|c| format!("; first: {}: {}", c.name, c.detail))
                .unwrap_or_default();
            let logs = match self.report.outputs.get("LogGroupName") {
                Some(group) => format!("the function's log group {group}"),
                None => "the proxy's log".into(),
            };
            Err(Failed {
                message: format!("endpoint tests against {base}: {}{first}", results.summary()),
                fix: Some(format!(
                    "each failed test in the report says what it expected and what it got; {logs} has their request lines (x-request-id {}-<n>); run the tests alone with DEPLOYER_COMMAND=test",
                    results.run_id
                )),
            })
        };
        self.report.endpoint = Some(results);
        outcome
    }

    /// Returns whether there was nothing to change.
    async fn deploy_stack(
        &mut self,
        ready: &Ready,
        artifact: &Artifact,
        secret_arn: &str,
        bucket_name: &str,
        key: &str,
    ) -> Result<bool, Failed> {
        let stack = self.config.stack_name.clone();
        let (kind, previous) = self.settle_before_change(ready).await?;
        let parameters = params::build(
            &self.config,
            &params::Inputs {
                secret_arn,
                bucket: bucket_name,
                key,
                architecture: artifact.architecture,
            },
        )
        .map_err(|problems| Failed::from(problems.join("; ")))?;
        let prepared = self
            .change_set(ready, kind, previous.as_ref(), &parameters)
            .await?;
        let cs = match prepared {
            Prepared::NoChanges => {
                self.ui
                    .step("no changes: the stack already matches the template, parameters and code");
                let info = stack::describe(&ready.aws, &stack).await?;
                self.finish_stack(ready, info).await?;
                return Ok(true);
            }
            Prepared::Ready(cs) => cs,
        };
        self.describe_changes(&cs);
        let since = DateTime::from(std::time::SystemTime::now() - Duration::from_secs(5));
        stack::execute(&ready.aws, &stack, &cs.name).await?;
        self.ui.group(&format!("Stack events of {stack}"));
        let settled = stack::wait(
            &ready.aws,
            &stack,
            since,
            self.poll,
            self.deadline,
            &self.ui,
            &mut self.report.events,
        )
        .await;
        self.ui.end_group();
        match settled? {
            Settled::Succeeded(status) => {
                self.ui.step(&status);
                let info = stack::describe(&ready.aws, &stack).await?;
                self.finish_stack(ready, info).await?;
                if matches!(cs.kind, ChangeSetType::Update) && api::needs_redeploy(&cs.changes) {
                    self.redeploy_routes(ready).await?;
                }
                Ok(false)
            }
            Settled::TimedOut(status) => {
                self.report.stack_status = Some(status.clone());
                Err(self.timed_out(&status))
            }
            Settled::Failed(status) => {
                self.report.stack_status = Some(status.clone());
                self.report.failed_resources = stack::failures(&self.report.events);
                let first = self
                    .report
                    .failed_resources
                    .first()
                    .map(|e| format!(": {} {}", e.logical_id, e.reason))
                    .unwrap_or_default();
                Err(Failed {
                    message: format!("stack {stack} ended in {status}{first}"),
                    fix: Some(if status == "UPDATE_ROLLBACK_COMPLETE" {
                        "CloudFormation rolled back to the previous version, which is still serving: fix the failed resources listed in the report and deploy again".into()
                    } else {
                        "fix the failed resources listed in the report and deploy again (a failed first create is deleted and recreated automatically)".into()
                    }),
                })
            }
            Settled::Gone => Err(Failed::from(format!(
                "stack {stack} disappeared while it was being deployed"
            ))),
        }
    }

    /// Routes changed without a new deployment resource: deploy the stage so it serves them.
    async fn redeploy_routes(&mut self, ready: &Ready) -> Result<(), Failed> {
        let (Some(api_id), Some(stage)) = (
            self.report.outputs.get("ApiId"),
            self.report.outputs.get("StageName"),
        ) else {
            self.ui.warn(
                "routes changed but the stack has no ApiId/StageName outputs: deploy its API stage by hand",
            );
            return Ok(());
        };
        let id = api::redeploy(&ready.aws, api_id, stage).await?;
        self.ui.step(&format!(
            "routes changed: deployed them to stage {stage} (deployment {id})"
        ));
        self.report.notes.push(format!(
            "the changed routes were deployed to stage {stage} (deployment {id})"
        ));
        Ok(())
    }

    async fn finish_stack(&mut self, ready: &Ready, info: Option<stack::StackInfo>) -> Result<(), Failed> {
        let Some(info) = info else {
            return Err(Failed::from(format!(
                "stack {} is gone after the deploy",
                self.config.stack_name
            )));
        };
        if self.config.termination_protection && !info.termination_protection {
            stack::protect(&ready.aws, &self.config.stack_name).await?;
            self.ui.step("termination protection turned on");
        }
        self.report.stack_status = Some(info.status.clone());
        self.report.outputs = info.outputs;
        Ok(())
    }

    async fn validate(&mut self) -> Result<(), Failed> {
        let (ready, artifact) = self.prerequisites_for_change().await?;
        let secret_arn = self.secret_arn_for_validation(&ready).await;
        let bucket_name = self
            .config
            .artifact_bucket
            .clone()
            .unwrap_or_else(|| bucket::default_name(&ready.account, &ready.aws.region));
        let key = bucket::key(&artifact);

        self.ui.phase(&format!(
            "Change set for stack {} (not executed)",
            self.config.stack_name
        ));
        let started = Instant::now();
        let result = async {
            let found = stack::describe(&ready.aws, &self.config.stack_name).await?;
            let kind = match stack::plan(found.as_ref()) {
                Plan::Create | Plan::RecreateAfterFailedCreate => ChangeSetType::Create,
                Plan::Update => ChangeSetType::Update,
                Plan::WaitForOther(status) | Plan::Stuck(status) => {
                    return Err(Failed {
                        message: format!(
                            "stack {} is in {status}; a change set cannot be made now",
                            self.config.stack_name
                        ),
                        fix: Some("validate again when the stack has settled".into()),
                    });
                }
            };
            let parameters = params::build(
                &self.config,
                &params::Inputs {
                    secret_arn: &secret_arn,
                    bucket: &bucket_name,
                    key: &key,
                    architecture: artifact.architecture,
                },
            )
            .map_err(|problems| Failed::from(problems.join("; ")))?;
            let prepared = self.change_set(&ready, kind, found.as_ref(), &parameters).await?;
            if let Some(info) = &found {
                self.report.stack_status = Some(info.status.clone());
                self.report.outputs = info.outputs.clone();
            }
            Ok(prepared)
        }
        .await;
        self.record("change set", started, result.is_ok());
        match result? {
            Prepared::NoChanges => {
                self.ui
                    .step("no changes: deploying this would leave the stack as it is");
                self.report.status = Some(Status::NoChanges);
                self.report.headline = "valid; deploying it would change nothing".into();
            }
            Prepared::Ready(cs) => {
                self.describe_changes(&cs);
                stack::delete_change_set(&ready.aws, &self.config.stack_name, &cs.name).await;
                // A CREATE change set leaves an empty REVIEW_IN_PROGRESS stack behind.
                if matches!(cs.kind, ChangeSetType::Create) {
                    let _ = stack::delete_stack(&ready.aws, &self.config.stack_name).await;
                }
                self.report.status = Some(Status::Succeeded);
                self.report.headline =
                    "valid; the change set below was computed and deleted, not executed".into();
            }
        }
        Ok(())
    }

    /// The secret's full ARN when it exists; otherwise a well-formed stand-in (the
    /// template requires a full ARN), which is fine because validate never executes.
    async fn secret_arn_for_validation(&self, ready: &Ready) -> String {
        let id = secret::id(&self.config);
        match ready.aws.secrets.describe_secret().secret_id(&id).send().await {
            Ok(found) => found.arn().unwrap_or(&id).to_owned(),
            Err(_) => format!(
                "arn:aws:secretsmanager:{}:{}:secret:{}-000000",
                ready.aws.region,
                ready.account,
                id.rsplit(':').next().unwrap_or(&id)
            ),
        }
    }

    async fn destroy(&mut self) -> Result<(), Failed> {
        let ready = self.prerequisites(Needs::CREDENTIALS).await?;
        let stack = self.config.stack_name.clone();
        self.ui.phase(&format!("Deleting stack {stack}"));
        let started = Instant::now();
        let found = stack::describe(&ready.aws, &stack).await?;
        let secret_arn = found
            .as_ref()
            .and_then(|info| info.parameters.get("OpenAIApiKeySecretArn").cloned())
            .or_else(|| self.config.openai_api_key_secret_arn.clone());
        let result = match &found {
            None => {
                self.ui.step(&format!(
                    "there is no stack {stack} in {}: nothing to delete",
                    ready.aws.region
                ));
                self.report.notes.push(format!("no stack {stack} existed"));
                Ok(())
            }
            Some(info) if info.termination_protection => Err(Failed {
                message: format!("stack {stack} has termination protection on"),
                fix: Some(format!(
                    "turn it off first: aws cloudformation update-termination-protection --no-enable-termination-protection --stack-name {stack}"
                )),
            }),
            Some(_) => {
                stack::delete_stack(&ready.aws, &stack).await?;
                self.ui.group(&format!("Stack events of {stack}"));
                let settled = self.wait_stack(&ready, &stack).await;
                self.ui.end_group();
                match settled? {
                    Settled::Gone => Ok(()),
                    Settled::TimedOut(status) => Err(self.timed_out(&status)),
                    Settled::Failed(status) | Settled::Succeeded(status) => {
                        self.report.failed_resources = stack::failures(&self.report.events);
                        Err(Failed {
                            message: format!("deleting stack {stack} ended in {status}"),
                            fix: Some(stack::stuck_fix(&status)),
                        })
                    }
                }
            }
        };
        self.record("delete stack", started, result.is_ok());
        result?;
        let mut kept = Vec::new();
        if self.config.destroy_secret {
            let id = secret_arn.unwrap_or_else(|| secret::id(&self.config));
            match ready
                .aws
                .secrets
                .delete_secret()
                .secret_id(&id)
                .recovery_window_in_days(7)
                .send()
                .await
            {
                Ok(_) => self.ui.step(&format!(
                    "secret {id} scheduled for deletion (recoverable for 7 days)"
                )),
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|s| s.is_resource_not_found_exception()) =>
                {
                    self.ui.step(&format!("secret {id} does not exist"));
                }
                Err(e) => {
                    return Err(Failed::from(format!(
                        "could not delete secret {id} ({}): check the deploying role's permissions (docs/iam-policy.json), then run again",
                        crate::aws::describe(&e)
                    )));
                }
            }
        } else {
            kept.push("the secret (DESTROY_SECRET=true deletes it)");
        }
        if self.config.destroy_artifacts {
            let name = self.config.artifact_bucket.clone().unwrap_or_else(|| {
                bucket::default_name(
                    self.report.account.as_deref().unwrap_or_default(),
                    &ready.aws.region,
                )
            });
            let removed = bucket::delete(&ready.aws, &name).await?;
            self.ui.step(&format!(
                "artifact bucket {name} deleted ({removed} object versions)"
            ));
        } else {
            kept.push("the artifact bucket (DESTROY_ARTIFACTS=true deletes it)");
        }
        if !kept.is_empty() {
            self.report.notes.push(format!("kept: {}", kept.join(", ")));
        }
        self.report.status = Some(Status::Succeeded);
        self.report.stack_status = Some("DELETE_COMPLETE".into());
        self.report.headline = if found.is_some() {
            "stack deleted".into()
        } else {
            "nothing to delete".into()
        };
        Ok(())
    }
}

pub fn command_name(command: Command) -> &'static str {
    match command {
        Command::Validate => "validate",
        Command::Deploy => "deploy",
        Command::Test => "test",
        Command::Destroy => "destroy",
        Command::SetupSecrets => "setup-secrets",
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_cloudformation::Client;
    use aws_sdk_cloudformation::operation::delete_stack::DeleteStackOutput;
    use aws_sdk_cloudformation::operation::describe_stack_events::DescribeStackEventsOutput;
    use aws_sdk_cloudformation::operation::describe_stacks::DescribeStacksOutput;
    use aws_sdk_cloudformation::types::{Stack, StackStatus};
    use aws_smithy_mocks::mock;

    use super::*;
    use crate::aws::mocked::{aws, query_error};

    #[tokio::test]
    async fn a_failed_first_create_is_deleted_and_created_again() {
        let statuses = mock!(Client::describe_stacks)
            .sequence()
            .output(|| {
                DescribeStacksOutput::builder()
                    .stacks(
                        Stack::builder()
                            .stack_name("s")
                            .stack_status(StackStatus::RollbackComplete)
                            .creation_time(DateTime::from_secs(0))
                            .build(),
                    )
                    .build()
            })
            .http_response(|| query_error(400, "ValidationError", "Stack with id s does not exist"))
            .repeatedly()
            .build();
        let deletes = mock!(Client::delete_stack).then_output(|| DeleteStackOutput::builder().build());
        let events =
            mock!(Client::describe_stack_events).then_output(|| DescribeStackEventsOutput::builder().build());
        let ready = Ready {
            aws: aws(&[&statuses, &deletes, &events], &[]),
            account: "123456789012".into(),
            caller_arn: String::new(),
            template: None,
            artifact: None,
        };
        let config = Config::from_vars([("STACK_NAME".to_owned(), "s".to_owned())]).unwrap();
        let mut run = Run::new(config, Ui::plain());
        run.poll = Poll {
            first: Duration::from_millis(1),
            max: Duration::from_millis(2),
        };
        let (kind, found) = run.settle_before_change(&ready).await.unwrap();
        assert_eq!(kind, ChangeSetType::Create);
        assert!(found.is_none());
        assert_eq!(deletes.num_calls(), 1);
        assert!(
            run.report.notes.iter().any(|n| n.contains("ROLLBACK_COMPLETE")),
            "{:?}",
            run.report.notes
        );
    }
}

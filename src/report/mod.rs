//! The deployment report: one markdown document for the job summary and REPORT_FILE, a
//! short form for stdout, and the step outputs for `$GITHUB_OUTPUT`.
//!
//! Its order is what a reader wants first: did it work, where is the API, does it
//! answer correctly and how fast, how to call it; then what changed, what it took, and
//! the stack's events.

use std::collections::BTreeMap;
use std::fmt::Write as _;

mod outcome;
pub mod publish;
pub mod usage;

pub use outcome::Outcome;

use crate::cfn::classify::{ChangeSummary, ResourceChange};
use crate::cfn::events::Event;
use crate::client_keys;
use crate::endpoint::{self, Verdict, millis};
use crate::secret;

/// GitHub refuses step summaries over 1 MiB; stay well below it.
pub const SUMMARY_LIMIT: usize = 1_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Succeeded,
    NoChanges,
    Failed,
}

#[derive(Debug, Clone)]
pub struct Phase {
    pub name: &'static str,
    pub seconds: f64,
    pub ok: bool,
}

#[derive(Debug, Clone)]
pub struct Upload {
    pub bucket: String,
    pub key: String,
    pub bytes: usize,
    pub uploaded: bool,
    pub architecture: &'static str,
}

#[derive(Debug, Clone, Default)]
pub struct Report {
    pub command: String,
    pub stack: String,
    pub region: Option<String>,
    pub account: Option<String>,
    pub repository: Option<String>,
    pub commit: Option<String>,
    pub status: Option<Status>,
    /// What happened; the headline says it.
    pub outcome: Option<Outcome>,
    pub phases: Vec<Phase>,
    pub secret: Option<(String, secret::Action)>,
    pub upload: Option<Upload>,
    pub changes: Option<(ChangeSummary, Vec<ResourceChange>)>,
    pub stack_status: Option<String>,
    pub stack_id: Option<String>,
    pub outputs: BTreeMap<String, String>,
    pub events: Vec<Event>,
    pub failed_resources: Vec<Event>,
    pub error: Option<String>,
    pub fix: Option<String>,
    pub notes: Vec<String>,
    /// The endpoint tests, when they ran (after a rollback: of the restored version).
    pub endpoint: Option<endpoint::Results>,
    /// The tests of a new version that failed them and was rolled back.
    pub rejected: Option<endpoint::Results>,
    /// A mapped model id and whether client keys are required, for the client snippet
    /// when no endpoint test says so.
    pub model: Option<String>,
    pub auth: Option<bool>,
    /// The deploy was rolled back to the previous version.
    pub rolled_back: bool,
    /// The action image's stock function and template were deployed (what, which version).
    pub bundled: Option<String>,
    /// The clients the secret lists, with their limits (never a key or digest).
    pub clients: Vec<client_keys::Listed>,
    /// `usage`: what each client used this month.
    pub usage: Option<usage::Usage>,
}

impl Report {
    pub fn status(&self) -> Status {
        self.status.unwrap_or(Status::Failed)
    }

    /// The outcome in words; "failed" when the run failed without recording one.
    pub fn headline(&self) -> String {
        self.outcome
            .as_ref()
            .map_or_else(|| "failed".to_owned(), Outcome::headline)
    }

    fn status_line(&self) -> String {
        let icon = match self.status() {
            Status::Succeeded => "✅",
            Status::NoChanges => "✅",
            Status::Failed => "❌",
        };
        format!("{icon} **{}**: {}", self.command, self.headline())
    }

    /// The full markdown report, cut to fit GitHub's summary limit.
    pub fn markdown(&self) -> String {
        let full = self.render(usize::MAX);
        if full.len() <= SUMMARY_LIMIT {
            return full;
        }
        // Long event lists are what grows without bound; keep the newest that fit.
        let mut keep = self.events.len();
        let text = loop {
            keep /= 2;
            let text = self.render(keep);
            if text.len() <= SUMMARY_LIMIT || keep == 0 {
                break text;
            }
        };
        if text.len() <= SUMMARY_LIMIT {
            return text;
        }
        // Still too long without any event (a huge error text or change set): cut it.
        const CUT: &str = "\n\n… the rest of this report was cut to fit GitHub's summary limit\n";
        let mut end = SUMMARY_LIMIT - CUT.len();
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}{CUT}", &text[..end])
    }

    /// The base URL clients use (without `/v1`): the stack's, else the tested one.
    fn api_url(&self) -> Option<&str> {
        self.outputs
            .get("ApiUrl")
            .map(String::as_str)
            .or_else(|| self.endpoint.as_ref().map(|e| e.base_url.as_str()))
    }

    fn render(&self, max_events: usize) -> String {
        let mut md = String::new();
        let _ = writeln!(md, "## OpenAI Lambda proxy: {}\n", self.command);
        let _ = writeln!(md, "{}\n", self.status_line());
        md.push_str("| | |\n|---|---|\n");
        row(&mut md, "Stack", Some(&self.stack));
        row(&mut md, "Region", self.region.as_deref());
        row(&mut md, "Account", self.account.as_deref());
        row(&mut md, "Repository", self.repository.as_deref());
        row(
            &mut md,
            "Commit",
            self.commit.as_deref().map(|c| &c[..c.len().min(12)]),
        );
        row(&mut md, "Stack status", self.stack_status.as_deref());
        row(&mut md, "Bundled", self.bundled.as_deref());
        md.push('\n');

        if let Some(error) = &self.error {
            let _ = writeln!(md, "### What went wrong\n\n```text\n{error}\n```\n");
            if let Some(fix) = &self.fix {
                let _ = writeln!(md, "**Fix:** {fix}\n");
            }
        }
        if !self.failed_resources.is_empty() {
            md.push_str("### Failed resources\n\n| Resource | Type | Status | Reason |\n|---|---|---|---|\n");
            for e in &self.failed_resources {
                let _ = writeln!(
                    md,
                    "| `{}` | {} | {} | {} |",
                    e.logical_id,
                    e.resource_type,
                    e.status.as_str(),
                    cell(&e.reason)
                );
            }
            md.push('\n');
        }
        if let Some(usage) = &self.usage {
            md.push_str(&usage.markdown());
        }
        if let Some(api) = self.api_url() {
            md.push_str("### Endpoints\n\n| | |\n|---|---|\n");
            let _ = writeln!(md, "| API | {api} |");
            let _ = writeln!(md, "| OpenAI base URL | {api}/v1 |");
            for (label, key) in [
                ("Dashboard", "DashboardUrl"),
                ("Function", "FunctionName"),
                ("Log group", "LogGroupName"),
            ] {
                if let Some(value) = self.outputs.get(key) {
                    let _ = writeln!(md, "| {label} | {value} |");
                }
            }
            md.push('\n');
        }
        if let Some(results) = &self.rejected {
            endpoint_tests(
                &mut md,
                "Endpoint tests of the new version (rolled back)",
                results,
            );
        }
        if let Some(results) = &self.endpoint {
            let title = if self.rejected.is_some() {
                "Endpoint tests of the previous version, after the rollback"
            } else {
                "Endpoint tests"
            };
            endpoint_tests(&mut md, title, results);
        }
        if let Some(api) = self.api_url()
            && self.status() != Status::Failed
        {
            self.snippet(&mut md, api);
        }
        if let Some((summary, changes)) = &self.changes {
            let _ = writeln!(
                md,
                "### Change set\n\n{} to add, {} to modify, {} to remove{}\n",
                summary.adds,
                summary.modifies,
                summary.removes,
                if summary.replacements.is_empty() {
                    String::new()
                } else {
                    format!("; ⚠️ replaces {}", summary.replacements.join(", "))
                }
            );
            md.push_str("<details><summary>Resource changes</summary>\n\n");
            md.push_str(&changes_table(changes));
            md.push_str("\n</details>\n\n");
        }
        if let Some(upload) = &self.upload {
            let _ = writeln!(
                md,
                "### Function code\n\n`s3://{}/{}` ({} bytes, {}): {}\n",
                upload.bucket,
                upload.key,
                upload.bytes,
                upload.architecture,
                if upload.uploaded {
                    "uploaded"
                } else {
                    "already uploaded, reused"
                }
            );
        }
        if let Some((arn, action)) = &self.secret {
            let _ = writeln!(md, "### Secret\n\n`{arn}`: {}\n", action.as_str());
        }
        if !self.clients.is_empty() {
            clients_table(&mut md, &self.clients);
        }
        if !self.notes.is_empty() {
            for note in &self.notes {
                let _ = writeln!(md, "- {note}");
            }
            md.push('\n');
        }
        if !self.phases.is_empty() {
            md.push_str("### Phases\n\n| Phase | Result | Seconds |\n|---|---|---:|\n");
            for p in &self.phases {
                let _ = writeln!(
                    md,
                    "| {} | {} | {:.1} |",
                    p.name,
                    if p.ok { "✅" } else { "❌" },
                    p.seconds
                );
            }
            let total: f64 = self.phases.iter().map(|p| p.seconds).sum();
            let _ = writeln!(md, "| **total** | | **{total:.1}** |");
            md.push('\n');
        }
        if !self.events.is_empty() {
            let shown = self.events.len().min(max_events);
            let skipped = self.events.len() - shown;
            let _ = writeln!(
                md,
                "<details><summary>Stack events ({})</summary>\n\n```text",
                self.events.len()
            );
            if skipped > 0 {
                let _ = writeln!(
                    md,
                    "... {skipped} earlier events left out to fit GitHub's summary limit"
                );
            }
            for e in &self.events[skipped..] {
                let _ = writeln!(md, "{}", e.line());
            }
            md.push_str("```\n\n</details>\n\n");
        }
        md
    }

    /// How to call the proxy from Python with the official SDK; never a real key.
    fn snippet(&self, md: &mut String, api: &str) {
        let results = self.endpoint.as_ref();
        let model = results
            .and_then(|r| r.model.as_deref())
            .or(self.model.as_deref())
            .unwrap_or("<a model id of your MODEL_MAPPINGS>");
        let key = match results.map(|r| r.auth).or(self.auth) {
            Some(true) => {
                "os.environ[\"PROXY_API_KEY\"],  # a client key listed in the secret's client_api_keys"
            }
            Some(false) => "\"unused\",  # authentication is off; the OpenAI key stays in Secrets Manager",
            None => {
                "os.environ.get(\"PROXY_API_KEY\", \"unused\"),  # a client key when authentication is on"
            }
        };
        let import_os = if key.starts_with("os.") {
            "import os\n\n"
        } else {
            ""
        };
        let _ = writeln!(
            md,
            "### Use it\n\nWith the OpenAI Python SDK (`pip install openai`):\n\n```python\n\
             {import_os}from openai import OpenAI\n\n\
             client = OpenAI(\n    base_url=\"{api}/v1\",\n    api_key={key}\n)\n\
             reply = client.chat.completions.create(\n    model=\"{model}\",\n    \
             messages=[{{\"role\": \"user\", \"content\": \"Hello!\"}}],\n)\n\
             print(reply.choices[0].message.content)\n```\n"
        );
    }

    /// A few lines for the log.
    pub fn short(&self) -> String {
        let mut text = format!("{}\n", self.status_line().replace("**", ""));
        if let Some(api) = self.api_url() {
            let _ = writeln!(text, "API: {api}  (OpenAI base URL: {api}/v1)");
        }
        if let Some(usage) = &self.usage {
            text.push_str(&usage.markdown());
        }
        let mut listed = false;
        if let Some(results) = &self.endpoint {
            let _ = writeln!(text, "endpoint tests: {}", results.summary());
            for check in results.failures() {
                let _ = writeln!(text, "  ❌ {}: {}", check.name, check.detail);
                listed = true;
            }
        }
        if !self.failed_resources.is_empty() {
            let _ = writeln!(text, "failed resources:");
            for e in &self.failed_resources {
                let _ = writeln!(
                    text,
                    "  ❌ {} ({}) {}: {}",
                    e.logical_id,
                    e.resource_type,
                    e.status.as_str(),
                    e.reason
                );
            }
        }
        // The failed tests just listed are the error; anything else is said here.
        if let Some(error) = self.error.as_ref().filter(|_| !listed) {
            let _ = writeln!(text, "error: {error}");
        }
        if let Some(fix) = &self.fix {
            let _ = writeln!(text, "fix: {fix}");
        }
        text
    }

    /// Step outputs for `$GITHUB_OUTPUT`, by name. `report_path` only when the user
    /// asked for a report file (a path inside the action's container means nothing to
    /// the next step).
    pub fn outputs(&self, report_path: Option<&str>) -> Vec<(&'static str, String)> {
        let mut out = vec![(
            "status",
            match self.status() {
                Status::Succeeded => "succeeded",
                Status::NoChanges => "no-changes",
                Status::Failed => "failed",
            }
            .to_owned(),
        )];
        let mut push = |name, value: Option<&String>| {
            if let Some(v) = value {
                out.push((name, v.clone()));
            }
        };
        push("api-url", self.outputs.get("ApiUrl"));
        push("function-name", self.outputs.get("FunctionName"));
        push("dashboard-url", self.outputs.get("DashboardUrl"));
        push("stack-status", self.stack_status.as_ref());
        push("stack-id", self.stack_id.as_ref());
        push("secret-arn", self.secret.as_ref().map(|(arn, _)| arn));
        let changes = self
            .changes
            .as_ref()
            .filter(|_| self.status() != Status::NoChanges);
        out.push(("has-changes", changes.is_some().to_string()));
        if let Some((summary, changes)) = changes {
            out.push((
                "changes-markdown",
                format!(
                    "**{}**: {} to add, {} to modify, {} to remove\n\n{}",
                    self.stack,
                    summary.adds,
                    summary.modifies,
                    summary.removes,
                    changes_table(changes)
                ),
            ));
        }
        if !self.outputs.is_empty() {
            out.push((
                "stack-outputs",
                serde_json::to_string(&self.outputs).unwrap_or_default(),
            ));
        }
        out.push(("rolled-back", self.rolled_back.to_string()));
        if let Some(path) = report_path {
            out.push(("report-path", path.to_owned()));
        }
        out
    }
}

/// Each client key the secret lists and its limits ("—": none), for who may spend what.
fn clients_table(md: &mut String, clients: &[client_keys::Listed]) {
    md.push_str("### Clients\n\n| Client | Requests / min | Tokens / min | USD / day | USD / month |\n|---|---:|---:|---:|---:|\n");
    let count = |n: Option<u64>| n.map_or_else(|| "—".to_owned(), |n| n.to_string());
    let usd = |n: Option<u64>| n.map_or_else(|| "—".to_owned(), client_keys::usd);
    for client in clients {
        let l = &client.limits;
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} |",
            cell(&client.label),
            count(l.requests_per_minute),
            count(l.tokens_per_minute),
            usd(l.usd_per_day),
            usd(l.usd_per_month)
        );
    }
    md.push('\n');
}

/// The change set's resource changes as a markdown table.
fn changes_table(changes: &[ResourceChange]) -> String {
    let mut md = String::from("| Action | Resource | Type | Replacement |\n|---|---|---|---|\n");
    for c in changes {
        let _ = writeln!(
            md,
            "| {} | `{}` | {} | {} |",
            c.action.as_str(),
            c.logical_id,
            c.resource_type,
            c.replacement.as_ref().map_or("", |r| r.as_str())
        );
    }
    md
}

fn row(md: &mut String, label: &str, value: Option<&str>) {
    if let Some(v) = value.filter(|v| !v.is_empty()) {
        let _ = writeln!(md, "| {label} | {} |", cell(v));
    }
}

fn endpoint_tests(md: &mut String, title: &str, results: &endpoint::Results) {
    let _ = writeln!(
        md,
        "### {title}\n\n{} `{}`: {}\n",
        if results.passed() { "✅" } else { "❌" },
        results.base_url,
        results.summary()
    );
    md.push_str("| Test | Result | Latency | Details |\n|---|---|---:|---|\n");
    for check in &results.checks {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} |",
            check.name,
            match check.verdict {
                Verdict::Passed => "✅",
                Verdict::Failed => "❌",
                Verdict::Skipped => "⏭️ skipped",
            },
            check.millis.map(millis).unwrap_or_default(),
            cell(&check.detail)
        );
    }
    md.push('\n');
    if !results.probes.is_empty() {
        md.push_str("**Performance** (`GET /health`)\n\n| Probe | Requests | Errors | p50 | p95 | max |\n|---|---:|---:|---:|---:|---:|\n");
        for p in &results.probes {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} |",
                match p.mode {
                    "concurrent" =>
                        format!("concurrent ({} at a time)", p.requests.min(endpoint::CONCURRENCY)),
                    mode => mode.to_owned(),
                },
                p.requests,
                p.errors,
                millis(p.p50),
                millis(p.p95),
                millis(p.max)
            );
        }
        md.push('\n');
    }
}

/// Table cells: one line, no pipes.
pub(super) fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace(['\n', '\r'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_cloudformation::types::{ChangeAction, Replacement, ResourceAttribute, ResourceStatus};

    use crate::endpoint::{Check, Probe, Results};
    use crate::test_support::contains_all;

    fn event(time: &str, logical_id: &str, kind: &str, status: &str, reason: &str) -> Event {
        Event {
            id: format!("{logical_id}-{status}-4f2a9c1e"),
            time: aws_smithy_types::DateTime::from_str(time, aws_smithy_types::date_time::Format::DateTime)
                .unwrap(),
            logical_id: logical_id.into(),
            resource_type: kind.into(),
            status: ResourceStatus::from(status),
            reason: reason.into(),
        }
    }

    fn check(name: &'static str, verdict: Verdict, millis: Option<f64>, detail: &str) -> Check {
        Check {
            name,
            verdict,
            millis,
            detail: detail.into(),
        }
    }

    fn passing_tests(base: &str) -> Results {
        use Verdict::Passed;
        Results {
            base_url: base.into(),
            run_id: "deployer-3f2a9c1e".into(),
            model: Some("amazon.nova-lite-v1:0".into()),
            auth: false,
            checks: vec![
                check("health", Passed, Some(84.2), "after 3 attempts"),
                check("models list", Passed, Some(61.0), "3 listed"),
                check("chat completion", Passed, Some(912.7), "answer: \"ok\""),
                check("streaming chat", Passed, Some(655.1), "4 chunks, then [DONE]"),
                check("CORS preflight", Passed, Some(48.3), ""),
                check("malformed JSON → 400", Passed, Some(52.9), ""),
                check("unknown model → 404", Passed, Some(55.0), ""),
                check("unknown path → 404", Passed, Some(47.6), ""),
                check(
                    "performance: sequential /health",
                    Passed,
                    Some(41.0),
                    "20 requests: p50 41 ms, p95 58 ms, max 77 ms",
                ),
                check(
                    "performance: concurrent /health",
                    Passed,
                    Some(66.0),
                    "20 requests, 20 at a time: p50 66 ms, p95 120 ms, max 131 ms",
                ),
            ],
            probes: vec![
                Probe {
                    mode: "sequential",
                    requests: 20,
                    errors: 0,
                    p50: 41.0,
                    p95: 58.0,
                    max: 77.0,
                },
                Probe {
                    mode: "concurrent",
                    requests: 20,
                    errors: 0,
                    p50: 66.0,
                    p95: 120.0,
                    max: 131.0,
                },
            ],
        }
    }

    const API: &str = "https://a1b2c3d4e5.execute-api.eu-west-1.amazonaws.com/prod";

    fn deployed() -> Report {
        let phase = |name, seconds, ok| Phase { name, seconds, ok };
        Report {
            command: "deploy".into(),
            stack: "openai-lambda-proxy".into(),
            region: Some("eu-west-1".into()),
            account: Some("123456789012".into()),
            repository: Some("acme/openai-lambda-proxy".into()),
            commit: Some("0123456789abcdef0123456789abcdef01234567".into()),
            status: Some(Status::Succeeded),
            outcome: Some(Outcome::Deployed),
            phases: vec![
                phase("prerequisites", 1.24, true),
                phase("secret", 0.31, true),
                phase("upload", 2.05, true),
                phase("stack", 94.6, true),
                phase("function code", 0.4, true),
                phase("endpoint tests", 4.9, true),
            ],
            secret: Some((
                "arn:aws:secretsmanager:eu-west-1:123456789012:secret:openai-lambda-proxy/config-AbCdEf".into(),
                crate::secret::Action::Unchanged,
            )),
            upload: Some(Upload {
                bucket: "openai-lambda-proxy-123456789012-eu-west-1".into(),
                key: "functions/openai-proxy-function/9f86d081884c7d65.zip".into(),
                bytes: 4_194_304,
                uploaded: true,
                architecture: "arm64",
            }),
            changes: Some((
                ChangeSummary {
                    adds: 1,
                    modifies: 2,
                    removes: 0,
                    replacements: vec!["ApiDeployment".into()],
                },
                vec![
                    ResourceChange {
                        action: ChangeAction::Modify,
                        logical_id: "Function".into(),
                        resource_type: "AWS::Lambda::Function".into(),
                        replacement: Some(Replacement::False),
                        scope: vec![ResourceAttribute::Properties],
                    },
                    ResourceChange {
                        action: ChangeAction::Modify,
                        logical_id: "ApiDeployment".into(),
                        resource_type: "AWS::ApiGateway::Deployment".into(),
                        replacement: Some(Replacement::True),
                        scope: vec![ResourceAttribute::Properties],
                    },
                    ResourceChange {
                        action: ChangeAction::Add,
                        logical_id: "ErrorsAlarm".into(),
                        resource_type: "AWS::CloudWatch::Alarm".into(),
                        replacement: None,
                        scope: vec![],
                    },
                ],
            )),
            stack_status: Some("UPDATE_COMPLETE".into()),
            outputs: BTreeMap::from([
                ("ApiUrl".to_owned(), API.to_owned()),
                ("FunctionName".to_owned(), "openai-lambda-proxy".to_owned()),
                ("LogGroupName".to_owned(), "/aws/lambda/openai-lambda-proxy".to_owned()),
                (
                    "DashboardUrl".to_owned(),
                    "https://console.aws.amazon.com/cloudwatch/home?region=eu-west-1#dashboards:name=openai-lambda-proxy".to_owned(),
                ),
            ]),
            events: vec![
                event(
                    "2026-11-26T08:00:01.120Z",
                    "openai-lambda-proxy",
                    "AWS::CloudFormation::Stack",
                    "UPDATE_IN_PROGRESS",
                    "User Initiated",
                ),
                event(
                    "2026-11-26T08:01:35.870Z",
                    "openai-lambda-proxy",
                    "AWS::CloudFormation::Stack",
                    "UPDATE_COMPLETE",
                    "",
                ),
            ],
            endpoint: Some(passing_tests(API)),
            ..Report::default()
        }
    }

    /// Times and ids differ from run to run in real reports; the snapshots hide them.
    fn snapshot(name: &str, text: &str) {
        insta::with_settings!({filters => vec![
            (r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", "[time]"),
            (r"\b\d\d:\d\d:\d\d\b", "[time]"),
            (r"\| \d+\.\d \|", "| [s] |"),
            (r"\*\*\d+\.\d\*\*", "**[s]**"),
            (r"deployer-[0-9a-f]{8}", "deployer-[run]"),
        ]}, {
            insta::assert_snapshot!(name, text);
        });
    }

    #[test]
    fn success() {
        let report = deployed();
        snapshot("success", &report.markdown());
        snapshot("success_short", &report.short());
    }

    #[test]
    fn no_op() {
        let mut report = deployed();
        report.status = Some(Status::NoChanges);
        report.outcome = Some(Outcome::NoChanges);
        report.changes = None;
        report.events.clear();
        report.upload.as_mut().unwrap().uploaded = false;
        snapshot("no_op", &report.markdown());
    }

    #[test]
    fn failed_deploy() {
        let mut report = deployed();
        let failure = event(
            "2026-11-26T08:01:02.500Z",
            "Function",
            "AWS::Lambda::Function",
            "UPDATE_FAILED",
            "Resource handler returned message: \"Error occurred while GetObject. S3 Error Code: NoSuchKey\" (RequestToken: 5e1c, HandlerErrorCode: InvalidRequest)",
        );
        report.status = Some(Status::Failed);
        report.outcome = None;
        report.stack_status = Some("UPDATE_ROLLBACK_COMPLETE".into());
        report.endpoint = None;
        report.phases.truncate(4);
        report.phases[3].ok = false;
        report.events.insert(1, failure.clone());
        report.events[2].status = ResourceStatus::UpdateRollbackComplete;
        report.failed_resources = vec![failure];
        report.error = Some("stack openai-lambda-proxy ended in UPDATE_ROLLBACK_COMPLETE: Function Resource handler returned message: \"Error occurred while GetObject. S3 Error Code: NoSuchKey\"".into());
        report.fix = Some("CloudFormation rolled back to the previous version, which is still serving: fix the failed resources listed in the report and deploy again".into());
        let md = report.markdown();
        assert!(!md.contains("### Use it"), "no snippet for a failed deploy");
        snapshot("failed_deploy", &md);
        let short = report.short();
        assert!(
            short.contains(
                "  ❌ Function (AWS::Lambda::Function) UPDATE_FAILED: Resource handler returned message"
            ),
            "the log's last lines name the failed resource:\n{short}"
        );
    }

    #[test]
    fn failed_endpoint_tests() {
        let mut report = deployed();
        let results = report.endpoint.as_mut().unwrap();
        results.checks[1] = check(
            "models list",
            Verdict::Failed,
            Some(63.5),
            "expected the list to contain amazon.nova-lite-v1:0, my-model; missing my-model (listed: amazon.nova-lite-v1:0)",
        );
        results.checks[2] = check(
            "chat completion",
            Verdict::Failed,
            Some(1204.0),
            "expected HTTP 200 with a chat.completion for model amazon.nova-lite-v1:0; got HTTP 502 (x-request-id deployer-3f2a9c1e-4): {\"error\":{\"message\":\"The upstream OpenAI API failed with HTTP 500 after 3 attempts. Retry shortly.\",\"type\":\"server_error\",\"param\":null,\"code\":\"upstream_error\"}}",
        );
        results.checks[3] = check(
            "streaming chat",
            Verdict::Skipped,
            None,
            "TEST_CHAT_COMPLETION=false",
        );
        report.status = Some(Status::Failed);
        report.outcome = Some(Outcome::DeployedButTestsFailed { window_minutes: 0 });
        report.phases[5].ok = false;
        report.error = Some(format!(
            "endpoint tests against {API}: 7 passed, 2 failed, 1 skipped; first: models list: expected the list to contain amazon.nova-lite-v1:0, my-model; missing my-model (listed: amazon.nova-lite-v1:0)"
        ));
        report.fix = Some("each failed test in the report says what it expected and what it got; the function's log group /aws/lambda/openai-lambda-proxy has their request lines (x-request-id deployer-3f2a9c1e-<n>); run the tests alone with DEPLOYER_COMMAND=test".into());
        snapshot("failed_endpoint_tests", &report.markdown());
        snapshot("failed_endpoint_tests_short", &report.short());
    }

    #[test]
    fn clients_and_their_limits() {
        let mut report = deployed();
        let secret = serde_json::json!({"client_api_keys": [
            {"name": "web-app", "sha256": "cd".repeat(32), "limits": {"usd_per_month": 50, "requests_per_minute": 60}},
            "ab".repeat(32),
            {"name": "batch", "sha256": "ef".repeat(32), "limits": {"tokens_per_minute": 100000, "usd_per_day": 0.25}},
            {"name": "ops", "sha256": "01".repeat(32)},
        ]});
        report.clients = client_keys::listed(&secret);
        let md = report.markdown();
        assert!(
            !md.contains(&"cd".repeat(32)) && !md.contains(&"ab".repeat(32)),
            "no digest"
        );
        snapshot("clients", &md);
    }

    #[test]
    fn the_snippet_asks_for_a_client_key_when_authentication_is_on() {
        let mut report = deployed();
        report.endpoint.as_mut().unwrap().auth = true;
        let md = report.markdown();
        contains_all(
            &md,
            &[
                "import os\n\nfrom openai import OpenAI",
                "api_key=os.environ[\"PROXY_API_KEY\"]",
                &format!("base_url=\"{API}/v1\""),
            ],
        );
    }

    #[test]
    fn without_endpoint_tests_the_snippet_uses_what_the_deploy_knew() {
        let mut report = deployed();
        report.endpoint = None;
        let md = report.markdown();
        contains_all(
            &md,
            &[
                "model=\"<a model id of your MODEL_MAPPINGS>\"",
                "os.environ.get(\"PROXY_API_KEY\", \"unused\")",
            ],
        );
        report.model = Some("my-model".into());
        report.auth = Some(false);
        let md = report.markdown();
        contains_all(
            &md,
            &[
                "model=\"my-model\"",
                "api_key=\"unused\",  # authentication is off",
            ],
        );
        assert!(!md.contains("import os"), "{md}");
        assert!(!md.contains("### Endpoint tests"), "{md}");
    }

    #[test]
    fn any_number_of_events_stays_under_the_summary_limit() {
        let mut report = deployed();
        let reason = "x".repeat(400);
        report.events = (0..20_000)
            .map(|i| {
                event(
                    "2026-11-26T08:00:00Z",
                    &format!("R{i}"),
                    "AWS::X::Y",
                    "UPDATE_FAILED",
                    &reason,
                )
            })
            .collect();
        let md = report.markdown();
        assert!(md.len() <= SUMMARY_LIMIT, "{}", md.len());
        assert!(md.contains("earlier events left out to fit GitHub's summary limit"));
        assert!(md.contains("R19999"), "the newest events are kept");
        assert!(
            md.contains("### Endpoint tests"),
            "the sections before the events stay"
        );

        // Even text that is not an event cannot push it over.
        report.events.clear();
        report.error = Some("é".repeat(SUMMARY_LIMIT));
        let md = report.markdown();
        assert!(md.len() <= SUMMARY_LIMIT, "{}", md.len());
        assert!(md.ends_with("cut to fit GitHub's summary limit\n"));
    }

    #[test]
    fn outputs_name_the_api_the_function_and_the_report() {
        let report = deployed();
        let outputs = report.outputs(Some("/tmp/report.md"));
        let get = |name| outputs.iter().find(|(k, _)| *k == name).map(|(_, v)| v.as_str());
        assert_eq!(get("status"), Some("succeeded"));
        assert_eq!(get("api-url"), Some(API));
        assert_eq!(get("function-name"), Some("openai-lambda-proxy"));
        assert_eq!(get("stack-status"), Some("UPDATE_COMPLETE"));
        assert_eq!(get("report-path"), Some("/tmp/report.md"));
        assert_eq!(get("has-changes"), Some("true"));
        assert_eq!(get("rolled-back"), Some("false"));
        assert!(
            get("changes-markdown")
                .is_some_and(|md| md.contains("| Modify | `Function` | AWS::Lambda::Function | False |"))
        );
        assert_eq!(
            serde_json::from_str::<BTreeMap<String, String>>(get("stack-outputs").unwrap()).unwrap()["ApiUrl"],
            API
        );
        assert!(report.outputs(None).iter().all(|(k, _)| *k != "report-path"));
        assert!(get("secret-arn").is_some_and(|arn| arn.starts_with("arn:aws:secretsmanager:")));
    }
}

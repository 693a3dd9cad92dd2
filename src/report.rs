//! The deployment report: one markdown document for the job summary and REPORT_FILE, a
//! short form for stdout, and the step outputs for `$GITHUB_OUTPUT`.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::stack::{ChangeSummary, Event, ResourceChange};

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
    pub headline: String,
    pub phases: Vec<Phase>,
    pub secret: Option<(String, String)>,
    pub upload: Option<Upload>,
    pub changes: Option<(ChangeSummary, Vec<ResourceChange>)>,
    pub stack_status: Option<String>,
    pub outputs: BTreeMap<String, String>,
    pub events: Vec<Event>,
    pub failed_resources: Vec<Event>,
    pub error: Option<String>,
    pub fix: Option<String>,
    pub notes: Vec<String>,
}

impl Report {
    pub fn status(&self) -> Status {
        self.status.unwrap_or(Status::Failed)
    }

    fn status_line(&self) -> String {
        let icon = match self.status() {
            Status::Succeeded => "✅",
            Status::NoChanges => "✅",
            Status::Failed => "❌",
        };
        format!("{icon} **{}**: {}", self.command, self.headline)
    }

    /// The full markdown report, cut to fit GitHub's summary limit.
    pub fn markdown(&self) -> String {
        let full = self.render(usize::MAX);
        if full.len() <= SUMMARY_LIMIT {
            return full;
        }
        // Long event lists are what grows without bound; keep the newest that fit.
        let mut keep = self.events.len();
        loop {
            keep /= 2;
            let text = self.render(keep);
            if text.len() <= SUMMARY_LIMIT || keep == 0 {
                return text;
            }
        }
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
                    e.status,
                    cell(&e.reason)
                );
            }
            md.push('\n');
        }
        if let Some(api) = self.outputs.get("ApiUrl") {
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
            md.push_str("<details><summary>Resource changes</summary>\n\n| Action | Resource | Type | Replacement |\n|---|---|---|---|\n");
            for c in changes {
                let _ = writeln!(
                    md,
                    "| {} | `{}` | {} | {} |",
                    c.action,
                    c.logical_id,
                    c.resource_type,
                    c.replacement.as_deref().unwrap_or("")
                );
            }
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
            let _ = writeln!(md, "### Secret\n\n`{arn}`: {action}\n");
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

    /// A few lines for the log.
    pub fn short(&self) -> String {
        let mut text = format!("{}\n", self.status_line().replace("**", ""));
        if let Some(api) = self.outputs.get("ApiUrl") {
            let _ = writeln!(text, "API: {api}  (OpenAI base URL: {api}/v1)");
        }
        if let Some(error) = &self.error {
            let _ = writeln!(text, "error: {error}");
        }
        if let Some(fix) = &self.fix {
            let _ = writeln!(text, "fix: {fix}");
        }
        text
    }

    /// Step outputs, `name=value` lines for `$GITHUB_OUTPUT`.
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
        push("secret-arn", self.secret.as_ref().map(|(arn, _)| arn));
        if let Some(path) = report_path {
            out.push(("report-path", path.to_owned()));
        }
        out
    }
}

fn row(md: &mut String, label: &str, value: Option<&str>) {
    if let Some(v) = value.filter(|v| !v.is_empty()) {
        let _ = writeln!(md, "| {label} | {} |", cell(v));
    }
}

/// Table cells: one line, no pipes.
fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace(['\n', '\r'], " ")
}

//! Where the report goes when the run ends: `REPORT_FILE` (or the runner's temp dir),
//! the job summary (`$GITHUB_STEP_SUMMARY`), the step outputs (`$GITHUB_OUTPUT`) and,
//! in short form, stdout.

use std::path::Path;

use crate::config::Config;
use crate::report::Report;
use crate::ui::Ui;

pub(crate) fn env_nonempty(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// Writes the report where it is wanted; returns the path given as `report-path`.
pub fn publish(report: &Report, config: &Config, ui: &Ui) -> Option<String> {
    let markdown = report.markdown();
    let mut report_path = config.report_file.clone();
    if report_path.is_none()
        && let Some(tmp) = env_nonempty("RUNNER_TEMP")
    {
        report_path = Some(
            Path::new(&tmp)
                .join("openai-proxy-deployer-report.md")
                .display()
                .to_string(),
        );
    }
    if let Some(path) = &report_path
        && let Err(e) = std::fs::write(path, &markdown)
    {
        ui.warn(&format!("could not write the report to {path} ({e})"));
        report_path = None;
    }
    if let Some(summary) = env_nonempty("GITHUB_STEP_SUMMARY") {
        append(&summary, &markdown, ui);
    }
    if let Some(outputs) = env_nonempty("GITHUB_OUTPUT") {
        let lines: String = report
            .outputs(report_path.as_deref())
            .into_iter()
            .map(|(k, v)| format!("{k}={}\n", v.replace(['\n', '\r'], " ")))
            .collect();
        append(&outputs, &lines, ui);
    }
    print!("\n{}", report.short());
    if let Some(path) = &report_path {
        println!("report: {path}");
    }
    report_path
}

fn append(path: &str, text: &str, ui: &Ui) {
    use std::io::Write;
    let written = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()));
    if let Err(e) = written {
        ui.warn(&format!("could not write to {path} ({e})"));
    }
}

//! Where the report goes when the run ends: `REPORT_FILE` (or the runner's temp dir),
//! the job summary (`$GITHUB_STEP_SUMMARY`), the step outputs (`$GITHUB_OUTPUT`) and,
//! in short form, stdout.

use std::path::Path;

use crate::config::Config;
use crate::report::Report;
use crate::runner::Runner;
use crate::ui::Ui;

/// Writes the report where it is wanted; returns the path given as `report-path`.
pub fn publish(report: &Report, config: &Config, ui: &Ui, runner: &Runner) -> Option<String> {
    let markdown = report.markdown();
    let mut report_path = config.report_file.clone();
    if report_path.is_none()
        && let Some(tmp) = &runner.temp
    {
        report_path = Some(tmp.join("openai-proxy-deployer-report.md").display().to_string());
    }
    if let Some(path) = &report_path
        && let Err(e) = std::fs::write(path, &markdown)
    {
        ui.warn(&format!("could not write the report to {path} ({e})"));
        report_path = None;
    }
    if let Some(summary) = &runner.step_summary {
        append(summary, &markdown, ui);
    }
    if let Some(outputs) = &runner.output {
        // In a container action the path as later steps (on the host) open it.
        let asked = config
            .report_file
            .as_deref()
            .and(report_path.as_deref())
            .map(|path| {
                crate::runner_paths::for_later_steps(path, runner)
                    .ok()
                    .flatten()
                    .unwrap_or_else(|| path.to_owned())
            });
        let lines: String = report
            .outputs(asked.as_deref())
            .into_iter()
            .map(|(k, v)| output_line(k, &v))
            .collect();
        append(outputs, &lines, ui);
    }
    print!("\n{}", report.short());
    if let Some(path) = &report_path {
        println!("report: {path}");
    }
    report_path
}

/// One `$GITHUB_OUTPUT` entry; a value with line breaks (the change set's markdown)
/// uses the runner's heredoc form with a delimiter the value cannot contain.
fn output_line(name: &str, value: &str) -> String {
    if !value.contains(['\n', '\r']) {
        return format!("{name}={value}\n");
    }
    let mut delimiter = format!("OPENAI_PROXY_{}", uuid::Uuid::new_v4().simple());
    while value.contains(&delimiter) {
        delimiter.push('_');
    }
    format!("{name}<<{delimiter}\n{value}\n{delimiter}\n")
}

fn append(path: &Path, text: &str, ui: &Ui) {
    use std::io::Write;
    let written = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()));
    if let Err(e) = written {
        ui.warn(&format!("could not write to {} ({e})", path.display()));
    }
}

/// A configuration the deployer refused (exit code 2): on stderr, and in Actions also as
/// an error annotation, a short job summary and the `status` output, so the failure shows
/// where people look.
pub fn configuration_error(error: &crate::config::ConfigError, ui: &Ui, runner: &Runner) {
    eprintln!("error: {error}");
    ui.annotate_error("invalid configuration", &error.to_string());
    if let Some(summary) = &runner.step_summary {
        let lines: String = error.problems.iter().map(|p| format!("- {p}\n")).collect();
        append(
            summary,
            &format!(
                "## OpenAI Lambda proxy\n\n❌ **invalid configuration**: nothing ran\n\n{lines}\nEvery input and variable is listed in the action's README (`openai-proxy-deployer --help`).\n"
            ),
            ui,
        );
    }
    if let Some(outputs) = &runner.output {
        append(outputs, "status=invalid-configuration\n", ui);
    }
}

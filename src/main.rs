use std::process::ExitCode;

use openai_proxy_deployer::commands::{self, Context};
use openai_proxy_deployer::config::{self, Config};
use openai_proxy_deployer::report::{Status, publish};
use openai_proxy_deployer::runner::Runner;
use openai_proxy_deployer::ui::Ui;
use openai_proxy_deployer::{cancel, runner_paths};

fn main() -> ExitCode {
    match std::env::args().nth(1).as_deref() {
        Some("--help" | "-h") => {
            print!("{}", config::help());
            return ExitCode::SUCCESS;
        }
        Some("--version" | "-V") => {
            println!("{} {}", env!("CARGO_PKG_NAME"), env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Some(other) => {
            eprintln!(
                "error: unexpected argument {other:?}: the deployer takes no arguments but --help and --version; configure it with environment variables (see --help)"
            );
            return ExitCode::from(2);
        }
        None => {}
    }
    let runner = Runner::from_env();
    let ui = Ui::new(runner.actions);
    let config = match Config::from_env().and_then(|c| report_file_is_shared(c, &runner)) {
        Ok(c) => c,
        Err(e) => {
            publish::configuration_error(&e, &ui, &runner);
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: could not start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let mut ctx = Context::new(config, &runner);
    // As PID 1 in the action's container the deployer gets no default signal action:
    // without these handlers the runner's SIGINT and SIGTERM would be dropped.
    let signalled = runtime.block_on(async {
        match cancel::Handlers::install() {
            Ok(mut handlers) => cancel::unless_signalled(&mut handlers, commands::run(&mut ctx)).await,
            Err(e) => {
                ui.warn(&format!(
                    "could not install the SIGINT/SIGTERM handlers ({e}): a cancel will not be reported"
                ));
                commands::run(&mut ctx).await;
                None
            }
        }
    });
    if let Some(signal) = signalled {
        runtime.block_on(cancel::record(&mut ctx, signal));
    }
    publish::publish(&ctx.report, &ctx.config, &ctx.ui, &runner);
    match (signalled, ctx.report.status()) {
        (Some(signal), _) => ExitCode::from(signal.exit_code()),
        (None, Status::Succeeded | Status::NoChanges) => ExitCode::SUCCESS,
        (None, Status::Failed) => ExitCode::FAILURE,
    }
}

/// In a container action, `REPORT_FILE` must be where later steps can open it: checked
/// before anything runs.
fn report_file_is_shared(config: Config, runner: &Runner) -> Result<Config, config::ConfigError> {
    match &config.report_file {
        Some(path) => match runner_paths::for_later_steps(path, runner) {
            Err(problem) => Err(config::ConfigError {
                problems: vec![problem],
            }),
            Ok(_) => Ok(config),
        },
        None => Ok(config),
    }
}

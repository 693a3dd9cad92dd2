use std::process::ExitCode;

use openai_proxy_deployer::commands::{self, Context};
use openai_proxy_deployer::config::{self, Config};
use openai_proxy_deployer::report::{Status, publish};
use openai_proxy_deployer::runner::Runner;
use openai_proxy_deployer::ui::Ui;

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
    let config = match Config::from_env() {
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
    runtime.block_on(commands::run(&mut ctx));
    publish::publish(&ctx.report, &ctx.config, &ctx.ui, &runner);
    match ctx.report.status() {
        Status::Succeeded | Status::NoChanges => ExitCode::SUCCESS,
        Status::Failed => ExitCode::FAILURE,
    }
}

use std::process::ExitCode;

use openai_proxy_deployer::config::{self, Config};
use openai_proxy_deployer::publish;
use openai_proxy_deployer::report::Status;
use openai_proxy_deployer::run::Run;
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
    let config = match Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
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
    let ui = Ui::from_env();
    let mut run = Run::new(config, ui);
    runtime.block_on(run.execute());
    publish::publish(&run.report, &run.config, &ui);
    match run.report.status() {
        Status::Succeeded | Status::NoChanges => ExitCode::SUCCESS,
        Status::Failed => ExitCode::FAILURE,
    }
}

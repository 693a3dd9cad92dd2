use std::process::ExitCode;
use std::sync::Arc;

use openai_proxy_function::app::{AppState, Settings, default_upstream};
use openai_proxy_function::config::source::base_url_from_env;
use openai_proxy_function::config::{ConfigSource, ConfigStore};
use openai_proxy_function::env::Environment;
use openai_proxy_function::observe::Sink;
use openai_proxy_function::runtime::Runtime;
use openai_proxy_function::spend::Spend;

/// A request allocates and frees dozens of small buffers (headers, bodies, the log line):
/// mimalloc's per-thread free lists serve them faster than glibc's malloc.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// One thread: a Lambda environment serves one request at a time; the local server
/// starts its other workers itself (`worker`).
#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .json()
        .with_target(false)
        .with_writer(std::io::stderr)
        .init();
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(problems) => {
            for problem in problems {
                eprintln!("error: {problem}");
            }
            ExitCode::from(2)
        }
    }
}

async fn run() -> Result<(), Vec<String>> {
    let env = Environment::from_process();
    let runtime = Runtime::from_env(&env);
    let settings = Settings::from_env(&env);
    let source = ConfigSource::from_env(&env).await.map_err(|e| vec![e]);
    let (runtime, settings, source) = match (runtime, settings, source) {
        (Ok(r), Ok(s), Ok(c)) => (r, s, c),
        (r, s, c) => {
            // Report every problem at once, not one per restart.
            let mut problems = Vec::new();
            problems.extend(r.err().into_iter().flatten());
            problems.extend(s.err().into_iter().flatten());
            problems.extend(c.err().into_iter().flatten());
            return Err(problems);
        }
    };
    let in_lambda = matches!(runtime, Runtime::Lambda { .. });
    let store = ConfigStore::new(source, base_url_from_env(&env), settings.secret_cache_ttl);
    let upstream = default_upstream(runtime.workers()).map_err(|e| vec![e])?;
    let mut app = AppState::new(settings, store, upstream, Sink::Stdout, in_lambda);
    app.spend = Spend::from_env(&env).await;
    runtime
        .serve(Arc::new(app))
        .await
        .map_err(|e| vec![e.to_string()])
}

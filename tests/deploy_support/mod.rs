//! The built deployer against the local AWS emulator, for async tests (tests/guarded.rs)
//! and, through [`blocking`], synchronous ones: each case owns its stack, function and
//! secret names, so tests run in parallel.
#![allow(dead_code)] // each test binary uses its own subset

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use openai_proxy_deployer::artifact;
use openai_proxy_deployer::aws::Aws;
use openai_proxy_deployer::cfn::stack::StackInfo;

pub const KEY: &str = "sk-test-deployer-0123456789";

pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The local emulator the test process was started with.
pub fn endpoint() -> String {
    std::env::var("AWS_ENDPOINT_URL")
        .expect("AWS_ENDPOINT_URL must point at the local emulator: run through `make test` or scripts/local-aws.sh run")
}

/// A unique stack name for `label` (names are global to the emulator the tests share).
pub fn unique(label: &str) -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    format!("t-{label}-{}", &id[..8])
}

/// An executable `bootstrap` for x86_64 in `dir`, its payload (and so S3 key) `payload`.
pub fn bootstrap_in(dir: &Path, payload: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join("bootstrap");
    std::fs::write(&path, elf(62, payload)).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// A Linux ELF executable header for `machine` (62 x86_64, 183 aarch64) and a payload:
/// enough for the deployer, which reads the header, zips and uploads it.
pub fn elf(machine: u16, payload: &str) -> Vec<u8> {
    let mut bytes = vec![0u8; 64];
    bytes[..4].copy_from_slice(b"\x7fELF");
    bytes[4] = 2;
    bytes[5] = 1;
    bytes[6] = 1;
    bytes[16] = 2;
    bytes[18..20].copy_from_slice(&machine.to_le_bytes());
    bytes.extend_from_slice(payload.as_bytes());
    bytes
}

pub struct Case {
    pub stack: String,
    pub dir: tempfile::TempDir,
}

impl Case {
    pub fn new(label: &str) -> Self {
        Self {
            stack: unique(label),
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// An executable `bootstrap` whose content (and so S3 key) is this case's own.
    pub fn bootstrap(&self, name: &str, machine: u16, payload: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let path = self.dir.path().join(name);
        std::fs::write(&path, elf(machine, &format!("{}:{payload}", self.stack))).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    pub fn deployer(&self, command: &str) -> Command {
        self.configured(command, false)
    }

    /// The deployer as a container action step runs it: every setting an input
    /// (`INPUT_STACK-NAME`), `GITHUB_ACTIONS=true`. The AWS chain's variables stay.
    pub fn action(&self, command: &str) -> Command {
        let mut cmd = self.configured(command, true);
        cmd.env("GITHUB_ACTIONS", "true");
        cmd
    }

    fn configured(&self, command: &str, inputs: bool) -> Command {
        let name = |var: &str| if inputs { input(var) } else { var.to_owned() };
        let mut cmd = Command::cargo_bin("openai-proxy-deployer").unwrap();
        cmd.env_clear()
            .current_dir(self.dir.path())
            .env("AWS_ENDPOINT_URL", endpoint())
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env(name("DEPLOYER_COMMAND"), command)
            .env(name("STACK_NAME"), &self.stack)
            .env(name("LAMBDA_FUNCTION_NAME"), &self.stack)
            .env(name("API_GATEWAY_NAME"), &self.stack)
            .env(name("TEMPLATE_FILE"), repo().join("template.yaml"))
            .env(name("ENABLE_AUTHENTICATION"), "false")
            .env(name("RUN_ENDPOINT_TESTS"), "false");
        cmd
    }

    pub fn deploy(&self, artifact: &Path) -> Command {
        let mut cmd = self.deployer("deploy");
        cmd.env("FUNCTION_ARTIFACT", artifact).env("OPENAI_API_KEY", KEY);
        cmd
    }
}

/// The action input the runner passes for a deployer variable: `INPUT_STACK-NAME`.
pub fn input(var: &str) -> String {
    openai_proxy_deployer::config::VARIABLES
        .iter()
        .find(|v| v.name == var)
        .unwrap_or_else(|| panic!("{var} is no deployer variable"))
        .input_env()
}

pub struct Output {
    pub ok: bool,
    pub code: Option<i32>,
    pub text: String,
}

impl Output {
    /// The run's output says `what`; the assertion shows the whole output.
    #[track_caller]
    pub fn says(&self, what: &str) {
        assert!(self.text.contains(what), "expected {what:?} in:\n{}", self.text);
    }
}

/// Runs the deployer off the test's runtime, so servers on it keep answering.
pub async fn run(mut cmd: Command) -> Output {
    tokio::task::spawn_blocking(move || blocking::output(&mut cmd))
        .await
        .unwrap()
}

/// The same for the synchronous tests (tests/deploy.rs, tests/client_keys.rs).
pub mod blocking {
    use super::*;

    /// Runs the deployer; its stdout and stderr as one text.
    pub fn output(cmd: &mut Command) -> Output {
        let out = cmd.output().unwrap();
        Output {
            ok: out.status.success(),
            code: out.status.code(),
            text: format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        }
    }

    pub fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    pub fn aws() -> Aws {
        runtime().block_on(super::aws())
    }

    /// The secret's value, or None when it does not exist.
    pub fn secret(aws: &Aws, id: &str) -> Option<serde_json::Value> {
        let out = runtime().block_on(aws.secrets.get_secret_value().secret_id(id).send());
        out.ok()
            .and_then(|o| o.secret_string().map(|s| serde_json::from_str(s).unwrap()))
    }

    /// Writes `value` as the secret's new version, as an operator editing it by hand.
    pub fn put_secret(aws: &Aws, id: &str, value: &serde_json::Value) {
        runtime()
            .block_on(
                aws.secrets
                    .put_secret_value()
                    .secret_id(id)
                    .secret_string(value.to_string())
                    .send(),
            )
            .unwrap();
    }

    pub fn stack_exists(aws: &Aws, stack: &str) -> bool {
        runtime()
            .block_on(openai_proxy_deployer::cfn::stack::describe(aws, stack))
            .unwrap()
            .is_some()
    }
}

pub async fn aws() -> Aws {
    // The test process has the emulator's variables from scripts/local-aws.sh run.
    Aws::load(Some("us-east-1")).await.unwrap()
}

pub async fn stack_info(stack: &str) -> StackInfo {
    openai_proxy_deployer::cfn::stack::describe(&aws().await, stack)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("no stack {stack}"))
}

pub async fn function_config(
    name: &str,
) -> aws_sdk_lambda::operation::get_function_configuration::GetFunctionConfigurationOutput {
    aws()
        .await
        .lambda
        .get_function_configuration()
        .function_name(name)
        .send()
        .await
        .unwrap()
}

/// Lambda's CodeSha256 of the zip the deployer makes of `path`.
pub fn code_sha256_of(path: &Path) -> String {
    artifact::load(path, None).unwrap().code_sha256
}

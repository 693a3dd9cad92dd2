"""The action's image as the GitHub runner runs it (conftest.py), against the local AWS:
validate, deploy, a guarded rollback, a configuration error and a cancel."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from conftest import ENGINE, ROOT, WORKFLOW_ENV, unique

MODELS = '{"amazon.nova-lite-v1:0":"gpt-4o-mini"}'


def stack_status(aws, stack: str) -> str:
    return aws["cloudformation"].describe_stacks(StackName=stack)["Stacks"][0]["StackStatus"]


def names(stack: str) -> dict[str, str]:
    return {"stack-name": stack, "lambda-function-name": stack, "api-gateway-name": stack}


def test_validate_uses_the_bundled_files_and_ignores_the_workflows_variables(runner, aws):
    stack = unique("validate")
    run = runner.run({"command": "validate", "enable-authentication": "false", **names(stack)})
    assert run.code == 0, run.stdout + run.stderr
    assert f"Change set for stack {stack} (not executed)" in run.stdout, run.stdout
    assert "deploying the stock function and template bundled" in run.stdout, run.stdout
    assert run.outputs["status"] == "succeeded", run.outputs
    assert run.outputs["has-changes"] == "true", run.outputs
    assert "validate" in run.summary
    for value in WORKFLOW_ENV.values():
        assert value not in run.stdout + run.summary, value
    print(f"\nfirst line of output {run.first_line_seconds:.2f} s after `podman run`")


def test_deploy_stores_the_trimmed_key_and_reports_a_path_later_steps_open(runner, aws):
    stack = unique("deploy")
    run = runner.run(
        {
            "command": "deploy",
            "enable-authentication": "false",
            "run-endpoint-tests": "false",
            # A secret pasted with its trailing newline.
            "openai-api-key": "sk-from-a-secret-0123456789\n",
            # `${{ runner.temp }}/deploy-report.md`: the runner rewrites it to the container's path.
            "report-file": str(runner.temp / "deploy-report.md"),
            **names(stack),
        }
    )
    assert run.code == 0, run.stdout + run.stderr
    assert stack_status(aws, stack) == "CREATE_COMPLETE"
    assert run.outputs["status"] == "succeeded", run.outputs
    assert run.outputs["function-name"] == stack
    # A later step (on the host) opens it.
    report = Path(run.outputs["report-path"])
    assert report == runner.temp / "deploy-report.md", run.outputs
    assert "deployed" in report.read_text()
    secret = json.loads(aws["secretsmanager"].get_secret_value(SecretId=run.outputs["secret-arn"])["SecretString"])
    assert secret["openai_api_key"] == "sk-from-a-secret-0123456789"
    assert "sk-from-a-secret-0123456789" not in run.stdout.replace(
        "::add-mask::sk-from-a-secret-0123456789", ""
    ), run.stdout


def test_a_configuration_error_stops_before_aws_and_says_so_where_people_look(runner):
    run = runner.run({"command": "deploy", "stage": "production"})
    assert run.code == 2, run.stdout + run.stderr
    assert "::error title=invalid configuration::" in run.stdout
    assert "STAGE must be one of dev | test | prod (e.g. STAGE=dev) (set by the input `stage`)" in run.stderr, run.stderr
    assert run.outputs == {"status": "invalid-configuration"}
    assert "invalid configuration" in run.summary
    # A report that would vanish with the container.
    run = runner.run({"command": "deploy", "report-file": "/tmp/r.md"})
    assert run.code == 2, run.stdout + run.stderr
    assert "REPORT_FILE /tmp/r.md is outside what the runner shares with later steps" in run.stderr, run.stderr
    assert run.outputs == {"status": "invalid-configuration"}


def test_a_cancel_stops_the_container_within_5_s_and_reports_the_stack(runner, aws):
    stack = unique("cancel")
    first = runner.run(
        {"command": "deploy", "enable-authentication": "false", "run-endpoint-tests": "false",
         "openai-api-key": "sk-cancel-0123456789", **names(stack)}
    )
    assert first.code == 0, first.stdout + first.stderr
    # A guarded update (a parameter change), signalled once CloudFormation monitors it: the
    # runner's docker CLI forwards the SIGINT of a cancelled workflow to PID 1.
    signalled: dict[str, float] = {}

    def on_line(line: str, name: str) -> None:
        if "Monitoring window" in line and not signalled:
            signalled["at"] = time.monotonic()
            subprocess.run([*ENGINE, "kill", "--signal", "INT", name], check=True, capture_output=True)

    run = runner.run(
        {"command": "deploy", "enable-authentication": "false", "run-endpoint-tests": "false",
         "log-level": "DEBUG", "rollback-window-minutes": "3", **names(stack)},
        on_line=on_line,
    )
    assert signalled, f"the run never reached the monitoring window:\n{run.stdout}{run.stderr}"
    stopped_after = time.monotonic() - signalled["at"]
    assert run.code == 130, run.stdout + run.stderr
    assert stopped_after < 5, f"still running {stopped_after:.1f} s after SIGINT"
    assert "cancelled (SIGINT)" in run.summary, run.summary
    assert f"stack {stack} is UPDATE_IN_PROGRESS" in run.summary, run.summary
    assert f"aws cloudformation cancel-update-stack --stack-name {stack}" in run.summary, run.summary
    assert run.outputs["status"] == "failed"
    assert run.outputs["stack-status"] == "UPDATE_IN_PROGRESS"
    print(f"\ncontainer gone {stopped_after:.2f} s after SIGINT")


# --- the guarded rollback: the demo's set-up (scripts/demo-rollback.sh), the image deploying ---


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port_file(path: Path, proc: subprocess.Popen) -> int:
    for _ in range(200):
        if path.exists() and path.read_text().strip():
            return int(path.read_text())
        assert proc.poll() is None, f"{proc.args} exited"
        time.sleep(0.05)
    raise AssertionError(f"{proc.args} wrote no port")


def wait_http(url: str, proc: subprocess.Popen) -> None:
    for _ in range(300):
        assert proc.poll() is None, f"{proc.args} exited"
        try:
            urllib.request.urlopen(url, timeout=1).read()
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"{url} never answered")


def function_binary() -> Path:
    """The proxy for this host (debug), as make test builds it; built when missing."""
    meta = subprocess.run(["cargo", "metadata", "--no-deps", "--format-version", "1"], cwd=ROOT,
                          check=True, capture_output=True, text=True)
    binary = Path(json.loads(meta.stdout)["target_directory"]) / "debug" / "openai-proxy-function"
    subprocess.run(["cargo", "build", "--locked", "-p", "openai-proxy-function", "--bin", "openai-proxy-function"],
                   cwd=ROOT, check=True)
    return binary


@pytest.fixture
def started():
    procs: list[subprocess.Popen] = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()


def test_a_guarded_deploy_whose_endpoint_tests_fail_is_rolled_back(runner, aws, started, tmp_path):
    stack = unique("rollback")
    good = runner.workspace / "good" / "bootstrap"
    good.parent.mkdir()
    shutil.copy(function_binary(), good)
    key = "sk-local-test-upstream-not-a-real-key"
    first = runner.run(
        {"command": "deploy", "enable-authentication": "false", "run-endpoint-tests": "false",
         "function-artifact": str(good), "openai-api-key": key, "model-mappings": MODELS, **names(stack)}
    )
    assert first.code == 0, first.stdout + first.stderr
    good_code = aws["lambda"].get_function_configuration(FunctionName=stack)["CodeSha256"]

    python = sys.executable
    upstream = subprocess.Popen([python, str(ROOT / "scripts/test-upstream.py"), "--port-file", str(tmp_path / "up")],
                                stderr=subprocess.DEVNULL)
    started.append(upstream)
    upstream_url = f"http://127.0.0.1:{wait_port_file(tmp_path / 'up', upstream)}/v1"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
    function = subprocess.Popen(
        [str(good)],
        env={**env, "PROXY_LISTEN_ADDR": f"127.0.0.1:{port}", "OPENAI_API_KEY_SECRET_ARN": first.outputs["secret-arn"],
             "OPENAI_BASE_URL": upstream_url, "LOG_LEVEL": "INFO"},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    started.append(function)
    wait_http(f"http://127.0.0.1:{port}/health", function)
    # The gate plays API Gateway (the emulator's does not invoke Lambda): it forwards to
    # the good code and fails chat completions while the stack's function has other code.
    gate = subprocess.Popen(
        [python, str(ROOT / "scripts/demo-gate.py"), "--target", f"http://127.0.0.1:{port}", "--function", stack,
         "--good-code-sha256", good_code, "--models", MODELS, "--port-file", str(tmp_path / "gate")],
        stderr=subprocess.DEVNULL,
    )
    started.append(gate)
    gate_url = f"http://127.0.0.1:{wait_port_file(tmp_path / 'gate', gate)}"

    bad = runner.workspace / "bad" / "bootstrap"
    bad.parent.mkdir()
    shutil.copy(good, bad)
    with bad.open("ab") as f:
        f.write(b"\nthe bad release\n")
    run = runner.run(
        {"command": "deploy", "enable-authentication": "false", "run-endpoint-tests": "true",
         "perf-requests": "0", "function-artifact": str(bad), "api-base-url": gate_url,
         "model-mappings": MODELS, **names(stack)},
        timeout=600,
    )
    assert run.code == 1, run.stdout + run.stderr
    assert run.outputs["rolled-back"] == "true", run.outputs
    assert stack_status(aws, stack) == "UPDATE_ROLLBACK_COMPLETE"
    assert aws["lambda"].get_function_configuration(FunctionName=stack)["CodeSha256"] == good_code
    assert "rolled back" in run.summary, run.summary

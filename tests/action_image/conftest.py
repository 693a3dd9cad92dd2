"""The action's image, run the way the GitHub runner runs a container action.

What the runner does (actions/runner: ContainerActionHandler.cs, DockerCommandManager.cs),
reproduced here with podman:

    docker run --name <name> --label <hash> --workdir /github/workspace --rm
      -e <each variable> -e GITHUB_ACTIONS=true -e CI=true
      -v <temp>:/github/runner_temp -v <temp>/_github_home:/github/home
      -v <temp>/_github_workflow:/github/workflow
      -v <temp>/_runner_file_commands:/github/file_commands
      -v <workspace>:/github/workspace  IMAGE

Every variable is passed by name (`-e NAME`, its value in the CLI's environment), inputs
as INPUT_<ID uppercased> with hyphens kept, and values under a mounted host path
rewritten to the container path. No --user, no --init: the deployer is PID 1 as root.
On cancel the runner's SIGINT reaches the docker CLI, which forwards it to PID 1:
`podman kill --signal INT` does the same.

Only what these machines need is added: `--runtime runc` (crun fails here), explicit
rlimits, and `--network host` so the container reaches the local AWS on 127.0.0.1.

These tests need podman (scripts/setup.sh installs it, as root), the image (`make
image`) and a local AWS (`scripts/local-aws.sh run`); without one they fail, naming it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import threading
import time
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
IMAGE = os.environ.get("IMAGE", "openai-lambda-proxy:dev")
ENGINE = ["podman", "--runtime", "runc"]
# What these machines need on top of the runner's flags (see the module docstring).
HOST_FLAGS = ["--ulimit", "nofile=20000:20000", "--ulimit", "nproc=1000:1000", "--network", "host"]

# The workflow's own variables, which reach the container too (issue 19, item 1): under
# Actions they must change nothing.
WORKFLOW_ENV = {
    "STAGE": "not a stage!",
    "LOG_LEVEL": "workflow-log-level",
    "STACK_NAME": "a-stack-of-another-tool",
    "OPENAI_API_KEY": "sk-meant-for-another-tool",
    "DEPLOYER_COMMAND": "destroy",
}


def _action_inputs() -> list[str]:
    """The input ids action.yml declares: the runner passes each, empty when not given."""
    ids, inside = [], False
    for line in (ROOT / "action.yml").read_text().splitlines():
        if line == "inputs:":
            inside = True
        elif inside and line and not line.startswith(" "):
            break
        elif inside and line.startswith("  ") and not line.startswith("   ") and line.endswith(":"):
            ids.append(line.strip()[:-1])
    return ids


@pytest.fixture(scope="session")
def image() -> str:
    if shutil.which("podman") is None:
        pytest.fail(
            "podman is not installed: the action's image tests cannot run. Run `make setup` as root "
            "(it installs podman and runc) or `apt-get install podman runc`",
            pytrace=False,
        )
    if subprocess.run([*ENGINE, "image", "exists", IMAGE], check=False).returncode != 0:
        pytest.fail(f"the image {IMAGE} does not exist: run `make image` first", pytrace=False)
    if not os.environ.get("AWS_ENDPOINT_URL"):
        pytest.fail(
            "AWS_ENDPOINT_URL is not set: run through `make test-action-image` (scripts/local-aws.sh run)",
            pytrace=False,
        )
    return IMAGE


@dataclasses.dataclass
class Run:
    code: int
    stdout: str
    stderr: str
    outputs: dict[str, str]
    summary: str
    seconds: float
    # Seconds from `podman run` to the first line of output.
    first_line_seconds: float | None


def parse_outputs(text: str) -> dict[str, str]:
    """$GITHUB_OUTPUT as the runner reads it: name=value, or name<<DELIM ... DELIM."""
    out: dict[str, str] = {}
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            name, delim = line.split("<<", 1)
            end = lines.index(delim, i + 1)
            out[name] = "\n".join(lines[i + 1 : end])
            i = end + 1
            continue
        if "=" in line:
            name, value = line.split("=", 1)
            out[name] = value
        i += 1
    return out


class Runner:
    """One job's directories, laid out as the runner lays them out under its `_work`."""

    def __init__(self, base: Path, image: str):
        self.image = image
        self.work = base / "_work"
        self.runner_workspace = self.work / "app"
        self.workspace = self.runner_workspace / "app"
        self.temp = self.work / "_temp"
        self.home = self.temp / "_github_home"
        self.workflow = self.temp / "_github_workflow"
        self.file_commands = self.temp / "_runner_file_commands"
        for d in (self.workspace, self.home, self.workflow, self.file_commands):
            d.mkdir(parents=True, exist_ok=True)
        (self.workflow / "event.json").write_text(json.dumps({"ref": "refs/heads/main"}))
        self.mounts = [
            (self.temp, "/github/runner_temp"),
            (self.home, "/github/home"),
            (self.workflow, "/github/workflow"),
            (self.file_commands, "/github/file_commands"),
            (self.workspace, "/github/workspace"),
        ]

    def container_path(self, host: Path | str) -> str:
        """What the runner does to every variable's value: host paths under a mount become
        the container's."""
        text = str(host)
        for source, target in self.mounts:
            if text == str(source) or text.startswith(str(source) + "/"):
                return target + text[len(str(source)) :]
        return text

    def start(self, inputs: dict[str, str], name: str | None = None) -> tuple[subprocess.Popen, dict]:
        guid = uuid.uuid4()
        output = self.file_commands / f"set_output_{guid}"
        summary = self.file_commands / f"step_summary_{guid}"
        output.touch()
        summary.touch()
        name = name or f"olp_action_{uuid.uuid4().hex[:12]}"
        env: dict[str, str] = dict(WORKFLOW_ENV)
        for input_id in _action_inputs():
            env[f"INPUT_{input_id.upper()}"] = self.container_path(inputs.get(input_id, ""))
        unknown = set(inputs) - set(_action_inputs())
        assert not unknown, f"no such input in action.yml: {unknown}"
        env.update(
            {
                "HOME": "/github/home",
                "GITHUB_JOB": "deploy",
                "GITHUB_REF": "refs/heads/main",
                "GITHUB_SHA": "0123456789abcdef0123456789abcdef01234567",
                "GITHUB_REPOSITORY": "o/app",
                "GITHUB_RUN_ID": "1",
                "GITHUB_ACTIONS": "true",
                "GITHUB_WORKSPACE": self.container_path(self.workspace),
                "GITHUB_EVENT_PATH": self.container_path(self.workflow / "event.json"),
                "GITHUB_OUTPUT": self.container_path(output),
                "GITHUB_STEP_SUMMARY": self.container_path(summary),
                "RUNNER_OS": "Linux",
                "RUNNER_TEMP": self.container_path(self.temp),
                "RUNNER_WORKSPACE": str(self.runner_workspace),
                "CI": "true",
                # What aws-actions/configure-aws-credentials exports for later steps; here
                # the local AWS's (scripts/local-aws.sh run set them).
                "AWS_REGION": os.environ.get("AWS_REGION") or "us-east-1",
                "AWS_DEFAULT_REGION": os.environ.get("AWS_REGION") or "us-east-1",
                "AWS_ACCESS_KEY_ID": os.environ.get("AWS_ACCESS_KEY_ID", "testing"),
                "AWS_SECRET_ACCESS_KEY": os.environ.get("AWS_SECRET_ACCESS_KEY", "testing"),
                "AWS_ENDPOINT_URL": os.environ["AWS_ENDPOINT_URL"],
                "AWS_EC2_METADATA_DISABLED": "true",
            }
        )
        args = [*ENGINE, "run", "--name", name, "--label", "9a1b2c", "--workdir", "/github/workspace", "--rm"]
        for key in env:
            args += ["-e", key]
        args += ["-e", "GITHUB_ACTIONS=true", "-e", "CI=true"]
        for source, target in self.mounts:
            args += ["-v", f"{source}:{target}"]
        args += [*HOST_FLAGS, self.image]
        process_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **env}
        proc = subprocess.Popen(args, env=process_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        return proc, {"name": name, "output": output, "summary": summary}

    def run(self, inputs: dict[str, str], *, timeout: float = 300, on_line=None) -> Run:
        started = time.monotonic()
        proc, files = self.start(inputs)
        first: list[float] = []
        lines: list[str] = []

        def read_stdout():
            for line in proc.stdout:
                if not first:
                    first.append(time.monotonic() - started)
                lines.append(line)
                if on_line:
                    on_line(line, files["name"])

        reader = threading.Thread(target=read_stdout, daemon=True)
        reader.start()
        try:
            stderr = proc.stderr.read()
            proc.wait(timeout=timeout)
        finally:
            if proc.poll() is None:
                subprocess.run([*ENGINE, "kill", files["name"]], check=False)
                proc.kill()
        reader.join(timeout=10)
        return Run(
            code=proc.returncode,
            stdout="".join(lines),
            stderr=stderr,
            outputs=parse_outputs(files["output"].read_text()),
            summary=files["summary"].read_text(),
            seconds=time.monotonic() - started,
            first_line_seconds=first[0] if first else None,
        )


@pytest.fixture
def runner(tmp_path: Path, image: str) -> Runner:
    return Runner(tmp_path, image)


@pytest.fixture(scope="session")
def aws():
    import boto3

    region = os.environ.get("AWS_REGION") or "us-east-1"
    return {
        "cloudformation": boto3.client("cloudformation", region_name=region),
        "lambda": boto3.client("lambda", region_name=region),
        "secretsmanager": boto3.client("secretsmanager", region_name=region),
    }


def unique(label: str) -> str:
    return f"img-{label}-{uuid.uuid4().hex[:8]}"

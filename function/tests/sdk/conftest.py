"""Fixtures for the function's Python tests: a local OpenAI-like upstream and the built
proxy binary in local HTTP mode in front of it, with client authentication on.

The binary is built with cargo (a no-op when it is up to date) unless PROXY_BIN names
one; it listens on a free port and is stopped with SIGTERM at the end, which must end
it with exit code 0.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import tempfile
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from queue import Empty, Queue

import pytest

ROOT = Path(__file__).resolve().parents[3]
OPENAI_KEY = "sk-upstream-secret-0123456789abcdef"
CLIENT_KEY = "client-key-for-the-sdk-tests"
# A named key limited to one model (client_api_keys' object form).
NAMED_KEY = "named-key-for-the-sdk-tests"
NAMED_KEY_NAME = "web-app"
NAMED_KEY_MODELS = ["amazon.nova-lite-v1:0"]
MODELS = {
    "amazon.nova-lite-v1:0": "gpt-4o-mini",
    "amazon.nova-pro-v1:0": "gpt-4o",
    "amazon.titan-embed-text-v2:0": "text-embedding-3-small",
}
EMBEDDING = [0.0023064255, -0.009327292, 0.015797347]
# What the upstream calls its model: the proxy must answer with the requested id instead.
UPSTREAM_MODEL_ID = "gpt-4o-mini-2024-07-18"
ANSWER = ["Hello", " from", " upstream"]


@dataclass
class Upstream:
    """A canned OpenAI chat completions endpoint that records what it was sent."""

    base_url: str = ""
    requests: list[dict] = field(default_factory=list)


def _completion() -> dict:
    return {
        "id": "chatcmpl-sdk",
        "object": "chat.completion",
        "created": 1764000000,
        "model": UPSTREAM_MODEL_ID,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "".join(ANSWER), "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12},
    }


def _chunks(include_usage: bool) -> list[dict]:
    def chunk(delta: dict, finish: str | None = None) -> dict:
        return {
            "id": "chatcmpl-sdk",
            "object": "chat.completion.chunk",
            "created": 1764000000,
            "model": UPSTREAM_MODEL_ID,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }

    out = [chunk({"role": "assistant", "content": ""})]
    out += [chunk({"content": piece}) for piece in ANSWER]
    out.append(chunk({}, "stop"))
    if include_usage:
        last = chunk({})
        last["choices"] = []
        last["usage"] = {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12}
        out.append(last)
    return out


def _embeddings(body: dict) -> dict:
    inputs = body.get("input")
    count = len(inputs) if isinstance(inputs, list) else 1
    if body.get("encoding_format") == "base64":
        import base64
        import struct

        vector = base64.b64encode(struct.pack(f"<{len(EMBEDDING)}f", *EMBEDDING)).decode()
    else:
        vector = EMBEDDING
    return {
        "object": "list",
        "data": [{"object": "embedding", "index": i, "embedding": vector} for i in range(count)],
        "model": "text-embedding-3-small",
        "usage": {"prompt_tokens": 4, "total_tokens": 4},
    }


def _response(status: str) -> dict:
    done = status == "completed"
    text = "".join(ANSWER)
    return {
        "id": "resp_sdk",
        "object": "response",
        "created_at": 1764000000,
        "status": status,
        "model": UPSTREAM_MODEL_ID,
        "output": [
            {
                "type": "message",
                "id": "msg_sdk",
                "status": "completed",
                "role": "assistant",
                "content": [{"type": "output_text", "text": text, "annotations": []}],
            }
        ] if done else [],
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "usage": {
            "input_tokens": 9,
            "output_tokens": 3,
            "total_tokens": 12,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens_details": {"reasoning_tokens": 0},
        } if done else None,
    }


def _response_events() -> list[tuple[str, dict]]:
    events = [
        ("response.created", {"type": "response.created", "response": _response("in_progress")}),
        ("response.output_item.added", {
            "type": "response.output_item.added", "output_index": 0,
            "item": {"type": "message", "id": "msg_sdk", "status": "in_progress", "role": "assistant", "content": []},
        }),
        ("response.content_part.added", {
            "type": "response.content_part.added", "item_id": "msg_sdk", "output_index": 0, "content_index": 0,
            "part": {"type": "output_text", "text": "", "annotations": []},
        }),
    ]
    for piece in ANSWER:
        events.append((
            "response.output_text.delta",
            {"type": "response.output_text.delta", "item_id": "msg_sdk", "output_index": 0,
             "content_index": 0, "delta": piece, "logprobs": []},
        ))
    events.append(("response.completed", {"type": "response.completed", "response": _response("completed")}))
    for number, (_, data) in enumerate(events):
        data["sequence_number"] = number
    return events


def _handler(upstream: Upstream):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):  # keep pytest's output clean
            pass

        def _json(self, status: int, body: dict, headers: dict | None = None) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self):  # noqa: N802 (http.server's naming)
            length = int(self.headers.get("content-length", 0))
            body = json.loads(self.rfile.read(length) or b"{}")
            upstream.requests.append(
                {"path": self.path, "authorization": self.headers.get("authorization"), "body": body}
            )
            try:
                self._answer(body)
            except (TypeError, AttributeError, ValueError):
                # What OpenAI does with a body it cannot use (the fuzz run sends many).
                self._json(400, {"error": {"message": "Invalid request body.", "type": "invalid_request_error",
                                           "param": None, "code": None}})

        def _stored(self) -> str | None:
            """The response id of a stored-response path (`/v1/responses/{id}[/...]`)."""
            path = self.path.split("?", 1)[0]
            if not path.startswith("/v1/responses/"):
                return None
            return path.removeprefix("/v1/responses/").split("/", 1)[0]

        def do_GET(self):  # noqa: N802 (http.server's naming)
            # Every id is stored, as OpenAI keeps every response (store: true).
            response_id = self._stored()
            if response_id is None:
                self._json(404, {"error": {"message": "no such path", "type": "invalid_request_error"}})
            elif self.path.split("?", 1)[0].endswith("/input_items"):
                self._json(200, {"object": "list", "data": [], "first_id": None, "last_id": None, "has_more": False})
            else:
                self._json(200, dict(_response("completed"), id=response_id))

        def do_DELETE(self):  # noqa: N802 (http.server's naming)
            response_id = self._stored()
            if response_id is None:
                self._json(404, {"error": {"message": "no such path", "type": "invalid_request_error"}})
            else:
                self._json(200, {"id": response_id, "object": "response", "deleted": True})

        def _answer(self, body: dict) -> None:
            response_id = self._stored()
            if response_id is not None and self.path.endswith("/cancel"):
                self._json(200, dict(_response("cancelled"), id=response_id))
                return
            if self.path == "/v1/embeddings":
                self._json(200, _embeddings(body))
                return
            if self.path == "/v1/responses":
                if body.get("stream"):
                    self._stream([f"event: {name}\ndata: {json.dumps(data)}\n\n" for name, data in _response_events()])
                else:
                    self._json(200, _response("completed"))
                return
            if self.path != "/v1/chat/completions":
                self._json(404, {"error": {"message": "no such path", "type": "invalid_request_error"}})
                return
            prompt = json.dumps(body.get("messages", []))
            if "trigger-400" in prompt:
                self._json(
                    400,
                    {
                        "error": {
                            "message": "This model's maximum context length is 128000 tokens.",
                            "type": "invalid_request_error",
                            "param": "messages",
                            "code": "context_length_exceeded",
                        }
                    },
                )
            elif "trigger-429" in prompt:
                self._json(
                    429,
                    {"error": {"message": "Rate limit reached.", "type": "rate_limit_error", "code": "rate_limit_exceeded"}},
                    {"retry-after-ms": "10"},
                )
            elif body.get("stream"):
                include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
                self._stream([f"data: {json.dumps(c)}\n\n" for c in _chunks(include_usage)] + ["data: [DONE]\n\n"])
            else:
                self._json(200, _completion())

        def _stream(self, events: list[str]) -> None:
            self.send_response(200)
            self.send_header("content-type", "text/event-stream")
            self.send_header("transfer-encoding", "chunked")
            self.end_headers()
            for event in events:
                data = event.encode()
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")

    return Handler


@pytest.fixture(scope="session")
def upstream():
    state = Upstream()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    server.daemon_threads = True
    state.base_url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


def _binary() -> str:
    if os.environ.get("PROXY_BIN"):
        return os.environ["PROXY_BIN"]
    build = subprocess.run(
        ["cargo", "build", "--locked", "-p", "openai-proxy-function", "--bin", "openai-proxy-function",
         "--message-format=json-render-diagnostics"],
        cwd=ROOT, check=True, stdout=subprocess.PIPE, text=True,
    )
    for line in build.stdout.splitlines():
        message = json.loads(line)
        if message.get("reason") == "compiler-artifact" and message.get("executable") \
                and message["target"]["name"] == "openai-proxy-function":
            return message["executable"]
    raise RuntimeError("cargo built no openai-proxy-function executable")


@dataclass
class Proxy:
    base_url: str
    process: subprocess.Popen
    stdout: list[str]
    stderr: list[str]


def _pump(stream, sink: list[str], queue: Queue | None = None) -> None:
    for line in stream:
        sink.append(line)
        if queue is not None:
            queue.put(line)


@pytest.fixture(scope="session")
def proxy(upstream, tmp_path_factory):
    config = {
        "openai_api_key": OPENAI_KEY,
        "model_mappings": MODELS,
        "timeout_settings": {"openai_api_timeout": 10, "secrets_manager_timeout": 5, "lambda_timeout": 60},
        "openai_base_url": upstream.base_url,
        "client_api_keys": [
            hashlib.sha256(CLIENT_KEY.encode()).hexdigest(),
            {
                "name": NAMED_KEY_NAME,
                "sha256": hashlib.sha256(NAMED_KEY.encode()).hexdigest(),
                "models": NAMED_KEY_MODELS,
            },
        ],
    }
    yield from _serve(config, tmp_path_factory, {})


@pytest.fixture(scope="session")
def failover_proxy(tmp_path_factory):
    """The proxy with OpenAI unreachable (a port nothing listens on) and its models
    mapped to Amazon Bedrock as well: the local AWS's Bedrock Runtime
    (localaws/moto_ext/bedrock_runtime.py) answers every request."""
    endpoint = os.environ.get("AWS_ENDPOINT_URL", "")
    if "127.0.0.1" not in endpoint:
        pytest.fail("AWS_ENDPOINT_URL must point at the local emulator: run through make test or scripts/local-aws.sh run")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead = probe.getsockname()[1]
    config = {
        "openai_api_key": OPENAI_KEY,
        "model_mappings": {
            "amazon.nova-lite-v1:0": {"openai": "gpt-4o-mini", "bedrock": "us.amazon.nova-lite-v1:0"},
            "amazon.nova-pro-v1:0": {"openai": "gpt-4o", "bedrock": "amazon.nova-pro-v1:0", "primary": "bedrock"},
            "amazon.nova-micro-v1:0": {"bedrock": "amazon.nova-micro-v1:0"},
            "amazon.titan-embed-text-v2:0": {"bedrock": "amazon.titan-embed-text-v2:0"},
            "amazon.titan-embed-text-v1": {"bedrock": "amazon.titan-embed-text-v1"},
        },
        "timeout_settings": {"openai_api_timeout": 10, "secrets_manager_timeout": 5, "lambda_timeout": 60},
        "openai_base_url": f"http://127.0.0.1:{dead}/v1",
        "client_api_keys": [hashlib.sha256(CLIENT_KEY.encode()).hexdigest()],
    }
    # The service-specific variable, as an operator would point Bedrock alone elsewhere:
    # the SDK honours it (nothing else of AWS is called in local mode with a file).
    aws = {
        "AWS_ENDPOINT_URL_BEDROCK_RUNTIME": endpoint,
        "AWS_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    yield from _serve(config, tmp_path_factory, aws)


def _serve(config: dict, tmp_path_factory, extra_env: dict[str, str]):
    """The binary in local mode with `config`, until the session ends (SIGTERM, exit 0)."""
    config_file = tmp_path_factory.mktemp("proxy") / "config.json"
    config_file.write_text(json.dumps(config))
    env = {
        "PATH": os.environ.get("PATH", ""),
        "PROXY_LISTEN_ADDR": "127.0.0.1:0",
        "PROXY_CONFIG_FILE": str(config_file),
        "ENABLE_AUTHENTICATION": "true",
        "LOG_LEVEL": "INFO",
        **extra_env,
    }
    process = subprocess.Popen(
        [_binary()], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        cwd=tempfile.gettempdir(),
    )
    stdout: list[str] = []
    stderr: list[str] = []
    started: Queue = Queue()
    threading.Thread(target=_pump, args=(process.stdout, stdout), daemon=True).start()
    threading.Thread(target=_pump, args=(process.stderr, stderr, started), daemon=True).start()
    address = None
    try:
        while address is None:
            line = started.get(timeout=60)
            record = json.loads(line)
            if record.get("fields", {}).get("message") == "serving plain HTTP":
                address = record["fields"]["address"]
    except Empty:
        process.kill()
        pytest.fail(f"the proxy did not start: {''.join(stderr)}")
    running = Proxy(f"http://{address}/v1", process, stdout, stderr)
    yield running
    process.send_signal(signal.SIGTERM)
    code = process.wait(timeout=30)
    assert code == 0, f"exit code {code} after SIGTERM: {''.join(stderr)}"

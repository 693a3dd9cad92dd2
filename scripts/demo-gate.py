#!/usr/bin/env python3
"""The gate of `make demo-rollback`: it plays API Gateway in front of the deployed code.

The local AWS emulator's API Gateway does not invoke Lambda, so the demo's endpoint tests
cannot reach the code the stack deployed. The gate stands in for that path: on every
request it reads the CodeSha256 of the stack's Lambda function from the emulator, and

  the good version's code (--good-code-sha256)   forwards the request to the function
                                                 running on this machine (--target)
  any other code (the demo's "bad" release)      answers POST /v1/chat/completions for
                                                 a mapped model (--models) with HTTP 500
                                                 in OpenAI's error shape, as a release
                                                 with a broken chat path would; other
                                                 requests are forwarded

Every request is logged on stderr with the version that answered it. Standard library,
local_http.py beside it, and boto3 (from the project's venv), which reads AWS_ENDPOINT_URL, AWS_REGION and the
dummy credentials that scripts/local-aws.sh run sets. Usage:

  scripts/demo-gate.py --target http://127.0.0.1:PORT --function NAME \\
      --good-code-sha256 BASE64 --models JSON [--port 0] [--port-file PATH]

With --port 0 (the default) it picks a free port; --port-file receives the port once the
server listens. It stops on SIGINT or SIGTERM.
"""

from __future__ import annotations

import argparse
import http.client
import json
import sys
import threading
import urllib.parse

import boto3
import local_http
from botocore.exceptions import BotoCoreError, ClientError

# Not forwarded either way (RFC 9110 section 7.6.1); the body is re-framed.
HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
}


class Gate:
    def __init__(self, target: str, function: str, good: str, models: set[str]) -> None:
        parsed = urllib.parse.urlsplit(target)
        self.host, self.port = parsed.hostname or "127.0.0.1", parsed.port or 80
        self.function, self.good, self.models = function, good, models
        self.lambda_ = boto3.client("lambda")
        self.lock = threading.Lock()

    def deployed_code(self) -> str:
        """The CodeSha256 the stack's function has now (read each time: a deploy changes it)."""
        with self.lock:  # one boto3 call at a time keeps the emulator's load down
            return self.lambda_.get_function_configuration(FunctionName=self.function)["CodeSha256"]


class Handler(local_http.Handler):
    server_version = "demo-gate/1"
    gate: Gate

    def log_message(self, fmt: str, *args) -> None:
        pass  # one line per request, written by _log with the version that answered

    def _log(self, version: str, status: int) -> None:
        sys.stderr.write(f"gate: {version} {self.command} {self.path} {status}\n")
        sys.stderr.flush()

    def _error(self, version: str, status: int, message: str) -> None:
        self._log(version, status)
        self._openai_error(status, message, "server_error")

    def _answer(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        try:
            code = self.gate.deployed_code()
        except (BotoCoreError, ClientError) as e:  # named to the client, never a traceback
            self._error("unknown", 502, f"demo gate: could not read the code of function {self.gate.function} from the emulator ({e})")
            return
        version = "good" if code == self.gate.good else "bad"
        if version == "bad" and self._is_mapped_chat(body):
            # What OpenAI-compatible servers answer when the handler fails.
            self._error(version, 500, "The server had an error while processing your request.")
            return
        self._forward(version, body)

    def _is_mapped_chat(self, body: bytes) -> bool:
        """A chat completion for a mapped model: what the bad release breaks. Requests the
        proxy rejects before calling OpenAI (malformed JSON, an unknown model) still pass."""
        if self.command != "POST" or urllib.parse.urlsplit(self.path).path.rstrip("/") != "/v1/chat/completions":
            return False
        try:
            model = json.loads(body).get("model")
        except (ValueError, AttributeError):
            return False
        return model in self.gate.models

    def _forward(self, version: str, body: bytes) -> None:
        upstream = http.client.HTTPConnection(self.gate.host, self.gate.port, timeout=120)
        try:
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
            if body or self.command in ("POST", "PUT", "PATCH"):
                headers["content-length"] = str(len(body))
            upstream.request(self.command, self.path, body=body or None, headers=headers)
            response = upstream.getresponse()
        except OSError as e:
            upstream.close()
            self._error(version, 502, f"demo gate: the local function did not answer ({e})")
            return
        try:
            self.send_response(response.status, response.reason)
            for name, value in response.getheaders():
                if name.lower() not in HOP_BY_HOP:
                    self.send_header(name, value)
            sized = response.getheader("content-length")
            if self.command == "HEAD" or response.status in (204, 304):
                self.send_header("content-length", sized or "0")
                self.end_headers()
            elif sized is not None:
                self.send_header("content-length", sized)
                self.end_headers()
                self.wfile.write(response.read())
            else:
                # Streamed (SSE): passed on chunk by chunk as the function writes it.
                self.send_header("transfer-encoding", "chunked")
                self.end_headers()
                while data := response.read1(65536):
                    self._chunk(data)
                self._end_chunks()
            self.wfile.flush()
            self._log(version, response.status)
        finally:
            upstream.close()

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_HEAD = _answer


def main() -> int:
    parser = argparse.ArgumentParser(description="The demo's stand-in for API Gateway in front of the deployed code.")
    parser.add_argument("--target", required=True, help="the function running locally, e.g. http://127.0.0.1:8080")
    parser.add_argument("--function", required=True, help="the stack's Lambda function name")
    parser.add_argument("--good-code-sha256", required=True, help="CodeSha256 of the good version")
    parser.add_argument("--models", required=True, help="MODEL_MAPPINGS (JSON object): the models whose chat completions the bad version fails")
    local_http.add_listen_arguments(parser)
    args = parser.parse_args()

    try:
        models = json.loads(args.models)
    except ValueError as e:
        parser.error(f"--models is not JSON ({e}): pass MODEL_MAPPINGS, e.g. '{{\"amazon.nova-lite-v1:0\":\"gpt-4o-mini\"}}'")
    if not isinstance(models, dict) or not models:
        parser.error("--models must be a non-empty JSON object of client model id -> OpenAI model id")
    Handler.gate = Gate(args.target, args.function, args.good_code_sha256, set(models))
    return local_http.serve(
        Handler, args, lambda port: f"demo gate on http://{args.host}:{port} in front of {args.target} (function {args.function})"
    )


if __name__ == "__main__":
    sys.exit(main())

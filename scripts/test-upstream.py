#!/usr/bin/env python3
"""A local OpenAI-compatible test upstream, for `make demo` without an OpenAI key.

It is not OpenAI and says so: every answer's text starts with "[local test upstream]"
and its model is "local-test-upstream". It answers, in OpenAI's shapes:

  POST /v1/chat/completions   a chat.completion, or with "stream": true SSE
                              chat.completion.chunk events (one a word, 20 ms apart)
                              and "data: [DONE]"
  GET  /v1/models             the model list (one model)
  anything else               404 in OpenAI's error shape

Python standard library only. Usage:

  scripts/test-upstream.py [--host 127.0.0.1] [--port 0] [--port-file PATH]

With --port 0 (the default) it picks a free port; --port-file receives the port once
the server listens, so a script can wait for it. It stops on SIGINT or SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MODEL = "local-test-upstream"
LABEL = "[local test upstream]"
# Between two events of a streamed answer.
PACE_SECONDS = 0.02


def reply_text(messages: list) -> str:
    last = ""
    for message in reversed(messages if isinstance(messages, list) else []):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            last = content if isinstance(content, str) else json.dumps(content)
            break
    return f"{LABEL} ok. You said: {last[:200]}" if last else f"{LABEL} ok."


def usage(prompt: str, completion: str) -> dict:
    p, c = max(1, len(prompt.split())), max(1, len(completion.split()))
    return {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "local-test-upstream/1"

    def log_message(self, fmt: str, *args) -> None:  # one short line per request on stderr
        sys.stderr.write(f"test-upstream: {self.command} {self.path} {fmt % args}\n")

    def _json(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, message: str, code: str | None = None, param: str | None = None) -> None:
        self._json(status, {"error": {"message": message, "type": "invalid_request_error", "param": param, "code": code}})

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        if self.path.rstrip("/") == "/v1/models":
            self._json(200, {"object": "list", "data": [{"id": MODEL, "object": "model", "created": 0, "owned_by": "local"}]})
        else:
            self._error(404, f"Unknown path {self.path} (this is the local test upstream)", "unknown_url")

    def do_POST(self) -> None:  # noqa: N802
        if self.path.rstrip("/") != "/v1/chat/completions":
            self._error(404, f"Unknown path {self.path} (this is the local test upstream)", "unknown_url")
            return
        length = int(self.headers.get("content-length") or 0)
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except ValueError:
            self._error(400, "The body is not valid JSON.")
            return
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            self._error(400, "'messages' is required and must be a list.", param="messages")
            return
        text = reply_text(body["messages"])
        created = int(time.time())
        ident = f"chatcmpl-local-{created}"
        prompt = json.dumps(body["messages"])
        if body.get("stream"):
            self._stream(ident, created, text, prompt, bool((body.get("stream_options") or {}).get("include_usage")))
            return
        self._json(
            200,
            {
                "id": ident,
                "object": "chat.completion",
                "created": created,
                "model": MODEL,
                "system_fingerprint": "local-test-upstream",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": text, "refusal": None},
                        "logprobs": None,
                        "finish_reason": "stop",
                    }
                ],
                "usage": usage(prompt, text),
            },
        )

    def _stream(self, ident: str, created: int, text: str, prompt: str, include_usage: bool) -> None:
        def chunk(delta: dict, finish: str | None = None) -> dict:
            return {
                "id": ident,
                "object": "chat.completion.chunk",
                "created": created,
                "model": MODEL,
                "system_fingerprint": "local-test-upstream",
                "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
            }

        words = text.split(" ")
        events = [chunk({"role": "assistant", "content": ""})]
        events += [chunk({"content": w if i == 0 else " " + w}) for i, w in enumerate(words)]
        events.append(chunk({}, "stop"))
        if include_usage:
            last = chunk({})
            last["choices"] = []
            last["usage"] = usage(prompt, text)
            events.append(last)
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("cache-control", "no-cache")
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        for i, event in enumerate([f"data: {json.dumps(e)}\n\n" for e in events] + ["data: [DONE]\n\n"]):
            if i:
                # Paced like a model generating tokens: the endpoint tests' streaming check
                # fails an answer whose events all arrive at once (a buffered one).
                time.sleep(PACE_SECONDS)
            data = event.encode()
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


def main() -> int:
    parser = argparse.ArgumentParser(description="Local OpenAI-compatible test upstream (not OpenAI).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--port-file", help="write the port here once listening")
    args = parser.parse_args()

    server = ThreadingHTTPServer((args.host, args.port), Handler)
    server.daemon_threads = True
    port = server.server_address[1]

    def stop(*_):
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if args.port_file:
        with open(args.port_file + ".tmp", "w") as f:
            f.write(f"{port}\n")
        # Renamed into place: a reader never sees a half-written file.
        os.replace(args.port_file + ".tmp", args.port_file)
    print(f"local test upstream (not OpenAI) on http://{args.host}:{port}/v1", file=sys.stderr, flush=True)
    server.serve_forever()
    server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

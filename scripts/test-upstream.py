#!/usr/bin/env python3
"""A local OpenAI-compatible test upstream, for `make demo` without an OpenAI key.

It is not OpenAI and says so: every answer's text starts with "[local test upstream]"
and its model is "local-test-upstream". It answers, in OpenAI's shapes:

  POST /v1/chat/completions   a chat.completion, or with "stream": true SSE
                              chat.completion.chunk events (one a word, 20 ms apart)
                              and "data: [DONE]"
  GET  /v1/models             the model list (one model)
  anything else               404 in OpenAI's error shape

Python standard library only (and local_http.py beside it). Usage:

  scripts/test-upstream.py [--host 127.0.0.1] [--port 0] [--port-file PATH]

With --port 0 (the default) it picks a free port; --port-file receives the port once
the server listens, so a script can wait for it. It stops on SIGINT or SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import local_http

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


class Handler(local_http.Handler):
    server_version = "local-test-upstream/1"

    def log_message(self, fmt: str, *args) -> None:  # one short line per request on stderr
        sys.stderr.write(f"test-upstream: {self.command} {self.path} {fmt % args}\n")

    def _error(self, status: int, message: str, code: str | None = None, param: str | None = None) -> None:
        self._openai_error(status, message, "invalid_request_error", code, param)

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
            self._chunk(event.encode())
        self._end_chunks()


def main() -> int:
    parser = argparse.ArgumentParser(description="Local OpenAI-compatible test upstream (not OpenAI).")
    local_http.add_listen_arguments(parser)
    args = parser.parse_args()
    return local_http.serve(Handler, args, lambda port: f"local test upstream (not OpenAI) on http://{args.host}:{port}/v1")


if __name__ == "__main__":
    sys.exit(main())

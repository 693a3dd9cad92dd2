"""Amazon Bedrock Runtime, which moto does not serve: Converse, ConverseStream and
InvokeModel (Titan text embeddings), on the emulator's own port, as the SDKs reach them
through AWS_ENDPOINT_URL (signing name `bedrock`, paths `/model/{modelId}/...`).

On the wire as AWS answers (botocore's service model, restJson1):
- Converse: JSON; errors are the status, `x-amzn-ErrorType` and `{"message"}`.
- ConverseStream: `application/vnd.amazon.eventstream`: binary frames (prelude with
  total and headers lengths and its CRC32, headers, JSON payload, message CRC32), each
  written and flushed as it is made; an error mid-stream is an `exception` frame.

The model answers deterministically, from the last user message:
- the text `Echo: <text>`, in several deltas, frames paced 20 ms apart; `maxTokens` cuts it (stop `max_tokens`);
- `[[bedrock:tool]]` calls the first tool of `toolConfig` (`[[bedrock:tool2]]` twice),
  with an input made from its schema's string properties (`"Paris"`);
- `[[bedrock:error=<ExceptionName>]]` (or `=<ExceptionName>:<message>`) fails the call
  with that error before any byte;
  `[[bedrock:stream-error=<exceptionName>]]` sends one delta, then that exception frame;
- `[[bedrock:slow=<seconds>]]` waits that long before answering.

`GET /_localaws/bedrock/calls` lists the calls received (operation, model id, body) and
`DELETE` forgets them, so tests can see what the proxy sent.
"""

from __future__ import annotations

import binascii
import hashlib
import json
import math
import re
import socket
import struct
import threading
import time
import urllib.parse
from typing import Any, Callable, Iterable

ROUTE = re.compile(r"^/model/(?P<model>[^/]+)/(?P<operation>converse|converse-stream|invoke)$")
CALLS_PATH = "/_localaws/bedrock/calls"

_calls: list[dict[str, Any]] = []
_lock = threading.Lock()

# What real Bedrock knows: foundation models of these families, alone or behind a
# cross-region inference profile prefix, or as an ARN.
_KNOWN = re.compile(r"^(?:(?:us|eu|apac|us-gov|jp|au|ca|global)\.)?(amazon\.(nova|titan)|anthropic\.|meta\.|mistral\.|cohere\.)")

_STATUS = {
    "ValidationException": 400,
    "AccessDeniedException": 403,
    "MissingAuthenticationTokenException": 403,
    "InvalidSignatureException": 403,
    "ResourceNotFoundException": 404,
    "ModelTimeoutException": 408,
    "ThrottlingException": 429,
    "ModelNotReadyException": 429,
    "ServiceQuotaExceededException": 400,
    "InternalServerException": 500,
    "ModelErrorException": 424,
    "ServiceUnavailableException": 503,
}


class BedrockError(Exception):
    def __init__(self, name: str, message: str):
        super().__init__(message)
        self.name, self.message = name, message


# ----------------------------------------------------------------- event-stream frames


def _header(name: str, value: str) -> bytes:
    n, v = name.encode(), value.encode()
    return struct.pack("!B", len(n)) + n + struct.pack("!BH", 7, len(v)) + v


def frame(headers: dict[str, str], payload: bytes) -> bytes:
    """One event-stream message: prelude (lengths and their CRC32), headers, payload,
    and the CRC32 of all that."""
    head = b"".join(_header(k, v) for k, v in headers.items())
    total = 12 + len(head) + len(payload) + 4
    prelude = struct.pack("!II", total, len(head))
    prelude += struct.pack("!I", binascii.crc32(prelude) & 0xFFFFFFFF)
    message = prelude + head + payload
    return message + struct.pack("!I", binascii.crc32(message) & 0xFFFFFFFF)


def event(kind: str, body: dict[str, Any]) -> bytes:
    # AWS pads every event with a `p` field of varying length against length analysis.
    padded = {**body, "p": "abcdefghijklmnopqrstuvwxyz"[: 1 + len(kind) % 26]}
    return frame({":event-type": kind, ":content-type": "application/json", ":message-type": "event"}, json.dumps(padded).encode())


def exception(name: str, message: str) -> bytes:
    return frame(
        {":exception-type": name, ":content-type": "application/json", ":message-type": "exception"},
        json.dumps({"message": message}).encode(),
    )


# ----------------------------------------------------------------- the model


def _texts(blocks: Iterable[dict[str, Any]]) -> list[str]:
    return [b["text"] for b in blocks if "text" in b]


def _tokens(text: str) -> int:
    return max(1, math.ceil(len(text) / 4))


def _validate(body: dict[str, Any]) -> None:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BedrockError("ValidationException", "The messages field is required and must contain at least one message.")
    if messages[0].get("role") != "user":
        raise BedrockError("ValidationException", "A conversation must start with a user message. Try again with a conversation that starts with a user message.")
    for before, after in zip(messages, messages[1:]):
        if before.get("role") == after.get("role"):
            raise BedrockError("ValidationException", "A conversation must alternate between user and assistant roles. Make sure the conversation alternates between user and assistant roles and try again.")
    uses_tools = any("toolUse" in b or "toolResult" in b for m in messages for b in m.get("content", []))
    if uses_tools and not body.get("toolConfig"):
        raise BedrockError("ValidationException", "The toolConfig field must be defined when using toolUse and toolResult content blocks.")
    for i, m in enumerate(messages):
        if m.get("role") == "assistant" and any("toolResult" in b for b in m.get("content", [])):
            raise BedrockError("ValidationException", "The toolResult content block is only valid in a user message.")
        if not m.get("content"):
            raise BedrockError("ValidationException", f"The content field in the Message object at messages.{i} is empty. Add a ContentBlock object to the content field and try again.")
        for j, block in enumerate(m["content"]):
            # Blank means whitespace too, as Bedrock's users report it.
            if "text" in block and not block["text"].strip():
                raise BedrockError("ValidationException", f"The text field in the ContentBlock object at messages.{i}.content.{j} is blank. Add text to the text field, and try again.")
    max_tokens = body.get("inferenceConfig", {}).get("maxTokens")
    if max_tokens is not None and max_tokens < 1:
        raise BedrockError("ValidationException", "The maximum tokens you requested must be at least 1.")


def _check_model(model: str) -> None:
    if model.startswith("arn:"):
        return
    if not _KNOWN.match(model):
        raise BedrockError("ValidationException", "The provided model identifier is invalid.")


def _tool_input(tool: dict[str, Any]) -> dict[str, Any]:
    schema = tool.get("toolSpec", {}).get("inputSchema", {}).get("json", {})
    properties = schema.get("properties", {}) if isinstance(schema, dict) else {}
    return {name: "Paris" for name, p in properties.items() if isinstance(p, dict) and p.get("type") == "string"}


def _answer(body: dict[str, Any]) -> dict[str, Any]:
    """What the model says: its content blocks, why it stopped, token counts, and the
    directives that shape the call."""
    last = next((m for m in reversed(body["messages"]) if m.get("role") == "user"), {})
    prompt = " ".join(_texts(last.get("content", [])))
    directives = dict(re.findall(r"\[\[bedrock:([a-z0-9-]+)(?:=([^\]]*))?\]\]", prompt))
    if "error" in directives:
        name, _, message = (directives["error"] or "InternalServerException").partition(":")
        raise BedrockError(name, message or f"{name} from the emulator's model, as asked.")
    if "slow" in directives:
        time.sleep(float(directives["slow"] or 1))
    clean = re.sub(r"\s*\[\[bedrock:[^\]]*\]\]\s*", " ", prompt).strip()
    all_text = " ".join(t for m in body["messages"] for t in _texts(m.get("content", [])))
    all_text += " ".join(_texts(body.get("system", [])))
    tools = body.get("toolConfig", {}).get("tools", [])
    blocks: list[dict[str, Any]] = []
    stop = "end_turn"
    if ("tool" in directives or "tool2" in directives) and tools:
        tool = tools[0]
        name = tool.get("toolSpec", {}).get("name", "tool")
        count = 2 if "tool2" in directives else 1
        blocks.append({"text": "Let me check."})
        for n in range(count):
            blocks.append({"toolUse": {"toolUseId": f"tooluse_{n}_{hashlib.sha1(prompt.encode()).hexdigest()[:8]}", "name": name, "input": _tool_input(tool)}})
        stop = "tool_use"
    else:
        text = f"Echo: {clean}"
        max_tokens = body.get("inferenceConfig", {}).get("maxTokens")
        if "max_tokens" in directives or (max_tokens is not None and _tokens(text) > max_tokens):
            text = text[: 4 * (max_tokens or 2)][:12]
            stop = "max_tokens"
        blocks.append({"text": text})
    output = sum(_tokens(b["text"]) if "text" in b else _tokens(json.dumps(b["toolUse"]["input"])) for b in blocks)
    usage = {"inputTokens": _tokens(all_text), "outputTokens": output}
    usage["totalTokens"] = usage["inputTokens"] + usage["outputTokens"]
    return {"blocks": blocks, "stop": stop, "usage": usage, "directives": directives}


def _pieces(text: str, n: int = 3) -> list[str]:
    size = max(1, math.ceil(len(text) / n))
    return [text[i : i + size] for i in range(0, len(text), size)]


# Between two frames of a stream, as a model writes its tokens over time: an answer that
# arrives whole cannot pass for a streamed one downstream.
PACE_SECONDS = 0.02


def _stream(answer: dict[str, Any]) -> Iterable[bytes]:
    for n, data in enumerate(_frames(answer)):
        if n:
            time.sleep(PACE_SECONDS)
        yield data


def _frames(answer: dict[str, Any]) -> Iterable[bytes]:
    yield event("messageStart", {"role": "assistant"})
    for index, block in enumerate(answer["blocks"]):
        if "text" in block:
            for i, piece in enumerate(_pieces(block["text"])):
                yield event("contentBlockDelta", {"contentBlockIndex": index, "delta": {"text": piece}})
                if i == 0 and "stream-error" in answer["directives"]:
                    name = answer["directives"]["stream-error"] or "modelStreamErrorException"
                    yield exception(name, f"{name} from the emulator's model, as asked.")
                    return
        else:
            use = block["toolUse"]
            yield event("contentBlockStart", {"contentBlockIndex": index, "start": {"toolUse": {"toolUseId": use["toolUseId"], "name": use["name"]}}})
            for piece in _pieces(json.dumps(use["input"]), 2):
                yield event("contentBlockDelta", {"contentBlockIndex": index, "delta": {"toolUse": {"input": piece}}})
        yield event("contentBlockStop", {"contentBlockIndex": index})
    yield event("messageStop", {"stopReason": answer["stop"]})
    yield event("metadata", {"usage": answer["usage"], "metrics": {"latencyMs": 5}})


def _malformed(detail: str) -> BedrockError:
    """Bedrock's answer to a body its model's JSON schema refuses."""
    return BedrockError("ValidationException", f"Malformed input request: {detail}, please reformat your input and try again.")


def _embedding(model: str, body: dict[str, Any]) -> dict[str, Any]:
    """Titan text embeddings as AWS documents them: v2 takes `inputText`, `dimensions`
    (256, 512, 1024), `normalize` and `embeddingTypes`; v1 (G1) takes `inputText` alone
    and answers 1536 floats. Any other key is refused, as Bedrock's schema does."""
    if "titan-embed-text" not in model:
        raise BedrockError("ValidationException", "The provided model identifier is invalid.")
    v2 = "titan-embed-text-v2" in model
    allowed = {"inputText", "dimensions", "normalize", "embeddingTypes"} if v2 else {"inputText"}
    for key in body:
        if key not in allowed:
            raise _malformed(f"extraneous key [{key}] is not permitted")
    text = body.get("inputText")
    if not isinstance(text, str) or not text:
        raise _malformed("#/inputText: expected type: String, found: Null")
    dimensions = body.get("dimensions", 1024) if v2 else 1536
    if dimensions not in (256, 512, 1024, 1536) or (v2 and dimensions == 1536):
        raise _malformed(f"#/dimensions: {dimensions} is not a valid enum value")
    seed = hashlib.sha256(text.encode()).digest()
    vector = [((seed[i % 32] + i) % 256) / 255.0 - 0.5 for i in range(dimensions)]
    if body.get("normalize", True):
        norm = math.sqrt(sum(v * v for v in vector)) or 1.0
        vector = [v / norm for v in vector]
    answer: dict[str, Any] = {"embedding": vector, "inputTextTokenCount": _tokens(text)}
    if v2:
        answer["embeddingsByType"] = {"float": vector}
    return answer


def _check_signature(environ: dict[str, Any]) -> None:
    """What AWS checks before Bedrock sees a call: a SigV4 signature scoped to the
    `bedrock` service (a client signing for another service is refused here)."""
    authorization = environ.get("HTTP_AUTHORIZATION", "")
    if not authorization:
        raise BedrockError("MissingAuthenticationTokenException", "Missing Authentication Token")
    scope = re.search(r"Credential=[^/]+/\d{8}/[^/]+/(?P<service>[^/]+)/aws4_request", authorization)
    if not scope or scope["service"] != "bedrock":
        found = scope["service"] if scope else "none"
        raise BedrockError("InvalidSignatureException", f"Credential should be scoped to correct service: 'bedrock'. (found: '{found}')")


def _raw_path(environ: dict[str, Any]) -> str:
    """The path as the client sent it: WSGI's PATH_INFO is decoded, so an ARN's `%2F`
    would split the model id; werkzeug keeps the request line in RAW_URI."""
    raw = environ.get("RAW_URI") or environ.get("REQUEST_URI") or environ.get("PATH_INFO", "")
    return raw.split("?", 1)[0]


# ----------------------------------------------------------------- WSGI


def _json(start_response: Callable, status: int, body: Any, headers: list[tuple[str, str]] | None = None) -> list[bytes]:
    data = json.dumps(body).encode()
    start_response(f"{status} X", [("Content-Type", "application/json"), ("Content-Length", str(len(data)))] + (headers or []))
    return [data]


def _error(start_response: Callable, error: BedrockError) -> list[bytes]:
    status = _STATUS.get(error.name, 400)
    return _json(start_response, status, {"message": error.message}, [("x-amzn-ErrorType", f"{error.name}:http://internal.amazon.com/coral/com.amazon.bedrock/")])


def handle(environ: dict[str, Any], start_response: Callable) -> Iterable[bytes] | None:
    """The answer to a Bedrock Runtime request, or None for anything else."""
    path, method = environ.get("PATH_INFO", ""), environ.get("REQUEST_METHOD", "")
    if path == CALLS_PATH:
        with _lock:
            if method == "DELETE":
                _calls.clear()
            return _json(start_response, 200, list(_calls))
    match = ROUTE.match(_raw_path(environ))
    if not match or method != "POST":
        return None
    model, operation = urllib.parse.unquote(match["model"]), match["operation"]
    try:
        _check_signature(environ)
    except BedrockError as error:
        return _error(start_response, error)
    length = int(environ.get("CONTENT_LENGTH") or 0)
    raw = environ["wsgi.input"].read(length) if length else b""
    try:
        body = json.loads(raw or b"{}")
    except ValueError:
        return _error(start_response, BedrockError("ValidationException", "Malformed input request, please reformat your input and try again."))
    with _lock:
        _calls.append({"operation": operation, "modelId": model, "body": body})
    try:
        _check_model(model)
        if operation == "invoke":
            return _json(start_response, 200, _embedding(model, body))
        _validate(body)
        answer = _answer(body)
    except BedrockError as error:
        return _error(start_response, error)
    if operation == "converse":
        content = answer["blocks"]
        return _json(start_response, 200, {
            "output": {"message": {"role": "assistant", "content": content}},
            "stopReason": answer["stop"], "usage": answer["usage"], "metrics": {"latencyMs": 5},
        })
    sock = environ.get("werkzeug.socket")
    if isinstance(sock, socket.socket):
        # Bedrock's frontends write each frame as it is made; so does this.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    start_response("200 OK", [("Content-Type", "application/vnd.amazon.eventstream"), ("x-amzn-RequestId", "emulated")])
    return _stream(answer)


def apply() -> None:
    """Routes Bedrock Runtime's paths to `handle` ahead of moto's dispatch."""
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication

    dispatch = DomainDispatcherApplication.__call__

    def __call__(self: Any, environ: dict[str, Any], start_response: Callable) -> Any:
        answered = handle(environ, start_response)
        return dispatch(self, environ, start_response) if answered is None else answered

    DomainDispatcherApplication.__call__ = __call__

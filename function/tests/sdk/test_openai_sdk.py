"""The proxy against the official `openai` Python SDK, unmodified: the client only gets
the proxy's base URL and a client key (see conftest.py for the upstream and the binary).
"""

from __future__ import annotations

import json
import time

import openai
import pytest
from conftest import ANSWER, CLIENT_KEY, MODELS, OPENAI_KEY

MODEL = "amazon.nova-lite-v1:0"


@pytest.fixture
def client(proxy) -> openai.OpenAI:
    # No retries: each test sees exactly what the proxy answered.
    return openai.OpenAI(base_url=proxy.base_url, api_key=CLIENT_KEY, max_retries=0, timeout=30)


def hello(**extra) -> dict:
    return {"model": MODEL, "messages": [{"role": "user", "content": "Say hello"}], **extra}


def test_models_list_and_retrieve(client):
    models = client.models.list()
    assert sorted(m.id for m in models) == sorted(MODELS)
    assert all(m.object == "model" for m in models)
    assert client.models.retrieve(MODEL).id == MODEL


def test_chat_completion_answers_with_the_requested_model(client, upstream):
    before = len(upstream.requests)
    response = client.chat.completions.with_raw_response.create(**hello(max_tokens=16))
    completion = response.parse()
    assert completion.model == MODEL
    assert completion.choices[0].message.content == "".join(ANSWER)
    assert completion.usage.total_tokens == 12
    # The SDK exposes the proxy's request id.
    assert completion._request_id and completion._request_id == response.headers["x-request-id"]
    # Upstream saw the mapped model and the proxy's OpenAI key, not the client's key.
    sent = upstream.requests[before:]
    assert len(sent) == 1
    assert sent[0]["body"]["model"] == MODELS[MODEL]
    assert sent[0]["body"]["max_tokens"] == 16
    assert sent[0]["authorization"] == f"Bearer {OPENAI_KEY}"


def test_streaming_chunks_carry_the_requested_model(client, upstream):
    before = len(upstream.requests)
    stream = client.chat.completions.create(**hello(stream=True, stream_options={"include_usage": True}))
    chunks = list(stream)
    assert len(chunks) == len(ANSWER) + 3, chunks  # role, pieces, finish, usage
    assert {c.model for c in chunks} == {MODEL}
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "".join(ANSWER)
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == 12
    assert upstream.requests[before]["body"]["stream_options"] == {"include_usage": True}


def test_async_streaming_with_the_async_client(proxy):
    import asyncio

    async def run() -> list:
        async with openai.AsyncOpenAI(base_url=proxy.base_url, api_key=CLIENT_KEY, max_retries=0) as client:
            stream = await client.chat.completions.create(**hello(stream=True))
            return [chunk async for chunk in stream]

    chunks = asyncio.run(run())
    assert {c.model for c in chunks} == {MODEL}
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "".join(ANSWER)


def test_unknown_model_is_not_found(client, upstream):
    before = len(upstream.requests)
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    assert caught.value.status_code == 404
    assert caught.value.code == "model_not_found"
    assert caught.value.param == "model"
    assert caught.value.request_id
    assert len(upstream.requests) == before, "an unmapped model must not reach the upstream"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("gpt-4o")


def test_a_wrong_client_key_is_an_authentication_error(proxy, client):
    wrong = openai.OpenAI(base_url=proxy.base_url, api_key="not-a-client-key", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as caught:
        wrong.models.list()
    assert caught.value.status_code == 401
    assert caught.value.code == "invalid_api_key"
    with pytest.raises(openai.AuthenticationError):
        wrong.chat.completions.create(**hello())
    # The right key works for the same call.
    assert len(client.models.list().data) == len(MODELS)


def test_upstream_client_errors_keep_their_status_type_and_code(client):
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "trigger-400"}])
    assert caught.value.code == "context_length_exceeded"
    assert caught.value.param == "messages"
    assert caught.value.type == "invalid_request_error"


def test_an_upstream_rate_limit_is_a_rate_limit_error_with_retry_after(client, upstream):
    before = len(upstream.requests)
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "trigger-429"}])
    assert caught.value.response.headers.get("retry-after")
    assert len(upstream.requests) - before == 3, "three attempts upstream before giving up"


def test_the_proxy_logs_no_keys(client, proxy):
    client.chat.completions.create(**hello())
    list(client.chat.completions.create(**hello(stream=True)))

    def streamed_logged() -> bool:
        lines = [json.loads(line) for line in list(proxy.stdout) if line.strip()]
        return any(line.get("stream") is True and line.get("model") == MODEL for line in lines)

    # A line is written when its response body is dropped, just after the client's last read.
    deadline = time.monotonic() + 10
    while not streamed_logged() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert streamed_logged(), proxy.stdout
    logs = "".join(proxy.stdout) + "".join(proxy.stderr)
    assert OPENAI_KEY not in logs and CLIENT_KEY not in logs

"""The proxy against the official `openai` Python SDK, unmodified: the client only gets
the proxy's base URL and a client key (see conftest.py for the upstream and the binary).
"""

from __future__ import annotations

import json
import time

import openai
import pytest
from conftest import ANSWER, CLIENT_KEY, EMBEDDING, MODELS, NAMED_KEY, NAMED_KEY_MODELS, NAMED_KEY_NAME, OPENAI_KEY

MODEL = "amazon.nova-lite-v1:0"
EMBED_MODEL = "amazon.titan-embed-text-v2:0"


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


def test_embeddings_as_floats_and_as_base64(client, upstream):
    before = len(upstream.requests)
    result = client.embeddings.create(model=EMBED_MODEL, input=["one", "two"], encoding_format="float")
    assert result.model == EMBED_MODEL
    assert [e.index for e in result.data] == [0, 1]
    assert result.data[0].embedding == EMBEDDING
    assert result.usage.total_tokens == 4
    # The SDK's default asks for base64 and decodes it itself.
    decoded = client.embeddings.create(model=EMBED_MODEL, input="one")
    assert decoded.data[0].embedding == pytest.approx(EMBEDDING, rel=1e-6)
    sent = upstream.requests[before:]
    assert [r["path"] for r in sent] == ["/v1/embeddings", "/v1/embeddings"]
    assert {r["body"]["model"] for r in sent} == {MODELS[EMBED_MODEL]}
    assert sent[1]["body"]["encoding_format"] == "base64"


def test_responses_answer_with_the_requested_model(client, upstream):
    before = len(upstream.requests)
    response = client.responses.create(model=MODEL, input="Say hello")
    assert response.model == MODEL
    assert response.output_text == "".join(ANSWER)
    assert response.usage.total_tokens == 12
    assert upstream.requests[before]["body"]["model"] == MODELS[MODEL]


def test_streamed_responses_end_on_completed_with_the_requested_model(client):
    stream = client.responses.create(model=MODEL, input="Say hello", stream=True)
    events = list(stream)
    assert [e.type for e in events][0] == "response.created"
    assert events[-1].type == "response.completed"
    assert events[0].response.model == MODEL and events[-1].response.model == MODEL
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == "".join(ANSWER)
    assert events[-1].response.usage.total_tokens == 12


def test_the_stream_helper_of_responses_collects_the_final_response(client):
    with client.responses.stream(model=MODEL, input="Say hello") as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(deltas) == "".join(ANSWER)
    assert final.model == MODEL and final.output_text == "".join(ANSWER)


def test_a_named_key_sees_only_its_models_and_is_logged_by_name(proxy, upstream):
    named = openai.OpenAI(base_url=proxy.base_url, api_key=NAMED_KEY, max_retries=0)
    assert [m.id for m in named.models.list()] == NAMED_KEY_MODELS
    before = len(upstream.requests)
    with pytest.raises(openai.NotFoundError) as caught:
        named.chat.completions.create(model="amazon.nova-pro-v1:0", messages=[{"role": "user", "content": "hi"}])
    assert caught.value.code == "model_not_found"
    assert caught.value.response.headers["x-should-retry"] == "false"
    assert len(upstream.requests) == before, "a model the key may not use must not reach the upstream"
    assert named.chat.completions.create(**hello()).model == MODEL

    def logged() -> list[dict]:
        lines = [json.loads(line) for line in list(proxy.stdout) if line.strip()]
        return [line for line in lines if line.get("client") == NAMED_KEY_NAME]

    deadline = time.monotonic() + 10
    while len(logged()) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [line["status"] for line in logged()][-3:] == [200, 404, 200]
    assert NAMED_KEY not in "".join(proxy.stdout) + "".join(proxy.stderr)

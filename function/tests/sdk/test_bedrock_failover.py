"""Failover to Amazon Bedrock through the official `openai` SDK, unmodified: OpenAI is
unreachable, so the local AWS's Bedrock Runtime answers as the same model id
(conftest.py's `failover_proxy`). Streamed and whole answers, tool calls, usage, and the
errors that are the client's, and OpenAI's outage never turned into one."""

from __future__ import annotations

import json

import openai
import pytest
from conftest import CLIENT_KEY

MODEL = "amazon.nova-lite-v1:0"
BEDROCK_ONLY = "amazon.nova-micro-v1:0"
TOOLS = [{"type": "function", "function": {"name": "weather", "description": "Weather in a city",
                                           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]


@pytest.fixture
def client(failover_proxy) -> openai.OpenAI:
    return openai.OpenAI(base_url=failover_proxy.base_url, api_key=CLIENT_KEY, max_retries=0, timeout=30)


def ask(text: str) -> list[dict]:
    return [{"role": "system", "content": "Be brief."}, {"role": "user", "content": text}]


def test_a_whole_answer_comes_from_bedrock_as_the_requested_model(client):
    raw = client.chat.completions.with_raw_response.create(model=MODEL, messages=ask("Hello, Bedrock"))
    assert raw.headers["x-proxy-provider"] == "bedrock"
    answer = raw.parse()
    assert answer.model == MODEL
    assert answer.choices[0].message.content == "Echo: Hello, Bedrock"
    assert answer.choices[0].finish_reason == "stop"
    assert answer.usage.total_tokens == answer.usage.prompt_tokens + answer.usage.completion_tokens > 0


def test_a_streamed_answer_with_usage_as_the_sdk_reads_it(client):
    stream = client.chat.completions.create(model=MODEL, messages=ask("Stream me"), stream=True, stream_options={"include_usage": True})
    chunks = list(stream)
    assert all(c.model == MODEL for c in chunks)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Echo: Stream me"
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens > 0


def test_tool_calls_whole_and_streamed(client):
    answer = client.chat.completions.create(model=MODEL, messages=ask("Weather? [[bedrock:tool]]"), tools=TOOLS)
    (call,) = answer.choices[0].message.tool_calls
    assert call.function.name == "weather" and json.loads(call.function.arguments) == {"city": "Paris"}
    assert answer.choices[0].finish_reason == "tool_calls"
    # The round trip: the tool's result goes back, Bedrock answers.
    follow_up = client.chat.completions.create(model=MODEL, tools=TOOLS, messages=[
        *ask("Weather? [[bedrock:tool]]"),
        {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
        {"role": "tool", "tool_call_id": call.id, "content": "18C and sunny"},
        {"role": "user", "content": "Thanks"},
    ])
    assert follow_up.choices[0].message.content == "Echo: Thanks"
    with client.chat.completions.stream(model=MODEL, messages=ask("Two cities [[bedrock:tool2]]"), tools=TOOLS) as stream:
        final = stream.get_final_completion()
    calls = final.choices[0].message.tool_calls
    assert [json.loads(c.function.arguments) for c in calls] == [{"city": "Paris"}, {"city": "Paris"}]


@pytest.mark.parametrize("model, size", [("amazon.titan-embed-text-v2:0", 1024), ("amazon.titan-embed-text-v1", 1536)])
def test_embeddings_as_the_sdk_asks_by_default_are_titans_floats(client, model, size):
    # The SDK asks for encoding_format=base64 unless told otherwise, and decodes it.
    raw = client.embeddings.with_raw_response.create(model=model, input=["one", "two"])
    assert raw.headers["x-proxy-provider"] == "bedrock"
    answer = raw.parse()
    assert [e.index for e in answer.data] == [0, 1] and answer.model == model
    assert all(len(e.embedding) == size for e in answer.data)
    floats = client.embeddings.create(model=model, input="one", encoding_format="float")
    assert floats.data[0].embedding == pytest.approx(answer.data[0].embedding, rel=1e-5)
    assert answer.usage.prompt_tokens == answer.usage.total_tokens > 0


def test_bedrock_as_primary_serves_without_trying_openai(client):
    raw = client.chat.completions.with_raw_response.create(model="amazon.nova-pro-v1:0", messages=ask("native"))
    assert raw.headers["x-proxy-provider"] == "bedrock"


def test_what_bedrock_alone_cannot_take_is_the_clients_error(client):
    with pytest.raises(openai.BadRequestError) as raised:
        client.chat.completions.create(model=BEDROCK_ONLY, messages=ask("two"), n=2)
    assert raised.value.body["param"] == "n"
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model=BEDROCK_ONLY, messages=ask("x [[bedrock:error=ValidationException]]"))


def test_what_bedrock_cannot_take_while_openai_is_down_is_openais_outage(client):
    # Not a 400 for a request OpenAI's API accepts: the SDK sees a server error to retry.
    with pytest.raises(openai.InternalServerError) as raised:
        client.chat.completions.create(model=MODEL, messages=ask("two"), n=2)
    # OpenAI unreachable, or its breaker open after the earlier tests' failovers.
    assert raised.value.body["code"] in ("upstream_unreachable", "upstream_unavailable"), raised.value.body


def test_when_both_fail_the_last_providers_error_is_answered(client):
    with pytest.raises(openai.RateLimitError) as raised:
        client.chat.completions.create(model=MODEL, messages=ask("busy [[bedrock:error=ThrottlingException]]"))
    assert raised.value.response.headers.get("retry-after")

"""The emulator's Bedrock Runtime against boto3's client, whose event-stream decoder
(botocore.eventstream: prelude and message CRC32s, header types) is independent of the
emulator's encoder: Converse, ConverseStream, InvokeModel and their errors on the wire
as AWS sends them."""

from __future__ import annotations

import binascii
import json
import os
import struct
import urllib.error
import urllib.request

import boto3
import botocore.config
import botocore.eventstream
import botocore.exceptions
import pytest

from localaws.moto_ext import bedrock_runtime

MODEL = "amazon.nova-lite-v1:0"
TOOLS = {"tools": [{"toolSpec": {"name": "weather", "description": "Weather in a city",
                                 "inputSchema": {"json": {"type": "object", "properties": {"city": {"type": "string"}}}}}}]}


@pytest.fixture(scope="module")
def bedrock():
    # No retries: each error is seen as the emulator sent it, at once.
    return boto3.client("bedrock-runtime", region_name="us-east-1", config=botocore.config.Config(retries={"total_max_attempts": 1}))


def user(text: str) -> list[dict]:
    return [{"role": "user", "content": [{"text": text}]}]


def events(bedrock, **kwargs) -> list[dict]:
    return list(bedrock.converse_stream(modelId=MODEL, **kwargs)["stream"])


def test_converse_echoes_the_last_user_message_with_its_usage(bedrock):
    answer = bedrock.converse(modelId=MODEL, messages=user("Hello there"), system=[{"text": "Be brief."}])
    assert answer["output"]["message"]["content"] == [{"text": "Echo: Hello there"}]
    assert answer["stopReason"] == "end_turn"
    usage = answer["usage"]
    assert usage["totalTokens"] == usage["inputTokens"] + usage["outputTokens"] > 0


def test_converse_calls_the_first_tool_with_an_input_from_its_schema(bedrock):
    answer = bedrock.converse(modelId=f"us.{MODEL}", messages=user("Weather? [[bedrock:tool2]]"), toolConfig=TOOLS)
    assert answer["stopReason"] == "tool_use"
    uses = [b["toolUse"] for b in answer["output"]["message"]["content"] if "toolUse" in b]
    assert [u["name"] for u in uses] == ["weather", "weather"] and uses[0]["input"] == {"city": "Paris"}


def test_converse_stream_sends_the_events_in_order_in_several_deltas(bedrock):
    got = events(bedrock, messages=user("Tell me a story"), inferenceConfig={"maxTokens": 100})
    kinds = [next(iter(e)) for e in got]
    assert kinds[0] == "messageStart" and kinds[-2:] == ["messageStop", "metadata"]
    deltas = [e["contentBlockDelta"]["delta"]["text"] for e in got if "contentBlockDelta" in e]
    assert len(deltas) >= 2 and "".join(deltas) == "Echo: Tell me a story"
    assert got[-2]["messageStop"]["stopReason"] == "end_turn"
    assert got[-1]["metadata"]["usage"]["outputTokens"] > 0


def test_converse_stream_tool_input_arrives_in_pieces_that_join_to_json(bedrock):
    got = events(bedrock, messages=user("[[bedrock:tool]]"), toolConfig=TOOLS)
    start = next(e["contentBlockStart"] for e in got if "contentBlockStart" in e)
    assert start["start"]["toolUse"]["name"] == "weather"
    pieces = [e["contentBlockDelta"]["delta"]["toolUse"]["input"] for e in got
              if "contentBlockDelta" in e and "toolUse" in e["contentBlockDelta"]["delta"]]
    assert len(pieces) == 2 and json.loads("".join(pieces)) == {"city": "Paris"}
    assert got[-2]["messageStop"]["stopReason"] == "tool_use"


def test_max_tokens_cuts_the_answer_and_says_so(bedrock):
    answer = bedrock.converse(modelId=MODEL, messages=user("a long question indeed"), inferenceConfig={"maxTokens": 2})
    assert answer["stopReason"] == "max_tokens"


@pytest.mark.parametrize(("name", "status"), [("ThrottlingException", 429), ("InternalServerException", 500),
                                              ("AccessDeniedException", 403), ("ServiceUnavailableException", 503)])
def test_errors_are_framed_as_aws_frames_them(bedrock, name, status):
    with pytest.raises(botocore.exceptions.ClientError) as raised:
        bedrock.converse(modelId=MODEL, messages=user(f"x [[bedrock:error={name}]]"))
    assert raised.value.response["Error"]["Code"] == name
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == status


def test_an_error_mid_stream_is_an_exception_frame(bedrock):
    stream = bedrock.converse_stream(modelId=MODEL, messages=user("x [[bedrock:stream-error=modelStreamErrorException]]"))["stream"]
    with pytest.raises(botocore.exceptions.EventStreamError) as raised:
        list(stream)
    assert raised.value.response["Error"]["Code"] == "modelStreamErrorException"


def test_conversations_must_start_with_the_user_and_alternate(bedrock):
    for messages in ([{"role": "assistant", "content": [{"text": "Hi"}]}], user("a") + user("b")):
        with pytest.raises(botocore.exceptions.ClientError) as raised:
            bedrock.converse(modelId=MODEL, messages=messages)
        assert raised.value.response["Error"]["Code"] == "ValidationException"
    with pytest.raises(botocore.exceptions.ClientError, match="model identifier is invalid"):
        bedrock.converse(modelId="gpt-4o-mini", messages=user("x"))


def test_blank_text_and_empty_messages_are_refused_naming_where(bedrock):
    for text in ("", "  \n"):
        with pytest.raises(botocore.exceptions.ClientError, match=r"messages\.0\.content\.1 is blank") as raised:
            bedrock.converse(modelId=MODEL, messages=[{"role": "user", "content": [{"text": "hi"}, {"text": text}]}])
        assert raised.value.response["Error"]["Code"] == "ValidationException"
    with pytest.raises(botocore.exceptions.ClientError, match=r"messages\.0 is empty"):
        bedrock.converse(modelId=MODEL, messages=[{"role": "user", "content": []}])


def test_titan_embeddings_through_invoke_model(bedrock):
    answer = bedrock.invoke_model(modelId="amazon.titan-embed-text-v2:0", body=json.dumps({"inputText": "hello", "dimensions": 256}))
    body = json.loads(answer["body"].read())
    assert len(body["embedding"]) == 256 and body["inputTextTokenCount"] == 2
    with pytest.raises(botocore.exceptions.ClientError):
        bedrock.invoke_model(modelId="amazon.titan-embed-text-v2:0", body=json.dumps({"inputText": "x", "dimensions": 300}))


def test_titan_v1_takes_the_text_alone_as_aws_documents_it(bedrock):
    answer = bedrock.invoke_model(modelId="amazon.titan-embed-text-v1", body=json.dumps({"inputText": "hello"}))
    assert len(json.loads(answer["body"].read())["embedding"]) == 1536
    for extra in ({"normalize": True}, {"dimensions": 256}):
        with pytest.raises(botocore.exceptions.ClientError, match=f"extraneous key \\[{next(iter(extra))}\\] is not permitted") as raised:
            bedrock.invoke_model(modelId="amazon.titan-embed-text-v1", body=json.dumps({"inputText": "x", **extra}))
        assert raised.value.response["Error"]["Code"] == "ValidationException"


def test_an_arn_model_id_arrives_whole_though_its_slash_is_percent_encoded(bedrock):
    arn = f"arn:aws:bedrock:us-east-1::foundation-model/{MODEL}"
    answer = bedrock.converse(modelId=arn, messages=user("by arn"))
    assert answer["output"]["message"]["content"][0]["text"].endswith("by arn")
    embedded = bedrock.invoke_model(modelId="arn:aws:bedrock:us-east-1::foundation-model/amazon.titan-embed-text-v2:0",
                                    body=json.dumps({"inputText": "hello"}))
    assert len(json.loads(embedded["body"].read())["embedding"]) == 1024


@pytest.mark.parametrize("authorization, code", [
    (None, "MissingAuthenticationTokenException"),
    ("AWS4-HMAC-SHA256 Credential=AKID/20261205/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=00",
     "InvalidSignatureException"),
])
def test_a_call_not_signed_for_bedrock_is_refused_before_the_model_sees_it(authorization, code):
    endpoint = os.environ["AWS_ENDPOINT_URL"]
    request = urllib.request.Request(f"{endpoint}/model/{MODEL}/converse", method="POST",
                                     data=json.dumps({"messages": user("x")}).encode(),
                                     headers={"Content-Type": "application/json"})
    if authorization:
        request.add_header("Authorization", authorization)
    with pytest.raises(urllib.error.HTTPError) as raised:
        urllib.request.urlopen(request)
    assert raised.value.code == 403
    assert raised.value.headers["x-amzn-ErrorType"].startswith(f"{code}:")


def test_calls_are_recorded_for_tests_to_read():
    endpoint = os.environ["AWS_ENDPOINT_URL"]
    urllib.request.urlopen(urllib.request.Request(f"{endpoint}/_localaws/bedrock/calls", method="DELETE"))
    boto3.client("bedrock-runtime", region_name="us-east-1").converse(modelId=MODEL, messages=user("recorded"))
    calls = json.load(urllib.request.urlopen(f"{endpoint}/_localaws/bedrock/calls"))
    assert [(c["operation"], c["modelId"]) for c in calls] == [("converse", MODEL)]
    assert calls[0]["body"]["messages"] == user("recorded")


def test_frames_carry_both_crcs_as_botocores_decoder_checks_them():
    raw = bedrock_runtime.event("messageStart", {"role": "assistant"})
    buffer = botocore.eventstream.EventStreamBuffer()
    buffer.add_data(raw)
    (message,) = list(buffer)
    assert message.headers[":event-type"] == "messageStart"
    assert json.loads(message.payload)["role"] == "assistant"
    (total, headers_len, prelude_crc) = struct.unpack("!III", raw[:12])
    assert total == len(raw) and prelude_crc == binascii.crc32(raw[:8])
    broken = raw[:-1] + bytes([raw[-1] ^ 1])
    buffer = botocore.eventstream.EventStreamBuffer()
    buffer.add_data(broken)
    with pytest.raises(botocore.eventstream.ChecksumMismatch):
        list(buffer)

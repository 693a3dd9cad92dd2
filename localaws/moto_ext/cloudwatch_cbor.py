"""CloudWatch over the Smithy RPC v2 CBOR protocol, as the AWS SDKs now speak it.

Current SDKs (aws-sdk-cloudwatch 1.140 for Rust, which the deployer uses) no longer send
CloudWatch's query protocol: they POST a CBOR document to
`/service/GraniteServiceVersion20100801/operation/<Operation>` with
`Smithy-Protocol: rpc-v2-cbor`, and read a CBOR answer. moto 5.2 only routes `/` for
CloudWatch, so these requests got HTTP 404. Here the same path is routed to moto's own
CloudWatchResponse, whose handlers then read the decoded CBOR input and serve it from
the CloudWatch backend: an alarm made by PutMetricAlarm over the query protocol, or by a
CloudFormation stack, is the one DescribeAlarms returns over CBOR, and SetAlarmState over
CBOR drives the rollback triggers of `guarded_updates` as the query call does.

The wire format follows the protocol's specification (smithy.io, "Smithy RPC v2 CBOR
protocol"): a success is HTTP 200 with the output structure as a CBOR map (timestamps
are tag 1, epoch seconds; operations without output answer an empty body); an error is
a CBOR map with `__type` (the error's absolute shape id, e.g.
`com.amazonaws.cloudwatch#ResourceNotFound`) and `message`, with the status the model
gives it. CloudWatch is `awsQueryCompatible`, so errors also carry
`x-amzn-query-error: <query code>;Sender|Receiver`, which SDKs prefer to `__type` (the
Rust SDK matches `InvalidFormat`, not `InvalidFormatFault`, from it). Every answer
carries `Smithy-Protocol: rpc-v2-cbor`.

What moto's handlers ignore stays ignored: DescribeAlarms applies one of ActionPrefix,
AlarmNamePrefix, AlarmNames or StateValue (in that order, as over the query protocol),
never pages (no NextToken, MaxRecords unused) and returns composite alarms whatever
AlarmTypes says.
"""

from __future__ import annotations

import io
from datetime import datetime, timezone
from typing import Any

import cbor2
from botocore.utils import parse_to_aware_datetime
from moto.cloudwatch import urls
from moto.cloudwatch.responses import CloudWatchResponse
from moto.core.model import Shape, StructureShape
from moto.core.request import Request
from moto.core.responses import ActionContext, ActionResult
from moto.core.serialize import BaseJSONSerializer, ResponseDict
from moto.core.utils import camelcase_to_underscores, get_service_model, method_names_from_class

PROTOCOL = "rpc-v2-cbor"
CONTENT_TYPE = "application/cbor"
# CloudWatch's service shape is com.amazonaws.cloudwatch#GraniteServiceVersion20100801;
# the protocol also accepts the absolute id with '#' written as '.'.
SERVICE_NAMES = ("GraniteServiceVersion20100801", "com.amazonaws.cloudwatch.GraniteServiceVersion20100801")
NAMESPACE = "com.amazonaws.cloudwatch"
URL_PATH = r"{0}/service/(?P<service>[^/]+)/operation/(?P<operation>[^/]+)$"
# Errors of the protocol itself, not of CloudWatch's model: the shape ids AWS's own
# (Coral) services answer with.
SERIALIZATION_EXCEPTION = "com.amazon.coral.service#SerializationException"
UNKNOWN_OPERATION = "com.amazon.coral.service#UnknownOperationException"


def apply() -> None:
    """Routes the CBOR path of CloudWatch to `CborCloudWatchResponse`. moto server builds
    a service's URL map from `urls.url_paths` when the service's first request arrives,
    so this must run before serving (`moto_ext.install()` does)."""
    urls.url_paths[URL_PATH] = CborCloudWatchResponse.dispatch


class ProtocolError(Exception):
    """A request this protocol cannot serve; answered as a CBOR error, never as a 500."""

    def __init__(self, shape_id: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.shape_id = shape_id
        self.message = message
        self.status = status


class CborCloudWatchResponse(CloudWatchResponse):
    """moto's CloudWatch handlers, fed from and answering in CBOR."""

    use_raw_body = True

    def __init__(self) -> None:
        super().__init__()
        self._operation = ""

    def _dispatch(self, request: Request, full_url: str | None = None, headers: Any = None) -> Any:
        try:
            self._operation = _operation_of(request)
            self.setup_class(request, full_url, headers)
        except ProtocolError as error:
            return _error_response(error.status, error.shape_id, error.message)
        return self.call_action()

    def _get_action(self) -> str:
        return self._operation

    def parse_parameters(self, request: Request) -> None:
        self.params = _decode_input(request.get_data())

    def call_action(self) -> Any:
        # Only CloudWatch's own operations reach moto's dispatch, which would otherwise
        # call any method of this class the path names.
        if self._operation not in get_service_model("cloudwatch").operation_names:
            return _error_response(
                400,
                UNKNOWN_OPERATION,
                f"CloudWatch has no operation {self._operation!r} in the emulator's service model "
                "(botocore's); check the operation name in the request path"
            )
        if camelcase_to_underscores(self._operation) not in method_names_from_class(CloudWatchResponse):
            return _error_response(
                400,
                UNKNOWN_OPERATION,
                f"CloudWatch {self._operation} is not implemented by the local emulator (moto 5.2); "
                "call an operation it serves (DescribeAlarms, SetAlarmState, PutMetricAlarm, ...) or test this one with an SDK mock"
            )
        return super().call_action()

    def serialized(self, action_result: ActionResult) -> Any:
        service_model = get_service_model("cloudwatch")
        operation_model = service_model.operation_model(self._operation)  # call_action checked it
        context = ActionContext(service_model, operation_model, CborSerializer, self)
        status, headers, body = action_result.execute_result(context)
        headers.update(self.response_headers)
        return status, headers, body


def _operation_of(request: Request) -> str:
    """Claims the request as the protocol's identification rules say, or names what is
    wrong with it."""
    segments = request.path.rstrip("/").split("/")
    service, operation = segments[-3], segments[-1]
    if service not in SERVICE_NAMES:
        raise ProtocolError(
            UNKNOWN_OPERATION,
            f"unknown service {service!r} in the request path: CloudWatch's is {SERVICE_NAMES[0]}",
            status=404,
        )
    if request.method != "POST":
        raise ProtocolError(UNKNOWN_OPERATION, f"rpc-v2-cbor requests are POST, not {request.method}", status=405)
    if request.headers.get("Smithy-Protocol") != PROTOCOL:
        raise ProtocolError(
            SERIALIZATION_EXCEPTION, f"the Smithy-Protocol header must be {PROTOCOL!r} on this path"
        )
    if request.headers.get("X-Amz-Target") or request.headers.get("X-Amzn-Target"):
        raise ProtocolError(SERIALIZATION_EXCEPTION, "rpc-v2-cbor requests must not carry an X-Amz-Target header")
    return operation


def _decode_input(body: bytes) -> dict[str, Any]:
    """The operation's input structure. An empty body is an empty input; CBOR's
    `undefined` reads as null, and null members are absent, as the protocol says."""
    if not body:
        return {}
    stream = io.BytesIO(body)
    try:
        value = cbor2.CBORDecoder(stream).decode()
    except (cbor2.CBORDecodeError, ValueError, TypeError) as error:
        raise ProtocolError(SERIALIZATION_EXCEPTION, f"the request body is not valid CBOR: {error}") from None
    if stream.tell() != len(body):
        raise ProtocolError(SERIALIZATION_EXCEPTION, "the request body has data after its CBOR input map")
    if not isinstance(value, dict):
        raise ProtocolError(
            SERIALIZATION_EXCEPTION, f"the request body must be a CBOR map (the input structure), not {type(value).__name__}"
        )
    return _without_nulls(value)


def _without_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None and v is not cbor2.undefined}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value


def _error_response(status: int, shape_id: str, message: str) -> tuple[int, dict[str, str], bytes]:
    """An error of the protocol itself (no CloudWatch error shape, so no query code)."""
    headers = {"Smithy-Protocol": PROTOCOL, "Content-Type": CONTENT_TYPE}
    return status, headers, cbor2.dumps({"__type": shape_id, "message": message})


class CborSerializer(BaseJSONSerializer):
    """moto's model-driven JSON serializer, with CBOR's types: timestamps stay datetimes
    (tag 1), blobs stay bytes, booleans are booleans even where moto stored text."""

    CONTENT_TYPE = CONTENT_TYPE

    def _serialized_result_to_response(
        self, resp: ResponseDict, result: Any, shape: StructureShape | None, serialized_result: Any
    ) -> ResponseDict:
        resp["headers"]["Smithy-Protocol"] = PROTOCOL
        if shape is None:  # a Unit output: no body and no Content-Type
            resp["body"] = b""
            return resp
        resp["body"] = self._serialize_body(serialized_result)
        resp["headers"]["Content-Type"] = CONTENT_TYPE
        return resp

    def _serialized_error_to_response(self, resp: ResponseDict, error: Exception, shape: Any, serialized_error: Any) -> ResponseDict:
        resp = super()._serialized_error_to_response(resp, error, shape, serialized_error)
        resp["headers"].pop("X-Amzn-Errortype", None)  # the protocol says SHOULD NOT
        resp["headers"]["Smithy-Protocol"] = PROTOCOL
        # CloudWatch is awsQueryCompatible; moto's model lacks the flag that makes the
        # parent add this header.
        fault = "Sender" if shape.is_sender_fault else "Receiver"
        resp["headers"]["x-amzn-query-error"] = f"{shape.error_code};{fault}"
        return resp

    def _get_protocol_specific_error_code(self, error: Any) -> str:
        return f"{error.namespace or NAMESPACE}#{error.name}"

    def _serialize_error_metadata(self, serialized: Any, error: Exception, shape: Any) -> None:
        super()._serialize_error_metadata(serialized, error, shape)
        # The protocol names the member `message`; the parent wrote `Message`.
        message = serialized.pop("Message", None)
        if message:
            serialized["message"] = message

    def _serialize_body(self, body: Any) -> bytes:  # type: ignore[override]
        return cbor2.dumps(body, datetime_as_timestamp=True, timezone=timezone.utc)

    def _serialize_type_timestamp(self, serialized: Any, value: Any, shape: Shape, key: str) -> None:
        moment = value if isinstance(value, datetime) else parse_to_aware_datetime(value)
        if moment.tzinfo is None:  # moto keeps naive UTC times
            moment = moment.replace(tzinfo=timezone.utc)
        # Millisecond resolution, as the protocol specifies.
        moment = moment.replace(microsecond=moment.microsecond // 1000 * 1000)
        self._default_serialize(serialized, moment, shape, key)

    def _serialize_type_blob(self, serialized: Any, value: Any, shape: Shape, key: str) -> None:
        self._default_serialize(serialized, value.encode() if isinstance(value, str) else bytes(value), shape, key)

    def _serialize_type_boolean(self, serialized: Any, value: Any, shape: Shape, key: str) -> None:
        if isinstance(value, str):
            value = value.strip().lower() == "true"
        self._default_serialize(serialized, bool(value), shape, key)

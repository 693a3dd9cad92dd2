"""CloudFormation property values -> the shapes moto's backend calls take.

One home for these conversions, shared by the models moto lacks (`models`) and the
patches to the ones it has (`patches`).
"""

from __future__ import annotations

from typing import Any


def camel(value: Any) -> Any:
    """CloudFormation's PascalCase keys -> the API's camelCase payload keys."""
    if isinstance(value, dict):
        return {k[:1].lower() + k[1:]: camel(v) for k, v in value.items()}
    if isinstance(value, list):
        return [camel(v) for v in value]
    return value


def id_of(value: Any) -> str:
    # moto's own Deployment model has no physical id, so `Ref` may hand us the object.
    return getattr(value, "id", value)


def as_bool(value: Any) -> bool:
    return value if isinstance(value, bool) else str(value).lower() == "true"


def tags(value: Any) -> dict[str, str]:
    """`Tags` as a list of {Key, Value} or a map -> a map."""
    if isinstance(value, dict):
        return {str(k): str(v) for k, v in value.items()}
    return {t["Key"]: t["Value"] for t in value or []}


def tag_list(value: Any) -> list[dict[str, str]]:
    """`Tags` as a list of {Key, Value} or a map -> a list of {Key, Value}."""
    return [{"Key": k, "Value": v} for k, v in tags(value).items()]

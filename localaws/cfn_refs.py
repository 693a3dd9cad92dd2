"""What a CloudFormation template value refers to.

Shared by the moto extension (which resources a change set must update) and the
template's static tests (what a resource depends on, what an output exposes). Standard
library only: importing it does not load moto.
"""

from __future__ import annotations

import re
from typing import Any


def names_in(value: Any) -> set[str]:
    """Every name `value` refers to: Ref, Fn::GetAtt, Fn::Sub variables, and the
    conditions of Fn::If and Condition."""
    found: set[str] = set()
    if isinstance(value, dict):
        for key, inner in value.items():
            if key in ("Ref", "Condition", "Fn::Condition") and isinstance(inner, str):
                found.add(inner)
            elif key == "Fn::GetAtt":
                found.add(inner[0] if isinstance(inner, list) else str(inner).split(".")[0])
            elif key == "Fn::If":
                found.add(inner[0])
                found |= names_in(inner[1:])
            elif key == "Fn::Sub":
                text = inner if isinstance(inner, str) else inner[0]
                found |= {n.split(".")[0] for n in re.findall(r"\$\{([^!}][^}]*)\}", text)}
                if not isinstance(inner, str):
                    found |= names_in(inner[1])
            else:
                found |= names_in(inner)
    elif isinstance(value, list):
        for inner in value:
            found |= names_in(inner)
    return found

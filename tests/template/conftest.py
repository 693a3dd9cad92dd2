"""Fixtures of the template tests (the template itself: cfn_template.py)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from cfn_template import TEMPLATE_PATH, load_template


@pytest.fixture(scope="session")
def template_text() -> str:
    return TEMPLATE_PATH.read_text()


@pytest.fixture(scope="session")
def _template(template_text: str) -> dict[str, Any]:
    return load_template(template_text)


@pytest.fixture
def template(_template: dict[str, Any]) -> dict[str, Any]:
    """A fresh copy per test, so a test may mutate it."""
    return copy.deepcopy(_template)

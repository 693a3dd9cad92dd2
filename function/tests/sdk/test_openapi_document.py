"""docs/openapi.yaml is a valid OpenAPI 3.1 document (the Rust test `openapi` checks it
against the router)."""

from pathlib import Path

import yaml
from openapi_spec_validator import validate
from openapi_spec_validator.versions import consts, get_spec_version

DOCUMENT = Path(__file__).resolve().parents[3] / "docs" / "openapi.yaml"


def test_the_document_is_valid_openapi_3_1():
    spec = yaml.safe_load(DOCUMENT.read_text())
    assert get_spec_version(spec) == consts.OPENAPIV31
    validate(spec)

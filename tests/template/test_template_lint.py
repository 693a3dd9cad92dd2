"""Every suppression in template.yaml earns its place: each checkov skip and each cfn-lint
ignore in a resource's Metadata silences a finding that would otherwise be reported, on
that resource. (`make lint` runs both linters on the template as it is.)"""

from __future__ import annotations

import copy
import json
import pathlib
import subprocess
import sys
from typing import Any

import pytest

from cfn_template import load_template

BIN = pathlib.Path(sys.executable).parent


def suppressions(template: dict[str, Any], tool: str) -> set[tuple[str, str]]:
    found = set()
    for name, resource in template["Resources"].items():
        metadata = resource.get("Metadata", {})
        if tool == "checkov":
            found |= {(name, skip["id"]) for skip in metadata.get("checkov", {}).get("skip", [])}
        else:
            found |= {(name, rule) for rule in metadata.get("cfn-lint", {}).get("config", {}).get("ignore_checks", [])}
    return found


def without_suppressions(template: dict[str, Any]) -> dict[str, Any]:
    """The template (long form, as CloudFormation reads it) minus its suppressions."""
    bare = copy.deepcopy(template)
    for resource in bare["Resources"].values():
        metadata = resource.get("Metadata", {})
        metadata.pop("checkov", None)
        metadata.pop("cfn-lint", None)
        if "Metadata" in resource and not metadata:
            del resource["Metadata"]
    return bare


@pytest.fixture(scope="module")
def bare_template(tmp_path_factory, template_text) -> pathlib.Path:
    """Written as JSON, which both linters read like the YAML original."""
    path = tmp_path_factory.mktemp("bare") / "template.json"
    path.write_text(json.dumps(without_suppressions(load_template(template_text)), indent=1))
    return path


def test_every_checkov_skip_silences_a_real_finding(template, bare_template):
    skipped = suppressions(template, "checkov")
    assert skipped, "the template has checkov skips to check"
    run = subprocess.run(
        [str(BIN / "checkov"), "--quiet", "--skip-download", "--framework", "cloudformation", "-o", "json", "-f", str(bare_template)],
        capture_output=True,
        text=True,
        check=False,
    )
    report = json.loads(run.stdout)
    failed = {(c["resource"].split(".", 1)[1], c["check_id"]) for c in report["results"]["failed_checks"]}
    assert failed == skipped


def test_every_cfn_lint_ignore_silences_a_real_finding(template, bare_template):
    ignored = suppressions(template, "cfn-lint")
    assert ignored, "the template has cfn-lint ignores to check"
    run = subprocess.run(
        [str(BIN / "cfn-lint"), "-a", "cfn_lint_serverless.rules", "--format", "json", "--", str(bare_template)],
        capture_output=True,
        text=True,
        check=False,
    )
    findings = {(m["Location"]["Path"][1], m["Rule"]["Id"]) for m in json.loads(run.stdout) if m["Location"]["Path"][:1] == ["Resources"]}
    assert findings == ignored


def test_the_json_copy_lints_like_the_original(tmp_path, template):
    """Without removing anything, the JSON copy is as clean as template.yaml."""
    path = tmp_path / "template.json"
    path.write_text(json.dumps(template, indent=1))
    run = subprocess.run(
        [str(BIN / "cfn-lint"), "-a", "cfn_lint_serverless.rules", "--format", "json", "--", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert json.loads(run.stdout) == []

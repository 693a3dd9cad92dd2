"""docs/openapi.yaml as an enforced contract: schemathesis generates requests from the
document (valid and invalid bodies, headers and path parameters, for every operation,
embeddings and responses included) and sends them to the proxy binary in front of the
local fake upstream, with a client key. Every check must pass: no server error, and
every status, content type, header and body as the document says.

Bounded to about a minute (FUZZ_MAX_EXAMPLES per operation and phase, fixed seed, so a
failure is reproducible); raise FUZZ_MAX_EXAMPLES for a longer hunt.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from conftest import CLIENT_KEY, ROOT

DOCUMENT = ROOT / "docs" / "openapi.yaml"


def test_the_proxy_answers_every_generated_request_as_documented(proxy, tmp_path):
    schemathesis = Path(sys.executable).parent / "schemathesis"
    base = proxy.base_url.removesuffix("/v1")
    report = tmp_path / "junit.xml"
    command = [
        str(schemathesis), "run", str(DOCUMENT),
        "--url", base,
        "--header", f"Authorization: Bearer {CLIENT_KEY}",
        "--checks", "all",
        "--max-examples", os.environ.get("FUZZ_MAX_EXAMPLES", "60"),
        "--seed", "14",
        "--request-timeout", "20",
        "--no-color",
        "--report", "junit", "--report-junit-path", str(report),
    ]
    run = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    output = run.stdout + run.stderr
    assert run.returncode == 0, output[-20000:]
    assert CLIENT_KEY not in "".join(proxy.stdout) + "".join(proxy.stderr)

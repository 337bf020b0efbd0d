"""The browser client's own tests (tests/js/*.test.mjs) under Node's test runner."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.services import unavailable

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]

pytestmark = pytest.mark.timeout(120)


def node() -> str:
    """Node 20+ (its test runner and mock timers); a skip with the reason when it is
    absent, a failure under ``REQUIRE_SERVICES=1`` (CI)."""
    found = shutil.which("node")
    if found is None:
        unavailable("node is not installed: the browser client's tests need Node 20+")
    return found


def test_the_browser_client_passes_its_node_tests():
    files = sorted(str(path.relative_to(ROOT)) for path in HERE.glob("*.test.mjs"))
    assert files, "no tests/js/*.test.mjs"
    result = subprocess.run(
        [node(), "--test", "--test-reporter=spec", *files],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=100,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "fail 0" in result.stdout, result.stdout

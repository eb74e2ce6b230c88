"""Running DCMTK command-line tools as real DICOM peers."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest


def require(tool: str) -> str:
    """The tool's path; skip (or fail, with PACS_TEST_REQUIRE_DCMTK=1) when it is missing."""
    path = shutil.which(tool)
    if path is None:
        reason = f"DCMTK '{tool}' not installed (apt-get install dcmtk)"
        if os.environ.get("PACS_TEST_REQUIRE_DCMTK") == "1":
            pytest.fail(reason + " and PACS_TEST_REQUIRE_DCMTK=1")
        pytest.skip(reason)
    return path


def run(tool: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run a DCMTK tool with TCP_NODELAY (as the benchmark peers do) and capture output."""
    env = dict(os.environ, TCP_NODELAY="1")
    return subprocess.run([require(tool), *args], capture_output=True, text=True,
                          timeout=timeout, env=env, check=False)

"""Running the real ``pacs`` command line as a separate process."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path


def pacs_command() -> list[str]:
    """The installed ``pacs`` entry point of this environment, else ``python -m pacs.cli``."""
    script = shutil.which("pacs", path=str(Path(sys.prefix) / "bin"))
    if script is not None:
        return [script]
    return [sys.executable, "-m", "pacs.cli"]


def clean_env(**settings: str) -> dict[str, str]:
    """The current environment without any product setting (``PACS_*``), plus ``settings``.

    The test-control variables (``PACS_TEST_*``) are kept; they are not product settings.
    """
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("PACS_") or k.startswith("PACS_TEST_")}
    env.update(settings)
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def run_pacs(*args: str | Path, cwd: Path, env: dict[str, str],
             timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run ``pacs ARGS`` to completion and capture its output."""
    return subprocess.run([*pacs_command(), *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout, check=False)


def describe(result: subprocess.CompletedProcess[str]) -> str:
    """A failure message showing what the command did."""
    args = result.args[len(pacs_command()):]
    return (f"pacs {' '.join(map(str, args))} exited {result.returncode}\n"
            f"--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}")

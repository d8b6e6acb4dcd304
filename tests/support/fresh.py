"""Python code run in a fresh interpreter, for what a process does once (configure tracing, set
its niceness, import its entry point) and a test process has long done its own way."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_python(
    code: str, *, drop: Callable[[str], bool] = lambda name: False, check: bool = False, **env: str
) -> subprocess.CompletedProcess[str]:
    """``python -c code`` at the repository's root, with this process's environment less the
    variables ``drop`` picks, plus ``env``; its output captured as text, within a minute.
    ``check``: a non-zero exit raises ``subprocess.CalledProcessError``."""
    environ = {name: value for name, value in os.environ.items() if not drop(name)}
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=check,
    )

"""Child processes of a test platform (or a bench's), taken down the way a supervisor would."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Iterable


async def stop_processes(procs: Iterable[subprocess.Popen], grace: float = 20) -> None:
    """SIGTERM to each process still running, all at once (they shut down side by side), then
    up to ``grace`` seconds each to exit before SIGKILL."""
    procs = list(procs)
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    for proc in procs:
        try:
            await asyncio.to_thread(proc.wait, grace)
        except subprocess.TimeoutExpired:
            proc.kill()

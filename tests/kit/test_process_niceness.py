"""A service's process entry point sets its scheduler niceness: 10 for the consumers off the
booking path (analytics, notifications), 0 for the others, ``PROCESS_NICENESS`` overriding it.
Each case imports the entry point in a fresh interpreter (the niceness is the process's)."""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.support.fresh import run_python


def niceness_of(service: str, **env: str) -> int:
    code = (
        f"import os\nfrom apps.{service}.main import service\n"
        "print(os.getpriority(os.PRIO_PROCESS, 0))"
    )
    out = run_python(code, drop=lambda name: name == "PROCESS_NICENESS", check=True, **env)
    return int(out.stdout.split()[-1])


@pytest.mark.parametrize(
    ("service", "expected"),
    [
        ("analytics", 10),
        ("notifications", 10),
        ("booking", 0),
        ("payments", 0),
        ("events", 0),
    ],
)
def test_default_niceness_by_service(service: str, expected: int) -> None:
    assert niceness_of(service) == max(expected, os.getpriority(os.PRIO_PROCESS, 0))


def test_process_niceness_overrides_the_default() -> None:
    assert niceness_of("analytics", PROCESS_NICENESS="0") == os.getpriority(os.PRIO_PROCESS, 0)
    assert niceness_of("booking", PROCESS_NICENESS="4") == max(
        4, os.getpriority(os.PRIO_PROCESS, 0)
    )


def test_out_of_range_niceness_is_refused() -> None:
    with pytest.raises(subprocess.CalledProcessError):
        niceness_of("analytics", PROCESS_NICENESS="25")

"""Processes found by a mark in their environment: whatever a test started, however deep down, whoever
their parent has become (an orphan's is init). Linux: read from /proc."""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

MARK = "MES_TEST_PROCESSES"
LINUX = sys.platform.startswith("linux")


class Running(NamedTuple):
    pid: int
    command: str


def marked(value: str) -> list[Running]:
    """The live processes whose environment has MARK=value (a zombie has ended; its parent has only not
    collected it yet)."""
    wanted = f"{MARK}={value}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if wanted not in (entry / "environ").read_bytes().split(b"\0"):
                continue
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:  # ended while we looked, or not ours to read
            continue
        if stat[stat.rindex(")") + 2] not in "ZX":
            found.append(Running(int(entry.name), command))
    return found


def wait_until(condition: Callable[[], object], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"not within {timeout_s:.0f} s: {what}"
        time.sleep(0.2)


def kill(processes: list[Running]) -> None:
    for process in processes:
        try:
            os.kill(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

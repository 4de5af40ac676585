"""The job supervisor (kernel/jobs.py): rounds, failures, stopping, and child processes that never
outlive their parent."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from kernel.jobs import Jobs
from tests.support.processes import LINUX, MARK, kill, marked, wait_until

ROOT = Path(__file__).resolve().parents[2]


class FileRounds:
    """Writes "<pid> round" per round and "<pid> closed" at the end; its first round fails."""

    def __init__(self, path: Path):
        self.path = path
        self.rounds = 0

    def round(self) -> None:
        self.rounds += 1
        self._write("round")
        if self.rounds == 1:
            raise RuntimeError("the first round fails")

    def close(self) -> None:
        self._write("closed")

    def _write(self, what: str) -> None:
        with open(self.path, "a") as file:
            file.write(f"{os.getpid()} {what}\n")


def written(path: Path) -> list[tuple[int, str]]:
    if not path.exists():
        return []
    return [(int(pid), what) for pid, what in (line.split() for line in path.read_text().splitlines())]


def test_a_failed_round_is_tried_again_next_round_and_stop_closes_the_job(tmp_path):
    path = tmp_path / "rounds"
    jobs = Jobs()
    jobs.every("counting", 0.05, FileRounds(path))
    jobs.start()
    try:
        wait_until(lambda: len(written(path)) >= 3, 60, "rounds after the failed first one")
    finally:
        jobs.stop()
    assert written(path)[-1] == (os.getpid(), "closed"), "in this process, closed after its last round"
    assert {what for _, what in written(path)[:-1]} == {"round"}


@pytest.mark.skipif(not LINUX, reason="finds the processes in /proc")
def test_a_job_in_a_process_of_its_own_ignores_ctrl_c_and_sigterm_is_started_again_when_it_dies_and_stops_when_asked(tmp_path):
    path = tmp_path / "rounds"
    jobs = Jobs()
    jobs.every_in_process("counting", 0.05, FileRounds, path)
    jobs.start()
    try:
        wait_until(lambda: len(written(path)) >= 2, 120, "the child's rounds")
        (child, _), *_ = written(path)
        assert child != os.getpid()
        os.kill(child, signal.SIGINT)  # what a Ctrl-C in a terminal sends the whole process group
        os.kill(child, signal.SIGTERM)  # what a service manager may send every process of the service
        seen = len(written(path))
        wait_until(lambda: len(written(path)) > seen + 2, 60, "rounds after the signals")
        assert {pid for pid, _ in written(path)} == {child}, "the signals left the child running: the parent stops it"

        os.kill(child, signal.SIGKILL)
        wait_until(lambda: {pid for pid, _ in written(path)} - {child}, 120, "the job started again in a new process")
    finally:
        jobs.stop()
    last, what = written(path)[-1]
    assert what == "closed" and last != child, "the new child finished its round and closed its job"
    wait_until(lambda: not os.path.exists(f"/proc/{last}") or _zombie(last), 60, "the stopped child ended")


def _zombie(pid: int) -> bool:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat[stat.rindex(")") + 2] == "Z"


PARENT = """
import sys, time
from pathlib import Path
from kernel.jobs import Jobs
from tests.kernel.test_jobs import FileRounds
jobs = Jobs()
jobs.every_in_process("counting", 0.05, FileRounds, Path(sys.argv[1]))
jobs.start()
time.sleep(600)
"""


@pytest.mark.skipif(not LINUX, reason="finds the processes in /proc")
def test_a_child_process_ends_with_its_parent_killed_by_kill_9(tmp_path):
    path, mark = tmp_path / "rounds", uuid.uuid4().hex
    parent = subprocess.Popen([sys.executable, "-c", PARENT, str(path)], cwd=ROOT, env={**os.environ, MARK: mark})
    try:
        wait_until(lambda: written(path), 120, "the child's first round")
        assert {process.pid for process in marked(mark)} > {parent.pid}, "the parent and its child (and multiprocessing's tracker)"
        parent.kill()
        parent.wait()
        wait_until(lambda: not marked(mark), 60, f"the parent's children ended: {marked(mark)}")
    finally:
        parent.kill()
        parent.wait()
        kill(marked(mark))
    assert "closed" not in {what for _, what in written(path)}, "killed with its parent, not stopped"

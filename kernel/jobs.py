"""One supervisor for the work a process does beside its main loop: jobs that run in rounds, each in a
thread or a child process of its own, started and stopped together.

A round that fails, whatever the failure, is logged and the job tries again at its next round: the work
it was doing stays where it was (queued, or stale for one more round). stop() returns after the round
in hand of every job; the job's `close()` runs after its last round.

A job in a child process (CPU work that would hold the parent's GIL) never outlives its parent:
  * on Linux the kernel kills it when its parent dies (PR_SET_PDEATHSIG, kill -9 included);
  * anywhere, a thread of the child waits on a pipe from the parent: a word on it ends the child after
    the round in hand (stop()); the pipe closing without one means the parent died, and the child ends
    at once.
A child killed with its parent leaves its round undone, as a crash would: its work is done again by
the next start. The child ignores SIGINT and SIGTERM, from its first instruction on: a Ctrl-C in a
terminal reaches the whole foreground process group, a service manager may signal every process of
the service, and the parent stops its children itself, after the round in hand. A child that ends by
itself is started again at the job's next round.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from multiprocessing import resource_tracker
from multiprocessing.connection import Connection
from typing import Protocol

# Told after each round of a job in a thread: its name, how long it took, whether it failed (kernel.metrics.JobMetrics).
OnRound = Callable[[str, float, bool], None]

from kernel.logs import configure_logging, get_logger, logging_configuration

log = get_logger("mes.background")

_SPAWN = multiprocessing.get_context("spawn")  # a child gets no copy of the parent's threads and connections
_STOP = b"stop"
_PR_SET_PDEATHSIG = 1  # linux/prctl.h
_PARENTS_SIGNALS = {signal.SIGINT, signal.SIGTERM}  # the parent's to act on, not the child's


class Job(Protocol):
    """A job's work: `round()` every so often, then `close()` once, both in the job's own thread."""

    def round(self) -> None: ...

    def close(self) -> None: ...


class Jobs:
    """The jobs of one process. Register them, then start() and stop() them together."""

    def __init__(self, on_round: OnRound | None = None) -> None:
        """`on_round`: told after each round of a job in a thread (a child process's rounds are its own)."""
        self._jobs: list[_InThread | _InProcess] = []
        self._on_round = on_round

    def every(self, name: str, every_s: float, job: Job) -> None:
        """Run `job` in a thread named `name`: a round at start, then one every `every_s` seconds."""
        self._jobs.append(_InThread(name, every_s, job, self._on_round))

    def every_in_process(self, name: str, every_s: float, make: Callable[..., Job], *args: object) -> None:
        """As `every`, in a child process that builds its job with `make(*args)` (both picklable)."""
        self._jobs.append(_InProcess(name, every_s, make, args))

    def start(self) -> None:
        for job in self._jobs:
            job.start()

    def stop(self, timeout_s: float = 60) -> None:
        """Ask every job to stop, then wait for each after its round in hand. A child process still
        running after `timeout_s` is killed."""
        for job in self._jobs:
            job.ask_to_stop()
        for job in self._jobs:
            job.join(timeout_s)


def _rounds(name: str, every_s: float, job: Job, stopping: threading.Event, on_round: OnRound | None = None) -> None:
    try:
        while not stopping.is_set():
            started, failed = time.monotonic(), False
            try:
                job.round()
            except Exception:
                failed = True
                log.exception("background round failed; tried again next round", job=name)
            if on_round is not None:
                on_round(name, time.monotonic() - started, failed)
            stopping.wait(every_s)
    finally:
        try:
            job.close()
        except Exception:
            log.exception("background job failed to close", job=name)


class _InThread:
    def __init__(self, name: str, every_s: float, job: Job, on_round: OnRound | None):
        self.name, self.every_s, self.job, self.on_round = name, every_s, job, on_round
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._stopping.clear()
        self._thread = threading.Thread(target=_rounds, args=(self.name, self.every_s, self.job, self._stopping, self.on_round),
                                        name=self.name, daemon=True)
        self._thread.start()

    def ask_to_stop(self) -> None:
        self._stopping.set()

    def join(self, timeout_s: float) -> None:
        if self._thread is not None:
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                log.warning("background job did not stop in time; left to end with the process", job=self.name)
            self._thread = None


class _InProcess:
    def __init__(self, name: str, every_s: float, make: Callable[..., Job], args: tuple):
        self.name, self.every_s, self.make, self.args = name, every_s, make, args
        self._stopping = threading.Event()
        self._lock = threading.Lock()  # between the supervising thread starting a child and stop() telling it
        self._process: multiprocessing.process.BaseProcess | None = None
        self._to_child: Connection | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._stopping.clear()
        self._thread = threading.Thread(target=self._supervise, name=self.name, daemon=True)
        self._thread.start()

    def _supervise(self) -> None:
        # Children are started from this thread, which lives exactly as long as the job: Linux sends a
        # child its death signal when the *thread* that started it ends, not only its process.
        while True:
            with self._lock:
                if self._stopping.is_set():
                    return
                try:
                    process = self._spawn()
                except Exception:
                    log.exception("background process failed to start; tried again next round", job=self.name)
                    process = None
            if process is None:
                if self._stopping.wait(self.every_s):
                    return
                continue
            process.join()
            with self._lock:
                if self._to_child is not None:
                    self._to_child.close()
                    self._to_child = None
            if self._stopping.is_set():
                return
            log.warning("background process ended by itself; started again next round", job=self.name,
                        exit_code=process.exitcode)
            if self._stopping.wait(self.every_s):
                return

    def _spawn(self) -> multiprocessing.process.BaseProcess:
        from_parent, to_child = _SPAWN.Pipe(duplex=False)
        process = _SPAWN.Process(target=_child, name=self.name, daemon=True,
                                 args=(self.name, self.every_s, self.make, self.args, os.getpid(), from_parent,
                                       logging_configuration()))
        # Blocked while it starts, as multiprocessing starts its resource tracker: a Ctrl-C must not reach
        # the child while it imports, before it has set the signals aside (it inherits this thread's mask).
        # The tracker first: starting it unblocks them on its way out.
        resource_tracker.ensure_running()
        signal.pthread_sigmask(signal.SIG_BLOCK, _PARENTS_SIGNALS)
        try:
            process.start()
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, _PARENTS_SIGNALS)
        from_parent.close()  # the child's copy is the only one: when the parent dies, the pipe closes
        self._process, self._to_child = process, to_child
        return process

    def ask_to_stop(self) -> None:
        with self._lock:
            self._stopping.set()
            if self._to_child is not None:
                try:
                    self._to_child.send_bytes(_STOP)
                except OSError:
                    pass  # the child has ended already
                self._to_child.close()
                self._to_child = None

    def join(self, timeout_s: float) -> None:
        if self._thread is None:
            return
        self._thread.join(timeout_s)
        process = self._process
        if process is not None and process.is_alive():
            log.warning("background process did not stop in time; killed", job=self.name, timeout_s=timeout_s)
            process.kill()
            process.join()
        self._thread.join()
        self._thread = self._process = None


def _child(name: str, every_s: float, make: Callable[..., Job], args: tuple, parent_pid: int, from_parent: Connection,
           logs: tuple[str, str]) -> None:
    for sig in _PARENTS_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _PARENTS_SIGNALS)  # one that came while it started is dropped now
    _end_with_parent(parent_pid)
    configure_logging(*logs)
    stopping = threading.Event()
    threading.Thread(target=_watch_parent, args=(from_parent, stopping), name="parent-watch", daemon=True).start()
    try:
        job = make(*args)
    except Exception:
        log.exception("background job failed to start; started again next round", job=name)
        sys.exit(1)
    _rounds(name, every_s, job, stopping)


def _end_with_parent(parent_pid: int) -> None:
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent_pid:  # the parent died before the death signal was asked for
        os._exit(1)


def _watch_parent(from_parent: Connection, stopping: threading.Event) -> None:
    try:
        from_parent.recv_bytes()
    except (EOFError, OSError):
        os._exit(1)  # the parent is gone without a word: nobody is left to stop this process
    stopping.set()

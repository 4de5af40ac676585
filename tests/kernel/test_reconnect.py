"""The one reconnect policy: which errors are retried, on which schedule, and what the log says."""

import asyncio
import socket

import psycopg
import pytest
from structlog.testing import capture_logs

from kernel.logs import redact_secrets
from kernel.reconnect import Backoff, retry_async, retry_sync

# Waits of 10, 20, 30, 30 ms: short enough for a test, and the log says which it chose.
QUICK = Backoff(first_s=0.01, factor=2, max_s=0.03, jitter_s=0)


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def retry_lines(logs: list[dict]) -> list[dict]:
    return [line for line in logs if line["event"] == "retrying"]


def test_a_sync_commit_is_retried_while_the_database_is_unavailable_then_returns_its_result():
    unreachable = f"postgresql://mes:s3cret@127.0.0.1:{closed_port()}/mes"
    calls: list[str] = []
    reconnects: list[int] = []

    def commit_batch() -> str:
        calls.append("commit")
        if len(calls) <= 4:
            psycopg.connect(unreachable, connect_timeout=2).close()  # refused: OperationalError
        return "committed"

    with capture_logs() as logs:
        result = retry_sync(commit_batch, what=f"commit a batch to {unreachable}", on=psycopg.OperationalError,
                            before_retry=lambda: reconnects.append(len(calls)), backoff=QUICK)

    assert result == "committed" and len(calls) == 5
    assert reconnects == [1, 2, 3, 4]  # after each failed attempt's wait, before the next attempt
    lines = retry_lines(logs)
    assert [line["retry_in_s"] for line in lines] == [0.01, 0.02, 0.03, 0.03]
    assert [line["attempt"] for line in lines] == [1, 2, 3, 4]
    assert all(line["log_level"] == "warning" and line["error"].startswith("OperationalError: ") for line in lines)
    assert lines[0]["what"].startswith("commit a batch to postgresql://mes:***@127.0.0.1:")
    assert "s3cret" not in repr(logs)


def test_an_error_of_another_type_propagates_at_once():
    calls: list[int] = []

    def refused() -> None:
        calls.append(1)
        raise psycopg.errors.UniqueViolation("duplicate key")

    with capture_logs() as logs, pytest.raises(psycopg.errors.UniqueViolation):
        retry_sync(refused, what="commit a batch", on=psycopg.OperationalError, backoff=QUICK)
    assert calls == [1] and retry_lines(logs) == []


def test_an_async_connect_follows_the_same_schedule_and_a_cancel_ends_it():
    async def scenario() -> None:
        attempts: list[int] = []

        async def connect() -> str:
            attempts.append(1)
            if len(attempts) <= 3:
                await asyncio.open_connection("127.0.0.1", closed_port())  # refused: ConnectionRefusedError
            return "connected"

        with capture_logs() as logs:
            assert await retry_async(connect, what="connect to opc.tcp://op:pw@plc:4840/", on=OSError, backoff=QUICK) == "connected"
        lines = retry_lines(logs)
        assert [line["retry_in_s"] for line in lines] == [0.01, 0.02, 0.03]
        assert {line["what"] for line in lines} == {"connect to opc.tcp://op:***@plc:4840/"}

        tried = asyncio.Event()

        async def never_connects() -> None:
            tried.set()
            raise ConnectionError("no answer")

        forever = asyncio.create_task(retry_async(never_connects, what="connect", on=ConnectionError))
        await tried.wait()
        forever.cancel()
        with pytest.raises(asyncio.CancelledError):
            await forever

    asyncio.run(scenario())


def test_jitter_adds_at_most_its_share_and_the_cap_holds():
    calls: list[int] = []

    def flaky() -> None:
        calls.append(1)
        if len(calls) <= 5:
            raise ConnectionError("refused")

    with capture_logs() as logs:
        retry_sync(flaky, what="connect", on=ConnectionError, backoff=Backoff(first_s=0.01, factor=2, max_s=0.05, jitter_s=0.01))
    waits = [line["retry_in_s"] for line in retry_lines(logs)]
    for wait, (low, high) in zip(waits, [(0.01, 0.02), (0.02, 0.03), (0.04, 0.05), (0.05, 0.05), (0.05, 0.05)], strict=True):
        assert low <= wait <= high


def test_log_lines_never_carry_a_password():
    assert redact_secrets("opc.tcp://op:p@ss@plc:4840/ and mqtt://edge:pw@broker:1883") == \
        "opc.tcp://op:***@plc:4840/ and mqtt://edge:***@broker:1883"
    assert redact_secrets("host=db password=secret dbname=mes") == "host=db password=*** dbname=mes"
    assert redact_secrets("modbus 10.0.0.5:502") == "modbus 10.0.0.5:502"

"""Stopping the `mes` processes as a person or a service manager does: Ctrl-C, SIGTERM, kill -9. Each ends
without a traceback and leaves no process of its own behind."""

from __future__ import annotations

import json
import os
import queue
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import uuid

import pytest
import yaml

from app.plantrun import MesProcess
from edge.queue import QUEUE_FILE
from kernel.embedded.broker import free_port, port_accepts
from kernel.plant import DEMO_PLANT
from tests.e2e.conftest import TEST_PLANT, plant_on_free_ports, write_plant
from tests.support.processes import LINUX, MARK, kill, marked, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not LINUX, reason="finds the processes in /proc")]


def marked_core(plant, database_url, mqtt_url, tmp_path) -> tuple[MesProcess, str]:
    """A `mes core` whose processes, its children included, carry a mark of their own."""
    core = MesProcess.core(database_url, mqtt_url, write_plant(plant, tmp_path), tmp_path / "core.log")
    core.env[MARK] = uuid.uuid4().hex
    return core, core.env[MARK]


def children_of(mark: str, parent: subprocess.Popen) -> list:
    return [process for process in marked(mark) if process.pid != parent.pid]


def test_a_core_killed_with_kill_9_leaves_no_process_of_it_running(plant, database_url, mqtt_url, tmp_path):
    core, mark = marked_core(plant, database_url, mqtt_url, tmp_path)
    core.start()
    try:
        wait_until(lambda: any("multiprocessing.spawn" in child.command for child in children_of(mark, core.process)), 180,
                   "the core's rollup process started")
        core.kill()
        wait_until(lambda: not marked(mark), 60, f"every process of the killed core ended: {marked(mark)}")
    finally:
        core.stop()
        kill(marked(mark))


def test_sigterm_stops_the_core_with_its_jobs_and_child_cleanly_and_exit_code_0(plant, database_url, mqtt_url, tmp_path):
    core, mark = marked_core(plant, database_url, mqtt_url, tmp_path)
    core.start()
    try:
        wait_until(lambda: '"core running"' in core.log_file.read_text()
                   and any("multiprocessing.spawn" in child.command for child in children_of(mark, core.process)), 180,
                   "the core running, with its rollup process")
        core.process.send_signal(signal.SIGTERM)
        assert core.process.wait(timeout=120) == 0
        log = core.log_file.read_text()
        assert '"core stopped"' in log and "Traceback" not in log, log
        wait_until(lambda: not marked(mark), 60, f"every process of the stopped core ended: {marked(mark)}")
    finally:
        core.stop()
        kill(marked(mark))


def test_sigterm_stops_the_edge_and_the_api_cleanly_with_exit_code_0(database_url, mqtt_url, tmp_path):
    plant_file = write_plant(plant_on_free_ports(DEMO_PLANT), tmp_path, source=DEMO_PLANT)
    port = free_port()
    env = {**os.environ, "MES_DATABASE_URL": database_url, "MES_MQTT_URL": mqtt_url, "MES_PLANT": str(plant_file),
           "MES_LOG_FORMAT": "json"}
    logs = {name: tmp_path / f"{name}.log" for name in ("edge", "api")}
    with open(logs["edge"], "wb") as edge_log, open(logs["api"], "wb") as api_log:
        edge = subprocess.Popen([sys.executable, "-m", "app", "edge", "--state-dir", str(tmp_path / "edge")], env=env,
                                stdout=edge_log, stderr=subprocess.STDOUT)
        api = subprocess.Popen([sys.executable, "-m", "app", "api", "--port", str(port)], env=env,
                               stdout=api_log, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: '"edge.starting"' in logs["edge"].read_text(), 120, "the edge agent running")
        wait_until(lambda: port_accepts("127.0.0.1", port), 120, "the API serving")
        for process in (edge, api):
            process.send_signal(signal.SIGTERM)
        for name, process in (("edge", edge), ("api", api)):
            log = logs[name].read_text() if process.wait(timeout=60) == 0 else ""
            assert process.returncode == 0 and "Traceback" not in log, (name, process.returncode, logs[name].read_text())
    finally:
        for process in (edge, api):
            if process.poll() is None:
                process.kill()
                process.wait()


def test_ctrl_c_ends_the_demo_with_the_reckoning_of_what_ran_exit_code_130_and_no_traceback(database_url, mqtt_url, tmp_path):
    plant_file = write_plant(plant_on_free_ports(DEMO_PLANT), tmp_path, source=DEMO_PLANT)
    env = {**os.environ, "MES_DATABASE_URL": database_url, "MES_MQTT_URL": mqtt_url, "MES_PLANT": str(plant_file),
           "MES_DATA_DIR": str(tmp_path / "var"), MARK: uuid.uuid4().hex}
    errors = tmp_path / "stderr.txt"
    with open(errors, "w") as stderr:
        # a session of its own: Ctrl-C in a terminal signals the whole foreground process group, children too
        demo = subprocess.Popen([sys.executable, "-m", "app", "demo", "--duration", "60", "--no-live", "--board-port", "0"],
                                env=env, stdout=subprocess.PIPE, stderr=stderr, text=True, start_new_session=True)
    lines: queue.Queue[str | None] = queue.Queue()

    def read() -> None:
        for line in demo.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=read, daemon=True).start()
    printed: list[str] = []
    try:
        while not any(line.startswith("Producing") for line in printed):
            line = lines.get(timeout=180)
            assert line is not None, "the demo ended before producing:\n" + "".join(printed) + errors.read_text()
            printed.append(line)
        os.killpg(demo.pid, signal.SIGINT)
        demo.wait(timeout=180)
        while (line := lines.get(timeout=60)) is not None:
            printed.append(line)
        wait_until(lambda: not marked(env[MARK]), 60, f"every process of the demo ended: {marked(env[MARK])}")
    finally:
        if demo.poll() is None:
            os.killpg(demo.pid, signal.SIGKILL)
            demo.wait()
        kill(marked(env[MARK]))
    stdout, stderr = "".join(printed), errors.read_text()
    assert demo.returncode == 130, stdout + stderr
    assert "Recorded vs ground truth" in stdout and "Work orders" in stdout, stdout
    assert "Ended early by SIGINT" in stdout, stdout
    assert "Traceback" not in stdout + stderr, stdout + stderr


class SilentServer:
    """A PLC host that is there and says nothing: it accepts every TCP connection and never answers, as a
    PLC whose runtime hangs (or a firewall that lets the handshake through) does."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.accepted: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:  # closed
                return
            self.accepted.append(connection)

    def close(self) -> None:
        self.listener.close()
        for connection in self.accepted:
            connection.close()


def queued_rows(state_dir) -> int:
    if not (state_dir / QUEUE_FILE).exists():
        return 0
    with sqlite3.connect(state_dir / QUEUE_FILE, timeout=10) as queue_db:
        try:
            return queue_db.execute("SELECT count(*) FROM outbox").fetchone()[0]
        except sqlite3.OperationalError:  # the edge has not created its table yet
            return 0


def stop_edge_and_check_nothing_was_lost(edge: MesProcess, state_dir) -> str:
    """SIGTERM: the edge exits 0 within a bound far above the second or two it needs, whatever its PLCs do,
    and every message it enqueued is still in its disk queue (no core confirms them here)."""
    before_stop = len(edge.log_file.read_text())
    edge.process.send_signal(signal.SIGTERM)
    try:
        exit_code = edge.process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        pytest.fail("the edge did not stop within 15 s of SIGTERM:\n" + edge.log_file.read_text()[-3000:])
    log = edge.log_file.read_text()
    # (before the stop, asyncua logs a traceback of its own when a server goes away)
    assert exit_code == 0 and "Traceback" not in log[before_stop:] and '"edge.stopped"' in log, log[-3000:]
    stats = [json.loads(line) for line in log.splitlines() if '"edge.stats"' in line][-1]
    kept = queued_rows(state_dir)
    assert stats["dropped_total"] == 0 and kept == stats["enqueued_total"] == stats["queue_depth"], (kept, stats)
    return log


@pytest.mark.parametrize("how", ["stopped", "frozen"])
def test_sigterm_stops_an_edge_promptly_after_its_plcs_went_away_keeping_what_it_enqueued(how, mqtt_url, tmp_path):
    """`frozen` (SIGSTOP): the servers' sockets stay open and answer nothing, so the OPC UA goodbye
    (close the session) would wait for asyncua's request timeouts; it is cut short instead."""
    plant = plant_on_free_ports()
    plant_file = write_plant(plant, tmp_path)
    simulators = MesProcess(["simulate"], {"MES_PLANT": str(plant_file)}, tmp_path / "simulate.log")
    edge = MesProcess.edge(mqtt_url, plant_file, tmp_path / "edge", tmp_path / "edge.log")
    simulators.start()
    try:
        opcua_port = int(plant.endpoints.opcua.rsplit(":", 1)[1].split("/")[0])
        wait_until(lambda: port_accepts("127.0.0.1", opcua_port) and port_accepts("127.0.0.1", plant.endpoints.modbus_port),
                   120, "the simulators serving")
        edge.start()
        wait_until(lambda: edge.log_file.read_text().count('"source.connected"') >= 2, 120,
                   "the edge connected to the OPC UA and the Modbus server")
        wait_until(lambda: queued_rows(tmp_path / "edge") > 0, 60, "the edge enqueued what it read")
        if how == "stopped":
            simulators.stop()
            wait_until(lambda: edge.log_file.read_text().count('"source.connection_lost"') >= 2, 60,
                       "the edge noticed both servers gone")
        else:
            simulators.process.send_signal(signal.SIGSTOP)
        log = stop_edge_and_check_nothing_was_lost(edge, tmp_path / "edge")
        if how == "frozen":
            assert '"source.disconnect_cut_short"' in log, log[-3000:]
    finally:
        edge.stop()
        if simulators.process.poll() is None:
            simulators.process.send_signal(signal.SIGCONT)
        simulators.stop()


def test_sigterm_stops_an_edge_promptly_while_its_plcs_accept_and_never_answer(mqtt_url, tmp_path):
    opcua, modbus = SilentServer(), SilentServer()
    document = yaml.safe_load(TEST_PLANT.read_text())
    document["endpoints"] = {"opcua": f"opc.tcp://127.0.0.1:{opcua.port}/open-mes/", "modbus_port": modbus.port}
    plant_file = tmp_path / "plant.yaml"
    plant_file.write_text(yaml.safe_dump(document))
    edge = MesProcess.edge(mqtt_url, plant_file, tmp_path / "edge", tmp_path / "edge.log")
    edge.start()
    try:
        # Both connects under way: the servers hold the edge's sockets, which wait for an answer.
        wait_until(lambda: opcua.accepted and modbus.accepted, 120, "the edge connecting to both silent servers")
        stop_edge_and_check_nothing_was_lost(edge, tmp_path / "edge")
    finally:
        edge.stop()
        opcua.close()
        modbus.close()

"""An MQTT broker the project starts by itself: Mosquitto when installed, else amqtt in-process.

Mosquitto (a subprocess) is the real thing: it keeps persistent sessions and their queued QoS 1
messages on disk across a graceful stop/start (and up to the last autosave across a SIGKILL).
amqtt is the pip-only fallback: it runs in a thread of this process, so sessions and queued
messages live in memory and are gone after `stop()`; its own SQLite session plugin is not used
because it re-delivers every message ever queued on each restart and cannot store binary payloads.

Nobody connects anonymously. Given a plant, the broker knows the core's and each edge's identity;
Mosquitto lets each do only what kernel/mqtt_access.py grants it (password file + ACL file). amqtt
checks the passwords but not the grants (its topic ACL plugin breaks the delivery of queued messages,
see `_AmqttThread`): any identity may publish anywhere, and only the core's own check
(core/rules/assignment.py) stands between an edge and another edge's machines. Without a plant (tests
of the broker itself), one user may do everything. Passwords the plant file names no source for are
generated for this run. With `tls`, the one listener is TLS only and requires a client certificate
signed by its CA (Mosquitto only).
"""

from __future__ import annotations

import asyncio
import logging
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from kernel.embedded.extra import embedded_extra
from kernel.mqtt import MqttTarget
from kernel.mqtt_access import ALL_ACCESS, BrokerUser, mosquitto_acl, mosquitto_password_line, plant_users
from kernel.plant import Plant

BrokerKind = Literal["mosquitto", "amqtt"]
HOST = "127.0.0.1"
START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 10.0
ALL_ACCESS_USERNAME = "mes"
AMQTT_SERVICE = "the embedded MQTT broker without Mosquitto (amqtt)"

log = logging.getLogger(__name__)


def find_mosquitto() -> str | None:
    """The mosquitto binary; Debian puts it in /usr/sbin, which is not on a normal user's PATH."""
    found = shutil.which("mosquitto")
    if found:
        return found
    return "/usr/sbin/mosquitto" if os.access("/usr/sbin/mosquitto", os.X_OK) else None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def port_accepts(host: str, port: int, timeout: float = 0.2) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


@dataclass(frozen=True)
class BrokerTls:
    """The listener's certificate and key, and the CA its clients' certificates must be signed by."""

    ca_file: Path
    cert_file: Path
    key_file: Path


class EmbeddedBroker:
    """`start()` → URL of the default user; `stop()` graceful; `start()` again serves on the same port.

    The default user is the core given a plant, else the one all-access user; `url_for(username)` names
    another (an edge: its username, by default its edge id)."""

    def __init__(
        self,
        data_dir: Path,
        port: int | None = None,
        prefer: Literal["auto", "mosquitto", "amqtt"] = "auto",
        *,
        plant: Plant | None = None,
        tls: BrokerTls | None = None,
    ) -> None:
        self.data_dir = Path(data_dir).expanduser().resolve()
        self.port = port
        mosquitto = find_mosquitto()
        if prefer == "mosquitto" and mosquitto is None:
            raise RuntimeError("mosquitto is not installed (looked on PATH and in /usr/sbin)")
        self._mosquitto_binary = mosquitto if prefer in ("auto", "mosquitto") else None
        self.kind: BrokerKind = "mosquitto" if self._mosquitto_binary else "amqtt"
        if tls is not None and self.kind != "mosquitto":
            raise RuntimeError("a TLS listener needs Mosquitto; the amqtt fallback serves plain MQTT only")
        self.tls = tls
        self._process: subprocess.Popen[bytes] | None = None
        self._amqtt: _AmqttThread | None = None
        self.users: tuple[BrokerUser, ...] = (
            plant_users(plant) if plant is not None
            else (BrokerUser(ALL_ACCESS_USERNAME, secrets.token_urlsafe(16), ALL_ACCESS),))

    def target_for(self, username: str) -> MqttTarget:
        if self.port is None:
            raise RuntimeError("broker has not been started")
        for user in self.users:
            if user.username == username:
                return MqttTarget(HOST, self.port, user.username, user.password, tls=self.tls is not None,
                                  ca_file=str(self.tls.ca_file) if self.tls else None)
        raise KeyError(f"the broker has no user {username!r}")

    def url_for(self, username: str) -> str:
        return self.target_for(username).url

    @property
    def target(self) -> MqttTarget:
        return self.target_for(self.users[0].username)

    @property
    def url(self) -> str:
        return self.target.url

    @property
    def running(self) -> bool:
        if self.kind == "mosquitto":
            return self._process is not None and self._process.poll() is None
        return self._amqtt is not None

    def start(self) -> str:
        if self.running:
            return self.url
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.port is None:
            self.port = free_port()
        if self.kind == "mosquitto":
            self._start_mosquitto()
        else:
            amqtt = _AmqttThread(self.data_dir, self.port, self.users)
            amqtt.start()
            self._amqtt = amqtt  # only once started: a failed start leaves nothing to stop
        return self.url

    def stop(self) -> None:
        """Graceful: Mosquitto writes its persistence file on SIGTERM before exiting."""
        if self._process is not None:
            self._end_mosquitto(signal.SIGTERM)
        if self._amqtt is not None:
            self._amqtt.stop()
            self._amqtt = None

    def kill(self) -> None:
        """Abrupt: SIGKILL for Mosquitto (only the last autosave survives); amqtt has no harder stop."""
        if self._process is not None:
            self._end_mosquitto(signal.SIGKILL)
        if self._amqtt is not None:
            self._amqtt.stop()
            self._amqtt = None

    def __enter__(self) -> EmbeddedBroker:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def log_file(self) -> Path:
        return self.data_dir / "mosquitto.log"

    def _start_mosquitto(self) -> None:
        password_file, acl_file = self.data_dir / "mosquitto.passwd", self.data_dir / "mosquitto.acl"
        _write_private(password_file, "".join(f"{mosquitto_password_line(u.username, u.password)}\n" for u in self.users))
        _write_private(acl_file, mosquitto_acl({user.username: user.grants for user in self.users}))
        config_file = self.data_dir / "mosquitto.conf"
        config_file.write_text(self._mosquitto_config(password_file, acl_file))
        with open(self.data_dir / "mosquitto.stderr", "ab") as stderr:
            self._process = subprocess.Popen(
                [self._mosquitto_binary, "-c", str(config_file)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                cwd=self.data_dir,
                # Own process group: Ctrl-C in a terminal reaches our process, which stops the
                # broker gracefully, rather than killing the broker before we can.
                start_new_session=True,
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while not port_accepts(HOST, self.port):
            if self._process.poll() is not None or time.monotonic() > deadline:
                self._end_mosquitto(signal.SIGKILL)
                raise RuntimeError(f"mosquitto did not start on {HOST}:{self.port}:\n{self._log_tail()}")
            time.sleep(0.05)

    def _mosquitto_config(self, password_file: Path, acl_file: Path) -> str:
        tls = [] if self.tls is None else [
            f"cafile {self.tls.ca_file}", f"certfile {self.tls.cert_file}", f"keyfile {self.tls.key_file}",
            "require_certificate true", "tls_version tlsv1.2",
        ]
        # Every line answers a Mosquitto 2.0 default that would lose or throttle messages, or let in anyone.
        return "\n".join(
            [
                # 2.0 without a listener binds localhost:1883 only and refuses anonymous clients.
                f"listener {self.port} {HOST}",
                *tls,
                "allow_anonymous false",
                f"password_file {password_file}",
                f"acl_file {acl_file}",
                # As root, 2.0 drops privileges to user `mosquitto`, which cannot write our data dir.
                f"user {pwd.getpwuid(os.geteuid()).pw_name}",
                "persistence true",
                f"persistence_location {self.data_dir}/",  # the trailing slash is required
                "autosave_interval 2",  # seconds; bounds what a SIGKILL loses
                # Default 1000: further QoS 1 messages for a slow or offline subscriber are silently
                # dropped. 0 = no maximum (documented for 2.0 in mosquitto.conf(5)).
                "max_queued_messages 0",
                "max_queued_bytes 0",
                # Default 20 in flight per client: the core acknowledges only after its DB commit,
                # so a small window caps ingest at 20 messages per commit round trip.
                "max_inflight_messages 0",
                f"log_dest file {self.log_file}",
                "log_type error",
                "log_type warning",
                "log_type notice",
                "log_type information",
                "connection_messages true",
                "log_timestamp_format %Y-%m-%dT%H:%M:%S",
                "",
            ]
        )

    def _end_mosquitto(self, sig: signal.Signals) -> None:
        assert self._process is not None
        if self._process.poll() is None:
            self._process.send_signal(sig)
            try:
                self._process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                log.warning("mosquitto ignored %s for %ss; killing it", sig.name, STOP_TIMEOUT_S)
                self._process.kill()
                self._process.wait()
        self._process = None

    def _log_tail(self, lines: int = 20) -> str:
        texts = [path.read_text(errors="replace") for path in (self.log_file, self.data_dir / "mosquitto.stderr") if path.exists()]
        return "\n".join("\n".join(text.splitlines()[-lines:]) for text in texts)


def _write_private(path: Path, text: str) -> None:
    """Only this OS user reads it: password hashes, and who may do what."""
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_text(text)


class _AmqttThread:
    """amqtt 0.12 on its own asyncio loop in a daemon thread.

    Authentication by password file on purpose, beside security: with anonymous access every session
    is marked anonymous, and amqtt then drops QoS 1 messages for disconnected persistent subscribers.
    """

    def __init__(self, data_dir: Path, port: int, users: tuple[BrokerUser, ...]) -> None:
        self.data_dir = data_dir
        self.port = port
        self.users = users
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=f"amqtt-{port}", daemon=True)
        self._broker = None

    def start(self) -> None:
        password_file = self._write_password_file()
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(self._start_broker(password_file), self._loop)
        try:
            future.result(timeout=START_TIMEOUT_S)
        except BaseException:
            self._stop_loop()
            raise

    def stop(self) -> None:
        if self._broker is not None:
            future = asyncio.run_coroutine_threadsafe(self._broker.shutdown(), self._loop)
            future.result(timeout=STOP_TIMEOUT_S)
            self._broker = None
        self._stop_loop()

    async def _start_broker(self, password_file: Path) -> None:
        with embedded_extra(AMQTT_SERVICE, "MES_MQTT_URL"):
            from amqtt.broker import Broker

        # Passwords only, no topic ACL: with amqtt 0.12's TopicAccessControlListPlugin loaded, a persistent
        # subscriber reconnecting while the broker still routes what it queued for it stops getting messages
        # (PUBACK timeouts, then amqtt drops them): tests/kernel/test_embedded.py loses 1,500 of 1,501.
        config = {
            "listeners": {"default": {"type": "tcp", "bind": f"{HOST}:{self.port}"}},
            "plugins": {"amqtt.plugins.authentication.FileAuthPlugin": {"password_file": str(password_file)}},
        }
        broker = Broker(config, loop=self._loop)
        await broker.start()
        self._broker = broker

    def _write_password_file(self) -> Path:
        with embedded_extra(AMQTT_SERVICE, "MES_MQTT_URL"):
            from pwdlib import PasswordHash
            from pwdlib.hashers.argon2 import Argon2Hasher

        password_file = self.data_dir / "amqtt.passwd"
        hasher = PasswordHash((Argon2Hasher(),))
        _write_private(password_file, "".join(f"{user.username}:{hasher.hash(user.password)}\n" for user in self.users))
        return password_file

    def _stop_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=STOP_TIMEOUT_S)
        self._loop.close()

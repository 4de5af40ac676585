"""Shared fixtures: a PostgreSQL server and an MQTT broker, external when named by env, else embedded.

MES_TEST_DATABASE_URL  a superuser (or CREATEDB) URL, e.g. postgresql://postgres@127.0.0.1:5432/postgres
MES_TEST_MQTT_URL      e.g. mqtt://127.0.0.1:1883

Tests that use the database fixtures are marked `postgres`, those that use a broker `broker`, so
`-m "postgres or broker"` selects exactly the tests worth repeating against external servers.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from multiprocessing import resource_tracker
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings

from app.api import create_app
from app.core_process import default_client_id
from core.service import prepare_database
from kernel.embedded.broker import EmbeddedBroker, find_mosquitto
from kernel.embedded.postgres import EmbeddedPostgres, create_database, drop_database
from kernel.plant import DEMO_PLANT, load_plant
from tests.support.auth import as_admin, bearer, issue_key
from tests.support.ingested import Ingested
from tests.support.ledger import balance_mismatches
from tests.support.mqtt_sessions import forget_session
from tests.support.processes import LINUX, MARK, kill, marked, wait_until

# Hypothesis's default deadline (200 ms an example) and its too-slow check are timing assertions in disguise:
# on a shared, busy machine they fail tests whose properties hold. Off for every test.
settings.register_profile("mes", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("mes")

DATABASE_URL_ENV = "MES_TEST_DATABASE_URL"
MQTT_URL_ENV = "MES_TEST_MQTT_URL"
POSTGRES_NAME_LIMIT = 63  # NAMEDATALEN - 1; longer names are silently truncated by PostgreSQL

DATABASE_FIXTURES = {"postgres_server_url", "fresh_database", "database_url"}
BROKER_FIXTURES = {"mqtt_url", "broker"}


def _without_password(url: str) -> str:
    parts = urlsplit(url)
    if not parts.password:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@")))


def pytest_report_header(config: pytest.Config) -> list[str]:
    database = os.environ.get(DATABASE_URL_ENV)
    mqtt = os.environ.get(MQTT_URL_ENV)
    embedded_broker = "mosquitto" if find_mosquitto() else "amqtt (mosquitto not installed)"
    return [
        f"postgres: {_without_password(database)} ({DATABASE_URL_ENV})" if database else "postgres: embedded (per session)",
        f"mqtt: {_without_password(mqtt)} ({MQTT_URL_ENV})" if mqtt else f"mqtt: embedded {embedded_broker} (per session)",
    ]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        if fixtures & DATABASE_FIXTURES:
            item.add_marker(pytest.mark.postgres)
        if fixtures & BROKER_FIXTURES:
            item.add_marker(pytest.mark.broker)


@pytest.fixture(scope="session", autouse=True)
def no_process_left_behind() -> Iterator[None]:
    """Every process this session's tests start carries its mark (MARK in the environment, inherited), and
    none may outlive the session: one left running works on for ever, on the test servers or on nothing.
    Set up before, and so checked after, every other session fixture. Leftovers are killed and the
    session fails. Not counted: this process's multiprocessing resource tracker, which ends with it."""
    if not LINUX:
        yield
        return
    mark = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
    os.environ[MARK] = mark

    def left() -> list:
        tracker = getattr(resource_tracker._resource_tracker, "_pid", None)
        return [process for process in marked(mark) if process.pid != tracker]

    yield
    try:
        wait_until(lambda: not left(), 30, "the processes started by the tests end")  # some may still be stopping
    except AssertionError:
        leftovers = left()
        if not leftovers:  # the last one ended just now
            return
        kill(leftovers)
        pytest.fail("processes started by this test session still ran at its end (now killed):\n"
                    + "\n".join(f"  {process.pid} {process.command}" for process in leftovers), pytrace=False)


@pytest.fixture(scope="session")
def postgres_server_url() -> Iterator[str]:
    """A superuser URL of the test server; tests should use `database_url` rather than this database."""
    external = os.environ.get(DATABASE_URL_ENV)
    if external:
        yield external
        return
    # Not pytest's tmp_path: the data dir becomes owned by another OS user when run as root, and
    # pytest keeps old temp dirs around; this one is removed as soon as the session ends.
    data_root = Path(tempfile.mkdtemp(prefix="mes-test-pg-"))
    server = EmbeddedPostgres(data_root / "data")
    try:
        yield server.start()
    finally:
        server.stop()
        shutil.rmtree(data_root, ignore_errors=True)


@pytest.fixture
def fresh_database(postgres_server_url: str) -> Iterator[Callable[[str], str]]:
    """`fresh_database(name_hint) -> url` of a new, empty, uniquely named database, dropped afterwards."""
    created: list[str] = []

    def create(name_hint: str) -> str:
        suffix = uuid.uuid4().hex[:8]
        stem = re.sub(r"[^a-z0-9_]+", "_", name_hint.lower()).strip("_")
        name = f"t_{stem[: POSTGRES_NAME_LIMIT - len(suffix) - 3]}_{suffix}"
        url = create_database(postgres_server_url, name)
        created.append(name)
        return url

    yield create
    for name in created:
        drop_database(postgres_server_url, name)


@pytest.fixture
def database_url(fresh_database: Callable[[str], str], request: pytest.FixtureRequest) -> str:
    """A new database named after the test."""
    return fresh_database(request.node.name)


@pytest.fixture(scope="session")
def mqtt_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A broker shared by the session: use unique client ids and topics per test."""
    external = os.environ.get(MQTT_URL_ENV)
    if external:
        yield external
        return
    with EmbeddedBroker(tmp_path_factory.mktemp("mqtt")) as broker:
        yield broker.url


@pytest.fixture(autouse=True)
def no_core_session_left_behind(request: pytest.FixtureRequest) -> Iterator[None]:
    """A core's session outlives it on the broker, queueing every later message for ever; on the session's
    shared broker that would load it more with every test. A test with a database and that broker gets its
    core's client id from the database (app.core_process.default_client_id), so its session goes after it."""
    if not {"database_url", "mqtt_url"} <= set(request.fixturenames):
        yield
        return
    mqtt_url, client_id = request.getfixturevalue("mqtt_url"), default_client_id(request.getfixturevalue("database_url"))
    yield
    forget_session(mqtt_url, client_id)


@pytest.fixture
def broker(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[EmbeddedBroker]:
    """A private, started broker the test may stop, kill and restart.

    Parametrize indirectly to pick the kind: `@pytest.mark.parametrize("broker", ["amqtt"], indirect=True)`.
    """
    prefer = getattr(request, "param", "auto")
    if prefer == "mosquitto" and find_mosquitto() is None:
        pytest.skip("mosquitto is not installed")
    with EmbeddedBroker(tmp_path / "broker", prefer=prefer) as started:
        yield started


@pytest.fixture
def api(database_url) -> Iterator[TestClient]:
    """The API on a fresh migrated database with the demo plant's machines, called with an admin key."""
    prepare_database(database_url, load_plant(DEMO_PLANT))
    with TestClient(create_app(database_url)) as client:
        yield as_admin(client, database_url)


@pytest.fixture
def api_as(api, database_url) -> Callable[..., TestClient]:
    """`api_as(*roles, name=None)`: a client of the same API with a new key of those roles; `api_as()`: one
    without credentials."""

    def client(*roles: str, name: str | None = None) -> TestClient:
        other = TestClient(api.app)
        if roles:
            other.headers.update(bearer(issue_key(database_url, *roles, name=name)))
        return other

    return client


@pytest.fixture
def db(api, database_url) -> Iterator[Ingested]:
    """Writes what the ingest would (as edge-1) into the API's database."""
    ingested = Ingested(database_url)
    yield ingested
    ingested.conn.close()


@pytest.fixture
def balances_match_ledger(request: pytest.FixtureRequest) -> Iterator[None]:
    """After the test, whatever it did to stock: `lot_balances` equals the ledger summed (invariant 10)."""
    database = request.getfixturevalue("database_url") if "database_url" in request.fixturenames else None
    yield
    if database is not None:
        assert balance_mismatches(database) == []

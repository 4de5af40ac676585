"""Fixtures of the edge tests; the components themselves live in edge_harness."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from edge_harness import Mosquitto, Subscriber, wait_until


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    directory = tmp_path / "broker"
    directory.mkdir()
    mosquitto = Mosquitto(directory)
    mosquitto.start()
    yield mosquitto
    mosquitto.stop()


@pytest.fixture
def subscriber(broker: Mosquitto) -> Iterator[Subscriber]:
    collector = Subscriber(broker.url)
    wait_until(lambda: collector.client.is_connected(), 10, "subscriber to connect")
    time.sleep(0.2)  # let the SUBACK arrive before anything is published
    yield collector
    collector.close()

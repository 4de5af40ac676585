from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import yaml

from mes.embedded.broker import free_port
from mes.plant import Plant, parse_plant

TEST_PLANT = Path(__file__).parent / "plant.yaml"


def plant_on_free_ports(path: Path = TEST_PLANT) -> Plant:
    document = yaml.safe_load(path.read_text())
    document["endpoints"] = {
        "opcua": f"opc.tcp://127.0.0.1:{free_port()}/open-mes/",
        "modbus_port": free_port(),
    }
    return parse_plant(document)


@pytest.fixture
def plant() -> Plant:
    return plant_on_free_ports()


def run(coroutine):
    return asyncio.run(coroutine)

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import yaml

from kernel.embedded.broker import free_port
from kernel.plant import Plant, parse_plant

TEST_PLANT = Path(__file__).parent / "plant.yaml"


def plant_on_free_ports(path: Path = TEST_PLANT) -> Plant:
    """The plant of `path` with its OPC UA and Modbus servers on free ports."""
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


def write_plant(plant: Plant, directory: Path, source: Path = TEST_PLANT) -> Path:
    """The plant file with `plant`'s endpoints, for another process to load."""
    document = yaml.safe_load(source.read_text())
    document["endpoints"] = plant.endpoints.model_dump(mode="json")
    path = directory / "plant.yaml"
    path.write_text(yaml.safe_dump(document))
    return path

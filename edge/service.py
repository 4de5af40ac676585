"""Entry point of `mes edge`: run one edge agent until SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Any

from edge.agent import EdgeAgent
from mes.plant import Plant


async def run_edge(plant: Plant, mqtt_url: str, state_dir: Path, **options: Any) -> None:
    """options: edge_id, machine_ids, flush_ms, queue_max, heartbeat_s, stats_every_s (see EdgeAgent)."""
    agent = EdgeAgent(plant, mqtt_url, state_dir, **options)
    loop = asyncio.get_running_loop()
    stop_signals = (signal.SIGINT, signal.SIGTERM)
    for stop_signal in stop_signals:
        loop.add_signal_handler(stop_signal, agent.stop)
    try:
        await agent.run()
    finally:
        for stop_signal in stop_signals:
            loop.remove_signal_handler(stop_signal)

"""The edge's epoch: a number that grows at every agent start and survives restarts and power loss.

`(edge_id, epoch, seq)` names a message for ever, so a fresh start must never reuse an epoch even if
the machine loses power right after starting; hence the fsync before and after the rename.
"""

from __future__ import annotations

import os
from pathlib import Path

EPOCH_FILE = "epoch"


def parse_epoch(text: str) -> int:
    value = int(text.strip())
    if value < 0:
        raise ValueError(f"epoch must not be negative: {value}")
    return value


def read_epoch(state_dir: Path) -> int:
    """The last epoch used, 0 when the edge never ran here."""
    try:
        return parse_epoch((state_dir / EPOCH_FILE).read_text(encoding="ascii"))
    except FileNotFoundError:
        return 0


def write_atomically(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    with open(temporary, "w", encoding="ascii") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)  # makes the rename itself durable
    finally:
        os.close(directory)


def next_epoch(state_dir: Path) -> int:
    """Claim and persist the epoch of this run."""
    state_dir.mkdir(parents=True, exist_ok=True)
    epoch = read_epoch(state_dir) + 1
    write_atomically(state_dir / EPOCH_FILE, f"{epoch}\n")
    return epoch

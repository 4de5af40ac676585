"""The edge's epoch: a number that grows at every agent start and survives restarts and power loss.

`(edge_id, epoch, seq)` names a message for ever, so a fresh start must never reuse an epoch even if
the machine loses power right after starting; hence the fsync before and after the rename. Once the
file exists it is written in place, fixed width, so that a full disk (which refuses a new file's blocks,
not an overwrite of the file's own) cannot stop the edge from starting under its next epoch.
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


WIDTH = 20  # digits: any epoch up to 2^63 - 1


def write_in_place(path: Path, text: str) -> None:
    """Overwrite the file's own bytes (it is at least as long as `text`) and make it durable."""
    descriptor = os.open(path, os.O_WRONLY)
    try:
        os.pwrite(descriptor, text.encode("ascii"), 0)
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def next_epoch(state_dir: Path) -> int:
    """Claim and persist the epoch of this run."""
    state_dir.mkdir(parents=True, exist_ok=True)
    epoch = read_epoch(state_dir) + 1
    path, text = state_dir / EPOCH_FILE, f"{epoch:0{WIDTH}d}\n"
    if path.exists() and path.stat().st_size == len(text):
        write_in_place(path, text)
    else:
        write_atomically(path, text)  # the first run, or a file from before the fixed width
    return epoch

"""Which edges a core should own when several cores share a plant (`MES_CORE_PARTITION=edges`).

The edge is the unit of ownership: its sequence, its acknowledgments and its machines' counter state are
all per edge, so one core at a time ingests an edge and order holds on any broker. Every core runs this
rule each round on the same picture (the plant's edges, the live cores, who owns what) and acts only on
its own part of the answer; taking an edge goes through a lock (core.ingest.partition), so two cores that
claim the same edge in one round cannot both get it.

Balanced: with n edges and k live cores every core ends with ⌊n/k⌋ or ⌈n/k⌉ edges. Few moves: a core
keeps what it owns unless it has more than ⌈n/k⌉, or it is the most loaded core while another one is
below ⌊n/k⌋ and no edge is free — then it gives up one edge a round.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Rebalance:
    claim: tuple[str, ...] = ()  # free edges to try to take, in this order
    release: tuple[str, ...] = ()  # owned edges to give up

    def __bool__(self) -> bool:
        return bool(self.claim or self.release)


def rebalance(edges: Collection[str], cores: Collection[str], owners: Mapping[str, str], me: str) -> Rebalance:
    """What core `me` should claim and release. `cores`: the live cores (`me` among them); `owners`: edge → core
    for the edges owned now (an owner that is not live counts as none: its edges are free)."""
    live = set(cores) | {me}
    owned_by = {edge: owners[edge] for edge in edges if owners.get(edge) in live}
    free = sorted(edge for edge in edges if edge not in owned_by)
    load = {core: 0 for core in live}
    for owner in owned_by.values():
        load[owner] += 1
    fewest, extra = divmod(len(edges), len(live))
    most = fewest + (extra > 0)
    mine = sorted(edge for edge, owner in owned_by.items() if owner == me)
    if len(mine) > most:
        return Rebalance(release=tuple(mine[most:]))
    starving = {core: fewest - count for core, count in load.items() if count < fewest}
    if free:
        if len(mine) < fewest:
            return Rebalance(claim=tuple(_starting_at(free, me, live)[:fewest - len(mine)]))
        # beyond ⌊n/k⌋ only with what the cores below it will not need
        spare = len(free) - sum(need for core, need in starving.items() if core != me)
        return Rebalance(claim=tuple(_starting_at(free, me, live)[:max(0, min(spare, most - len(mine)))]))
    if starving and len(mine) > fewest and me == max(load, key=lambda core: (load[core], core)):
        return Rebalance(release=(mine[-1],))
    return Rebalance()


def _starting_at(free: list[str], me: str, live: set[str]) -> list[str]:
    """The free edges rotated by the core's rank, so that cores claiming in the same round mostly try different edges."""
    start = sorted(live).index(me) * len(free) // len(live)
    return free[start:] + free[:start]

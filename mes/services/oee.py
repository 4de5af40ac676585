"""OEE per machine, line, shift or work order over a period, by ISO 22400-2 (`mes.rules.oee`).

For each machine the state intervals (`mes.services.downtime.derive`) are tallied over planned
production windows with the machine's output, then groups add their totals (`combine`) and the ratios
are computed once from the sums (`measure`).

Decisions, stated:
  * Planned production windows: the calendar's shifts less breaks and non-production periods, inside
    [start, end) and never after now (time still to come is not yet planned-and-lost). Without any shift
    defined, the whole period is planned production time (less the non-production periods).
  * Output: the production_attributions whose `last_ts` falls in the group's span ([start, end), for a
    shift the shift instance within it), per work order. Ideal cycle time of a work order's units: the
    `machine_items` row of (machine, the order's item), else `machines.ideal_cycle_s`; unassigned units
    (no work order) at the machine's ideal cycle. Total = good + scrap; energy = the attributed Wh.
  * by=machine and by=line: every planned window. by=shift: one group per shift instance (key
    "<local start date> <shift name>"), its own windows and the output inside the instance; without
    shifts a single group with key None. by=work_order: per machine the order's dispatch windows
    (API and PLC, merged; an open one runs until now) intersected with the calendar's windows, and the
    order's own units (units of an order with no window left in the period add counts, no time). An
    instant on a machine where two orders' windows overlap counts for both.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import text
from sqlalchemy.orm import Session

from mes.rules.oee import Made, Oee, OeeTotals, combine, measure, tally_machine
from mes.rules.shifts import Window, intersect, planned_windows, union
from mes.services.downtime import Derivation, derive, load_calendar, machines, require_period

GROUPINGS = ("machine", "line", "shift", "work_order")


@dataclass(frozen=True, slots=True)
class OeeGroup:
    key: str | None
    start: datetime
    end: datetime
    totals: OeeTotals
    measures: Oee


def oee(session: Session, start: datetime, end: datetime, by: str = "machine", *, machine_id: str | None = None,
        line_id: str | None = None, derivation: Derivation | None = None) -> list[OeeGroup]:
    """The OEE groups of [start, end), ordered by key (shifts by start)."""
    require_period(start, end)
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    if by not in GROUPINGS:
        raise ValueError(f"OEE by machine, line, shift or work_order, not {by!r}")
    derivation = derivation or Derivation.of()
    selected = machines(session, machine_id, line_id)
    by_shift = planned_windows(load_calendar(session, start, end), start, min(end, derivation.now))
    every_window = [window for _, windows in by_shift for window in windows]
    intervals = {m.machine_id: derive(session, m.machine_id, start, end, derivation) for m in selected}
    ids = [m.machine_id for m in selected]

    if by == "shift":
        spans = [(max(shift.start, start), min(shift.end, end)) if shift else (start, end) for shift, _ in by_shift]
        groups = []
        for (shift, windows), span, made in zip(by_shift, spans, made_in_spans(session, ids, spans), strict=True):
            totals = combine(tally_machine(intervals[m], windows, made.get(m, [])) for m in ids)
            groups.append(OeeGroup(f"{shift.day.isoformat()} {shift.name}" if shift else None, *span, totals, measure(totals)))
        return groups

    made = made_in_spans(session, ids, [(start, end)])[0]
    if by == "work_order":
        parts = defaultdict(list)
        dispatches = _dispatch_windows(session, ids, start, min(end, derivation.now))
        for (machine, work_order), dispatched in dispatches.items():
            for_order = [m for m in made.get(machine, []) if m.work_order_id == work_order]
            parts[work_order].append(tally_machine(intervals[machine], intersect(dispatched, every_window), for_order))
        for machine, units in made.items():
            for work_order in {m.work_order_id for m in units} - {None}:
                if (machine, work_order) not in dispatches:
                    parts[work_order].append(tally_machine([], [], [m for m in units if m.work_order_id == work_order]))
    else:
        parts = defaultdict(list)
        for m in selected:
            parts[m.machine_id if by == "machine" else m.line].append(
                tally_machine(intervals[m.machine_id], every_window, made.get(m.machine_id, [])))
    return [OeeGroup(key, start, end, combine(totals), measure(combine(totals))) for key, totals in sorted(parts.items())]


def made_in_spans(session: Session, machine_ids: list[str], spans: list[tuple[datetime, datetime]]) -> list[dict[str, list[Made]]]:
    """Per span, per machine, the units made per work order (by the attributions' last_ts)."""
    found: list[dict[str, list[Made]]] = [defaultdict(list) for _ in spans]
    rows = session.execute(text(
        """SELECT s.n, pa.machine_id, pa.work_order_id, sum(pa.good), sum(pa.scrap), sum(pa.energy_wh),
                  coalesce(mi.ideal_cycle_s, m.ideal_cycle_s)
           FROM unnest(CAST(:starts AS timestamptz[]), CAST(:ends AS timestamptz[])) WITH ORDINALITY AS s(start_ts, end_ts, n)
           JOIN production_attributions pa ON pa.last_ts >= s.start_ts AND pa.last_ts < s.end_ts
           JOIN machines m ON m.machine_id = pa.machine_id
           LEFT JOIN work_orders w ON w.work_order_id = pa.work_order_id
           LEFT JOIN machine_items mi ON mi.machine_id = pa.machine_id AND mi.item_id = w.item_id
           WHERE pa.machine_id = ANY(:machines) AND pa.last_ts >= :earliest AND pa.last_ts < :latest
           GROUP BY s.n, pa.machine_id, pa.work_order_id, mi.ideal_cycle_s, m.ideal_cycle_s
           ORDER BY s.n, pa.machine_id, pa.work_order_id"""),
        # the spans' bounds as constants too: the time index (BRIN) then reads only those pages, however long the history
        {"starts": [s for s, _ in spans], "ends": [e for _, e in spans], "machines": machine_ids,
         "earliest": min((s for s, _ in spans), default=None), "latest": max((e for _, e in spans), default=None)})
    for n, machine, work_order, good, scrap, energy, cycle in rows:
        found[n - 1][machine].append(Made(work_order, int(good), int(scrap), int(energy), cycle))
    return found


def _dispatch_windows(session: Session, machine_ids: list[str], start: datetime,
                      end: datetime) -> dict[tuple[str, str], list[Window]]:
    """Per (machine, work order) its dispatch windows inside [start, end), merged and in order."""
    found: dict[tuple[str, str], list[Window]] = defaultdict(list)
    if end <= start:
        return found
    rows = session.execute(text(
        """SELECT machine_id, work_order_id, greatest(start_ts, :start), least(coalesce(end_ts, :end), :end) FROM dispatches
           WHERE work_order_id IS NOT NULL AND machine_id = ANY(:machines) AND start_ts < :end
             AND (end_ts IS NULL OR end_ts > :start)
           ORDER BY machine_id, work_order_id, 3"""), {"start": start, "end": end, "machines": machine_ids})
    spans: dict[tuple[str, str], list[tuple[datetime, datetime]]] = defaultdict(list)
    for machine, work_order, begin, finish in rows:
        spans[(machine, work_order)].append((begin, finish))
    return {key: union(windows) for key, windows in spans.items()}



"""python -m tests.bench — see --help. Measures, prints a summary, writes docs/benchmarks.md."""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TaskProgressColumn, TextColumn, TimeElapsedColumn

from kernel.logs import configure_logging
from kernel.settings import Settings
from tests.bench import backflush, boards, cores, ingest, latency, planning, soak
from tests.bench.infra import services
from tests.bench.report import LATENCY_TARGET_S, Results, machine_description, summary_tables, write_markdown

REPO = Path(__file__).resolve().parents[2]
DEFAULT_OUTPUT = REPO / "docs" / "benchmarks.md"

DESCRIPTION = """\
Benchmarks of the MES spine. Numbers are measured, never asserted: each result is reported next to a
baseline measured in the same run on the same machine, and written to docs/benchmarks.md.

  1. ingest   the core drains a pre-filled broker backlog of N data messages (M machines, S samples
              each) into a fresh database; baseline: raw COPY of exactly the same sample rows into a
              table LIKE samples (same indexes). Target: ingest >= 0.6 x COPY (samples/s).
  2. latency  simulators -> edge agent -> broker -> core -> PostgreSQL with K machines at 1 Hz, each its
              own process: `mes simulate` (one per <= 400 OPC UA and <= 247 Modbus machines), `mes edge`,
              `mes core`; latency = commit time (the core's ack to the edge, seen by a subscriber) - the
              sample's source timestamp; CPU per process. Target: p99 < 1 s at K = 1000, else the largest
              K this machine sustains. K steps down until one is sustained with p99 < 1 s. Then the edge
              alone: K steps up (--edge-machines) while the one edge process keeps up below one core of CPU.
  3. backflush the ingest workload (same shape, fewer messages) drained twice into fresh databases:
              ingest alone (no work orders) and every machine on a released work order with a 2-level
              BOM and stocked line-side lots, so each count is attributed, backflushed and booked in
              the stock ledger. Reported: production deltas/s of both and their ratio.
  4. planning a full MRP regeneration of the pure rules (5 BOM levels, 26 weekly buckets, 2 demands an
              item) at 1,000 and 10,000 items (50,000 with --planning-large), each in a fresh process;
              target: 10,000 items in < 5 s and < 1 GB. Then net change through the database: the same
              plan stored and kept live, an end item's work order counting one good unit at a time through
              the real ingest, latency from the ingest's commit to the live plan's commit of the updated
              row over --completions completions. Target: p99 < 200 ms.
  5. boards   the Grafana line board's queries and the built-in board's snapshot over two databases with the
              same last hours and a small vs a large history (1M vs 10M rows of samples by default).
              Target: the large no more than 1.5 x slower.
  6. cores    the ingest workload spread over E edges, ingested by 1, 2 and 4 `mes core` processes sharing the
              plant's edges (MES_CORE_PARTITION=edges): samples/s and CPU per core. No target: the cores, the
              broker and PostgreSQL share this machine's CPUs, which bound the gain.
  7. soak     a 1,000-machine plant at accelerated time (benchmark 1's messages spread over two simulated days)
              through the core's ingest service: database bytes per machine and simulated day, extrapolated
              from the bytes per message (target: < 200 MB on plain PostgreSQL before retention), before and
              after the retention job; messages/s over the first vs the last third of the batches.

Services: embedded PostgreSQL and embedded Mosquitto unless MES_DATABASE_URL / MES_MQTT_URL are set
(the database URL's role must be allowed to CREATE DATABASE: every benchmark gets a fresh one,
named bench_*). The default run takes about 20-25 minutes (the boards' 10M-row history alone about 4, the cores about 3,
the latency and the edge alone up to 5 and 7); --quick about three.
"""

EPILOG = """\
examples:
  make bench                                         the default run (writes docs/benchmarks.md)
  .venv/bin/python -m tests.bench --quick --no-write a smoke run, nothing written
  .venv/bin/python -m tests.bench --only ingest --batch-sizes 500,2000
  .venv/bin/python -m tests.bench --only latency --latency-machines 1000 --duration 60
  .venv/bin/python -m tests.bench --only latency --latency-machines 500 --edge-machines 1000,2000
  .venv/bin/python -m tests.bench --only backflush --backflush-messages 20000
  .venv/bin/python -m tests.bench --only planning --planning-large
  .venv/bin/python -m tests.bench --only cores --cores 1,2 --cores-messages 5000
  .venv/bin/python -m tests.bench --only soak --soak-messages 20000
  MES_DATABASE_URL=postgresql://u:p@db/postgres .venv/bin/python -m tests.bench --only ingest
"""


def int_list(text: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from error
    if not values or any(v <= 0 for v in values):
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tests.bench", description=DESCRIPTION, epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="small sizes for a smoke run (~1 min): ingest 50 machines x 3,000 messages, one batch "
                             "size; latency K=100 for 10 s, the edge alone K=250; backflush 2,000 messages. Explicit options below still win.")
    parser.add_argument("--only", choices=("ingest", "latency", "backflush", "planning", "boards", "cores", "soak"),
                        help="run one benchmark only")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="markdown report (default: docs/benchmarks.md)")
    parser.add_argument("--no-write", action="store_true", help="print the summary only; leave the report alone")
    parser.add_argument("--work-dir", type=Path, default=None,
                        help="broker data and edge queues (default: <MES data dir>/bench, i.e. var/bench)")

    group = parser.add_argument_group("ingest throughput (benchmark 1)")
    group.add_argument("--machines", type=int, help="machines in the ingest plant (default 200)")
    group.add_argument("--messages", type=int, help="data messages pre-filled in the broker (default 20000)")
    group.add_argument("--seconds-per-message", type=int,
                       help="1 s steps per message; samples per message = 1 state + 3 counters x this (default 4 -> 13)")
    group.add_argument("--publishers", type=int, default=4, help="publisher clients = edge ids filling the broker (default 4)")
    group.add_argument("--batch-sizes", type=int_list,
                       help="core batch_max_messages to try, comma-separated; the first is compared with COPY "
                            "(default 500,200,1000; the core's default is 500)")
    group.add_argument("--copy-repetitions", type=int, default=3, help="COPY baseline repetitions; the median counts (default 3)")

    group = parser.add_argument_group("production through backflush (benchmark 3; plant, seconds per message, "
                                      "publishers and the first batch size as for benchmark 1)")
    group.add_argument("--backflush-messages", type=int,
                       help="data messages per run, run twice: ingest alone and with backflush (default 10000)")

    group = parser.add_argument_group("planning (benchmark 4)")
    group.add_argument("--planning-items", type=int_list,
                       help="items of the pure regenerations, comma-separated (default 1000,10000; --quick 1000)")
    group.add_argument("--planning-large", action="store_true", help="add a regeneration of 50,000 items (~1 min, 2 GB)")
    group.add_argument("--net-change-items", type=int, help="items of the live plan net change runs on (default 10000; --quick 1000)")
    group.add_argument("--completions", type=int, help="completions the net change is timed over (default 200; --quick 50)")

    group = parser.add_argument_group("boards over history (benchmark 5)")
    group.add_argument("--boards-small", type=int, help="rows of samples in the small history (default 1000000)")
    group.add_argument("--boards-large", type=int, help="rows of samples in the large history (default 10000000)")
    group.add_argument("--boards-repeat", type=int, default=7, help="timed runs per query; the median counts (default 7)")

    group = parser.add_argument_group("several cores (benchmark 6; plant and seconds per message as for benchmark 1)")
    group.add_argument("--cores", type=int_list, default=[1, 2, 4], help="counts of cores sharing the edges to run, after one whole-plant core (default 1,2,4)")
    group.add_argument("--cores-edges", type=int, default=8, help="edges the workload is spread over (default 8)")
    group.add_argument("--cores-messages", type=int, help="data messages per count of cores (default 20000)")

    group = parser.add_argument_group("soak (benchmark 7; seconds per message and the first batch size as for benchmark 1)")
    group.add_argument("--soak-machines", type=int, default=1000, help="machines of the soak's plant (default 1000)")
    group.add_argument("--soak-messages", type=int, help="data messages over the two simulated days (default 30000; --quick 5000)")

    group = parser.add_argument_group("end-to-end latency (benchmark 2)")
    group.add_argument("--latency-machines", type=int_list,
                       help="K values to try, largest first; stops at the first K that is sustained with p99 < 1 s "
                            "(default 1000,750,500,250,100)")
    group.add_argument("--all-steps", action="store_true", help="try every K even after one was sustained")
    group.add_argument("--duration", type=float, help="measured seconds per K (default 30)")
    group.add_argument("--warmup", type=float, help="seconds of production before measuring (default 5)")
    group.add_argument("--opcua-share", type=float, default=0.8,
                       help="share of OPC UA machines, the rest Modbus, at most 247 Modbus machines (one simulated "
                            "server, device ids 1..247) (default 0.8)")
    group.add_argument("--budget", type=float, default=300,
                       help="seconds the whole run may take: a further K is skipped when it would not fit (default 300)")
    group.add_argument("--edge-machines", type=int_list,
                       help="K values for the edge alone, smallest first; stops after the first K the edge does not keep "
                            "up with below one core of CPU; a K measured above is not run again "
                            "(default 1000,1500,2000,2500,3000; --quick 250)")
    group.add_argument("--edge-budget", type=float, default=400,
                       help="seconds the edge-alone steps may take, counted from their start (default 400)")
    args = parser.parse_args(argv)

    quick = args.quick
    defaults = {
        "machines": 50 if quick else 200,
        "messages": 3000 if quick else 20000,
        "backflush_messages": 2000 if quick else 10000,
        "cores_messages": 3000 if quick else 20000,
        "soak_messages": 5000 if quick else 30000,
        "boards_small": 100_000 if quick else 1_000_000,
        "boards_large": 1_000_000 if quick else 10_000_000,
        "seconds_per_message": 4,
        "batch_sizes": [500] if quick else [500, 200, 1000],
        "latency_machines": [100] if quick else [1000, 750, 500, 250, 100],
        "edge_machines": [250] if quick else [1000, 1500, 2000, 2500, 3000],
        "duration": 10 if quick else 30,
        "warmup": 3 if quick else 5,
        "planning_items": [1000] if quick else [1000, 10000],
        "net_change_items": 1000 if quick else 10000,
        "completions": 50 if quick else 200,
    }
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if not 0 <= args.opcua_share <= 1:
        parser.error("--opcua-share must be between 0 and 1")
    args.latency_machines = sorted(set(args.latency_machines), reverse=True)
    args.edge_machines = sorted(set(args.edge_machines))
    if args.planning_large and 50000 not in args.planning_items:
        args.planning_items.append(50000)
    return args


def command_line(argv: list[str]) -> str:
    if not argv:
        return "make bench   (= .venv/bin/python -m tests.bench)"
    return ".venv/bin/python -m tests.bench " + shlex.join(argv)


def estimated_latency_s(machines: int, args: argparse.Namespace) -> float:
    """Start-up (processes, OPC UA address spaces, subscriptions, baselines) + warm-up + measurement + stop."""
    return 10 + machines * 0.06 + args.warmup + args.duration + 10


def out_of_budget(results: Results, progress: Progress, args: argparse.Namespace, what: str, machines: int,
                  since: float, budget: float, option: str) -> bool:
    """Whether a run of `machines` would take the time spent since `since` past `budget`; if so it is noted as skipped."""
    spent = time.monotonic() - since
    if spent + estimated_latency_s(machines, args) <= budget:
        return False
    results.skipped.append(f"{what}: skipped, would exceed the {option} of {budget:.0f} s ({spent:.0f} s spent)")
    progress.console.print(f"[yellow]{results.skipped[-1]}[/]")
    return True


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    configure_logging("WARNING")
    # asyncua warns at every client connect that the server shortened the session timeout: noise here
    logging.getLogger("asyncua.client.client").setLevel(logging.ERROR)
    settings = Settings()
    work_dir = args.work_dir or settings.data_dir / "bench"
    console = Console()
    began = time.monotonic()
    results = Results(started_at=datetime.now(UTC), command=command_line(argv), machine=machine_description(),
                      args=vars(args))
    console.print(f"[bold]open-mes benchmarks[/] · {results.machine['summary']}")
    progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(),
                        TimeElapsedColumn(), console=console)
    with services(settings, work_dir) as svc, progress:
        results.services = {"database": svc.database_kind, "broker": svc.broker_kind}
        if args.only in (None, "ingest"):
            plant = ingest.bench_plant(args.machines, publishers=args.publishers)
            workload = ingest.build_workload(plant, args.messages, args.seconds_per_message, args.publishers)
            results.workload = workload
            for index, batch in enumerate(args.batch_sizes):
                run, database_url = ingest.run_ingest(svc, plant, workload, batch, f"bench_ingest_{batch}", progress,
                                                      keep_rows=index == 0)
                results.ingest_runs.append(run)
                if index == 0:
                    results.copy = ingest.copy_baseline(database_url, run.rows, args.copy_repetitions, progress)
                    task = progress.add_task("parse + plan in-process (no I/O)", total=None)
                    results.pure = ingest.pure_with_variants(database_url, workload, batch)
                    progress.update(task, total=1, completed=1)
                    run.rows = []
        if args.only in (None, "latency"):
            for machines in args.latency_machines:
                if results.latency_runs and out_of_budget(results, progress, args, f"K={machines}", machines, began,
                                                          args.budget, "--budget"):
                    continue
                run = latency.run_latency(svc, machines, args.duration, args.warmup, args.opcua_share, progress)
                results.latency_runs.append(run)
                if run.sustained and run.stats()["p99"] < LATENCY_TARGET_S and not args.all_steps:
                    break
            edge_began = time.monotonic()
            measured = {run.machines: run for run in results.latency_runs}
            for machines in args.edge_machines:
                run = measured.get(machines)
                if run is None:
                    if results.edge_runs and out_of_budget(results, progress, args, f"edge alone, K={machines}", machines,
                                                           edge_began, args.edge_budget, "--edge-budget"):
                        break
                    run = latency.run_latency(svc, machines, args.duration, args.warmup, args.opcua_share, progress,
                                              kind="edge")
                results.edge_runs.append(run)
                if not (run.edge_kept_up and run.edge_cpu < 1.0):
                    break
        if args.only in (None, "backflush"):
            # after latency: its --budget counts from the start, and this one must not eat into it
            plant = ingest.bench_plant(args.machines, publishers=args.publishers)
            workload = ingest.build_workload(plant, args.backflush_messages, args.seconds_per_message, args.publishers)
            results.backflush = backflush.run_backflush(svc, plant, workload, args.batch_sizes[0], progress)
        if args.only in (None, "planning"):
            results.planning = planning.PlanningResults()
            for items in args.planning_items:
                task = progress.add_task(f"planning: regeneration of {items:,} items (pure rules)", total=None)
                results.planning.regenerations.append(planning.run_regeneration_apart(items))
                progress.update(task, total=1, completed=1)
            task = progress.add_task(f"planning: net change on {args.net_change_items:,} items, "
                                     f"{args.completions} completions", total=None)
            results.planning.net_change = planning.run_net_change(svc.fresh_database("bench_planning"),
                                                                  args.net_change_items, args.completions,
                                                                  work_dir / "planning")
            progress.update(task, total=1, completed=1)
        if args.only in (None, "boards"):
            results.boards = boards.run_boards(svc.fresh_database, args.boards_small, args.boards_large, args.boards_repeat,
                                               progress)
        if args.only in (None, "cores"):
            results.cores = cores.run_cores(svc, args.machines, args.cores_messages, args.seconds_per_message,
                                            args.cores_edges, args.cores, work_dir, progress)
        if args.only in (None, "soak"):
            results.soak = soak.run_soak(svc, args.soak_machines, args.soak_messages, args.seconds_per_message,
                                         args.batch_sizes[0], progress)
    results.elapsed_s = time.monotonic() - began
    for table in summary_tables(results):
        console.print(table)
    if not args.no_write:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(write_markdown(results))
        console.print(f"written: {args.output}")
    console.print(f"total time: {results.elapsed_s:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

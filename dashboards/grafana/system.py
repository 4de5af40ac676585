"""The board "Open MES · System health": the core's ingest, the edges' queues and PLC connections, the
core's jobs (the plan's round among them) and the API, from the processes' Prometheus metrics
(docs/metrics.md). No I/O.

Its panels read the Prometheus data source by uid (`mes-prometheus`), as the other boards read the
PostgreSQL one: provisioned from files or pushed, the board is the same. A test scrapes a real core, edge
and API and checks that every metric each panel's PromQL names is exposed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from dashboards.grafana.panels import dashboard, row

SYSTEM_UID = "mes-system"
PROMETHEUS_TYPE = "prometheus"
PROMETHEUS_UID = "mes-prometheus"
PROMETHEUS_NAME = "Open MES Prometheus"
PROMETHEUS = {"type": PROMETHEUS_TYPE, "uid": PROMETHEUS_UID}
RATE = "$__rate_interval"  # Grafana's window for rate(): at least four scrape intervals

Query = tuple[str, str]  # (PromQL, legend)


def prometheus_target(expr: str, legend: str, ref_id: str) -> dict:
    return {"refId": ref_id, "datasource": PROMETHEUS, "editorMode": "code", "expr": expr, "legendFormat": legend,
            "range": True}


def prometheus_panel(kind: str, title: str, queries: Sequence[Query], *, unit: str, description: str, width: int,
                     height: int, options: Mapping | None = None, defaults: Mapping | None = None) -> dict:
    return {"type": kind, "title": title, "description": description, "datasource": PROMETHEUS,
            "targets": [prometheus_target(expr, legend, chr(ord("A") + index)) for index, (expr, legend) in enumerate(queries)],
            "fieldConfig": {"defaults": {"unit": unit, **(defaults or {})}, "overrides": []},
            "options": dict(options or {}), "transformations": [], "gridPos": {"h": height, "w": width}}


def series(title: str, queries: Sequence[Query], *, unit: str = "short", description: str = "", width: int = 8,
           height: int = 8) -> dict:
    return prometheus_panel("timeseries", title, queries, unit=unit, description=description, width=width, height=height,
                            defaults={"custom": {"drawStyle": "line", "fillOpacity": 10, "lineWidth": 1, "spanNulls": False}},
                            options={"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
                                     "tooltip": {"mode": "multi", "sort": "desc"}})


def now(title: str, queries: Sequence[Query], *, unit: str = "short", description: str = "", width: int = 6,
        height: int = 4, red_from: float | None = None) -> dict:
    steps = [{"value": None, "color": "green"}] + ([{"value": red_from, "color": "red"}] if red_from is not None else [])
    return prometheus_panel("stat", title, queries, unit=unit, description=description, width=width, height=height,
                            defaults={"thresholds": {"mode": "absolute", "steps": steps}, "color": {"mode": "thresholds"}},
                            options={"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                                     "colorMode": "value", "graphMode": "area", "textMode": "value_and_name"})


def quantile(q: float, histogram: str, by: str = "", where: str = "") -> str:
    keys = ", ".join(["le", *([by] if by else [])])
    return f"histogram_quantile({q}, sum by ({keys}) (rate({histogram}_bucket{where}[{RATE}])))"


def _ingest() -> list[dict]:
    return [
        row("Ingest (core)"),
        series("Ingest rate", [(f"sum(rate(mes_ingest_messages_total[{RATE}]))", "messages/s"),
                               (f"sum(rate(mes_ingest_samples_total[{RATE}]))", "samples/s")],
               unit="ops", description="What the cores commit (mes_ingest_messages_total, mes_ingest_samples_total)."),
        series("Ingest lag", [(quantile(0.5, "mes_ingest_lag_seconds"), "p50"), (quantile(0.99, "mes_ingest_lag_seconds"), "p99")],
               unit="s", description="From the broker's delivery of a batch's oldest message to the batch's commit."),
        series("Commit latency", [(quantile(0.5, "mes_ingest_commit_seconds"), "p50"),
                                  (quantile(0.99, "mes_ingest_commit_seconds"), "p99")],
               unit="s", description="One batch's transaction: load, plan, write, commit."),
        series("Batch size", [(f"sum(rate(mes_ingest_batch_messages_sum[{RATE}])) / sum(rate(mes_ingest_batch_messages_count[{RATE}]))",
                               "mean"), (quantile(0.99, "mes_ingest_batch_messages"), "p99")],
               description="Messages per committed batch: near MES_BATCH_MAX_MESSAGES means the core works flat out."),
        series("Held in memory", [("sum by (instance) (mes_ingest_pending_messages)", "{{instance}} pending"),
                                  ("max(mes_ingest_pending_max_messages)", "bound")],
               description="Deliveries waiting for ingest; at the bound the broker keeps the rest."),
        series("Dead letters and held messages", [(f"sum(increase(mes_ingest_dead_letters_total[{RATE}]))", "dead letters"),
                                                  (f"sum(increase(mes_ingest_held_messages_total[{RATE}]))", "held for a resend"),
                                                  (f"sum(increase(mes_ingest_quarantined_steps_total[{RATE}]))", "steps quarantined")],
               description="Set aside by the ingest in each window."),
        now("Waiting for review", [("max(mes_review_pending_dead_letters)", "dead letters"),
                                   ("max(mes_review_pending_steps)", "quarantined steps")], red_from=1, width=8,
            description="Plant-wide, read from the database (`mes review`, /review)."),
        now("Broker connections", [("sum(mes_core_mqtt_connected)", "cores connected"),
                                   ("sum(mes_edge_mqtt_connected)", "edges connected")], width=8,
            description="Processes connected to the broker now."),
        now("MQTT reconnects (range)", [("sum(increase(mes_core_mqtt_reconnects_total[$__range]))", "core"),
                                        ("sum(increase(mes_edge_mqtt_reconnects_total[$__range]))", "edges")],
            red_from=1, width=8, description="Reconnections to the broker in the board's time range."),
    ]


def _edges() -> list[dict]:
    return [
        row("Edges"),
        series("Edge queue", [("sum by (edge_id) (mes_edge_queue_messages)", "{{edge_id}}")],
               description="Messages in each edge's disk queue, not yet confirmed by the core."),
        series("Edge queue bytes", [("sum by (edge_id) (mes_edge_queue_bytes)", "{{edge_id}}"),
                                    ("max(mes_edge_queue_max_bytes)", "bound")], unit="bytes",
               description="At the bound the queue compacts, then drops (mes_edge_dropped_messages_total)."),
        series("Edge messages", [(f"sum by (edge_id) (rate(mes_edge_published_messages_total[{RATE}]))", "{{edge_id}} published"),
                                 (f"sum by (edge_id) (rate(mes_edge_confirmed_messages_total[{RATE}]))", "{{edge_id}} confirmed"),
                                 (f"sum by (edge_id) (rate(mes_edge_dropped_messages_total[{RATE}]))", "{{edge_id}} dropped")],
               unit="ops", description="Published: the broker has it; confirmed: the core committed it."),
        series("Read errors per machine", [
            (f"sum by (machine) (increase(mes_edge_machine_faults_total[{RATE}]))", "{{machine}} failures"),
            (f"sum by (machine) (increase(mes_edge_unusable_readings_total[{RATE}]))", "{{machine}} unusable readings")],
            width=12, description="OPC UA and Modbus: failed connections and reads, refused addresses (failures), "
                                  "readings that could not be used (bad status, no value, out of range)."),
        now("Machines not ok", [('sum by (status) (mes_edge_machine_status{status!="ok"})', "{{status}}")], red_from=1,
            width=6, description="Machines whose connection is stale, unreachable or badly configured now."),
        now("Edge disk full", [("sum(mes_edge_disk_full)", "edges")], red_from=1, width=6,
            description="Edges whose disk queue refuses writes (they hold messages in memory)."),
    ]


def _jobs_and_api() -> list[dict]:
    return [
        row("Jobs, planning and API"),
        series("Plan run time", [(quantile(0.95, "mes_job_round_seconds", where='{job="planning-shortages"}'), "core: shortage round p95"),
                                 (quantile(0.95, "mes_api_request_seconds", by="route", where='{route=~"/planning.*"}'),
                                  "API {{route}} p95")],
               unit="s", description="The core's shortage round computes the whole live plan; the API's planning "
                                     "requests compute it for their answer."),
        series("Job rounds", [(quantile(0.95, "mes_job_round_seconds", by="job"), "{{job}} p95")],
               unit="s", description="The core's jobs in threads (alerts, notifications, valuation, shortages)."),
        now("Job failures (range)", [("sum by (job) (increase(mes_job_failures_total[$__range]))", "{{job}}")],
            red_from=1, width=8, height=8, description="Rounds that raised in the board's time range; the job tries "
                                                       "again at its next round (kernel/jobs.py)."),
        series("API requests", [(f"sum by (status) (rate(mes_api_request_seconds_count[{RATE}]))", "{{status}}")],
               unit="reqps", description="Requests per second by status."),
        series("API latency", [(quantile(0.5, "mes_api_request_seconds"), "p50"),
                               (quantile(0.99, "mes_api_request_seconds"), "p99")],
               unit="s", description="Duration of the API's requests, all routes."),
    ]


def system_board() -> dict:
    return dashboard(SYSTEM_UID, "Open MES · System health",
                     "Ingest, edges, PLC connections, jobs and API, from the processes' Prometheus metrics.",
                     _ingest() + _edges() + _jobs_and_api(), refresh="30s", time_from="now-3h")


def prometheus_datasource(url: str) -> dict:
    """The Prometheus data source the system board reads, at `url` (e.g. http://prometheus:9090)."""
    return {"uid": PROMETHEUS_UID, "name": PROMETHEUS_NAME, "type": PROMETHEUS_TYPE, "access": "proxy", "url": url,
            "user": "", "isDefault": False, "jsonData": {"httpMethod": "POST", "timeInterval": "15s"}}

"""Prometheus metrics (prometheus-client): each process object keeps its own `CollectorRegistry` (several cores
or edges in one test process never share a counter) and serves it over HTTP on a port of its own
(`MetricsServer`; the API serves its registry at /metrics instead). docs/metrics.md lists every metric.

Names follow Prometheus's conventions: `mes_` first, `_total` for counters, `_seconds` and `_bytes` in base
units; labels take bounded values only (edge and machine ids, job names, reasons), never message content.
What a process already counts is read at scrape time by a collector (`Collected`); only what needs an
observation per event (histograms) is recorded as it happens.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from kernel.logs import get_logger

log = get_logger(__name__)

# Durations of a round of work, from a millisecond to a few minutes.
SECONDS_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


class Collected(Collector):
    """Metrics read from state the process keeps anyway, at each scrape: `families()` yields them."""

    def __init__(self, families: Callable[[], Iterable[Metric]]) -> None:
        self._families = families

    def collect(self) -> Iterator[Metric]:
        yield from self._families()


def counter(name: str, documentation: str, value: float, **labels: str) -> CounterMetricFamily:
    """A counter family of one sample (`name` without `_total`: the exposition adds it)."""
    family = CounterMetricFamily(name, documentation, labels=list(labels))
    family.add_metric(list(labels.values()), value)
    return family


def gauge(name: str, documentation: str, value: float, **labels: str) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, documentation, labels=list(labels))
    family.add_metric(list(labels.values()), value)
    return family


class JobMetrics:
    """How long each round of the core's jobs takes and how many fail (`kernel.jobs.Jobs(on_round=...)`)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.round_seconds = Histogram("mes_job_round_seconds", "Duration of one round of a background job",
                                       ["job"], registry=registry, buckets=SECONDS_BUCKETS)
        self.failures = Counter("mes_job_failures", "Rounds of a background job that failed", ["job"], registry=registry)

    def __call__(self, job: str, seconds: float, failed: bool) -> None:
        self.round_seconds.labels(job).observe(seconds)
        if failed:
            self.failures.labels(job).inc()


class MetricsServer:
    """The registry's exposition at http://host:port/metrics (any path answers it) on a daemon thread.
    Port 0 takes a free one (`port` tells which)."""

    def __init__(self, registry: CollectorRegistry, host: str, port: int) -> None:
        self.registry, self.host, self.requested_port = registry, host, port
        self._server: WSGIServer | None = None

    @property
    def listening(self) -> bool:
        return self._server is not None

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the metrics server is not started")
        return self._server.server_port

    def start(self) -> None:
        self._server, _ = start_http_server(self.requested_port, addr=self.host, registry=self.registry)
        log.info("metrics served", url=f"http://{self.host}:{self.port}/metrics")

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

